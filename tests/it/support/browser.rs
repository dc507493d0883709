//! Headless Chromium (Debian's `chromium`, installed by .ci/run) driven from the command line:
//! the DOM after scripts ran, and screenshots. Test host names are mapped to their loopback
//! addresses with --host-resolver-rules; nothing reaches any other network.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where screenshots go (CI keeps this folder as an artifact; see the README).
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/artifacts/screenshots"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn binary() -> String {
    let path = std::env::var("MXPING_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "headless Chromium is needed for this test: apt-get install chromium (.ci/run does)"
    );
    path
}

/// Options for one Chromium run.
#[derive(Default, Clone)]
pub struct Browser {
    /// `name → ip` pairs for --host-resolver-rules.
    pub hosts: Vec<(String, String)>,
    /// Run with JavaScript disabled.
    pub no_script: bool,
    /// Window size (width, height).
    pub size: Option<(u32, u32)>,
    /// Accept-Language.
    pub lang: Option<String>,
    /// The reader's time zone (an IANA name), for pages loaded live.
    pub time_zone: Option<String>,
}

impl Browser {
    fn args(&self, profile: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            // The test servers' certificates come from the test CA, unknown to Chromium.
            "--ignore-certificate-errors",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        if !self.hosts.is_empty() {
            let rules: Vec<String> = self
                .hosts
                .iter()
                .map(|(n, ip)| format!("MAP {n} {ip}"))
                .collect();
            args.push(format!(
                "--host-resolver-rules={}, EXCLUDE localhost",
                rules.join(", ")
            ));
        }
        if self.no_script {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        let (w, h) = self.size.unwrap_or((1280, 1000));
        args.push(format!("--window-size={w},{h}"));
        if let Some(lang) = &self.lang {
            args.push(format!("--lang={lang}"));
            args.push(format!("--accept-lang={lang}"));
        }
        args
    }

    async fn run(&self, extra: &[String], url: &str) -> std::process::Output {
        let profile = tempfile::tempdir().unwrap();
        let mut args = self.args(profile.path());
        args.extend(extra.iter().cloned());
        args.push(url.to_owned());
        let child = tokio::process::Command::new(binary())
            .args(&args)
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(60), child)
            .await
            .expect("chromium finished within 60 s")
            .expect("chromium runs")
    }

    /// The DOM after scripts ran for `budget_ms` of (virtual) time.
    pub async fn dom(&self, url: &str, budget_ms: u32) -> String {
        let mut extra = vec!["--dump-dom".to_owned()];
        if !self.no_script {
            extra.push(format!("--virtual-time-budget={budget_ms}"));
        }
        let out = self.run(&extra, url).await;
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            dom.contains("</html>"),
            "chromium printed no DOM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dom
    }
}

impl Browser {
    /// Opens `url` in real time (no virtual clock) and returns the DOM once `ready` (a
    /// JavaScript expression) is true, or after `limit`. With `no_script`, scripts are off and
    /// the DOM is read after the load. Talks to Chromium over the DevTools protocol on a
    /// loopback port it picks itself.
    pub async fn live_dom(&self, url: &str, ready: &str, limit: Duration) -> String {
        self.live(url, ready, limit, None, &[]).await.0
    }

    /// Like [`Browser::live_dom`], also returning the values of `expressions` (evaluated
    /// after `ready`, promises awaited).
    pub async fn live_eval(
        &self,
        url: &str,
        ready: &str,
        limit: Duration,
        expressions: &[&str],
    ) -> (String, Vec<serde_json::Value>) {
        self.live(url, ready, limit, None, expressions).await
    }

    /// Like [`Browser::live_dom`], and saves a screenshot of the viewport as `name` in the
    /// screenshot folder.
    pub async fn live_screenshot(
        &self,
        url: &str,
        ready: &str,
        limit: Duration,
        name: &str,
    ) -> PathBuf {
        let path = screenshot_dir().join(name);
        self.live(url, ready, limit, Some(&path), &[]).await;
        path
    }

    /// Opens `url` once and, at each of `widths` (the window resized, the page not
    /// reloaded), evaluates `expression` and saves a screenshot named by `shot`. Returns the
    /// values in the order of `widths`.
    pub async fn at_widths(
        &self,
        url: &str,
        ready: &str,
        limit: Duration,
        widths: &[(u32, u32)],
        expression: &str,
        shot: impl Fn(u32) -> String,
    ) -> Vec<serde_json::Value> {
        let (_child, mut cdp, _profile) = self.open(url, ready, limit).await;
        let mut values = Vec::new();
        for &(w, h) in widths {
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                serde_json::json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600}),
            )
            .await;
            // Two frames, so the new layout is done before it is measured.
            let frames = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))";
            cdp.evaluate(frames).await;
            values.push(cdp.evaluate(expression).await);
            cdp.screenshot(&screenshot_dir().join(shot(w))).await;
        }
        values
    }

    /// Chromium with `url` loaded and `ready` true (or `limit` passed); the profile directory
    /// lives as long as the returned value.
    async fn open(
        &self,
        url: &str,
        ready: &str,
        limit: Duration,
    ) -> (tokio::process::Child, Cdp, tempfile::TempDir) {
        let profile = tempfile::tempdir().unwrap();
        let mut args = self.args(profile.path());
        args.retain(|a| a != "--blink-settings=scriptEnabled=false");
        args.push("--remote-debugging-port=0".into());
        args.push("about:blank".into());
        let child = tokio::process::Command::new(binary())
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut cdp = Cdp::connect(profile.path()).await;
        cdp.call("Page.enable", serde_json::json!({})).await;
        let (w, h) = self.size.unwrap_or((1280, 1000));
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600}),
        )
        .await;
        if let Some(zone) = &self.time_zone {
            cdp.call(
                "Emulation.setTimezoneOverride",
                serde_json::json!({"timezoneId": zone}),
            )
            .await;
        }
        if self.no_script {
            cdp.call(
                "Emulation.setScriptExecutionDisabled",
                serde_json::json!({"value": true}),
            )
            .await;
        }
        cdp.call("Page.navigate", serde_json::json!({"url": url}))
            .await;
        cdp.wait_event("Page.loadEventFired", Duration::from_secs(30))
            .await;
        if !self.no_script {
            let until = tokio::time::Instant::now() + limit;
            while tokio::time::Instant::now() < until {
                if cdp.evaluate(ready).await == serde_json::Value::Bool(true) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        (child, cdp, profile)
    }

    async fn live(
        &self,
        url: &str,
        ready: &str,
        limit: Duration,
        screenshot: Option<&Path>,
        expressions: &[&str],
    ) -> (String, Vec<serde_json::Value>) {
        let (_child, mut cdp, _profile) = self.open(url, ready, limit).await;
        if let Some(path) = screenshot {
            cdp.screenshot(path).await;
        }
        let mut values = Vec::new();
        for e in expressions {
            values.push(cdp.evaluate(e).await);
        }
        let doc = cdp
            .call("DOM.getDocument", serde_json::json!({"depth": -1}))
            .await;
        let root = doc["root"]["nodeId"].clone();
        let html = cdp
            .call("DOM.getOuterHTML", serde_json::json!({"nodeId": root}))
            .await;
        (
            html["outerHTML"].as_str().unwrap_or_default().to_owned(),
            values,
        )
    }
}

/// A minimal DevTools-protocol session with the first page of a Chromium instance.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: u64,
    events: Vec<serde_json::Value>,
}

impl Cdp {
    async fn connect(profile: &Path) -> Cdp {
        let port_file = profile.join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
            {
                break port;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let ws_url = loop {
            let text = match client
                .get(format!("http://127.0.0.1:{port}/json/list"))
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let list: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let page = list
                .as_array()
                .and_then(|l| l.iter().find(|t| t["type"] == "page"));
            if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                break ws.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromium opened no page: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap();
        Cdp {
            ws,
            id: 0,
            events: Vec::new(),
        }
    }

    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.id += 1;
        let request = serde_json::json!({"id": self.id, "method": method, "params": params});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        while let Some(Ok(msg)) = self.ws.next().await {
            if let Message::Text(text) = msg {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if v["id"] == self.id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
        }
        panic!("the DevTools connection closed during {method}");
    }

    /// The value of a JavaScript expression, promises awaited.
    async fn evaluate(&mut self, expression: &str) -> serde_json::Value {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// A PNG of the viewport, saved at `path`.
    async fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let shot = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({"format": "png"}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn wait_event(&mut self, method: &str, limit: Duration) {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        let wait = async {
            while let Some(Ok(msg)) = self.ws.next().await {
                if let Message::Text(text) = msg {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if v["method"] == method {
                        return;
                    }
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| panic!("no {method} within {limit:?}"));
    }
}
