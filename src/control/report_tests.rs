//! Unit tests of `report.rs`: the status reply and the metrics text from hand-built snapshots.
//!
//! May touch: nothing (pure; snapshots are made up).

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
        average_mtime: None,
        max_age: None,
        max_size: None,
        min_free_bytes: None,
        max_files: None,
        min_free_inodes: None,
        fs_free_inodes: 0,
        fs_total_inodes: 0,
        fs_free_bytes: 0,
        fs_total_bytes: 0,
        unmanaged_files: 0,
        index_bytes: 0,
        files_removed: 0,
        bytes_freed: 0,
        removed_by_reason: [0; 7],
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
        capacity: Default::default(),
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

/// The status reply as the wire carries it, with no alert history and an idle owner.
pub(crate) fn status_json(snap: &Snapshot, now: SystemTime) -> serde_json::Value {
    let tracker = Tracker::default();
    let view = View {
        tracker: &tracker,
        roots: &[],
        busy: false,
    };
    serde_json::to_value(status(snap, &view, now)).unwrap()
}

fn metrics_text(snap: &Snapshot, now: SystemTime) -> String {
    let tracker = Tracker::default();
    let view = View {
        tracker: &tracker,
        roots: &[],
        busy: false,
    };
    metrics(snap, &view, now)
}

#[test]
fn unlimited_empty_root_has_nulls() {
    let s = status_json(&snapshot(vec![root("/srv/a")]), now());
    assert_eq!(s["version"], "0.1.0");
    assert_eq!(s["uptime_seconds"], 3725);
    assert_eq!(s["total_files"], 0);
    let r = &s["roots"][0];
    assert_eq!(r["path"], "/srv/a");
    for key in [
        "oldest_file_age_hours",
        "newest_file_age_hours",
        "average_file_age_hours",
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
    // Always present, null when not degraded (the README lists it).
    assert!(r["degraded_reason"].is_null());
    assert!(r.as_object().unwrap().contains_key("degraded_reason"));
    assert_eq!(r["alert_reasons"], serde_json::json!([]));
    assert!(r["holding"]["blocked"].is_null());
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
    a.average_mtime = Some(at(2_700)); // 0.75 h
    a.last_eviction = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    a.removed_by_reason = [4, 1, 0, 2, 0, 0, 0];
    a.degraded = true;
    a.degraded_reason = Some("watch limit reached".into());
    let mut b = root("/srv/b");
    b.total_files = 2;
    b.total_bytes = 10;
    let s = status_json(&snapshot(vec![a, b]), now());
    assert_eq!(s["total_files"], 5);
    assert_eq!(s["total_bytes"], 1_572_874);
    let r = &s["roots"][0];
    assert_eq!(r["total_size_mb"], 1.5);
    assert_eq!(r["max_size_mb"], 3.0);
    assert_eq!(r["usage_percent"], 50.0);
    assert_eq!(r["max_age_hours"], 1.5);
    assert_eq!(r["oldest_file_age_hours"], 1.11);
    assert_eq!(r["newest_file_age_hours"], 0.0);
    assert_eq!(r["average_file_age_hours"], 0.75);
    assert_eq!(r["last_eviction"], "2023-11-14T22:13:20Z");
    assert_eq!(r["removed_by_reason"]["age"], 4);
    assert_eq!(r["removed_by_reason"]["purge"], 2);
    assert_eq!(r["degraded"], true);
    assert_eq!(r["degraded_reason"], "watch limit reached");
}

#[test]
fn metrics_exposition() {
    let mut a = root("/srv/\"odd\"\\path\n");
    a.total_files = 7;
    a.max_size = Some(1000);
    a.average_mtime = Some(at(90));
    a.removed_by_reason = [1, 2, 3, 4, 0, 0, 0];
    a.eviction_latency.observe(Duration::from_millis(3));
    a.eviction_latency.observe(Duration::from_secs(2));
    let b = root("/srv/b");
    let text = metrics_text(&snapshot(vec![a, b]), now());
    let label = r#"root="/srv/\"odd\"\\path\n""#;
    assert!(
        text.contains(&format!("chartd_managed_files{{{label}}} 7\n")),
        "{text}"
    );
    assert!(text.contains("chartd_managed_files{root=\"/srv/b\"} 0\n"));
    assert!(text.contains(&format!("chartd_max_size_bytes{{{label}}} 1000\n")));
    assert!(!text.contains("chartd_max_size_bytes{root=\"/srv/b\"}"));
    assert!(text.contains(&format!("chartd_average_file_age_seconds{{{label}}} 90\n")));
    assert!(!text.contains("chartd_average_file_age_seconds{root=\"/srv/b\"}"));
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

#[test]
fn staleness_needs_a_busy_owner() {
    let snap = snapshot(vec![root("/srv/a")]);
    let mut tracker = Tracker::default();
    tracker.observe(&snap, at(30));
    let idle = View {
        tracker: &tracker,
        roots: &[],
        busy: false,
    };
    let busy = View { busy: true, ..idle };
    assert_eq!(staleness(&snap, &idle, now()), (30.0, false));
    assert_eq!(staleness(&snap, &busy, now()), (30.0, true));
    assert_eq!(staleness(&snap, &busy, at(27)), (3.0, false));
    let v = serde_json::to_value(status(&snap, &busy, now())).unwrap();
    assert_eq!(v["stale"], true);
    assert_eq!(v["snapshot_age_seconds"], 30.0);
}

#[test]
fn holding_is_shown_with_times_from_now() {
    let h = Holding {
        writing_files: 2,
        writing_bytes: 20,
        blocked: Some(crate::stats::Blocked {
            limit: "max_size",
            excess_bytes: 4096,
            excess_files: 0,
            cause: "grace",
            since: at(12),
            next_eligible: Some(now() + Duration::from_secs(48)),
            grace_files: 5,
            grace_bytes: 5000,
        }),
        ..Holding::default()
    };
    let v = serde_json::to_value(holding_status(&h, now())).unwrap();
    assert_eq!(v["writing_files"], 2);
    assert_eq!(v["blocked"]["limit"], "max_size");
    assert_eq!(v["blocked"]["cause"], "grace");
    assert_eq!(v["blocked"]["blocked_seconds"], 12.0);
    assert_eq!(v["blocked"]["next_eligible_in_seconds"], 48.0);
    assert_eq!(v["blocked"]["grace_bytes"], 5000);
    assert_eq!(v["blocked"]["since"], "2023-11-14T22:13:08Z");
}

#[test]
fn alert_metrics_follow_the_health_rule() {
    let mut missing = root("/srv/gone");
    missing.degraded = true;
    missing.degraded_reason = Some("root /srv/gone is missing (No such file)".into());
    let text = metrics_text(&snapshot(vec![root("/srv/a"), missing]), now());
    assert!(
        text.contains("chartd_root_alert_level{root=\"/srv/a\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("chartd_root_alert_level{root=\"/srv/gone\"} 2\n"));
    assert!(
        text.contains("chartd_root_alert_reason{root=\"/srv/gone\",reason=\"root_missing\"} 1\n")
    );
    assert!(!text.contains("chartd_root_alert_reason{root=\"/srv/a\""));
    assert!(text.contains("# TYPE chartd_root_alert_level gauge\n"));
    assert!(text.contains("chartd_held_bytes{root=\"/srv/a\",cause=\"writing\"} 0\n"));
}
