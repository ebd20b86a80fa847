//! Unit tests of the alert rule: a root held at its limit is ok; only limits that do not hold
//! (beyond grace), a disk filling with other data, failures and a missing root alert.
//!
//! May touch: nothing (pure).

use super::*;
use crate::control::report::tests::{at, root, snapshot};

const GRACE: Duration = Duration::from_secs(60);

fn verdict(r: &RootStats, h: &History) -> Assessment {
    assess(r, h, GRACE, 80.0, 95.0, at(0))
}

fn full_root() -> RootStats {
    let mut r = root("/r");
    r.max_size = Some(1000);
    r
}

#[test]
fn a_root_held_at_its_limit_is_ok() {
    let mut r = full_root();
    for bytes in [0, 800, 900, 950, 1000] {
        r.total_bytes = bytes;
        assert_eq!(
            verdict(&r, &History::default()).level,
            AlertLevel::Ok,
            "{bytes}"
        );
    }
    // Over the limit, but for less than grace (+ slack): a burst inside the designed bound.
    r.total_bytes = 8000;
    let h = History {
        over_size_since: Some(at(65)),
        ..History::default()
    };
    assert_eq!(verdict(&r, &h).level, AlertLevel::Ok);
}

#[test]
fn a_limit_that_outlasts_grace_warns_then_turns_critical() {
    let mut r = full_root();
    r.total_bytes = 8000;
    let since = |s| History {
        over_size_since: Some(at(s)),
        ..History::default()
    };
    let v = verdict(&r, &since(71));
    assert_eq!(v.level, AlertLevel::Warning);
    assert_eq!(v.reasons, vec!["limit_not_holding"]);
    assert_eq!(
        verdict(&r, &since(60 + 10 + 300)).level,
        AlertLevel::Warning
    );
    let v = verdict(&r, &since(60 + 10 + 301));
    assert_eq!(v.level, AlertLevel::Critical);
    assert_eq!(v.reasons, vec!["limit_not_holding"]);
}

#[test]
fn the_floor() {
    // 100-byte filesystem, floor 10: below it for longer than grace is critical.
    let mut r = root("/r");
    r.fs_total_bytes = 100;
    r.fs_free_bytes = 5;
    r.min_free_bytes = Some(10);
    r.total_bytes = 50; // plenty to delete
    let below = History {
        under_floor_since: Some(at(71)),
        ..History::default()
    };
    let v = verdict(&r, &below);
    assert_eq!(v.level, AlertLevel::Critical);
    assert_eq!(v.reasons, vec!["floor_not_holding"]);
    // Just below, within grace, with charts to delete: chartd is on it.
    assert_eq!(verdict(&r, &History::default()).level, AlertLevel::Ok);
    // Near the floor with charts to delete: by design.
    r.fs_free_bytes = 12;
    assert_eq!(verdict(&r, &History::default()).level, AlertLevel::Ok);
    // Near the floor with almost nothing left to delete: other data fills the disk.
    r.total_bytes = 0;
    let v = verdict(&r, &History::default());
    assert_eq!(v.level, AlertLevel::Critical, "{v:?}"); // 88/90 = 97.8 %
    assert_eq!(v.reasons, vec!["free_space_near_floor"]);
    r.fs_free_bytes = 25; // 75/90 = 83 %
    assert_eq!(verdict(&r, &History::default()).level, AlertLevel::Warning);
    r.fs_free_bytes = 50;
    assert_eq!(verdict(&r, &History::default()).level, AlertLevel::Ok);
}

#[test]
fn missing_degraded_and_failing() {
    let mut r = root("/r");
    r.degraded = true;
    r.degraded_reason = Some("root /r is missing (No such file or directory)".into());
    let v = verdict(&r, &History::default());
    assert_eq!(
        (v.level, v.reasons),
        (AlertLevel::Critical, vec!["root_missing"])
    );
    r.degraded_reason = Some("3 directories are not watched".into());
    let v = verdict(&r, &History::default());
    assert_eq!(
        (v.level, v.reasons),
        (AlertLevel::Warning, vec!["degraded"])
    );
    let r = root("/r");
    let failed = |s| History {
        last_error_at: Some(at(s)),
        ..History::default()
    };
    assert_eq!(verdict(&r, &failed(30)).reasons, vec!["deletions_failing"]);
    assert_eq!(verdict(&r, &failed(601)).level, AlertLevel::Ok);
}

#[test]
fn the_tracker_measures_from_the_first_snapshot_over_the_limit() {
    let mut r = full_root();
    r.total_bytes = 2000;
    let snap = snapshot(vec![r.clone()]);
    let mut t = Tracker::default();
    t.observe(&snap, at(200));
    t.observe(&snap, at(100)); // still over: the start is kept
    let v = t.assess(&r, &[], 80.0, 95.0, at(0));
    assert_eq!(v.level, AlertLevel::Warning, "{v:?}");
    // Back under the limit: the history is cleared.
    let mut under = r.clone();
    under.total_bytes = 900;
    t.observe(&snapshot(vec![under.clone()]), at(50));
    assert_eq!(
        t.assess(&under, &[], 80.0, 95.0, at(0)).level,
        AlertLevel::Ok
    );
    // Over again, for less than the default grace (10 s) + slack: not yet.
    t.observe(&snap, at(15));
    assert_eq!(t.assess(&r, &[], 80.0, 95.0, at(0)).level, AlertLevel::Ok);
    assert_eq!(
        t.assess(&r, &[], 80.0, 95.0, at(0) + Duration::from_secs(6))
            .level,
        AlertLevel::Warning
    );
    // An error count that grows is a failing deletion.
    let mut e = under.clone();
    e.errors = 3;
    t.observe(&snapshot(vec![e.clone()]), at(10));
    assert_eq!(
        t.assess(&e, &[], 80.0, 95.0, at(0)).reasons,
        vec!["deletions_failing"]
    );
    assert_eq!(t.last_published, Some(at(10)));
}

#[test]
fn reasons_are_the_documented_names() {
    for name in REASONS {
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    assert_eq!(REASONS.len(), 7);
}
