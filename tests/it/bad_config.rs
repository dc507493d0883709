//! Every malformed config under tests/fixtures/bad-config makes `mxping validate` and
//! `mxping serve` exit with the config-error code (2) and a message naming the file, line and
//! column, the key, what is wrong and what to write instead; `serve` binds nothing and writes
//! nothing (no history store) before the config is valid.

use std::path::PathBuf;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad-config");

fn fixtures() -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} has no `# expect:` line", p.display()))
                .to_owned();
            (p, expect)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn there_are_at_least_25_fixtures() {
    assert!(fixtures().len() >= 25, "{}", fixtures().len());
}

#[tokio::test]
async fn every_bad_config_is_refused_with_position_key_and_fix() {
    let work = tempfile::tempdir().unwrap();
    for (fixture, expect) in fixtures() {
        // Copy next to its helper files, so a config that wrongly passed would create its
        // store (mxping-data/) here, where the test can see it.
        let dir = work.path().join(fixture.file_stem().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "pem") {
                std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
        }
        let config = dir.join("servers.toml");
        std::fs::copy(&fixture, &config).unwrap();
        let shown = config.display().to_string();
        for command in ["validate", "serve"] {
            let mut args = vec![command, "--config", &shown];
            if command == "serve" {
                args.extend(["--listen", "127.0.0.1:0"]);
            }
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
                .args(&args)
                .env("MXPING_LOG", "mxping=info")
                .output()
                .await
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let name = fixture.file_name().unwrap().to_string_lossy();
            assert_eq!(out.status.code(), Some(2), "{name} {command}: {err}");
            assert!(
                err.contains(&format!(
                    "{shown}{}{expect}",
                    if expect.starts_with(':') { "" } else { ":" }
                )),
                "{name} {command}: expected {expect:?} in\n{err}"
            );
            assert!(
                err.contains("      fix: "),
                "{name} {command}: no fix in\n{err}"
            );
            assert!(
                !err.contains("see the example config"),
                "{name} {command}: a generic fix in\n{err}"
            );
            assert!(!err.contains("listening on"), "{name}: serve bound a port");
            assert!(
                !dir.join("mxping-data").exists(),
                "{name}: serve wrote its store"
            );
        }
    }
}
