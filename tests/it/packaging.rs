//! The Dockerfile: no container engine runs here, so its structure is checked and the commands
//! it relies on are run outside a container. scripts/container-check (run by .ci/run, as root)
//! goes further: it builds from exactly what the COPY lines copy and runs the image's command
//! as the image's user with a read-only config, checking that history survives a restart.

use std::time::Duration;

use crate::support::Harness;
use crate::support::serve::Serve;

const DOCKERFILE: &str = include_str!("../../Dockerfile");
const CI: &str = include_str!("../../.ci/run");

/// The instructions (continuation lines joined), as (keyword, rest).
fn instructions() -> Vec<(String, String)> {
    let joined = DOCKERFILE.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, rest) = l.split_once(char::is_whitespace).unwrap();
            (
                k.to_uppercase(),
                rest.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// The JSON exec-form array of an instruction.
fn exec_form(rest: &str) -> Vec<String> {
    let start = rest.find('[').expect("exec form (JSON array), no shell");
    serde_json::from_str(&rest[start..]).expect("a JSON array")
}

fn final_stage() -> Vec<(String, String)> {
    let all = instructions();
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    all[last_from..].to_vec()
}

#[test]
fn multi_stage_build_with_a_small_non_root_final_image() {
    let all = instructions();
    let froms: Vec<&String> = all
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(froms.len(), 2);
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"),
        "{}",
        froms[0]
    );
    let last = final_stage();
    assert!(
        last[0].1.starts_with("gcr.io/distroless/cc-debian12"),
        "shell-less final image: {}",
        last[0].1
    );
    let user = last
        .iter()
        .find(|(k, _)| k == "USER")
        .expect("USER in the final stage");
    assert!(
        !user.1.starts_with("root") && !user.1.starts_with('0'),
        "{}",
        user.1
    );
    assert!(last.iter().any(|(k, r)| k == "EXPOSE" && r == "8080"));
    // glibc malloc held on to the per-round history copies with its default arenas.
    assert!(
        last.iter()
            .any(|(k, r)| k == "ENV" && r == "MALLOC_ARENA_MAX=1")
    );
    // History on its own volume, written by the image's user; the config can be read-only.
    assert!(
        last.iter()
            .any(|(k, r)| k == "VOLUME" && r == r#"["/var/lib/mxping"]"#)
    );
    assert!(last.iter().any(|(k, r)| k == "COPY"
        && r.starts_with("--from=build --chown=65532:65532 ")
        && r.ends_with(" /var/lib/mxping")));
    assert!(
        last.iter()
            .any(|(k, r)| k == "COPY" && r == "servers.toml /etc/mxping/servers.toml")
    );
    assert!(
        last.iter()
            .any(|(k, r)| k == "COPY" && r.starts_with("--from=build /src/target/release/mxping "))
    );
}

#[test]
fn the_build_command_is_the_one_ci_runs() {
    let run: Vec<String> = instructions()
        .into_iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(run, ["cargo build --release --locked"]);
    assert!(
        CI.lines().any(|l| l.trim() == "scripts/container-check"),
        ".ci/run must build from the Dockerfile's context and run the image's command"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_command_and_health_check_work_outside_a_container() {
    let last = final_stage();
    let entrypoint = exec_form(&last.iter().find(|(k, _)| k == "ENTRYPOINT").unwrap().1);
    let cmd = exec_form(&last.iter().find(|(k, _)| k == "CMD").unwrap().1);
    let health = last
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .unwrap()
        .1
        .clone();
    let health = exec_form(health.split_once("CMD").unwrap().1);
    assert_eq!(entrypoint, ["/usr/local/bin/mxping"]);
    assert_eq!(
        cmd,
        [
            "serve",
            "--config",
            "/etc/mxping/servers.toml",
            "--listen",
            "0.0.0.0:8080",
            "--data-dir",
            "/var/lib/mxping"
        ]
    );
    assert_eq!(
        health[0], "/usr/local/bin/mxping",
        "the health check needs no shell tools"
    );
    assert_eq!(health[1], "healthcheck");

    // The same command with the shipped config (its DNS aimed at the test DNS server, so
    // nothing leaves loopback) and a free port.
    let h = Harness::new().await;
    let shipped = include_str!("../../servers.toml").replace(
        "nameservers = []",
        &format!("nameservers = [\"{}\"]", h.dns.addr),
    );
    assert!(shipped.contains(&h.dns.addr.to_string()));
    let config = h.dir.path().join("servers.toml");
    std::fs::write(&config, shipped).unwrap();
    let s = Serve::start(&config).await;
    let url = s.url("/healthz");
    let mut args: Vec<String> = health[1..].to_vec();
    let i = args.iter().position(|a| a == "--url").unwrap();
    args[i + 1] = url.clone();
    let ok = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(&args)
        .status()
        .await
        .unwrap();
    assert!(ok.success(), "healthcheck against a running monitor");
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let down = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["healthcheck", "--url", &url])
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!down.success(), "healthcheck fails when nothing answers");
}
