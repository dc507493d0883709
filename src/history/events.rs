//! Status changes: what the Atom feed shows and the store keeps across restarts.

use serde::Serialize;

use crate::status::{Reason, Status};

/// A status change, for the feed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The server.
    pub server: String,
    /// When, Unix seconds.
    pub at: i64,
    /// The status before.
    pub from: Status,
    /// The status after.
    pub to: Status,
    /// Why, in words.
    #[serde(serialize_with = "crate::status::reason_text")]
    pub reason: Option<Reason>,
}

/// Status changes kept for the feed.
pub(crate) const MAX_EVENTS: usize = 200;
