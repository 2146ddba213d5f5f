//! Embeds the vendored `lexicons/` tree in the binary, so the server is self-contained: writes
//! `$OUT_DIR/lexicons.rs` with one `(path relative to lexicons/, include_str!(file))` entry per
//! JSON file, sorted by path. Cargo re-runs this when anything under `lexicons/` changes.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../../lexicons");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out =
        String::from("/// The embedded Lexicon documents: `(relative path, JSON text)`.\n");
    out.push_str("pub(crate) static LEXICONS: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under the root");
        let absolute = file.canonicalize().expect("the file exists");
        out.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            relative.to_string_lossy(),
            absolute.to_string_lossy()
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("lexicons.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}
