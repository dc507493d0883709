//! Reaching servers: the guarded connector every connection goes through, the small HTTP
//! client built on it, TLS roots and configurations, and turning library errors into error kinds.

pub(crate) mod classify;
pub(crate) mod dns;
pub(crate) mod fetch;
pub(crate) mod guard;
pub(crate) mod stamp;
pub(crate) mod tls;
pub(crate) mod trouble;

pub use fetch::{get_trusted, post_trusted};

/// Cap on the HTTP read buffer, which bounds a response head (hyper's minimum is 8 KiB).
pub(crate) const MAX_HEAD_BUFFER: usize = 16 * 1024;

/// Sent as `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("mxping/", env!("CARGO_PKG_VERSION"));
