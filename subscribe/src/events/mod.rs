//! Named internal events of `subscribe`, one submodule per subcommand: each outcome (a frame stored, a dead
//! letter, a database write that failed...) is one type that owns its log line and its metric, so a call
//! site emits one event instead of pairing a counter, a log line and a summary field by hand.

pub mod store;
pub mod tail;
pub mod web;
