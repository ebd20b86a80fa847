//! Alert levels: the one place that decides whether a root needs a human.
//!
//! The rule (documented in the README, "Alerts"; the Prometheus rules follow it): a root that
//! chartd holds at its limits, exactly as designed, is `ok`, even at 100 % of `max_size` and
//! right after an eviction. `warning` and `critical` mean a limit is *not* holding, or soon
//! will not, and waiting will not fix it:
//!
//! | reason | level | when |
//! |---|---|---|
//! | `root_missing` | critical | the root is missing or cannot be opened |
//! | `floor_not_holding` | critical | free space (inodes) has been below `min_free` (`min_free_inodes`) for longer than grace + 10 s |
//! | `limit_not_holding` | warning, critical after 5 more minutes | the root has been over `max_size` (or `max_files`) for longer than grace + 10 s |
//! | `free_space_near_floor` | warning (critical at `alerts.critical`) | free space is within `alerts.warning` of the floor and chartd has less than a tenth of `min_free` left to delete: other data is filling the disk |
//! | `retention_short` | warning | size or free-space pressure evicted a file younger than half of `max_age` |
//! | `deletions_failing` | warning | a deletion failed in the last 10 minutes (or files are held as failing) |
//! | `degraded` | warning | some directories are not watched (watch limit) |
//!
//! Grace is part of the designed bound: a burst written within grace may keep the root over
//! `max_size` for up to grace, so "over the limit" only counts once it outlasts grace.
//!
//! How long a limit has been crossed needs state across snapshots: [`Tracker`] keeps it, fed
//! by the index owner with every snapshot it publishes, as it publishes it (so the times are
//! those of the owner's publications, not of whoever asked `status`).
//!
//! May touch: nothing outside its `Tracker` and its arguments (pure; times are passed in). It
//! reads only the snapshot types (`stats`, where `AlertLevel` lives too) and the config; the
//! control server, which owns its `Tracker`, calls it, never the other way round.

use crate::config::RootConfig;
use crate::stats::{AlertLevel, RootStats, Snapshot};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The reason names, exactly as `status` (`alert_reasons`) and the metric
/// `chartd_root_alert_reason{reason=...}` spell them.
pub const REASONS: [&str; 7] = [
    "limit_not_holding",
    "floor_not_holding",
    "free_space_near_floor",
    "retention_short",
    "deletions_failing",
    "degraded",
    "root_missing",
];

/// Slack beyond grace before an unheld limit counts: one eviction pass and a publication.
const SLACK: Duration = Duration::from_secs(10);
/// How much longer a size limit may stay unheld before the warning turns critical.
const ESCALATE: Duration = Duration::from_secs(300);
/// How recent a failed deletion must be to count as "deletions keep failing".
const FAILING_WINDOW: Duration = Duration::from_secs(600);
/// The grace assumed for a root the tracker has no config for (the built-in default).
const DEFAULT_GRACE: Duration = crate::config::DEFAULT_GRACE;

/// A root's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub level: AlertLevel,
    pub reasons: Vec<&'static str>,
}

/// What the tracker remembers about one root across snapshots.
#[derive(Debug, Clone, Default)]
struct RootTrack {
    over_size_since: Option<SystemTime>,
    under_floor_since: Option<SystemTime>,
    errors: u64,
    last_error_at: Option<SystemTime>,
}

/// State across snapshots: since when each root has been over its limits, when its error
/// count last grew, and when the last snapshot was published.
#[derive(Debug, Default)]
pub struct Tracker {
    roots: HashMap<PathBuf, RootTrack>,
    /// When the last snapshot was received.
    pub last_published: Option<SystemTime>,
}

/// The tracker the control server reads and the index owner feeds.
pub type SharedTracker = std::sync::Arc<std::sync::Mutex<Tracker>>;

/// Records `snap` in `t` at its publication time (the owner calls this as it publishes).
pub fn observe_shared(t: &SharedTracker, snap: &Snapshot) {
    t.lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(snap, snap.published);
}

impl Tracker {
    /// Records one published snapshot, received at `now`.
    pub fn observe(&mut self, snap: &Snapshot, now: SystemTime) {
        self.last_published = Some(now);
        let mut seen = HashMap::with_capacity(snap.roots.len());
        for r in &snap.roots {
            let mut t = self.roots.remove(&r.path).unwrap_or_default();
            let over = r.max_size.is_some_and(|m| r.total_bytes > m)
                || r.max_files.is_some_and(|m| r.total_files > m);
            t.over_size_since = if over {
                // The owner knows best when a block began; otherwise the first snapshot over.
                Some(
                    r.holding()
                        .blocked
                        .as_ref()
                        .filter(|b| b.limit == "max_size" || b.limit == "max_files")
                        .map(|b| b.since)
                        .or(t.over_size_since)
                        .unwrap_or(now),
                )
            } else {
                None
            };
            let under = below_floor(r);
            t.under_floor_since = if under {
                Some(t.under_floor_since.unwrap_or(now))
            } else {
                None
            };
            if r.errors > t.errors {
                t.last_error_at = Some(now);
            }
            t.errors = r.errors;
            seen.insert(r.path.clone(), t);
        }
        self.roots = seen;
    }

    /// The verdict for `r` at `now`, given the roots' configs (for grace).
    pub fn assess(
        &self,
        r: &RootStats,
        roots: &[RootConfig],
        warning_percent: f64,
        critical_percent: f64,
        now: SystemTime,
    ) -> Assessment {
        let grace = roots
            .iter()
            .find(|c| c.path == r.path)
            .map_or(DEFAULT_GRACE, |c| c.grace);
        let track = self.roots.get(&r.path).cloned().unwrap_or_default();
        assess(
            r,
            &track_view(&track),
            grace,
            warning_percent,
            critical_percent,
            now,
        )
    }
}

/// The parts of a root's history that [`assess`] needs (a plain view so it is testable).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub over_size_since: Option<SystemTime>,
    pub under_floor_since: Option<SystemTime>,
    pub last_error_at: Option<SystemTime>,
}

fn track_view(t: &RootTrack) -> History {
    History {
        over_size_since: t.over_size_since,
        under_floor_since: t.under_floor_since,
        last_error_at: t.last_error_at,
    }
}

fn below_floor(r: &RootStats) -> bool {
    r.min_free_bytes
        .is_some_and(|floor| r.fs_total_bytes > 0 && r.fs_free_bytes < floor)
        || r.min_free_inodes
            .is_some_and(|floor| r.fs_total_inodes > 0 && r.fs_free_inodes < floor)
}

fn elapsed(since: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    since.map(|t| now.duration_since(t).unwrap_or_default())
}

/// The rule of the module comment, as a pure function.
pub fn assess(
    r: &RootStats,
    h: &History,
    grace: Duration,
    warning_percent: f64,
    critical_percent: f64,
    now: SystemTime,
) -> Assessment {
    let mut warn: Vec<&'static str> = Vec::new();
    let mut crit: Vec<&'static str> = Vec::new();
    if r.root_missing() {
        crit.push("root_missing");
    } else if r.degraded {
        warn.push("degraded");
    }
    let allowed = grace + SLACK;
    if let Some(over) = elapsed(h.over_size_since, now) {
        if over > allowed + ESCALATE {
            crit.push("limit_not_holding");
        } else if over > allowed {
            warn.push("limit_not_holding");
        }
    }
    if elapsed(h.under_floor_since, now).is_some_and(|d| d > allowed) {
        crit.push("floor_not_holding");
    }
    if let (Some(floor), Some(p)) = (r.min_free_bytes, r.floor_usage_percent()) {
        // Near the floor is by design while chartd has charts to delete; it needs a human
        // when what chartd could still free is small next to the floor.
        let little_left = r.total_bytes < floor / 10;
        if little_left && p >= critical_percent {
            crit.push("free_space_near_floor");
        } else if little_left && p >= warning_percent {
            warn.push("free_space_near_floor");
        }
    }
    if let (Some(max_age), Some(age)) = (r.max_age, r.pressure_evicted_age()) {
        if !max_age.is_zero() && age < max_age / 2 {
            warn.push("retention_short");
        }
    }
    let recent_error = elapsed(h.last_error_at, now).is_some_and(|d| d <= FAILING_WINDOW);
    if recent_error || r.holding().failing_files > 0 {
        warn.push("deletions_failing");
    }
    let level = if !crit.is_empty() {
        AlertLevel::Critical
    } else if !warn.is_empty() {
        AlertLevel::Warning
    } else {
        AlertLevel::Ok
    };
    let mut reasons = crit;
    reasons.extend(warn);
    reasons.sort_by_key(|r| REASONS.iter().position(|x| x == r));
    reasons.dedup();
    Assessment { level, reasons }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
