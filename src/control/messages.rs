//! The typed control protocol: every request a client sends and every reply the daemon sends,
//! as serde types shared by the server, the CLI client and the tests.
//!
//! Why one module: the daemon used to build replies with `json!` and the client read them back
//! by string keys, so a renamed field broke `chartd status` silently (it printed `-`). Now the
//! server serializes these structs and the client deserializes them: a field renamed on one
//! side fails the client's decoding loudly, and `tests/protocol_doc.rs` checks the README's
//! protocol table against the field names these types produce.
//!
//! Replies tolerate *additional* fields (a newer daemon), but every field listed here without a
//! `default` must be present. Nullable figures are `Option` and serialized as `null`, never left
//! out: a script can rely on every documented key being there.
//!
//! Requests have two forms on purpose. [`ClientRequest`] is the wire form, what clients encode.
//! What the server acts on is the *validated* form, `control::request::Request` (a group name
//! without `/`, `..` or NUL, a `top` of at least 1, `purge --all` only with `confirm`, no
//! unknown field), produced by `protocol::decode` (fuzzed by
//! `fuzz/fuzz_targets/request.rs`) from untrusted bytes, with an error that names the offending
//! key. A unit test checks that `protocol::decode` accepts every encoding of every
//! `ClientRequest` and decodes it to the same request.
//!
//! May touch: nothing (plain serde types; pure). `AlertLevel` is `stats`' (the health rule
//! produces it from a snapshot), re-exported here as part of the protocol.

pub use crate::stats::AlertLevel;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A request as the CLI (or any client) sends it: `{"cmd": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientRequest {
    Status,
    Metrics,
    Reload,
    Groups {
        #[serde(skip_serializing_if = "Option::is_none")]
        root: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        top: Option<u64>,
        sort: SortKey,
    },
    List {
        group: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        root: Option<String>,
    },
    Cleanup {
        dry_run: bool,
    },
    Purge {
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        all: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        confirm: bool,
        dry_run: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        root: Option<String>,
        /// Files inside `grace` go too (open, locked and protected files still stay).
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        include_young: bool,
    },
}

/// The orders `groups` accepts (also the CLI's `--sort` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Largest first.
    Bytes,
    /// Most files first.
    Files,
    /// Oldest file first.
    Age,
    /// Alphabetical.
    Name,
}

/// The first thing a client decodes from any reply line: `ok`, and `error` when not ok.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub version: String,
    pub uptime_seconds: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    /// The size thresholds of `alerts:` (percent), kept for older scripts.
    pub warning_percent: f64,
    pub critical_percent: f64,
    /// How old the figures are. The owner publishes after every batch of work and nothing
    /// while idle, so an old snapshot from an idle owner is still exact.
    pub snapshot_age_seconds: f64,
    /// The owner is busy (crawl, big cleanup, a stuck filesystem call) and the figures are
    /// more than 5 s old: they may lag behind the disk.
    pub stale: bool,
    pub roots: Vec<RootStatus>,
}

/// One root of a `status` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootStatus {
    pub path: String,
    pub total_files: u64,
    pub total_bytes: u64,
    pub total_size_mb: f64,
    pub oldest_file_age_hours: Option<f64>,
    pub newest_file_age_hours: Option<f64>,
    /// The mean age of the managed files (each inode once); `null` without files.
    pub average_file_age_hours: Option<f64>,
    pub max_age_hours: Option<f64>,
    pub max_size_mb: Option<f64>,
    pub usage_percent: Option<f64>,
    pub floor_usage_percent: Option<f64>,
    pub alert: AlertLevel,
    /// Why `alert` is not ok (names in `health::REASONS`); empty when ok.
    pub alert_reasons: Vec<String>,
    pub fs_free_bytes: u64,
    pub fs_total_bytes: u64,
    pub min_free_bytes: Option<u64>,
    /// `max_files` (`null`: no count limit) and the inode floor as a count (`null`: off).
    pub max_files: Option<u64>,
    pub min_free_inodes: Option<u64>,
    pub fs_free_inodes: u64,
    pub fs_total_inodes: u64,
    pub unmanaged_files: u64,
    pub files_removed: u64,
    pub removed_by_reason: BTreeMap<String, u64>,
    pub bytes_freed: u64,
    pub errors: u64,
    pub last_eviction: Option<String>,
    pub cleanup_enabled: bool,
    pub watches: u64,
    pub index_bytes: u64,
    pub overflows: u64,
    pub resyncs: u64,
    pub degraded: bool,
    /// Always present (`null` when not degraded).
    pub degraded_reason: Option<String>,
    pub ready: bool,
    /// What keeps files a limit would delete.
    pub holding: HoldingStatus,
    /// Watches the kernel held for the root's directories at the last check (after a
    /// resync; null before the first), and how many lost watches that check repaired.
    pub kernel_watches: Option<u64>,
    pub watch_repairs: u64,
    /// Capacity figures (see `src/capacity.rs` for the definitions and windows).
    pub effective_retention_hours: Option<f64>,
    pub write_bytes_per_second: f64,
    pub evicted_bytes_per_second: f64,
    pub time_to_full_hours: Option<f64>,
    pub premature_evictions: u64,
    pub history: CapacityHistory,
}

/// The last hour, one value a minute, oldest first (for sparklines).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityHistory {
    pub minutes: u64,
    pub usage_bytes: Vec<u64>,
    pub written_bytes: Vec<u64>,
    pub evicted_bytes: Vec<u64>,
}

/// What grace, writers, locks, protect rules and failing deletions hold back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HoldingStatus {
    pub writing_files: u64,
    pub writing_bytes: u64,
    pub locked_files: u64,
    pub locked_bytes: u64,
    pub failing_files: u64,
    pub failing_bytes: u64,
    pub protected_files: u64,
    pub protected_bytes: u64,
    /// A limit is crossed and nothing more may be deleted right now; `null` otherwise.
    pub blocked: Option<BlockedStatus>,
}

/// A crossed limit that nothing may be deleted for at the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedStatus {
    /// `max_size`, `max_files`, `min_free` or `min_free_inodes`.
    pub limit: String,
    /// Bytes over `max_size`, or missing to reach `min_free` (0 for the file limits).
    pub excess_bytes: u64,
    /// Files over `max_files`, or inodes missing to reach `min_free_inodes` (0 for the byte
    /// limits).
    pub excess_files: u64,
    /// `grace`, `writing`, `locked`, `protected`, `failing` or `nothing_left`.
    pub cause: String,
    /// Since when (RFC 3339) and for how long the limit has been crossed and blocked.
    pub since: String,
    pub blocked_seconds: f64,
    /// When the next file leaves grace (RFC 3339), and in how many seconds.
    pub next_eligible: Option<String>,
    pub next_eligible_in_seconds: Option<f64>,
    pub grace_files: u64,
    pub grace_bytes: u64,
}

/// `metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReply {
    pub text: String,
}

/// `reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReply {
    pub reloaded: bool,
    pub message: String,
}

/// `groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupsReply {
    pub groups: Vec<GroupRow>,
    pub total_groups: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    pub name: String,
    pub root: String,
    pub files: u64,
    pub bytes: u64,
    pub oldest_file_age_hours: Option<f64>,
    pub newest_file_age_hours: Option<f64>,
    /// The `match` of the retention rule the group follows; `null`: the root's own values.
    pub rule: Option<String>,
    /// The group's effective `max_age` in hours (`null`: no age limit).
    pub max_age_hours: Option<f64>,
    /// The group's quotas (`null`: none) and the larger share of them in use, in percent.
    pub quota_bytes: Option<u64>,
    pub quota_files: Option<u64>,
    pub quota_percent: Option<f64>,
}

/// `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    pub root: String,
    pub group: String,
    pub files: Vec<ListedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedFile {
    pub path: String,
    pub bytes: u64,
    /// RFC 3339, seconds.
    pub mtime: String,
    pub mtime_unix: f64,
    pub age_hours: f64,
    pub protected: bool,
}

/// `cleanup` and `purge`. A real run carries `files_removed` / `bytes_freed`, a dry run
/// `would_remove` / `would_free_bytes` instead (so a script cannot mistake a rehearsal for a
/// deletion); `skipped_in_grace` and `groups_matched` are `purge`'s only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_removed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_freed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_remove: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_free_bytes: Option<u64>,
    pub skipped: u64,
    /// The first 1000 files removed (or that would be).
    pub files: Vec<RemovedFile>,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_in_grace: Option<u64>,
    /// The groups the purge's name or glob matched, over every root it acted on (with
    /// `all`: every group of those roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_matched: Option<u64>,
}

impl DeletionReply {
    /// Files removed, or that a dry run would remove.
    pub fn count(&self) -> u64 {
        if self.dry_run {
            self.would_remove.unwrap_or(0)
        } else {
            self.files_removed.unwrap_or(0)
        }
    }

    /// Bytes freed, or that a dry run would free.
    pub fn bytes(&self) -> u64 {
        if self.dry_run {
            self.would_free_bytes.unwrap_or(0)
        } else {
            self.bytes_freed.unwrap_or(0)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedFile {
    pub path: String,
    pub bytes: u64,
    pub age_hours: f64,
    /// `age`, `size`, `free_space` or `purge`.
    pub reason: String,
}

/// A reply's fields as the owner's [`Reply`](super::Reply) map (the server adds `"ok": true`).
/// Serializing these types cannot fail (string keys, finite floats are rounded, non-finite
/// become `null`), so an error only yields an empty map, never a panic.
pub fn fields<T: Serialize>(reply: &T) -> Map<String, Value> {
    match serde_json::to_value(reply) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Decodes a reply line: `Err` carries the daemon's error message, or what did not decode.
pub fn decode_reply<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ReplyError> {
    let envelope: Envelope =
        serde_json::from_str(line).map_err(|e| ReplyError::NotChartd(e.to_string()))?;
    if !envelope.ok {
        return Err(ReplyError::Daemon(
            envelope.error.unwrap_or_else(|| "(no message)".to_string()),
        ));
    }
    serde_json::from_str(line).map_err(|e| ReplyError::Mismatch(e.to_string()))
}

/// Why a reply line did not give the expected answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyError {
    /// `{"ok": false, "error": ...}`.
    Daemon(String),
    /// Not a chartd reply at all.
    NotChartd(String),
    /// A chartd reply whose fields do not match this client's types (version mismatch).
    Mismatch(String),
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;

impl RootStatus {
    /// The root itself is missing or cannot be opened (its alert reason says so).
    pub fn root_missing(&self) -> bool {
        self.alert_reasons.iter().any(|r| r == "root_missing")
    }
}
