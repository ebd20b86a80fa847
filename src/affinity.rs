//! Co-locating the index owner and notify's thread on one CPU while a crawl adds watches.
//!
//! Adding a watch through notify is a synchronous round trip to notify's own thread, one per
//! directory. A wake-up that crosses CPUs costs tens of microseconds on a VM (an
//! inter-processor interrupt, the other vCPU leaving its halt); on the same CPU it is a plain
//! context switch. The benchmark measured 250k watch adds at 15–17 s across CPUs and 2.9 s on
//! one. So for the duration of a crawl the owner and notify's thread share the CPU the owner
//! is on, while the crawl's reader threads keep every CPU the daemon may use; afterwards both
//! get their previous affinity back.
//!
//! Best effort: when anything is missing (a cpuset that forbids it, notify's thread not found,
//! no watcher at all as in `clean --once`) the crawl simply runs unpinned.
//!
//! May touch: the CPU affinity of the calling thread and of notify's thread (found through
//! `/proc/self/task`), put back when `Pinned` drops; nothing else.

use rustix::thread::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet, Pid};

/// notify's event-loop thread is named "notify-rs inotify loop"; the kernel keeps 15 bytes.
const NOTIFY_THREAD: &str = "notify-rs inoti";

/// The pinning of one crawl; dropping it restores both threads' affinity.
pub struct Pinned {
    saved: Vec<(Option<Pid>, CpuSet)>,
    /// The owner's affinity before the crawl: threads it starts while pinned take this back.
    pub all: CpuSet,
}

/// Pins the calling thread (the owner) and notify's thread to the CPU the caller is on.
pub fn pin_with_notify() -> Option<Pinned> {
    let notify = notify_thread()?;
    let all = sched_getaffinity(None).ok()?;
    let notify_before = sched_getaffinity(Some(notify)).ok()?;
    let mut one = CpuSet::new();
    one.set(sched_getcpu());
    sched_setaffinity(None, &one).ok()?;
    let mut pinned = Pinned {
        saved: vec![(None, all)],
        all,
    };
    if sched_setaffinity(Some(notify), &one).is_err() {
        return None; // `pinned` drops here and restores the owner.
    }
    pinned.saved.push((Some(notify), notify_before));
    Some(pinned)
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (tid, set) in &self.saved {
            let _ = sched_setaffinity(*tid, set);
        }
    }
}

/// The thread id of notify's event loop, from `/proc/self/task/*/comm`. Exactly one is
/// expected (chartd runs one watcher); anything else and nothing is pinned.
fn notify_thread() -> Option<Pid> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let entry = entry.ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == NOTIFY_THREAD {
            if found.is_some() {
                return None;
            }
            let tid: i32 = entry.file_name().to_str()?.parse().ok()?;
            found = Pid::from_raw(tid);
        }
    }
    found
}
