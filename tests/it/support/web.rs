//! The web app in-process: real rounds (production discovery and probes against the loopback
//! servers) recorded at times the test chooses and published the one way the scheduler
//! publishes them (`scheduler::publish_round`, `publish_checked`) on a `Board`, and the router
//! driven with `tower::ServiceExt::oneshot` — no binary, no port, no waiting for the
//! scheduler's cadence.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use mxping::Services;
use mxping::config::Config;
use mxping::testing::Metrics;
use mxping::testing::ServerHistory;
use mxping::testing::{
    Board, Cell, Checked, Outlet, Published, ServerView, publish_checked, publish_round, thresholds,
};
use serde_json::Value;
use tower::ServiceExt as _;

pub struct Web {
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    config: Arc<Config>,
    services: Services,
    histories: Vec<ServerHistory>,
    cells: Vec<Arc<Cell>>,
    signups: Vec<Checked>,
    /// The time the next round is recorded at (Unix seconds).
    pub clock: i64,
}

impl Web {
    /// The app for `config`, no round made yet; rounds are recorded from ten minutes ago on.
    pub fn new(config: Config) -> Web {
        let metrics = Arc::new(Metrics::new());
        let config = Arc::new(config);
        let board = Arc::new(Board::new(config.clone()));
        let histories = config
            .servers
            .iter()
            .map(|_| ServerHistory::new(thresholds(&config)))
            .collect();
        let clock = time::OffsetDateTime::now_utc().unix_timestamp() - 600;
        let cells: Vec<Arc<Cell>> = config
            .servers
            .iter()
            .zip(&histories)
            .map(|(server, history)| {
                Arc::new(Cell::new(ServerView::build(
                    server, history, None, None, clock,
                )))
            })
            .collect();
        board.set_layout(
            config.clone(),
            config
                .servers
                .iter()
                .zip(&cells)
                .map(|(s, c)| (s.name.to_string(), c.clone()))
                .collect(),
        );
        Web {
            signups: config.servers.iter().map(|_| Checked::default()).collect(),
            board,
            metrics,
            services: Services::new(&config).unwrap(),
            histories,
            cells,
            clock,
            config,
        }
    }

    /// One round of every server, recorded one second after the last, then published.
    pub async fn round(&mut self) {
        self.round_of(&[]).await;
    }

    /// One round of the servers named (all when empty); the others keep their last round.
    pub async fn round_of(&mut self, names: &[&str]) {
        let chosen = |name: &str| names.is_empty() || names.contains(&name);
        let rounds = futures_util::future::join_all(self.config.servers.iter().map(|s| async {
            if chosen(s.name.as_str()) {
                Some(self.services.round(s.name.as_str()).await)
            } else {
                None
            }
        }))
        .await;
        let now = self.clock;
        self.clock += 1;
        let board = self.board.clone();
        let on_event = |event| board.push_event(event);
        let out = Outlet {
            board: &self.board,
            metrics: &self.metrics,
            store: None,
            on_event: &on_event,
        };
        for (i, round) in rounds.into_iter().enumerate() {
            let Some(round) = round else { continue };
            let to = Published {
                server: &self.config.servers[i],
                per_server_phases: false,
                cell: &self.cells[i],
                checked: self.signups[i].clone(),
                now,
            };
            publish_round(&to, &mut self.histories[i], round, true, &out);
        }
    }

    /// A sign-up check of every server (the real checker), shown from the next publish on.
    pub async fn check_signups(&mut self) {
        let checker = self.services.signup.as_ref().expect("sign-up checks on");
        let checks = futures_util::future::join_all(
            self.config.servers.iter().map(|s| checker.check(&s.name)),
        )
        .await;
        for (i, n) in checks.into_iter().enumerate() {
            let name = self.config.servers[i].name.to_string();
            self.metrics.set_signup(&name, n.signup.status);
            self.metrics.set_clients(&name, &n.clients);
            let checked = self.signups[i].with_newcomer(n);
            self.signups[i] = checked.clone();
            publish_checked(
                &self.board,
                &self.metrics,
                &self.cells[i],
                &checked,
                &self.histories[i],
            );
        }
    }

    /// Shows server `i` in the maintenance window `maintenance` and with `incident`, as the
    /// monitor's operators' task does; the status change goes to the feed.
    pub fn show_operators(
        &mut self,
        i: usize,
        maintenance: Option<mxping::testing::Active>,
        incident: Option<mxping::testing::Incident>,
    ) {
        let checked = Checked {
            incident: incident.map(std::sync::Arc::new),
            ..self.signups[i].with_maintenance(maintenance)
        };
        self.signups[i] = checked.clone();
        if let Some(event) = publish_checked(
            &self.board,
            &self.metrics,
            &self.cells[i],
            &checked,
            &self.histories[i],
        ) {
            self.board.push_event(event);
        }
    }

    /// `n` rounds of every server.
    pub async fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            self.round().await;
        }
    }

    /// GET `path` with `headers`: status, headers and body as sent.
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HeaderMap, Vec<u8>) {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = mxping::web::app(mxping::web::Handles {
            board: self.board.clone(),
            metrics: self.metrics.clone(),
            alerts: None,
            hub: None,
            store: None,
            admin: None,
            maintenance: None,
            incidents: None,
        })
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    /// GET `path`: status and body text.
    pub async fn text(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.get_with(path, &[]).await;
        (status, String::from_utf8(body).unwrap())
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path).await.1).unwrap()
    }

    /// The API object of one server.
    pub async fn server(&self, name: &str) -> Value {
        serde_json::from_str(&self.text(&format!("/api/v1/servers/{name}")).await.1).unwrap()
    }
}
