//! Overflow storms: with `fs.inotify.max_queued_events` lowered to 64 for chartd's inotify
//! instance, bursts of files across new nested directories overflow the kernel queue. After
//! each burst the index equals the disk exactly (`groups` + `list` and `status` against a walk)
//! and the size limit holds. A sustained storm makes chartd back off (1 s, 2 s, 4 s, ... between
//! resyncs) instead of resyncing in a loop, and once the storm ends it converges within the
//! current backoff, not a minute later.
//!
//! The sysctl is global, so it is lowered only while chartd starts (the queue size is fixed when
//! the inotify instance is created) and restored at once, by a guard, even on failure. Needs
//! root; skips otherwise. `CHARTD_STRESS=full`: bursts of 100,000 files; CI: 4,000.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets (SIGSTOP/SIGCONT), and `fs.inotify.max_queued_events`, lowered and restored
//! on drop.

mod common;

use common::*;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";
const MAX_SIZE: u64 = 2 * 1024 * 1024;

/// `n` files of 100 bytes across new directories `B{burst}_{g}/x/y/`, 50 files per directory.
fn burst(root: &std::path::Path, b: usize, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("B{b}_{}/x/y", i / 50));
        if i % 50 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{i}.png")), [9u8; 100]).unwrap();
    }
}

#[test]
fn overflow_storms_converge_exactly_and_back_off() {
    if !is_root() {
        eprintln!(
            "SKIP overflow_storms_converge_exactly_and_back_off: needs root to lower {SYSCTL}"
        );
        return;
    }
    let files = scale(4_000, 100_000);
    let bursts = 2;
    let guard = Sysctl::set(SYSCTL, "64");
    let d = Daemon::start("max_size: 2MiB\ngrace: 0s", |_| {});
    drop(guard);
    for b in 0..bursts {
        let before = d.status_root();
        let t0 = Instant::now();
        // chartd may keep up with a short burst even with a tiny queue: freeze it for the
        // first one, so that the kernel queue certainly overflows.
        if b == 0 {
            d.signal(19);
        }
        burst(&d.root, b, files);
        if b == 0 {
            d.signal(18);
        }
        let wrote = t0.elapsed();
        let n = d
            .converge(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("burst {b}: {e}\n{}", d.log_text()));
        let st = d.status_root();
        let overflows = st["overflows"].as_u64().unwrap() - before["overflows"].as_u64().unwrap();
        let resyncs = st["resyncs"].as_u64().unwrap() - before["resyncs"].as_u64().unwrap();
        eprintln!(
            "overflow burst {b}: {files} files in {} new directories written in {wrote:.1?}; \
             index == disk ({n} files, {} bytes) {:.1?} after the burst began; {overflows} \
             overflows, {resyncs} resyncs",
            files / 50 * 3,
            st["total_bytes"],
            t0.elapsed()
        );
        if b == 0 {
            assert!(overflows >= 1, "the queue did not overflow: {st}");
        }
        // Files a resync finds that changed in the last 2 s are presumed open for writing for
        // that long: the limit holds once they are quiet.
        assert!(
            wait_until(Duration::from_secs(10), || walk_png(&d.root).1 <= MAX_SIZE
                && d.status_root()["total_bytes"].as_u64().unwrap() <= MAX_SIZE),
            "limit not restored: {}",
            d.status_root()
        );
    }

    // A sustained storm: files created and deleted as fast as possible for a while.
    let storm = Duration::from_secs(scale(6, 30) as u64);
    let before = d.status_root();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (root, stop) = (d.root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let dir = root.join(format!("S{}", i % 20));
                let _ = fs::create_dir_all(&dir);
                let p = dir.join(format!("s{i}.png"));
                let _ = fs::write(&p, [1u8; 100]);
                if i % 2 == 0 {
                    let _ = fs::remove_file(&p);
                }
                i += 1;
            }
            i
        })
    };
    // chartd may keep up with the churn on a fast machine: stall it now and then (SIGSTOP,
    // 300 ms), so that the kernel queue overflows repeatedly during the storm.
    let storm_start = Instant::now();
    while storm_start.elapsed() < storm {
        d.signal(19);
        std::thread::sleep(Duration::from_millis(300));
        d.signal(18);
        std::thread::sleep(
            Duration::from_millis(700).min(storm.saturating_sub(storm_start.elapsed())),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let ops = churn.join().unwrap();
    let mid = d.status_root();
    let overflows = mid["overflows"].as_u64().unwrap() - before["overflows"].as_u64().unwrap();
    let resyncs = mid["resyncs"].as_u64().unwrap() - before["resyncs"].as_u64().unwrap();
    let t0 = Instant::now();
    d.converge(Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("after the storm: {e}\n{}", d.log_text()));
    let settle = t0.elapsed();
    eprintln!(
        "sustained storm: {ops} file operations over {storm:?}: {overflows} overflows, {resyncs} \
         resyncs; index == disk {settle:.1?} after the storm"
    );
    assert!(overflows >= 1, "the storm did not overflow");
    // Backoff 1, 2, 4, 8 s ...: about log2 of the storm's length, not one per overflow.
    let bound = (storm.as_secs_f64().log2().ceil() as u64) + 3;
    assert!(
        resyncs <= bound,
        "{resyncs} resyncs in {storm:?} (bound {bound}): resyncing in a loop"
    );
    // Converges soon after the storm (a quarter of the backoff), not a minute later.
    let max_settle = Duration::from_secs(45);
    assert!(
        settle <= max_settle,
        "took {settle:?} to converge after the storm"
    );
    assert!(wait_until(Duration::from_secs(10), || d.status_root()
        ["total_bytes"]
        .as_u64()
        .unwrap()
        <= MAX_SIZE));
}
