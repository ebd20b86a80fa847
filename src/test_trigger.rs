//! Test triggers of debug builds, compiled out of release builds: failures that the tests
//! must provoke in the real daemon and that no outside action can (a panic in the index owner,
//! a filesystem call stuck in it).
//!
//! May touch: nothing but the calling thread (it panics or sleeps) and the log.

use crate::watcher::Ev;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Test builds only:
/// - `CHARTD_TEST_PANIC_ON=NAME` makes the index owner panic on an event for a file named NAME,
///   so that the tests can check that a dead index thread ends the daemon;
/// - `CHARTD_TEST_STALL_ON=NAME` makes it sleep, busy, on the first event for a file named NAME
///   (`CHARTD_TEST_STALL_SECS` seconds, 8 by default; once per process), as a filesystem call
///   stuck in the owner would, so that the tests can check that `status` then says `stale`.
pub fn on_event(ev: &Ev) {
    let p = match ev {
        Ev::Refresh(p) | Ev::Gone(p) | Ev::Writing(p) | Ev::Closed(p) => p,
        _ => return,
    };
    let named = |var: &str| {
        std::env::var_os(var).is_some_and(|name| p.file_name() == Some(name.as_os_str()))
    };
    if named("CHARTD_TEST_PANIC_ON") {
        panic!(
            "CHARTD_TEST_PANIC_ON: test panic on an event for {}",
            p.display()
        );
    }
    static STALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if named("CHARTD_TEST_STALL_ON") && !STALLED.swap(true, Ordering::Relaxed) {
        let secs = std::env::var("CHARTD_TEST_STALL_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(8);
        tracing::warn!(
            "CHARTD_TEST_STALL_ON: the index owner stalls for {secs} s on an event for {}",
            p.display()
        );
        std::thread::sleep(Duration::from_secs(secs));
        tracing::warn!("CHARTD_TEST_STALL_ON: the stall is over");
    }
}
