//! The server's ed25519 signing key: generated at first start, kept in the data directory.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use ruma::signatures::Ed25519KeyPair;

/// Loads `signing.key` from `data_dir`, or creates it. The file holds one line:
/// `ed25519 <version> <base64 PKCS#8>`, readable by its owner only.
pub fn load_or_create(data_dir: &Path) -> Result<Ed25519KeyPair, String> {
    let path = data_dir.join("signing.key");
    let engine = base64::engine::general_purpose::STANDARD;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut parts = text.split_whitespace();
            let (Some("ed25519"), Some(version), Some(der)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("{} is not a Converge signing key", path.display()));
            };
            let der = engine
                .decode(der)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ed25519KeyPair::from_der(&der, version.to_owned())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("{}: {e}", data_dir.display()))?;
            let der = Ed25519KeyPair::generate();
            let version = format!("a_{}", crate::ids::random_id(4));
            let line = format!("ed25519 {version} {}\n", engine.encode(&*der));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), %version, "generated a new signing key");
            Ed25519KeyPair::from_der(&der, version).map_err(|e| e.to_string())
        }
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(first.version(), again.version());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("signing.key"), "garbage").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
