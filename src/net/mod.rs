//! Reaching servers: the guarded connector every connection goes through, the small HTTP
//! client built on it, TLS roots and configurations, and turning library errors into error kinds.

pub(crate) mod classify;
pub mod fetch;
pub mod guard;
pub mod tls;
