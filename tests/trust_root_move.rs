//! A root renamed away is out of chartd's charge at once: found by the long model run, where
//! on a loaded machine chartd went on deleting in the moved tree for 0.7 s (its fds still
//! reach it) before it handled the events saying the root had moved.
//!
//! Deterministic: chartd is stopped (SIGSTOP) while its files expire and while the root is
//! renamed away and a new one made, so that when it continues its age timer is due before it
//! has read a single event about the move. Before the fix it deleted the expired files in the
//! moved tree (checked by reverting the root check in `evict/delete.rs`: 60 of 60 deleted);
//! now none may go, while expired files in the new root still do (the positive control).
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets (SIGSTOP/SIGCONT).

mod common;

use common::*;
use std::fs;
use std::time::Duration;

#[test]
fn a_root_renamed_away_is_never_evicted_from() {
    let d = Daemon::start("max_age: 3s\ngrace: 0s\n^resync_interval: 1h", |root| {
        for i in 0..60 {
            // Expire 2 s after the daemon is ready: while it is stopped below.
            file(
                &root.join(format!("G{}/c{i:02}.png", i % 3)),
                1000,
                Duration::from_secs(1),
            );
        }
    });
    assert_eq!(d.status_root()["total_files"], 60);
    d.signal(19); // SIGSTOP
    std::thread::sleep(Duration::from_secs(3)); // every file expires meanwhile
    let away = d.dir.path().join("moved-away");
    fs::rename(&d.root, &away).unwrap();
    fs::create_dir(&d.root).unwrap();
    // SIGCONT: the age timer is due, the move's events wait in the queue.
    d.signal(18);
    // The new root gets expired charts of its own: chartd must find and delete those.
    for i in 0..5 {
        file(&d.root.join(format!("N/x{i}.png")), 1000, hours(2));
    }
    assert!(
        wait_until(Duration::from_secs(15), || (0..5)
            .all(|i| !d.root.join(format!("N/x{i}.png")).exists())),
        "positive control: the new root is governed; log:\n{}",
        d.log_text()
    );
    let kept = (0..60)
        .filter(|i| away.join(format!("G{}/c{i:02}.png", i % 3)).exists())
        .count();
    assert_eq!(
        kept,
        60,
        "chartd deleted {} files of the root it no longer governs (renamed away); log:\n{}",
        60 - kept,
        d.log_text()
    );
}
