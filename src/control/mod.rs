//! The control socket: newline-delimited JSON requests from `chartd status` and friends.
//!
//! Read-only answers (`status`, `metrics`) come from the latest [`Snapshot`](crate::stats::Snapshot)
//! published by the index owner; commands that need the index (`groups`, `list`, `cleanup`,
//! `purge`) are sent to the owner as a [`CommandMsg`] and answered when it replies; `reload`
//! goes to the supervisor, which owns the configuration.
//!
//! # What the daemon calls
//!
//! ```ignore
//! // Before or after the runtime starts (plain std, no runtime needed):
//! let std_listener = control::bind(&config.socket, &config.control)?; // Err(String): print, exit
//! // Inside the runtime:
//! let listener = tokio::net::UnixListener::from_std(std_listener)?;
//! let ctx = Arc::new(control::Context::new(
//!     snapshot,              // watch::Receiver<Arc<Snapshot>> from the owner
//!     commands,              // mpsc::Sender<CommandMsg>; the owner answers each `reply`
//!     reload,                // mpsc::Sender<ReloadMsg>; the supervisor answers
//!     config.control.clone(), // replaced on reload: new limits and admins apply to the next request
//!     config.roots.clone(),  // grace per root, for the alert rule; replaced on reload
//!     progress,              // the owner's liveness, for `stale`
//! ));
//! tokio::spawn(control::serve(listener, ctx.clone(), shutdown_rx)); // watch::Receiver<bool>
//! // The owner feeds `ctx.tracker()` (the alert state) every snapshot it publishes.
//! ```
//!
//! `serve` returns after `shutdown` turns true (or its sender is dropped), giving open
//! connections 2 s to finish. It does not remove the socket file: the next start replaces it
//! (it is stale then), and systemd's `RuntimeDirectory=` removes it at stop.
//!
//! Modules: [`protocol`] (decode/validate/encode, pure), [`report`] (status JSON and metrics
//! text from a snapshot, pure), [`server`] (connections, limits, permissions), [`socket`] (creating the socket file),
//! [`accounts`] (`/etc/group`, `/etc/passwd` lookups).
//!
//! May touch: the latest snapshot (read), the owner's command channel and the supervisor's reload
//! channel, through its submodules, and the owner's live `Progress::idle` flag (in `server`: not a
//! snapshot); never an index or a root.

pub mod accounts;
pub mod messages;
pub mod protocol;
pub mod report;
mod request;
pub mod server;
pub mod socket;
#[cfg(test)]
pub(crate) mod tests;

pub use server::{serve, Context};
pub use socket::bind;

pub use request::{GroupSort, Request};
use tokio::sync::oneshot;

/// The owner's answer: the JSON fields to merge into `{"ok": true, ...}`, or an error message.
pub type Reply = Result<serde_json::Map<String, serde_json::Value>, String>;

pub struct CommandMsg {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Asks the supervisor to reload the config; the answer says whether it was taken, and why not.
pub struct ReloadMsg {
    pub reply: oneshot::Sender<Result<String, String>>,
}
