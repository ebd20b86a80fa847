//! Figures the index owner publishes after every batch of work, so that `status` and `metrics`
//! are answered from a snapshot, without walking the index or the disk, and even while the owner
//! is busy (crawling a million files, say).
//!
//! May touch: nothing (plain data: the snapshot types and a histogram).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Why a file was deleted. Index into [`RootStats::removed_by_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age = 0,
    Size = 1,
    FreeSpace = 2,
    Purge = 3,
    /// A group over its `group_max_size` / `group_max_files`.
    Quota = 4,
    /// `max_files`.
    Count = 5,
    /// `min_free_inodes`.
    Inodes = 6,
}

impl Reason {
    pub const COUNT: usize = 7;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Age,
        Reason::Size,
        Reason::FreeSpace,
        Reason::Purge,
        Reason::Quota,
        Reason::Count,
        Reason::Inodes,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Age => "age",
            Reason::Size => "size",
            Reason::FreeSpace => "free_space",
            Reason::Purge => "purge",
            Reason::Quota => "quota",
            Reason::Count => "count",
            Reason::Inodes => "inodes",
        }
    }

    /// Root-wide pressure (size, count, free space, inodes): what cuts retention short of
    /// `max_age` for every group.
    pub fn is_pressure(self) -> bool {
        matches!(
            self,
            Reason::Size | Reason::FreeSpace | Reason::Count | Reason::Inodes
        )
    }
}

/// Upper bounds (seconds) of the eviction-latency histogram buckets (Prometheus `le`).
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`] (count of observations <= bound).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += s;
    }
}

/// An alert level (see `src/health.rs` for the rule). Here, with the snapshot it is judged
/// from, so that `health` (which produces it) and the protocol (which carries it) both read it
/// from below rather than from each other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Ok,
    Warning,
    Critical,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Ok => "ok",
            AlertLevel::Warning => "warning",
            AlertLevel::Critical => "critical",
        }
    }

    /// The Prometheus gauge value and the `status --check` exit code (Nagios style).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One root's figures.
#[derive(Debug, Clone)]
pub struct RootStats {
    pub path: PathBuf,
    pub total_files: u64,
    pub total_bytes: u64,
    pub oldest_mtime: Option<SystemTime>,
    pub newest_mtime: Option<SystemTime>,
    /// The mean mtime of the managed files (each inode once), kept O(1) by the index.
    pub average_mtime: Option<SystemTime>,
    pub max_age: Option<Duration>,
    pub max_size: Option<u64>,
    /// The free-space floor in bytes (resolved from a percentage), if any.
    pub min_free_bytes: Option<u64>,
    pub fs_free_bytes: u64,
    pub fs_total_bytes: u64,
    /// `max_files`, and the inode floor as a count (resolved from a percentage), if any.
    pub max_files: Option<u64>,
    pub min_free_inodes: Option<u64>,
    pub fs_free_inodes: u64,
    pub fs_total_inodes: u64,
    pub unmanaged_files: u64,
    pub files_removed: u64,
    pub bytes_freed: u64,
    pub removed_by_reason: [u64; Reason::COUNT],
    pub errors: u64,
    pub last_eviction: Option<SystemTime>,
    pub cleanup_enabled: bool,
    pub watches: u64,
    pub overflows: u64,
    pub resyncs: u64,
    /// Some directories are not watched (watch limit reached, or the root is missing).
    pub degraded: bool,
    /// Why, and what to do about it, when `degraded`.
    pub degraded_reason: Option<String>,
    /// Whether the initial crawl is complete.
    pub ready: bool,
    pub eviction_latency: Histogram,
    /// Heap bytes held by this root's index (an estimate from capacities).
    pub index_bytes: u64,
    /// What holds back files a limit would delete.
    pub holding: Holding,
    /// Age of the most recent file evicted for size or free-space pressure.
    pub pressure_evicted_age: Option<Duration>,
    /// Watches the kernel held for this root's directories at the last check (after a
    /// resync), and how often the check found the index's bookkeeping wrong and repaired it.
    pub kernel_watches: Option<u64>,
    pub watch_repairs: u64,
    /// Rates, retention under pressure, time to full, premature evictions, the last hour.
    pub capacity: crate::capacity::CapacityFigures,
}

impl RootStats {
    /// Percent of `max_size` in use; `None` without a size limit.
    pub fn size_usage_percent(&self) -> Option<f64> {
        let max = self.max_size?;
        Some(self.total_bytes as f64 * 100.0 / max.max(1) as f64)
    }

    /// Percent of the space the free-space floor leaves usable that is in use; `None` without
    /// a floor or before the filesystem was measured (`fs_total_bytes == 0`).
    pub fn floor_usage_percent(&self) -> Option<f64> {
        let floor = self.min_free_bytes?;
        if self.fs_total_bytes == 0 {
            return None;
        }
        let used = self.fs_total_bytes.saturating_sub(self.fs_free_bytes);
        let usable = self.fs_total_bytes.saturating_sub(floor);
        Some(used as f64 * 100.0 / usable.max(1) as f64)
    }
}

/// Everything `status` and `metrics` show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: &'static str,
    pub started: SystemTime,
    pub warning_percent: f64,
    pub critical_percent: f64,
    pub roots: Vec<RootStats>,
    /// When the owner published this snapshot.
    pub published: SystemTime,
}

/// What keeps files that a limit would delete (filled by the owner; counted from its held set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holding {
    pub writing_files: u64,
    pub writing_bytes: u64,
    pub locked_files: u64,
    pub locked_bytes: u64,
    /// Deletion failed (EACCES, EROFS...), retried with backoff.
    pub failing_files: u64,
    pub failing_bytes: u64,
    pub protected_files: u64,
    pub protected_bytes: u64,
    /// A limit is crossed and nothing more may be deleted right now.
    pub blocked: Option<Blocked>,
}

/// A crossed limit that nothing may be deleted for right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    /// `"max_size"`, `"max_files"`, `"min_free"` or `"min_free_inodes"`.
    pub limit: &'static str,
    /// Bytes over max_size, or missing to reach min_free.
    pub excess_bytes: u64,
    /// Files over max_files, or inodes missing to reach min_free_inodes.
    pub excess_files: u64,
    /// `"grace"` | `"writing"` | `"locked"` | `"protected"` | `"failing"` | `"nothing_left"`.
    pub cause: &'static str,
    /// When the limit was first found crossed and blocked (continuous).
    pub since: SystemTime,
    /// When the next file leaves grace.
    pub next_eligible: Option<SystemTime>,
    /// Files/bytes inside grace right now (when known).
    pub grace_files: u64,
    pub grace_bytes: u64,
}

impl RootStats {
    /// What holds back files a limit would delete.
    pub fn holding(&self) -> &Holding {
        &self.holding
    }

    /// Age of the most recent file evicted for size or free-space pressure.
    pub fn pressure_evicted_age(&self) -> Option<Duration> {
        self.pressure_evicted_age
    }

    /// The root itself is missing or cannot be opened (not merely some directories unwatched).
    /// `root.rs` words those reasons "root ... is missing" / "root ... cannot be opened".
    pub fn root_missing(&self) -> bool {
        self.degraded
            && self
                .degraded_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("root "))
    }
}
