//! Several vantage points as separate `mxping serve` processes on loopback: a hub and three
//! agents with their own keys (`mxping keygen`). One agent may not reach b.test (its
//! private-address guard allows only a.test's address), one has no working DNS (impaired). The
//! hub's API shows each vantage's view and the quorum's verdict; forged, replayed and skewed
//! reports are refused and counted; a stopped agent goes stale and stops voting.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::serve::Serve;
use crate::support::{Harness, TestHost, ip};

const MONITOR: &str = "[monitor]\ninterval = \"1s\"\nretry_interval = \"500ms\"\n\
     timeout = \"800ms\"\ndown_after = 2\nup_after = 2\ncheck_keys = false\n\
     check_client = false\ncheck_signup = false\n[storage]\ndata_dir = \"\"\n";

/// `mxping keygen FILE`; the public key it prints.
fn keygen(file: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["keygen", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("public_key = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned()
}

fn vantage<'a>(server: &'a Value, name: &str) -> Option<&'a Value> {
    server["vantages"]
        .as_array()?
        .iter()
        .find(|v| v["vantage"] == name)
}

struct Fleet {
    h: Harness,
    _hosts: Vec<TestHost>,
    a_ip: String,
}

async fn fleet() -> Fleet {
    let mut h = Harness::new().await;
    let mut hosts = Vec::new();
    for name in ["a.test", "b.test"] {
        let mut host = h.host(name);
        h.homeserver(&mut host, 8448, name, name);
        hosts.push(host);
    }
    let a_ip = ip(&hosts[0]);
    h.servers = vec!["a.test".into(), "b.test".into()];
    Fleet {
        h,
        _hosts: hosts,
        a_ip,
    }
}

/// An agent's config: the harness's DNS and CA, its own name, key and guard.
fn agent_config(
    f: &Fleet,
    hub: &str,
    name: &str,
    allow: &str,
    nameserver: &str,
) -> std::path::PathBuf {
    let key = f.h.dir.path().join(format!("{name}.key"));
    let text = format!(
        "{MONITOR}[web]\nvantage = \"{name}\"\n[hub]\nurl = \"{hub}\"\nkey_file = \"{key}\"\n\
         [dns]\nnameservers = [\"{nameserver}\"]\ntimeout = \"300ms\"\n\
         [tls]\nextra_ca_file = \"{ca}\"\n[network]\nallow = {allow}\n",
        key = key.display(),
        ca = f.h.ca.pem_path.display(),
    );
    let path = f.h.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_hub_combines_its_agents_views_into_one_verdict() {
    let mut f = fleet().await;
    let dir = f.h.dir.path().to_owned();
    // "spare" has a key but no agent: the forged and replayed reports below use its name.
    let keys: Vec<(String, String)> = ["asia", "eu", "broken", "spare"]
        .iter()
        .map(|n| (n.to_string(), keygen(&dir.join(format!("{n}.key")))))
        .collect();
    let vantages: String = keys
        .iter()
        .map(|(n, k)| format!("[[vantage]]\nname = \"{n}\"\npublic_key = \"{k}\"\n"))
        .collect();
    // The hub alerts on every change of the verdict, to a webhook.
    let mut hooks_host = f.h.host("hooks.test");
    let leaf = f.h.ca.leaf(&["hooks.test"]);
    let hooks = f.h.serve(
        &mut hooks_host,
        443,
        leaf,
        crate::support::https::handler(|_| crate::support::Reply::status(204, "")),
    );
    std::fs::write(dir.join("hook.secret"), "s3cret").unwrap();
    f.h.extra = format!(
        "{MONITOR}[web]\nvantage = \"hub\"\n{vantages}[[alert]]\ntype = \"webhook\"\n\
         url = \"https://hooks.test/h\"\nsecret_file = \"{}\"\non = [\"red\", \"yellow\", \"green\"]\n",
        dir.join("hook.secret").display()
    );
    let hub = Serve::start(&f.h.config_file()).await;
    let hub_url = format!("http://{}", hub.addr);
    let dns = f.h.dns.addr.to_string();
    let asia = Serve::start(&agent_config(
        &f,
        &hub_url,
        "asia",
        "[\"127.0.0.0/8\"]",
        &dns,
    ))
    .await;
    let eu_allow = format!("[\"{}/32\"]", f.a_ip);
    let mut eu = Serve::start(&agent_config(&f, &hub_url, "eu", &eu_allow, &dns)).await;
    // No working DNS: it reaches nothing, so it must not vote.
    let _broken = Serve::start(&agent_config(
        &f,
        &hub_url,
        "broken",
        "[\"127.0.0.0/8\"]",
        "127.0.0.1:9",
    ))
    .await;

    let b = hub
        .wait_for(
            Duration::from_secs(30),
            "every vantage's view of b.test",
            || async {
                let b = hub.server("b.test").await;
                let ready = vantage(&b, "eu").is_some_and(|v| v["status"] == "red")
                    && vantage(&b, "asia").is_some_and(|v| v["status"] == "green")
                    && vantage(&b, "broken").is_some_and(|v| v["impaired"] == true)
                    && vantage(&b, "hub").is_some_and(|v| v["status"] == "green");
                ready.then_some(b)
            },
        )
        .await;
    assert_eq!(
        b["vantages"][0]["vantage"], "hub",
        "the hub's own view first"
    );
    assert_eq!(b["status"], "yellow", "down from one place only: {b}");
    assert_eq!(
        b["reason"], "unreachable from eu (2 of 3 vantages reach it)",
        "the broken vantage does not vote"
    );
    assert!(vantage(&b, "asia").unwrap()["latency_ms"].as_f64().unwrap() > 0.0);
    // Each vantage's own day of rounds: asia always reached b.test, eu never.
    assert_eq!(vantage(&b, "asia").unwrap()["uptime_24h"], 1.0);
    assert_eq!(vantage(&b, "eu").unwrap()["uptime_24h"], 0.0);
    assert!(
        vantage(&b, "asia").unwrap()["latency_24h_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The page: b.test yellow with the reason, eu's cell red, broken's struck through.
    let (_, page) = hub.text("/?lang=en").await;
    let doc = scraper::Html::parse_document(&page);
    let row = scraper::Selector::parse("tr[data-server=\"b.test\"]").unwrap();
    let row = doc.select(&row).next().expect("b.test's row");
    assert_eq!(row.value().attr("data-status"), Some("yellow"));
    let text = row.text().collect::<String>();
    assert!(
        text.contains("unreachable from eu (2 of 3 vantage points reach it)"),
        "{text}"
    );
    let cell = |class: &str| {
        let sel = scraper::Selector::parse(&format!("span.vantage.{class}")).unwrap();
        row.select(&sel)
            .map(|e| e.text().collect::<String>())
            .collect::<Vec<_>>()
    };
    assert_eq!(cell("red"), vec!["eu down"]);
    let impaired = cell("impaired");
    assert!(
        impaired.len() == 1 && impaired[0].starts_with("broken "),
        "{impaired:?}"
    );
    assert!(
        cell("green").iter().any(|c| c.starts_with("asia ")),
        "{:?}",
        cell("green")
    );
    let (_, detail) = hub.text("/server/b.test?lang=en").await;
    assert!(
        detail.contains("id=\"vantages\""),
        "the detail page lists every vantage"
    );
    assert!(detail.contains("its probes are broken; not counted"));
    // The verdict's change is the event: in the feed, and alerted with the places named.
    let alert: Value = hub
        .wait_for(Duration::from_secs(10), "the alert of b.test", || async {
            hooks
                .seen()
                .first()
                .map(|x| serde_json::from_slice::<Value>(&x.body).unwrap())
        })
        .await;
    assert_eq!(alert["server"], "b.test");
    assert_eq!(alert["status"], "yellow");
    // (How many places vote depends on whether "broken" was found impaired by then.)
    let reason = alert["reason_text"].as_str().unwrap();
    assert!(reason.starts_with("unreachable from eu ("), "{reason}");
    let (_, feed) = hub.text("/feed.atom").await;
    assert!(feed.contains("b.test: operational → degraded"), "{feed}");
    let a = hub.server("a.test").await;
    assert_eq!(a["status"], "green", "{a}");
    assert_eq!(vantage(&a, "eu").unwrap()["status"], "green");
    // The agents list the hub's servers and show their own view (no vantages of their own).
    let from_asia = asia.server("b.test").await;
    assert_eq!(from_asia["vantage"], "asia");
    assert!(from_asia.get("vantages").is_none());

    let (_, metrics) = hub.text("/metrics").await;
    for line in [
        "mxping_vantage_up{server=\"b.test\",vantage=\"eu\"} 0",
        "mxping_vantage_up{server=\"b.test\",vantage=\"asia\"} 1",
        "mxping_vantage_impaired{vantage=\"broken\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("mxping_vantage_last_report_timestamp_seconds{vantage=\"eu\"} "));

    // Forged, replayed and skewed reports are refused, said why, and counted.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |auth: String, body: Vec<u8>| {
        client
            .post(format!("{hub_url}/api/v1/vantage/report"))
            .header("authorization", auth)
            .body(body)
            .send()
    };
    let spare = mxping::testing::Key::read(&dir.join("spare.key")).unwrap();
    let forger = mxping::testing::Key::generate();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let body = |at: i64| {
        serde_json::to_vec(&serde_json::json!({
            "vantage": "spare", "sent_at_ms": at, "interval_s": 1, "servers": []
        }))
        .unwrap()
    };
    let r = post(forger.authorization("spare", &body(now_ms)), body(now_ms))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("does not match"));
    let signed = spare.authorization("spare", &body(now_ms));
    assert_eq!(
        post(signed.clone(), body(now_ms)).await.unwrap().status(),
        204
    );
    let r = post(signed, body(now_ms)).await.unwrap();
    assert_eq!(r.status(), 409, "a replay");
    let old = now_ms - 3_600_000;
    let r = post(spare.authorization("spare", &body(old)), body(old))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("behind the hub's clock"));
    let (_, metrics) = hub.text("/metrics").await;
    for reason in ["bad_signature", "replayed", "clock_skew"] {
        let line = format!("mxping_vantage_reports_rejected_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line}");
    }
    assert!(hub.log_contains("vantage report refused (bad_signature)"));

    // eu stops: after three of its intervals it is stale and stops voting; b.test is green.
    eu.child.kill().await.unwrap();
    let b = hub
        .wait_for(Duration::from_secs(20), "eu stale", || async {
            let b = hub.server("b.test").await;
            vantage(&b, "eu")
                .is_some_and(|v| v["stale"] == true)
                .then_some(b)
        })
        .await;
    assert_eq!(b["status"], "green", "{b}");
    let alerts: Vec<Value> = hub
        .wait_for(Duration::from_secs(10), "the recovery alert", || async {
            let seen = hooks.seen();
            (seen.len() >= 2).then(|| {
                seen.iter()
                    .map(|x| serde_json::from_slice::<Value>(&x.body).unwrap())
                    .collect()
            })
        })
        .await;
    let events: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a["server"].as_str().unwrap(), a["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![("b.test", "fired"), ("b.test", "resolved")],
        "{alerts:?}"
    );
}

/// Forwards `listener`'s connections to `to` until aborted: a hub that can be taken away and
/// brought back on the same address.
fn forward(
    listener: tokio::net::TcpListener,
    to: std::net::SocketAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

fn accepted(metrics: &str, vantage: &str) -> u64 {
    let prefix = format!("mxping_vantage_reports_accepted_total{{vantage=\"{vantage}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn an_agent_keeps_its_reports_while_the_hub_is_away_and_sends_them_in_order() {
    let mut f = fleet().await;
    let dir = f.h.dir.path().to_owned();
    let public = keygen(&dir.join("asia.key"));
    f.h.extra = format!("{MONITOR}[[vantage]]\nname = \"asia\"\npublic_key = \"{public}\"\n");
    let hub = Serve::start(&f.h.config_file()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let mut proxy = forward(listener, hub.addr);
    let dns = f.h.dns.addr.to_string();
    let agent = Serve::start(&agent_config(
        &f,
        &format!("http://{front}"),
        "asia",
        "[\"127.0.0.0/8\"]",
        &dns,
    ))
    .await;
    hub.wait_for(Duration::from_secs(20), "reports", || async {
        (accepted(&hub.text("/metrics").await.1, "asia") >= 2).then_some(())
    })
    .await;

    // The hub goes away: connections to its address are refused for four intervals.
    proxy.abort();
    let _ = (&mut proxy).await;
    let before = accepted(&hub.text("/metrics").await.1, "asia");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(accepted(&hub.text("/metrics").await.1, "asia"), before);
    assert!(
        agent.log_contains("the hub cannot be reached"),
        "the agent says so"
    );

    let listener = tokio::net::TcpListener::bind(front).await.unwrap();
    let _proxy = forward(listener, hub.addr);
    // At its next interval the agent sends what it kept, oldest first, each signed anew
    // (the hub accepts only newer send times, so the order is checked too).
    // Within one interval and a little: without the backlog only one or two would arrive.
    let after = hub
        .wait_for(Duration::from_millis(1800), "the backlog", || async {
            let n = accepted(&hub.text("/metrics").await.1, "asia");
            (n >= before + 4).then_some(n)
        })
        .await;
    assert!(after >= before + 4, "{before} -> {after}");
    let (_, metrics) = hub.text("/metrics").await;
    assert!(
        !metrics.contains("mxping_vantage_reports_rejected_total{"),
        "nothing refused: {metrics}"
    );
    assert!(agent.log_contains("the hub takes reports again"));

    // A body over 8 MiB is refused before it is read whole.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .post(format!("http://{}/api/v1/vantage/report", hub.addr))
        .header(
            "authorization",
            "MxpingVantage name=\"asia\",key=\"ed25519:x\",sig=\"AAAA\"",
        )
        .body(vec![b' '; 9 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A stranger is refused on its header, before its body is read (a new connection: the
    // hub closed the last one after refusing its body).
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .post(format!("http://{}/api/v1/vantage/report", hub.addr))
        .header(
            "authorization",
            "MxpingVantage name=\"mars\",key=\"ed25519:x\",sig=\"AAAA\"",
        )
        .body(vec![b' '; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, metrics) = hub.text("/metrics").await;
    assert!(metrics.contains("mxping_vantage_reports_rejected_total{reason=\"too_large\"} 1"));
    assert!(
        metrics.contains("mxping_vantage_reports_rejected_total{reason=\"unknown_vantage\"} 1")
    );
}

/// Fleets without a hub: three independent instances, scraped by a real Prometheus with a
/// `vantage` label each and the contrib rules loaded. eu cannot reach b.test (its guard allows
/// only a.test), so the quorum rules see one red vote of three: the "some vantages" alert
/// becomes pending for b.test, and the "everywhere" one does not.
#[tokio::test]
async fn prometheus_applies_the_contrib_quorum_to_independent_instances() {
    let f = fleet().await;
    let dns = f.h.dns.addr.to_string();
    let mut instances = Vec::new();
    for (name, allow) in [
        ("asia", "[\"127.0.0.0/8\"]".to_owned()),
        ("eu", format!("[\"{}/32\"]", f.a_ip)),
        ("us", "[\"127.0.0.0/8\"]".to_owned()),
    ] {
        let text = format!(
            "{MONITOR}[web]\nvantage = \"{name}\"\n[dns]\nnameservers = [\"{dns}\"]\n\
             timeout = \"300ms\"\n[tls]\nextra_ca_file = \"{ca}\"\n[network]\nallow = {allow}\n\
             [[server]]\nname = \"a.test\"\n[[server]]\nname = \"b.test\"\n",
            ca = f.h.ca.pem_path.display(),
        );
        let path = f.h.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        instances.push((name, Serve::start(&path).await));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus/alerts.yml");
    let mut config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: mxping\n    static_configs:\n"
    );
    for (name, s) in &instances {
        config.push_str(&format!(
            "      - targets: [\"{}\"]\n        labels:\n          vantage: {name}\n",
            s.addr
        ));
    }
    let dir = f.h.dir.path();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let _prometheus = tokio::process::Command::new("prometheus")
        .args([
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is needed: apt-get install prometheus (.ci/run does)");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let query = |q: &str| {
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={q}");
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.ok()?;
            let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let s = &instances[0].1;
    let pending = s
        .wait_for(
            Duration::from_secs(60),
            "three voters and the alert pending",
            || async {
                let voters = query("mxping:server_voters{server=\"b.test\"}").await?;
                let r = query("ALERTS{alertname=\"MatrixServerDownFromSomeVantages\"}").await?;
                (voters.first()?["value"][1] == "3" && !r.is_empty()).then_some(r)
            },
        )
        .await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["metric"]["server"], "b.test");
    assert_eq!(pending[0]["metric"]["alertstate"], "pending");
    let votes = query("mxping:server_red_votes{server=\"b.test\"}")
        .await
        .unwrap();
    assert_eq!(votes[0]["value"][1], "1", "{votes:?}");
    let voters = query("mxping:server_voters{server=\"b.test\"}")
        .await
        .unwrap();
    assert_eq!(voters[0]["value"][1], "3", "{voters:?}");
    let everywhere = query("ALERTS{alertname=\"MatrixServerDownEverywhere\"}")
        .await
        .unwrap();
    assert!(everywhere.is_empty(), "{everywhere:?}");
}

/// Issue 30, vantages 1 and 2: a server whose IPv6 address refuses while IPv4 answers is
/// reached, from everywhere, and so is one whose IPv6 a vantage cannot route to. Two such
/// dual-stack servers, the hub and one agent on a network with IPv6, one agent on a network
/// without: every vantage reaches both, none is impaired, each counts its rounds as up, and the
/// verdict is the yellow of a failing address, not red.
#[test]
fn a_dual_stack_server_with_ipv6_refused_is_reached_from_everywhere_even_without_ipv6() {
    use crate::support::netns::{
        IPV4_ONLY_ADDR, in_a_network_of_its_own, ipv4_only_command, ipv4_only_ready,
    };
    in_a_network_of_its_own(|| async {
        let mut h = Harness::new().await;
        let mut hosts = Vec::new();
        for name in ["dual-a.test", "dual-b.test"] {
            let mut host = h.host(name);
            h.homeserver(&mut host, 8448, name, name);
            // Nothing listens on [::1]:8448 here: the IPv6 address refuses.
            h.dns.aaaa(name, "::1".parse().unwrap());
            hosts.push(host);
        }
        h.servers = vec!["dual-a.test".into(), "dual-b.test".into()];
        let dir = h.dir.path().to_owned();
        let keys: Vec<(String, String)> = ["v6", "v4only"]
            .iter()
            .map(|n| (n.to_string(), keygen(&dir.join(format!("{n}.key")))))
            .collect();
        let vantages: String = keys
            .iter()
            .map(|(n, k)| format!("[[vantage]]\nname = \"{n}\"\npublic_key = \"{k}\"\n"))
            .collect();
        h.extra = format!("{MONITOR}[web]\nvantage = \"hub\"\n{vantages}");
        let hub = Serve::start(&h.config_file()).await;
        let hub_url = format!("http://{}", hub.addr);
        let dns = h.dns.addr.to_string();
        let allow = "[\"127.0.0.0/8\", \"::1/128\"]";
        let fleet = Fleet {
            h,
            _hosts: hosts,
            a_ip: String::new(),
        };
        let _v6 = Serve::start(&agent_config(&fleet, &hub_url, "v6", allow, &dns)).await;
        let ready = dir.join("v4only.ready");
        let config = agent_config(&fleet, &hub_url, "v4only", allow, &dns);
        let command = ipv4_only_command(
            &ready,
            env!("CARGO_BIN_EXE_mxping"),
            &Serve::args(&config, &format!("{IPV4_ONLY_ADDR}:0")),
        );
        let v4only = Serve::spawn_then(command, |pid| ipv4_only_ready(pid, &ready)).await;

        for name in ["dual-a.test", "dual-b.test"] {
            let s = hub
                .wait_for(
                    Duration::from_secs(30),
                    "three views of a dual-stack server, each with rounds",
                    || async {
                        let s = hub.server(name).await;
                        ["hub", "v6", "v4only"]
                            .iter()
                            .all(|v| {
                                vantage(&s, v).is_some_and(|x| {
                                    x["uptime_24h"].as_f64().is_some_and(|u| u > 0.0)
                                        && x["status"] != "unknown"
                                })
                            })
                            .then_some(s)
                    },
                )
                .await;
            for v in s["vantages"].as_array().unwrap() {
                assert_eq!(v["reached"], true, "{name}: {v}");
                assert_eq!(v["impaired"], false, "{name}: {v}");
                assert_eq!(v["stale"], false, "{name}: {v}");
                assert_eq!(v["uptime_24h"], 1.0, "{name}: {v}");
            }
            assert_eq!(vantage(&s, "v6").unwrap()["status"], "yellow", "{s}");
            assert_eq!(
                vantage(&s, "v4only").unwrap()["status"],
                "green",
                "its IPv6 is not its to judge: {s}"
            );
            assert_eq!(s["status"], "yellow", "{s}");
            let reason = s["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("IPv6 address [::1]:8448 failing"),
                "{reason}"
            );
        }
        // The agent without IPv6 says why its IPv6 results are missing, as the monitor does.
        let own = v4only.server("dual-a.test").await;
        let v6 = own["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["ip_family"] == "ipv6")
            .unwrap()
            .clone();
        assert_eq!(v6["error"]["monitor_side"], true, "{v6}");
        let (_, metrics) = hub.text("/metrics").await;
        for v in ["v6", "v4only"] {
            assert!(
                metrics.contains(&format!("mxping_vantage_impaired{{vantage=\"{v}\"}} 0")),
                "{metrics}"
            );
            for server in ["dual-a.test", "dual-b.test"] {
                let line = format!("mxping_vantage_up{{server=\"{server}\",vantage=\"{v}\"}} 1");
                assert!(metrics.contains(&line), "{line}");
            }
        }
    });
}

/// Issue 30, vantages 3: a vantage named in Chinese (any name a config can hold) reports, and
/// the hub shows its view under that name.
#[tokio::test]
async fn a_vantage_named_in_chinese_reports_to_its_hub() {
    let mut f = fleet().await;
    let dir = f.h.dir.path().to_owned();
    let public = keygen(&dir.join("上海.key"));
    f.h.extra = format!(
        "{MONITOR}[web]\nvantage = \"北京\"\n[[vantage]]\nname = \"上海\"\npublic_key = \"{public}\"\n"
    );
    let hub = Serve::start(&f.h.config_file()).await;
    let dns = f.h.dns.addr.to_string();
    let agent = Serve::start(&agent_config(
        &f,
        &format!("http://{}", hub.addr),
        "上海",
        "[\"127.0.0.0/8\"]",
        &dns,
    ))
    .await;
    let a = hub
        .wait_for(Duration::from_secs(20), "上海's view of a.test", || async {
            let a = hub.server("a.test").await;
            vantage(&a, "上海")
                .is_some_and(|v| v["status"] == "green")
                .then_some(a)
        })
        .await;
    assert_eq!(a["vantages"][0]["vantage"], "北京");
    let (_, metrics) = hub.text("/metrics").await;
    assert!(
        metrics.contains("mxping_vantage_reports_accepted_total{vantage=\"上海\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("mxping_vantage_reports_rejected_total{"));
    assert!(!agent.log_contains("refused"));
}

/// Issue 30, vantages 5 and 6: a hub keeps its replay marks and each vantage's day in its
/// store, so a report captured before a restart is refused after it, and the page shows the
/// vantage's view and day at once. `/healthz` says which vantage reports, and one that stops
/// is stale there and in `mxping_vantage_stale`.
#[tokio::test]
async fn a_restarted_hub_refuses_replays_and_keeps_every_vantages_day() {
    let mut f = fleet().await;
    let dir = f.h.dir.path().to_owned();
    let public = keygen(&dir.join("asia.key"));
    let monitor = MONITOR.replace(
        "data_dir = \"\"",
        &format!("data_dir = \"{}\"", dir.join("hub-data").display()),
    );
    f.h.extra = format!("{monitor}[[vantage]]\nname = \"asia\"\npublic_key = \"{public}\"\n");
    let config = f.h.config_file();
    let hub = Serve::start(&config).await;
    let (_, health) = hub.text("/healthz").await;
    assert!(health.contains("vantage asia: no report yet"), "{health}");
    let (_, metrics) = hub.text("/metrics").await;
    assert!(metrics.contains("mxping_vantage_stale{vantage=\"asia\"} 1"));
    let dns = f.h.dns.addr.to_string();
    let mut agent = Serve::start(&agent_config(
        &f,
        &format!("http://{}", hub.addr),
        "asia",
        "[\"127.0.0.0/8\"]",
        &dns,
    ))
    .await;
    hub.wait_for(Duration::from_secs(20), "asia's day of a.test", || async {
        let a = hub.server("a.test").await;
        vantage(&a, "asia")
            .is_some_and(|v| v["uptime_24h"] == 1.0)
            .then_some(())
    })
    .await;
    let (_, health) = hub.text("/healthz").await;
    assert!(health.contains("vantage asia: ok (last report"), "{health}");
    let (_, metrics) = hub.text("/metrics").await;
    assert!(metrics.contains("mxping_vantage_stale{vantage=\"asia\"} 0"));
    agent.child.kill().await.unwrap();
    let _ = agent.child.wait().await;
    // A report signed by asia's key, as an attacker who captured it would replay it.
    let key = mxping::testing::Key::read(&dir.join("asia.key")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let body = serde_json::to_vec(&serde_json::json!({
        "vantage": "asia", "sent_at_ms": now.unix_timestamp() * 1000 + 999, "interval_s": 1,
        "servers": [{"server": "a.test", "status": "green", "up": true, "latency_ms": 7.0,
                     "checked_at": now.format(&time::format_description::well_known::Rfc3339).unwrap(), "error": null,
                     "delegated_name": "a.test", "addresses": []}]
    }))
    .unwrap();
    let auth = key.authorization("asia", &body);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |to: std::net::SocketAddr| {
        client
            .post(format!("http://{to}/api/v1/vantage/report"))
            .header("authorization", auth.clone())
            .body(body.clone())
            .send()
    };
    assert_eq!(post(hub.addr).await.unwrap().status(), 204);
    let before = vantage(&hub.server("a.test").await, "asia")
        .unwrap()
        .clone();
    assert_eq!(before["latency_ms"], 7.0);
    hub.signal("TERM");
    let mut hub = hub;
    let _ = hub.child.wait().await;

    let hub = Serve::start(&config).await;
    // asia's view and day are there before it reports again.
    let after = vantage(&hub.server("a.test").await, "asia")
        .unwrap()
        .clone();
    for field in [
        "status",
        "latency_ms",
        "checked_at",
        "uptime_24h",
        "latency_24h_ms",
    ] {
        assert_eq!(after[field], before[field], "{field}: {after}");
    }
    assert!(after["uptime_24h"].as_f64().unwrap() > 0.99, "{after}");
    let r = post(hub.addr).await.unwrap();
    assert_eq!(
        r.status(),
        409,
        "a replay after a restart is still a replay"
    );
    let (_, metrics) = hub.text("/metrics").await;
    assert!(metrics.contains("mxping_vantage_reports_rejected_total{reason=\"replayed\"} 1"));
    // asia stopped: within three of its intervals it is stale, in /healthz and the metrics.
    let health = hub
        .wait_for(Duration::from_secs(10), "asia stale", || async {
            let (_, h) = hub.text("/healthz").await;
            h.contains("vantage asia: stale (last report").then_some(h)
        })
        .await;
    assert!(health.starts_with("ok\n"), "{health}");
    let (_, metrics) = hub.text("/metrics").await;
    assert!(metrics.contains("mxping_vantage_stale{vantage=\"asia\"} 1"));
}
