//! `status` JSON and `metrics` text, built from a [`Snapshot`] only.
//!
//! Both are pure functions of the snapshot and "now", so that they answer instantly while the
//! owner is busy, cannot touch the disk, and are tested without a daemon.
//!
//! Sizes in MB are MiB (1 MB = 1,048,576 bytes), hours and percentages are rounded to two
//! decimals; a limit that is not configured is `null`, never 0 (0 would read as "full").
//!
//! `alert` is the worse of two readings, each compared with the snapshot's warning/critical
//! percentages:
//! - size: `total_bytes / max_size`;
//! - free space: how much of the space the floor leaves usable is in use,
//!   `(fs_total - fs_free) / (fs_total - min_free)`; 100 % means free space is down to the floor.

use crate::stats::{Histogram, Reason, RootStats, Snapshot, LATENCY_BUCKETS};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

pub const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Alert {
    Ok,
    Warning,
    Critical,
}

impl Alert {
    pub fn as_str(self) -> &'static str {
        match self {
            Alert::Ok => "ok",
            Alert::Warning => "warning",
            Alert::Critical => "critical",
        }
    }

    fn from_percent(p: Option<f64>, warning: f64, critical: f64) -> Alert {
        match p {
            Some(p) if p >= critical => Alert::Critical,
            Some(p) if p >= warning => Alert::Warning,
            _ => Alert::Ok,
        }
    }
}

/// Percent of `max_size` in use; `None` without a size limit.
pub fn size_usage_percent(r: &RootStats) -> Option<f64> {
    let max = r.max_size?;
    Some(r.total_bytes as f64 * 100.0 / max.max(1) as f64)
}

/// Percent of the space the free-space floor leaves usable that is in use; `None` without a
/// floor or before the filesystem was measured (`fs_total_bytes == 0`).
pub fn floor_usage_percent(r: &RootStats) -> Option<f64> {
    let floor = r.min_free_bytes?;
    if r.fs_total_bytes == 0 {
        return None;
    }
    let used = r.fs_total_bytes.saturating_sub(r.fs_free_bytes);
    let usable = r.fs_total_bytes.saturating_sub(floor);
    Some(used as f64 * 100.0 / usable.max(1) as f64)
}

pub fn alert(r: &RootStats, warning_percent: f64, critical_percent: f64) -> Alert {
    let size = Alert::from_percent(size_usage_percent(r), warning_percent, critical_percent);
    let floor = Alert::from_percent(floor_usage_percent(r), warning_percent, critical_percent);
    size.max(floor)
}

/// The fields of a `status` answer (the server adds `"ok": true`).
pub fn status(snap: &Snapshot, now: SystemTime) -> Map<String, Value> {
    let roots: Vec<Value> = snap
        .roots
        .iter()
        .map(|r| Value::Object(root_status(r, snap, now)))
        .collect();
    let mut m = Map::new();
    m.insert("version".into(), json!(snap.version));
    m.insert(
        "uptime_seconds".into(),
        json!(since(snap.started, now).as_secs()),
    );
    m.insert(
        "total_files".into(),
        json!(snap.roots.iter().map(|r| r.total_files).sum::<u64>()),
    );
    m.insert(
        "total_bytes".into(),
        json!(snap.roots.iter().map(|r| r.total_bytes).sum::<u64>()),
    );
    m.insert("warning_percent".into(), round2(snap.warning_percent));
    m.insert("critical_percent".into(), round2(snap.critical_percent));
    m.insert("roots".into(), Value::Array(roots));
    m
}

fn root_status(r: &RootStats, snap: &Snapshot, now: SystemTime) -> Map<String, Value> {
    let age_hours = |t: Option<SystemTime>| match t {
        Some(t) => round2(since(t, now).as_secs_f64() / 3600.0),
        None => Value::Null,
    };
    let by_reason: Map<String, Value> = Reason::ALL
        .iter()
        .map(|reason| {
            (
                reason.as_str().to_string(),
                json!(r.removed_by_reason[*reason as usize]),
            )
        })
        .collect();
    let mut m = Map::new();
    m.insert("path".into(), json!(r.path.to_string_lossy()));
    m.insert("total_files".into(), json!(r.total_files));
    m.insert("total_bytes".into(), json!(r.total_bytes));
    m.insert(
        "total_size_mb".into(),
        round2(r.total_bytes as f64 / BYTES_PER_MB),
    );
    m.insert("oldest_file_age_hours".into(), age_hours(r.oldest_mtime));
    m.insert("newest_file_age_hours".into(), age_hours(r.newest_mtime));
    m.insert(
        "max_age_hours".into(),
        r.max_age
            .map_or(Value::Null, |d| round2(d.as_secs_f64() / 3600.0)),
    );
    m.insert(
        "max_size_mb".into(),
        r.max_size
            .map_or(Value::Null, |b| round2(b as f64 / BYTES_PER_MB)),
    );
    m.insert("usage_percent".into(), opt_round2(size_usage_percent(r)));
    m.insert(
        "floor_usage_percent".into(),
        opt_round2(floor_usage_percent(r)),
    );
    m.insert(
        "alert".into(),
        json!(alert(r, snap.warning_percent, snap.critical_percent).as_str()),
    );
    m.insert("fs_free_bytes".into(), json!(r.fs_free_bytes));
    m.insert("fs_total_bytes".into(), json!(r.fs_total_bytes));
    m.insert("min_free_bytes".into(), json!(r.min_free_bytes));
    m.insert("unmanaged_files".into(), json!(r.unmanaged_files));
    m.insert("files_removed".into(), json!(r.files_removed));
    m.insert("removed_by_reason".into(), Value::Object(by_reason));
    m.insert("bytes_freed".into(), json!(r.bytes_freed));
    m.insert("errors".into(), json!(r.errors));
    m.insert(
        "last_eviction".into(),
        r.last_eviction.map_or(Value::Null, |t| {
            json!(humantime::format_rfc3339_seconds(t).to_string())
        }),
    );
    m.insert("cleanup_enabled".into(), json!(r.cleanup_enabled));
    m.insert("watches".into(), json!(r.watches));
    m.insert("index_bytes".into(), json!(r.index_bytes));
    m.insert("overflows".into(), json!(r.overflows));
    m.insert("resyncs".into(), json!(r.resyncs));
    m.insert("degraded".into(), json!(r.degraded));
    if let Some(reason) = &r.degraded_reason {
        m.insert("degraded_reason".into(), json!(reason));
    }
    m.insert("ready".into(), json!(r.ready));
    m
}

/// The Prometheus text exposition (format 0.0.4) of the snapshot.
pub fn metrics(snap: &Snapshot, now: SystemTime) -> String {
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
    out.counter(
        "chartd_removed_files_total",
        "Files deleted, by reason (age, size, free_space, purge).",
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
        "Time from a limit being crossed to the deletions that restore it.",
        roots.iter().map(|r| (label(r), &r.eviction_latency)),
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

fn round2(x: f64) -> Value {
    // `json!` of a non-finite float is null, which is what a client should see for "unknown".
    json!((x * 100.0).round() / 100.0)
}

fn opt_round2(x: Option<f64>) -> Value {
    x.map_or(Value::Null, round2)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) const NOW: u64 = 1_700_000_000;

    pub(crate) fn at(secs_ago: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW - secs_ago)
    }

    pub(crate) fn root(path: &str) -> RootStats {
        RootStats {
            path: PathBuf::from(path),
            total_files: 0,
            total_bytes: 0,
            oldest_mtime: None,
            newest_mtime: None,
            max_age: None,
            max_size: None,
            min_free_bytes: None,
            fs_free_bytes: 0,
            fs_total_bytes: 0,
            unmanaged_files: 0,
            index_bytes: 0,
            files_removed: 0,
            bytes_freed: 0,
            removed_by_reason: [0; 4],
            errors: 0,
            last_eviction: None,
            cleanup_enabled: true,
            watches: 0,
            overflows: 0,
            resyncs: 0,
            degraded: false,
            degraded_reason: None,
            ready: true,
            eviction_latency: Histogram::default(),
            holding: Default::default(),
            pressure_evicted_age: None,
            kernel_watches: None,
            watch_repairs: 0,
        }
    }

    pub(crate) fn snapshot(roots: Vec<RootStats>) -> Snapshot {
        Snapshot {
            version: "0.1.0",
            started: at(3_725),
            warning_percent: 80.0,
            critical_percent: 95.0,
            published: at(0),
            roots,
        }
    }

    fn now() -> SystemTime {
        at(0)
    }

    #[test]
    fn unlimited_empty_root_has_nulls() {
        let s = status(&snapshot(vec![root("/srv/a")]), now());
        assert_eq!(s["version"], "0.1.0");
        assert_eq!(s["uptime_seconds"], 3725);
        assert_eq!(s["total_files"], 0);
        let r = &s["roots"][0];
        assert_eq!(r["path"], "/srv/a");
        for key in [
            "oldest_file_age_hours",
            "newest_file_age_hours",
            "max_age_hours",
            "max_size_mb",
            "usage_percent",
            "floor_usage_percent",
            "last_eviction",
            "min_free_bytes",
        ] {
            assert!(r[key].is_null(), "{key} = {}", r[key]);
        }
        assert_eq!(r["alert"], "ok");
        assert_eq!(r["total_size_mb"], 0.0);
        assert!(r.get("degraded_reason").is_none());
        assert_eq!(r["ready"], true);
    }

    #[test]
    fn figures_are_rounded_and_summed() {
        let mut a = root("/srv/a");
        a.total_files = 3;
        a.total_bytes = 1_572_864; // 1.5 MiB
        a.max_size = Some(3 * 1_048_576);
        a.max_age = Some(Duration::from_secs(90 * 60));
        a.oldest_mtime = Some(at(4_000)); // 1.111 h
        a.newest_mtime = Some(now() + Duration::from_secs(60)); // in the future: age 0
        a.last_eviction = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        a.removed_by_reason = [4, 1, 0, 2];
        a.degraded = true;
        a.degraded_reason = Some("watch limit reached".into());
        let mut b = root("/srv/b");
        b.total_files = 2;
        b.total_bytes = 10;
        let s = status(&snapshot(vec![a, b]), now());
        assert_eq!(s["total_files"], 5);
        assert_eq!(s["total_bytes"], 1_572_874);
        let r = &s["roots"][0];
        assert_eq!(r["total_size_mb"], 1.5);
        assert_eq!(r["max_size_mb"], 3.0);
        assert_eq!(r["usage_percent"], 50.0);
        assert_eq!(r["max_age_hours"], 1.5);
        assert_eq!(r["oldest_file_age_hours"], 1.11);
        assert_eq!(r["newest_file_age_hours"], 0.0);
        assert_eq!(r["last_eviction"], "2023-11-14T22:13:20Z");
        assert_eq!(r["removed_by_reason"]["age"], 4);
        assert_eq!(r["removed_by_reason"]["purge"], 2);
        assert_eq!(r["degraded"], true);
        assert_eq!(r["degraded_reason"], "watch limit reached");
    }

    #[test]
    fn alert_levels_by_size() {
        let level = |bytes: u64| {
            let mut r = root("/r");
            r.max_size = Some(1000);
            r.total_bytes = bytes;
            alert(&r, 80.0, 95.0)
        };
        assert_eq!(level(0), Alert::Ok);
        assert_eq!(level(799), Alert::Ok);
        assert_eq!(level(800), Alert::Warning);
        assert_eq!(level(949), Alert::Warning);
        assert_eq!(level(950), Alert::Critical);
        assert_eq!(level(5000), Alert::Critical);
        let mut r = root("/r");
        r.max_size = Some(0);
        r.total_bytes = 0;
        assert_eq!(alert(&r, 80.0, 95.0), Alert::Ok);
        r.total_bytes = 1;
        assert_eq!(alert(&r, 80.0, 95.0), Alert::Critical);
    }

    #[test]
    fn alert_levels_by_free_space_floor_and_the_worse_wins() {
        // 100 GB filesystem, 10 GB floor: 90 GB usable.
        let fs = |free: u64, max_size: Option<u64>, total_bytes: u64| {
            let mut r = root("/r");
            r.fs_total_bytes = 100;
            r.fs_free_bytes = free;
            r.min_free_bytes = Some(10);
            r.max_size = max_size;
            r.total_bytes = total_bytes;
            r
        };
        assert_eq!(alert(&fs(50, None, 0), 80.0, 95.0), Alert::Ok); // 50/90 = 56 %
        assert_eq!(alert(&fs(28, None, 0), 80.0, 95.0), Alert::Warning); // 72/90 = 80 %
        assert_eq!(alert(&fs(14, None, 0), 80.0, 95.0), Alert::Critical); // 86/90 = 95.6 %
        assert_eq!(alert(&fs(5, None, 0), 80.0, 95.0), Alert::Critical); // below the floor
        assert_eq!(alert(&fs(28, Some(100), 99), 80.0, 95.0), Alert::Critical); // size worse
        assert_eq!(alert(&fs(14, Some(100), 10), 80.0, 95.0), Alert::Critical); // floor worse
        assert_eq!(alert(&fs(50, Some(100), 85), 80.0, 95.0), Alert::Warning);
        // Thresholds come from the snapshot.
        assert_eq!(alert(&fs(50, None, 0), 50.0, 60.0), Alert::Warning);
        // Filesystem not measured yet: no free-space reading.
        let mut r = fs(0, None, 0);
        r.fs_total_bytes = 0;
        assert_eq!(floor_usage_percent(&r), None);
        assert_eq!(alert(&r, 80.0, 95.0), Alert::Ok);
        let s = status(&snapshot(vec![fs(28, None, 0)]), now());
        assert_eq!(s["roots"][0]["floor_usage_percent"], 80.0);
        assert_eq!(s["roots"][0]["alert"], "warning");
    }

    #[test]
    fn metrics_text() {
        let mut a = root("/srv/\"odd\"\\path\n");
        a.total_files = 7;
        a.max_size = Some(1000);
        a.removed_by_reason = [1, 2, 3, 4];
        a.eviction_latency.observe(Duration::from_millis(3));
        a.eviction_latency.observe(Duration::from_secs(2));
        let b = root("/srv/b");
        let text = metrics(&snapshot(vec![a, b]), now());
        let label = r#"root="/srv/\"odd\"\\path\n""#;
        assert!(
            text.contains(&format!("chartd_managed_files{{{label}}} 7\n")),
            "{text}"
        );
        assert!(text.contains("chartd_managed_files{root=\"/srv/b\"} 0\n"));
        assert!(text.contains(&format!("chartd_max_size_bytes{{{label}}} 1000\n")));
        assert!(!text.contains("chartd_max_size_bytes{root=\"/srv/b\"}"));
        assert!(text.contains(&format!(
            "chartd_removed_files_total{{{label},reason=\"free_space\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_bucket{{{label},le=\"0.0025\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_bucket{{{label},le=\"0.005\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_bucket{{{label},le=\"1\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_bucket{{{label},le=\"+Inf\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_count{{{label}}} 2\n"
        )));
        assert!(text.contains(&format!(
            "chartd_eviction_latency_seconds_sum{{{label}}} 2.003\n"
        )));
        assert!(text.contains("# TYPE chartd_eviction_latency_seconds histogram\n"));
        assert!(text.contains("# TYPE chartd_errors_total counter\n"));
        assert!(text.contains("chartd_uptime_seconds 3725\n"));
        assert!(text.contains("chartd_build_info{version=\"0.1.0\"} 1\n"));
        // Every line is a comment or `name{labels} value`, and every family has HELP and TYPE.
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP chartd_") || line.starts_with("# TYPE chartd_"),
                    "{line}"
                );
                continue;
            }
            assert!(line.starts_with("chartd_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        }
        assert_eq!(
            text.matches("# HELP").count(),
            text.matches("# TYPE").count()
        );
    }
}
