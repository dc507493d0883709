//! The commands: `check` (one server, now, on the command line) and `serve` (the monitor).

pub mod check;
pub mod serve;
