//! Runs the real `mxping serve` binary against the harness and talks to it over HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Serve {
    /// Starts `mxping serve --config PATH` and waits until it listens.
    pub async fn start(config: &Path) -> Serve {
        Serve::start_with(config, |_| {}).await
    }

    /// [`Serve::start`], with `adjust` applied to the command first (its environment).
    pub async fn start_with(config: &Path, adjust: impl FnOnce(&mut Command)) -> Serve {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mxping"));
        command.args(Serve::args(config, "127.0.0.1:0"));
        adjust(&mut command);
        Serve::spawn(command).await
    }

    /// The arguments of `mxping serve` with `config`, listening on `listen`.
    pub fn args(config: &Path, listen: &str) -> Vec<String> {
        vec![
            "serve".into(),
            "--config".into(),
            config.to_str().unwrap().into(),
            "--listen".into(),
            listen.into(),
        ]
    }

    /// Runs `command` (one that ends in `mxping serve`, possibly through a wrapper) and
    /// waits until it listens.
    pub async fn spawn(command: Command) -> Serve {
        Serve::spawn_then(command, |_| {}).await
    }

    /// [`Serve::spawn`], calling `started` with the process ID as soon as it runs (to set up
    /// what the wrapper waits for).
    pub async fn spawn_then(mut command: Command, started: impl FnOnce(u32)) -> Serve {
        mxping::install_default_provider();
        command.env("MXPING_LOG", "mxping=info");
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        started(child.id().unwrap());
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let log2 = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().parse::<SocketAddr>().unwrap());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "mxping serve did not start listening:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Serve {
            child,
            addr,
            log,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `path` asked for with `Accept-Encoding: gzip`, as browsers and Prometheus do; the
    /// body is returned as sent (the test client does not decompress).
    pub async fn get_gzip(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap()
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path).await.1).unwrap()
    }

    /// The API object of one server.
    pub async fn server(&self, name: &str) -> Value {
        self.json(&format!("/api/v1/servers/{name}")).await
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn log_contains(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
    pub async fn wait_for<T, F, Fut>(&self, limit: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
