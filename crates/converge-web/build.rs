//! Embeds `web/dist` (Converge Web, built from `web/` and committed) as a table of files,
//! each with its content type and, for the types that compress, a gzip copy made here once
//! rather than per request. Without `web/dist` the table is empty and the server says so.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../../web/dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    }
    // Sorted by URL path, so the server can look them up by binary search.
    let mut files: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(&dist)
                .expect("under dist")
                .to_str()
                .expect("file names in web/dist are UTF-8")
                .replace('\\', "/");
            (format!("/{relative}"), file)
        })
        .collect();
    files.sort();
    let mut table = String::from("&[\n");
    for (n, (url_path, file)) in files.iter().enumerate() {
        let bytes = std::fs::read(file).expect("readable");
        let content_type = content_type(url_path);
        let gzip = if compresses(content_type) {
            let path = out.join(format!("asset-{n}.gz"));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&bytes).expect("in memory");
            let compressed = encoder.finish().expect("in memory");
            // Worth it only if it saves something.
            (compressed.len() < bytes.len()).then(|| {
                std::fs::write(&path, compressed).expect("OUT_DIR is writable");
                format!("Some(include_bytes!({:?}))", path.display().to_string())
            })
        } else {
            None
        };
        writeln!(
            table,
            "    Asset {{ path: {:?}, content_type: {:?}, body: include_bytes!({:?}), gzip: {} }},",
            url_path,
            content_type,
            file.display().to_string(),
            gzip.unwrap_or_else(|| "None".into()),
        )
        .expect("writing to a String");
    }
    table.push(']');
    std::fs::write(out.join("assets.rs"), table).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compresses(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "image/svg+xml" | "application/wasm" | "application/json"
        )
}
