//! `status` replies and `metrics` text, built from a [`Snapshot`] only.
//!
//! Both are pure functions of the snapshot, the alert [`Tracker`] and "now", so that they
//! answer instantly while the owner is busy, cannot touch the disk, and are tested without a
//! daemon. `status` is the typed [`StatusReply`]; field names live in `messages.rs`.
//!
//! Sizes in MB are MiB (1 MB = 1,048,576 bytes), hours and percentages are rounded to two
//! decimals; a limit that is not configured is `null`, never 0 (0 would read as "full").
//! `alert` and `alert_reasons` come from [`crate::health`].
//!
//! May touch: nothing outside its arguments (pure over the snapshot, the alert tracker, the root
//! configs and "now").

use super::messages::{BlockedStatus, CapacityHistory, HoldingStatus, RootStatus, StatusReply};
use crate::config::RootConfig;
use crate::health::{Tracker, REASONS};
use crate::stats::{Histogram, Holding, Reason, RootStats, Snapshot, LATENCY_BUCKETS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

pub const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

/// A snapshot older than this while the owner is busy is reported `stale`.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// What besides the snapshot the answers need.
pub struct View<'a> {
    /// Alert state across snapshots (and when the last one arrived).
    pub tracker: &'a Tracker,
    /// The configured roots (for grace).
    pub roots: &'a [RootConfig],
    /// The owner is working (not waiting for events); from `Progress::idle`.
    pub busy: bool,
}

/// How old the snapshot is, and whether that makes it stale.
pub fn staleness(snap: &Snapshot, view: &View, now: SystemTime) -> (f64, bool) {
    let published = view.tracker.last_published.unwrap_or(snap.started);
    let age = since(published, now);
    (round2(age.as_secs_f64()), view.busy && age > STALE_AFTER)
}

/// The `status` reply.
pub fn status(snap: &Snapshot, view: &View, now: SystemTime) -> StatusReply {
    let (snapshot_age_seconds, stale) = staleness(snap, view, now);
    StatusReply {
        version: snap.version.to_string(),
        uptime_seconds: since(snap.started, now).as_secs(),
        total_files: snap.roots.iter().map(|r| r.total_files).sum(),
        total_bytes: snap.roots.iter().map(|r| r.total_bytes).sum(),
        warning_percent: round2(snap.warning_percent),
        critical_percent: round2(snap.critical_percent),
        snapshot_age_seconds,
        stale,
        roots: snap
            .roots
            .iter()
            .map(|r| root_status(r, snap, view, now))
            .collect(),
    }
}

fn root_status(r: &RootStats, snap: &Snapshot, view: &View, now: SystemTime) -> RootStatus {
    let age_hours = |t: Option<SystemTime>| t.map(|t| round2(since(t, now).as_secs_f64() / 3600.0));
    let removed_by_reason: BTreeMap<String, u64> = Reason::ALL
        .iter()
        .map(|reason| {
            (
                reason.as_str().to_string(),
                r.removed_by_reason[*reason as usize],
            )
        })
        .collect();
    let verdict = view.tracker.assess(
        r,
        view.roots,
        snap.warning_percent,
        snap.critical_percent,
        now,
    );
    RootStatus {
        path: r.path.to_string_lossy().into_owned(),
        total_files: r.total_files,
        total_bytes: r.total_bytes,
        total_size_mb: round2(r.total_bytes as f64 / BYTES_PER_MB),
        oldest_file_age_hours: age_hours(r.oldest_mtime),
        newest_file_age_hours: age_hours(r.newest_mtime),
        average_file_age_hours: age_hours(r.average_mtime),
        max_age_hours: r.max_age.map(|d| round2(d.as_secs_f64() / 3600.0)),
        max_size_mb: r.max_size.map(|b| round2(b as f64 / BYTES_PER_MB)),
        usage_percent: r.size_usage_percent().map(round2),
        floor_usage_percent: r.floor_usage_percent().map(round2),
        alert: verdict.level,
        alert_reasons: verdict.reasons.iter().map(|s| s.to_string()).collect(),
        fs_free_bytes: r.fs_free_bytes,
        fs_total_bytes: r.fs_total_bytes,
        min_free_bytes: r.min_free_bytes,
        max_files: r.max_files,
        min_free_inodes: r.min_free_inodes,
        fs_free_inodes: r.fs_free_inodes,
        fs_total_inodes: r.fs_total_inodes,
        unmanaged_files: r.unmanaged_files,
        files_removed: r.files_removed,
        removed_by_reason,
        bytes_freed: r.bytes_freed,
        errors: r.errors,
        last_eviction: r
            .last_eviction
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        cleanup_enabled: r.cleanup_enabled,
        watches: r.watches,
        index_bytes: r.index_bytes,
        overflows: r.overflows,
        resyncs: r.resyncs,
        degraded: r.degraded,
        degraded_reason: r.degraded_reason.clone(),
        ready: r.ready,
        holding: holding_status(r.holding(), now),
        kernel_watches: r.kernel_watches,
        watch_repairs: r.watch_repairs,
        effective_retention_hours: r.capacity.effective_retention_hours.map(round2),
        write_bytes_per_second: round2(r.capacity.write_bytes_per_second),
        evicted_bytes_per_second: round2(r.capacity.evicted_bytes_per_second),
        time_to_full_hours: r.capacity.time_to_full_hours.map(round2),
        premature_evictions: r.capacity.premature_evictions,
        history: CapacityHistory {
            minutes: r.capacity.history.len() as u64,
            usage_bytes: r.capacity.history.iter().map(|m| m.usage_bytes).collect(),
            written_bytes: r.capacity.history.iter().map(|m| m.written_bytes).collect(),
            evicted_bytes: r.capacity.history.iter().map(|m| m.evicted_bytes).collect(),
        },
    }
}

/// The owner's [`Holding`] as the wire shows it (times as RFC 3339 and seconds from now).
pub fn holding_status(h: &Holding, now: SystemTime) -> HoldingStatus {
    HoldingStatus {
        writing_files: h.writing_files,
        writing_bytes: h.writing_bytes,
        locked_files: h.locked_files,
        locked_bytes: h.locked_bytes,
        failing_files: h.failing_files,
        failing_bytes: h.failing_bytes,
        protected_files: h.protected_files,
        protected_bytes: h.protected_bytes,
        blocked: h.blocked.as_ref().map(|b| BlockedStatus {
            limit: b.limit.to_string(),
            excess_bytes: b.excess_bytes,
            excess_files: b.excess_files,
            cause: b.cause.to_string(),
            since: humantime::format_rfc3339_seconds(b.since).to_string(),
            blocked_seconds: round2(since(b.since, now).as_secs_f64()),
            next_eligible: b
                .next_eligible
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            next_eligible_in_seconds: b
                .next_eligible
                .map(|t| round2(t.duration_since(now).unwrap_or_default().as_secs_f64())),
            grace_files: b.grace_files,
            grace_bytes: b.grace_bytes,
        }),
    }
}

/// The Prometheus text exposition (format 0.0.4) of the snapshot.
pub fn metrics(snap: &Snapshot, view: &View, now: SystemTime) -> String {
    let mut out = Out(String::with_capacity(4096 + snap.roots.len() * 3072));
    let roots = &snap.roots;
    let label = |r: &RootStats| format!("root=\"{}\"", escape(&r.path.to_string_lossy()));

    out.gauge(
        "chartd_managed_files",
        "Files currently managed (indexed) under the root.",
        roots.iter().map(|r| (label(r), r.total_files as f64)),
    );
    out.gauge(
        "chartd_managed_bytes",
        "Bytes of the managed files under the root.",
        roots.iter().map(|r| (label(r), r.total_bytes as f64)),
    );
    out.gauge(
        "chartd_unmanaged_files",
        "Files under the root that no include pattern selects (never deleted).",
        roots.iter().map(|r| (label(r), r.unmanaged_files as f64)),
    );
    out.gauge(
        "chartd_max_size_bytes",
        "Configured size limit of the root (absent: no limit).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), r.max_size? as f64))),
    );
    out.gauge(
        "chartd_max_age_seconds",
        "Configured age limit of the root (absent: no limit).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), r.max_age?.as_secs_f64()))),
    );
    out.gauge(
        "chartd_max_files",
        "Configured file-count limit of the root (absent: no limit).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), r.max_files? as f64))),
    );
    out.gauge(
        "chartd_min_free_inodes",
        "Configured free-inode floor of the root's filesystem (absent: off).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), r.min_free_inodes? as f64))),
    );
    out.gauge(
        "chartd_filesystem_free_inodes",
        "Free inodes on the root's filesystem.",
        roots.iter().map(|r| (label(r), r.fs_free_inodes as f64)),
    );
    out.gauge(
        "chartd_min_free_bytes",
        "Configured free-space floor of the root's filesystem (absent: off).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), r.min_free_bytes? as f64))),
    );
    out.gauge(
        "chartd_filesystem_free_bytes",
        "Free bytes on the root's filesystem.",
        roots.iter().map(|r| (label(r), r.fs_free_bytes as f64)),
    );
    out.gauge(
        "chartd_filesystem_size_bytes",
        "Size of the root's filesystem.",
        roots.iter().map(|r| (label(r), r.fs_total_bytes as f64)),
    );
    out.gauge(
        "chartd_oldest_file_age_seconds",
        "Age of the oldest managed file (absent: no files).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), since(r.oldest_mtime?, now).as_secs_f64()))),
    );
    out.gauge(
        "chartd_average_file_age_seconds",
        "Mean age of the managed files (absent: no files).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), since(r.average_mtime?, now).as_secs_f64()))),
    );
    out.counter(
        "chartd_removed_files_total",
        "Files deleted, by reason (age, size, count, free_space, inodes, quota, purge).",
        roots.iter().flat_map(|r| {
            Reason::ALL.iter().map(move |reason| {
                (
                    format!("{},reason=\"{}\"", label(r), reason.as_str()),
                    r.removed_by_reason[*reason as usize] as f64,
                )
            })
        }),
    );
    out.counter(
        "chartd_freed_bytes_total",
        "Bytes freed by deletions.",
        roots.iter().map(|r| (label(r), r.bytes_freed as f64)),
    );
    out.counter(
        "chartd_errors_total",
        "Errors (failed deletions, unreadable directories, ...); see the log.",
        roots.iter().map(|r| (label(r), r.errors as f64)),
    );
    out.counter(
        "chartd_inotify_overflows_total",
        "inotify queue overflows (each triggers a resync).",
        roots.iter().map(|r| (label(r), r.overflows as f64)),
    );
    out.counter(
        "chartd_resyncs_total",
        "Index-versus-disk resyncs.",
        roots.iter().map(|r| (label(r), r.resyncs as f64)),
    );
    out.gauge(
        "chartd_watches",
        "inotify watches held for the root.",
        roots.iter().map(|r| (label(r), r.watches as f64)),
    );
    out.gauge(
        "chartd_degraded",
        "1 when some directories of the root are not watched (see status for why).",
        roots
            .iter()
            .map(|r| (label(r), f64::from(u8::from(r.degraded)))),
    );
    out.gauge(
        "chartd_ready",
        "1 once the initial crawl of the root is complete.",
        roots
            .iter()
            .map(|r| (label(r), f64::from(u8::from(r.ready)))),
    );
    out.gauge(
        "chartd_cleanup_enabled",
        "0 when the daemon only observes (dry run).",
        roots
            .iter()
            .map(|r| (label(r), f64::from(u8::from(r.cleanup_enabled)))),
    );
    out.gauge(
        "chartd_last_eviction_timestamp_seconds",
        "Unix time of the last deletion (absent: none yet).",
        roots
            .iter()
            .filter_map(|r| Some((label(r), unix_seconds(r.last_eviction?)))),
    );
    out.histograms(
        "chartd_eviction_latency_seconds",
        "Seconds from the owner receiving the events (or the timer firing, or the command) that required a deletion to its unlink.",
        roots.iter().map(|r| (label(r), &r.eviction_latency)),
    );
    let verdicts: Vec<_> = roots
        .iter()
        .map(|r| {
            let v = view.tracker.assess(
                r,
                view.roots,
                snap.warning_percent,
                snap.critical_percent,
                now,
            );
            (label(r), v)
        })
        .collect();
    out.gauge(
        "chartd_root_alert_level",
        "0 ok, 1 warning, 2 critical: whether a human must act (see the README, Alerts).",
        verdicts
            .iter()
            .map(|(l, v)| (l.clone(), f64::from(v.level.code()))),
    );
    out.gauge(
        "chartd_root_alert_reason",
        "1 for each active reason of the root's alert level.",
        verdicts.iter().flat_map(|(l, v)| {
            v.reasons
                .iter()
                .map(move |reason| (format!("{l},reason=\"{reason}\""), 1.0))
        }),
    );
    out.gauge(
        "chartd_held_bytes",
        "Bytes of managed files a limit would delete but that are held, by cause.",
        roots.iter().flat_map(|r| {
            let h = r.holding();
            [
                ("writing", h.writing_bytes),
                ("locked", h.locked_bytes),
                ("failing", h.failing_bytes),
                ("protected", h.protected_bytes),
                ("grace", h.blocked.as_ref().map_or(0, |b| b.grace_bytes)),
            ]
            .map(|(cause, b)| (format!("{},cause=\"{cause}\"", label(r)), b as f64))
        }),
    );
    out.gauge(
        "chartd_blocked_excess_bytes",
        "Bytes over max_size (or missing to min_free) that nothing may be deleted for right now.",
        roots.iter().map(|r| {
            (
                label(r),
                r.holding().blocked.as_ref().map_or(0, |b| b.excess_bytes) as f64,
            )
        }),
    );
    out.gauge(
        "chartd_snapshot_age_seconds",
        "Age of the figures; an idle owner publishes nothing and is not stale.",
        std::iter::once((String::new(), staleness(snap, view, now).0)),
    );
    out.gauge(
        "chartd_uptime_seconds",
        "Seconds since the daemon started.",
        std::iter::once((String::new(), since(snap.started, now).as_secs_f64())),
    );
    out.gauge(
        "chartd_build_info",
        "Always 1; the version is in the label.",
        std::iter::once((format!("version=\"{}\"", escape(snap.version)), 1.0)),
    );
    let capacity: Vec<(String, &crate::capacity::CapacityFigures)> = roots
        .iter()
        .map(|r| (escape(&r.path.to_string_lossy()), &r.capacity))
        .collect();
    out.0.push_str(&crate::capacity::metrics(&capacity));
    out.0
}

struct Out(String);

impl Out {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let _ = if labels.is_empty() {
            writeln!(self.0, "{name} {}", num(value))
        } else {
            writeln!(self.0, "{name}{{{labels}}} {}", num(value))
        };
    }

    fn gauge(&mut self, name: &str, help: &str, samples: impl Iterator<Item = (String, f64)>) {
        self.family(name, "gauge", help, samples);
    }

    fn counter(&mut self, name: &str, help: &str, samples: impl Iterator<Item = (String, f64)>) {
        self.family(name, "counter", help, samples);
    }

    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl Iterator<Item = (String, f64)>,
    ) {
        self.header(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }

    fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        hs: impl Iterator<Item = (String, &'a Histogram)>,
    ) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (labels, h) in hs {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
                self.sample(
                    &bucket,
                    &format!("{labels},le=\"{}\"", num(*bound)),
                    *count as f64,
                );
            }
            self.sample(&bucket, &format!("{labels},le=\"+Inf\""), h.count as f64);
            self.sample(&format!("{name}_sum"), &labels, h.sum_seconds);
            self.sample(&format!("{name}_count"), &labels, h.count as f64);
        }
    }
}

/// A sample value as Prometheus spells it.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value (backslash, double quote, newline), per the exposition format.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Time elapsed since `t`; zero for a time in the future (clock skew, a file touched ahead).
fn since(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Two decimals; a non-finite value is serialized as `null` by serde_json.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Every reason name the metric may carry (for the README and the alert rules).
pub fn reason_names() -> &'static [&'static str] {
    &REASONS
}

#[cfg(test)]
#[path = "report_tests.rs"]
pub(crate) mod tests;
