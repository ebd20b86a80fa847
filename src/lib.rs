//! chartd: keeps directories of generated chart images (and other throw-away files) inside
//! their limits, incrementally, from inotify events.
//!
//! The library holds everything; `src/main.rs` only parses the command line and calls in.
//! Data flows one way:
//!
//! config → watcher → owner → index → eviction → deletion; the control socket reads the
//! snapshots the owner publishes, and the CLI speaks typed requests to it.
//!
//! May touch: nothing itself (it only declares the modules); each module's own `May touch:` line
//! says what that module may.

pub mod affinity;
pub mod assets;
pub mod capacity;
pub mod check_config;
pub mod clean_once;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod evict;
pub mod fsops;
pub mod health;
pub mod index;
pub mod logging;
pub mod metrics_http;
pub mod owner;
pub mod policy;
pub mod root;
pub mod rootlock;
pub mod rules;
pub mod scan;
pub mod sdnotify;
pub mod stats;
#[cfg(debug_assertions)]
pub mod test_trigger;
pub mod watcher;
