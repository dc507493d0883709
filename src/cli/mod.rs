//! The commands: `check` (one server, now, on the command line), `serve` (the monitor) and
//! `maintenance` (the running monitor's admin API).

pub mod admin;
pub mod check;
pub mod serve;
