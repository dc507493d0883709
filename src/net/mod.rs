//! Reaching servers: the guarded connector every connection goes through, the small HTTP
//! client built on it, TLS roots and configurations, and turning library errors into error kinds.

pub(crate) mod classify;
pub(crate) mod fetch;
pub(crate) mod guard;
pub(crate) mod stamp;
pub mod tls;
pub mod trouble;

pub use fetch::get_trusted;

/// Sent as `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("mxping/", env!("CARGO_PKG_VERSION"));
