//! Converge Web's files, embedded at build time from `web/dist` (see `build.rs`): what the
//! server serves at `/`. No I/O and no HTTP here; `converge-api` serves them.

/// One file of the built app.
#[derive(Debug)]
pub struct Asset {
    /// The URL path, such as `/index.html` or `/assets/index-3f2a.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same, gzip-compressed, where that is smaller.
    pub gzip: Option<&'static [u8]>,
}

impl Asset {
    /// Whether the file's name carries a hash of its content (everything under
    /// `/assets/`), so a browser may keep it forever.
    pub fn immutable(&self) -> bool {
        self.path.starts_with("/assets/")
    }
}

static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at a URL path, if the app has one.
pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

/// Every file's URL path.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}

/// The app's page, served for every route of the app; `None` if the build had no
/// `web/dist`.
pub fn index() -> Option<&'static Asset> {
    get("/index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_lookups() {
        assert!(ASSETS.windows(2).all(|w| w[0].path < w[1].path));
        for asset in ASSETS {
            assert_eq!(get(asset.path).map(|a| a.path), Some(asset.path));
        }
        assert!(get("/nope").is_none());
    }
}
