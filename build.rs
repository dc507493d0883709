//! Compiles every interface translation in `locales/` into the binary, so adding a language
//! is adding one file, and writes a constant per English message key (`i18n::key`), so a key
//! that does not exist does not compile.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("locales");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("locales/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// (language code, TOML text) of every file in locales/.\npub(crate) const LOCALE_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let code = f.file_stem().unwrap().to_str().unwrap();
        writeln!(
            out,
            "    ({code:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("locales.rs");
    std::fs::write(dest, out).unwrap();

    // A constant per message of the English file, so a key that does not exist (misspelt,
    // removed) does not compile.
    let english = std::fs::read_to_string(dir.join("en.toml")).expect("locales/en.toml exists");
    let mut keys = String::new();
    for line in english.lines() {
        let Some((name, _)) = line.split_once(" = ") else {
            continue;
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        writeln!(
            keys,
            "/// `{name}` in locales/en.toml.\npub(crate) const {}: super::Key = super::Key({name:?});",
            name.to_ascii_uppercase()
        )
        .unwrap();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("locale_keys.rs");
    std::fs::write(dest, keys).unwrap();
}
