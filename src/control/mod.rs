//! The control socket: newline-delimited JSON requests from `chartd status` and friends.
//!
//! Read-only answers (`status`, `metrics`) come from the latest [`Snapshot`](crate::stats::Snapshot)
//! published by the index owner; commands that need the index (`groups`, `list`, `cleanup`,
//! `purge`) are sent to the owner as a [`CommandMsg`] and answered when it replies; `reload`
//! goes to the supervisor, which owns the configuration.

pub mod accounts;
pub mod protocol;
pub mod report;
pub mod server;
#[cfg(test)]
pub(crate) mod tests;

// Unused until the daemon loop (main branch) calls them; the allow can go then.
#[allow(unused_imports)]
pub use server::{bind, serve, Context};

use std::path::PathBuf;
use tokio::sync::oneshot;

/// How `groups` are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSort {
    Bytes,
    Files,
    /// Oldest file first.
    Age,
    Name,
}

/// A request the index owner answers.
#[derive(Debug, Clone)]
pub enum Request {
    /// Per-group totals. `root`: only that root (as configured); `top`: the N first after sorting.
    Groups {
        root: Option<PathBuf>,
        top: Option<usize>,
        sort: GroupSort,
    },
    /// The files of one group (already validated: no `/`, `..`, NUL, not empty).
    List {
        root: Option<PathBuf>,
        group: String,
    },
    /// Enforce every limit now and resync the index.
    Cleanup { dry_run: bool },
    /// Delete every managed file of `group`, or of the whole root when `group` is `None`
    /// (the server has checked `all: true` + `confirm: true`).
    Purge {
        root: Option<PathBuf>,
        group: Option<String>,
        dry_run: bool,
    },
}

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
