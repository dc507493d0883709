//! The Matrix client API calls of an alert bot: check the token, the room, the membership, the
//! power to post and the room's encryption at start; then send with a fixed transaction ID.
//! The access token goes in the `Authorization` header only (the spec no longer allows it in
//! the query string).

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::Failure;
use crate::config::MatrixRoom;
use crate::net::fetch::{Endpoint, Fetcher, Response};

/// Longest answer read from a homeserver.
const MAX_BODY: usize = 64 * 1024;
/// How long one request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A checked room: the bot's user, the room ID, and how to reach them.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    base: String,
    token: String,
    /// The bot's user ID (`/account/whoami`).
    pub user_id: String,
    /// The room ID (an alias resolved through the directory).
    pub room_id: String,
    /// The room as configured.
    pub room: String,
    /// Servers to join through.
    via: Vec<String>,
}

/// `POST /join/{roomIdOrAlias}` with each of `via` as `via` and, for homeservers older than
/// Matrix 1.12, as `server_name`.
pub(crate) fn join_path(room: &str, via: &[String]) -> String {
    let mut path = format!("/_matrix/client/v3/join/{}", segment(room));
    for (i, server) in via.iter().enumerate() {
        let s = segment(server);
        path.push_str(&format!(
            "{}via={s}&server_name={s}",
            if i == 0 { '?' } else { '&' }
        ));
    }
    path
}

/// A path segment, percent-encoded (everything but RFC 3986's unreserved characters).
pub(crate) fn segment(s: &str) -> String {
    crate::text::percent_encode(s)
}

/// The Matrix error code and message of an answer, if it has them.
fn errcode(r: &Response) -> (String, String) {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let code = v["errcode"].as_str().unwrap_or("").to_owned();
    let msg = v["error"].as_str().unwrap_or("").to_owned();
    (code, crate::text::cap_to(&msg, 200))
}

/// How long a 429 or 503 asks to wait: the `Retry-After` header (seconds or an HTTP date),
/// then the body's `retry_after_ms` (deprecated since Matrix 1.10, MSC4041, which made the
/// header the way to say it).
pub(crate) fn retry_after(r: &Response) -> Option<Duration> {
    if let Some(header) = r.headers.get(RETRY_AFTER).and_then(|h| h.to_str().ok()) {
        let header = header.trim();
        if let Ok(s) = header.parse::<u64>() {
            return Some(Duration::from_secs(s));
        }
        if let Ok(at) = httpdate::parse_http_date(header) {
            return Some(
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
            );
        }
    }
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["retry_after_ms"].as_u64().map(Duration::from_millis)
}

/// What an answer that is not a success means for delivery.
pub(crate) fn failure(what: &str, r: &Response) -> Failure {
    let (code, msg) = errcode(r);
    let detail = if code.is_empty() {
        format!("{what}: HTTP {}", r.status.as_u16())
    } else {
        format!("{what}: HTTP {} {code} {msg}", r.status.as_u16())
    };
    match r.status {
        StatusCode::TOO_MANY_REQUESTS => Failure::rate_limited(detail, retry_after(r)),
        s if s.is_server_error() => Failure {
            retry_after: retry_after(r),
            ..Failure::unreachable(detail)
        },
        _ => Failure::rejected(detail),
    }
}

/// What an answer to sending one message means: as [`failure`], and refused for what the
/// message is (400 bad request, 404, 410 gone, 413 too large) when sending it again cannot
/// help, so the queue is not held up behind it.
pub(crate) fn send_failure(what: &str, r: &Response) -> Failure {
    let permanent = matches!(
        r.status,
        StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::GONE
            | StatusCode::PAYLOAD_TOO_LARGE
    );
    Failure {
        permanent,
        ..failure(what, r)
    }
}

impl Session {
    async fn call(
        fetcher: &Fetcher,
        base: &str,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, Failure> {
        let url = url::Url::parse(&format!("{base}{path}"))
            .map_err(|e| Failure::rejected(format!("{base}{path} is not a URL: {e}")))?;
        let to = Endpoint::from_url(&url).map_err(Failure::rejected)?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Failure::rejected("the access token has characters a header cannot carry".into())
        })?;
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let headers = [(AUTHORIZATION, auth)];
        let sent = fetcher.request(method, &to, &headers, body, MAX_BODY);
        match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
            Err(_) => Err(Failure::unreachable(format!(
                "{base}: no answer within {}s",
                REQUEST_TIMEOUT.as_secs()
            ))),
            Ok(Err(e)) => Err(Failure::unreachable(format!("{base}: {}", e.message))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    async fn get(&self, fetcher: &Fetcher, path: &str) -> Result<Response, Failure> {
        Session::call(fetcher, &self.base, &self.token, Method::GET, path, None).await
    }

    /// Checks everything posting needs, in the order a person would fix it: the token, the
    /// room (an alias must exist), membership (an invite is accepted), the power to post,
    /// and that the room is not encrypted (plaintext there would be refused by clients'
    /// expectations and leak what the room protects).
    pub(crate) async fn open(fetcher: &Fetcher, target: &MatrixRoom) -> Result<Session, Failure> {
        let token = target
            .token
            .read()
            .map_err(|e| Failure::rejected(e.to_string()))?;
        let base = target.homeserver.trim_end_matches('/').to_owned();
        let whoami = Session::call(
            fetcher,
            &base,
            &token,
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            None,
        )
        .await?;
        if whoami.status == StatusCode::UNAUTHORIZED {
            let (code, msg) = errcode(&whoami);
            return Err(Failure::rejected(format!(
                "the access token is not valid on {base} ({code} {msg}); create a new one for the bot and put it in the token file"
            )));
        }
        if !whoami.status.is_success() {
            return Err(failure(&format!("{base} /account/whoami"), &whoami));
        }
        let user_id = serde_json::from_slice::<Value>(&whoami.body)
            .ok()
            .and_then(|v| v["user_id"].as_str().map(str::to_owned))
            .ok_or_else(|| Failure::rejected(format!("{base} /account/whoami gave no user_id")))?;
        let mut session = Session {
            base,
            token,
            user_id,
            room_id: target.room.clone(),
            room: target.room.clone(),
            via: target.via.clone(),
        };
        if target.room.starts_with('#') {
            let r = session
                .get(
                    fetcher,
                    &format!(
                        "/_matrix/client/v3/directory/room/{}",
                        segment(&target.room)
                    ),
                )
                .await?;
            if r.status == StatusCode::NOT_FOUND {
                return Err(Failure::rejected(format!(
                    "the room alias {} does not exist; create it or write the room's ID (!…) as room",
                    target.room
                )));
            }
            if !r.status.is_success() {
                return Err(failure(&format!("resolving {}", target.room), &r));
            }
            session.room_id = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["room_id"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    Failure::rejected(format!("{} resolved to no room_id", target.room))
                })?;
        }
        session.check_membership(fetcher).await?;
        session.check_power(fetcher).await?;
        session.check_unencrypted(fetcher).await?;
        Ok(session)
    }

    fn room_path(&self, rest: &str) -> String {
        format!("/_matrix/client/v3/rooms/{}/{rest}", segment(&self.room_id))
    }

    async fn state(&self, fetcher: &Fetcher, kind: &str, key: &str) -> Result<Response, Failure> {
        self.get(
            fetcher,
            &self.room_path(&format!("state/{kind}/{}", segment(key))),
        )
        .await
    }

    async fn check_membership(&self, fetcher: &Fetcher) -> Result<(), Failure> {
        let r = self.state(fetcher, "m.room.member", &self.user_id).await?;
        let membership = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["membership"].as_str().map(str::to_owned));
        if r.status.is_server_error() || r.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(failure(&format!("reading {}", self.room), &r));
        }
        if r.status.is_success() && membership.as_deref() == Some("join") {
            return Ok(());
        }
        // Not joined (a homeserver does not show an invited user the room's state): join,
        // which accepts an invite, or enters a room anyone may join, through the servers the
        // room's ID or alias names and the config's `via` (a version 12 room ID names none).
        let joined = Session::call(
            fetcher,
            &self.base,
            &self.token,
            Method::POST,
            &join_path(&self.room_id, &self.via),
            Some(&json!({})),
        )
        .await?;
        if joined.status.is_success() {
            tracing::info!("alerts: {} joined {}", self.user_id, self.room);
            return Ok(());
        }
        if joined.status.is_server_error() || joined.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(failure(&format!("joining {}", self.room), &joined));
        }
        Err(Failure::rejected(format!(
            "{} is not in the room {} and cannot join it; invite it from an account in the room \
             (mxping accepts the invite at its next check)",
            self.user_id, self.room
        )))
    }

    async fn check_power(&self, fetcher: &Fetcher) -> Result<(), Failure> {
        let r = self.state(fetcher, "m.room.power_levels", "").await?;
        if !r.status.is_success() {
            // A room without power levels lets every member post.
            return if r.status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(failure(
                    &format!("reading the power levels of {}", self.room),
                    &r,
                ))
            };
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let level = |v: &Value, default: i64| v.as_i64().unwrap_or(default);
        let mine = level(&v["users"][&self.user_id], level(&v["users_default"], 0));
        let needed = level(
            &v["events"]["m.room.message"],
            level(&v["events_default"], 0),
        );
        if mine < needed {
            return Err(Failure::rejected(format!(
                "{} may not post in {} (power level {mine}, messages need {needed}); raise its power level",
                self.user_id, self.room
            )));
        }
        Ok(())
    }

    async fn check_unencrypted(&self, fetcher: &Fetcher) -> Result<(), Failure> {
        let r = self.state(fetcher, "m.room.encryption", "").await?;
        if r.status.is_success() {
            return Err(Failure::rejected(format!(
                "{} is end-to-end encrypted, and mxping posts only to unencrypted rooms (it would \
                 send plaintext there); use an unencrypted room for alerts",
                self.room
            )));
        }
        if r.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(
            &format!("reading the encryption of {}", self.room),
            &r,
        ))
    }

    /// Sends `content` as an `m.room.message` with transaction ID `txn`: the same ID on
    /// every retry, so a retry of a message that did arrive returns the same event.
    pub(crate) async fn send(
        &self,
        fetcher: &Fetcher,
        txn: &str,
        content: &Value,
    ) -> Result<String, Failure> {
        self.send_event(fetcher, "m.room.message", txn, content)
            .await
    }
}

impl Session {
    /// One `/sync` of the room's messages only (an inline filter), after `since`, waiting at
    /// most `wait_ms` for one; the answer's JSON.
    pub(crate) async fn sync(
        &self,
        fetcher: &Fetcher,
        since: Option<&str>,
        wait_ms: u64,
    ) -> Result<Value, Failure> {
        let filter = json!({
            "presence": {"types": []},
            "account_data": {"types": []},
            "room": {
                "rooms": [self.room_id],
                "timeline": {"types": ["m.room.message"], "limit": 50},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        });
        let mut path = format!(
            "/_matrix/client/v3/sync?timeout={wait_ms}&filter={}",
            segment(&filter.to_string())
        );
        if let Some(s) = since {
            path.push_str(&format!("&since={}", segment(s)));
        }
        let r = self.get(fetcher, &path).await?;
        if !r.status.is_success() {
            return Err(failure(&format!("reading {}", self.room), &r));
        }
        serde_json::from_slice(&r.body).map_err(|e| {
            Failure::rejected(format!("reading {}: the sync is not JSON ({e})", self.room))
        })
    }

    /// The power level of `user` in the room (a room without power levels gives every member
    /// 0, its creator 100, which this does not know: 0).
    pub(crate) async fn power_of(&self, fetcher: &Fetcher, user: &str) -> Result<i64, Failure> {
        let r = self.state(fetcher, "m.room.power_levels", "").await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(0);
        }
        if !r.status.is_success() {
            return Err(failure(
                &format!("reading the power levels of {}", self.room),
                &r,
            ));
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Ok(v["users"][user]
            .as_i64()
            .unwrap_or_else(|| v["users_default"].as_i64().unwrap_or(0)))
    }

    /// Sends `content` as an event of `kind` (`m.reaction`) with transaction ID `txn`.
    pub(crate) async fn send_event(
        &self,
        fetcher: &Fetcher,
        kind: &str,
        txn: &str,
        content: &Value,
    ) -> Result<String, Failure> {
        let path = self.room_path(&format!("send/{kind}/{}", segment(txn)));
        let r = Session::call(
            fetcher,
            &self.base,
            &self.token,
            Method::PUT,
            &path,
            Some(content),
        )
        .await?;
        if !r.status.is_success() {
            return Err(send_failure(&format!("posting to {}", self.room), &r));
        }
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["event_id"].as_str().map(str::to_owned))
            .ok_or_else(|| Failure::rejected(format!("posting to {} gave no event_id", self.room)))
    }
}

/// A reaction `key` to `event`.
pub(crate) fn reaction(event: &str, key: &str) -> Value {
    json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key}})
}

/// A message's content: `m.text` (so people are notified; `m.notice` is muted by default),
/// plain and HTML.
pub(crate) fn text(body: &str, html: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    })
}

/// An edit of `root` to `body`/`html` (`m.replace`; clients without edits show the fallback).
pub(crate) fn edit(root: &str, body: &str, html: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("* {body}"),
        "format": "org.matrix.custom.html",
        "formatted_body": format!("* {html}"),
        "m.new_content": text(body, html),
        "m.relates_to": {"rel_type": "m.replace", "event_id": root},
    })
}

/// A reply in `root`'s thread (with the reply fallback for clients without threads).
pub(crate) fn reply(root: &str, body: &str, html: &str) -> Value {
    let mut v = text(body, html);
    v["m.relates_to"] = json!({
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": true,
        "m.in_reply_to": {"event_id": root},
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_and_aliases_are_encoded_as_one_segment() {
        assert_eq!(segment("#ops:example.org"), "%23ops%3Aexample.org");
        assert_eq!(segment("!abc/def:x"), "%21abc%2Fdef%3Ax");
        assert_eq!(segment("mxping.1.ab-_~"), "mxping.1.ab-_~");
    }

    #[test]
    fn joins_name_every_server_to_join_through() {
        assert_eq!(
            join_path("!HVAyE2qiqmBDrVyZdNTJl9x4QdPTI8FmK0C_vqzd8Ao", &[]),
            "/_matrix/client/v3/join/%21HVAyE2qiqmBDrVyZdNTJl9x4QdPTI8FmK0C_vqzd8Ao"
        );
        assert_eq!(
            join_path("!r:a.org", &["a.org".into(), "b.org:8448".into()]),
            "/_matrix/client/v3/join/%21r%3Aa.org?via=a.org&server_name=a.org\
             &via=b.org%3A8448&server_name=b.org%3A8448"
        );
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut map = hyper::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_owned()),
            head_time: Duration::ZERO,
        }
    }

    #[test]
    fn retry_after_is_read_from_the_header_first_then_the_body() {
        let body = r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":500}"#;
        let both = answer(429, &[("retry-after", "7")], body);
        assert_eq!(retry_after(&both), Some(Duration::from_secs(7)));
        let f = failure("x", &both);
        assert_eq!(
            (f.result, f.retry_after),
            (
                super::super::Delivery::RateLimited,
                Some(Duration::from_secs(7))
            )
        );
        assert_eq!(
            retry_after(&answer(429, &[], body)),
            Some(Duration::from_millis(500))
        );
        // A 503 that says when to come back is waited for too.
        let busy = failure("x", &answer(503, &[("retry-after", "30")], ""));
        assert_eq!(
            (busy.result, busy.retry_after),
            (
                super::super::Delivery::Unreachable,
                Some(Duration::from_secs(30))
            )
        );
        assert!(!busy.permanent);
    }

    #[test]
    fn a_message_refused_for_what_it_is_is_permanent_and_others_are_not() {
        for status in [400, 404, 410, 413] {
            assert!(
                send_failure("x", &answer(status, &[], "")).permanent,
                "{status}"
            );
        }
        for status in [401, 403, 429, 500, 502, 503] {
            assert!(
                !send_failure("x", &answer(status, &[], "")).permanent,
                "{status}"
            );
        }
        // Checking the room is never about one message.
        assert!(!failure("x", &answer(404, &[], "")).permanent);
    }

    #[test]
    fn edits_and_replies_have_the_shapes_clients_read() {
        let e = edit("$root", "new", "<b>new</b>");
        assert_eq!(e["m.relates_to"]["rel_type"], "m.replace");
        assert_eq!(e["m.new_content"]["body"], "new");
        assert_eq!(e["body"], "* new");
        let r = reply("$root", "ok", "ok");
        assert_eq!(r["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(r["m.relates_to"]["m.in_reply_to"]["event_id"], "$root");
    }
}
