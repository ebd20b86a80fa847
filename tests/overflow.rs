//! A kernel inotify queue overflow makes chartd resync, and the index converges to the disk.
//! Needs root (it lowers `fs.inotify.max_queued_events` for the daemon's start, then restores
//! it); skips otherwise. Its own test binary, so no other daemon starts meanwhile.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets (SIGSTOP/SIGCONT), and `fs.inotify.max_queued_events`, lowered and restored
//! on drop (root only; skips otherwise).

mod common;

use common::*;
use std::fs;
use std::time::Duration;

const SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Restores the sysctl when dropped, even if the test fails.
struct Restore(String);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = fs::write(SYSCTL, &self.0);
    }
}

#[test]
fn overflow_storms_resync_to_exactly_the_disk() {
    if !is_root() {
        eprintln!("SKIP overflow_storms_resync_to_exactly_the_disk: needs root to lower {SYSCTL}");
        return;
    }
    let old = fs::read_to_string(SYSCTL).unwrap().trim().to_string();
    let restore = Restore(old);
    fs::write(SYSCTL, "32").unwrap();
    // The queue size is fixed when chartd creates its inotify instance.
    let d = Daemon::start("max_size: 1MiB\ngrace: 0s", |root| {
        for i in 0..50 {
            file(&root.join(format!("pre/c{i}.png")), 1024, hours(2));
        }
    });
    drop(restore);
    for storm in 0..2 {
        // Freeze chartd so the kernel queue must overflow, then let it see the aftermath.
        d.signal(19);
        for g in 0..100 {
            let dir = d.root.join(format!("S{storm}_{g}/deep"));
            fs::create_dir_all(&dir).unwrap();
            for i in 0..10 {
                write_file(&dir.join(format!("chart_{i}.png")), 1024);
            }
        }
        for i in 0..10 {
            let _ = fs::remove_file(d.root.join(format!("pre/c{}.png", storm * 10 + i)));
        }
        d.signal(18);
        let converged = wait_until(Duration::from_secs(20), || {
            let st = d.status_root();
            let disk = walk_png(&d.root);
            st["overflows"].as_u64() > Some(storm)
                && st["total_files"] == disk.0
                && st["total_bytes"] == disk.1
                // Files a resync finds that changed in the last 2 s are presumed open for
                // writing for that long: the limit holds once they are quiet.
                && disk.1 <= 1024 * 1024
        });
        let st = d.status_root();
        assert!(
            converged,
            "storm {storm}: status {st} vs disk {:?}\n{}",
            walk_png(&d.root),
            d.log_text()
        );
        assert!(
            st["total_bytes"].as_u64().unwrap() <= 1024 * 1024,
            "limit not enforced after resync: {st}"
        );
        assert!(st["resyncs"].as_u64().unwrap() >= 1);
    }
}
