//! Sampling what a process and the kernel spend, beyond the harness's `/proc` readers
//! (`tests/common/procfs.rs`: RSS, CPU ticks): per-thread on-CPU time, timeslices and wake-ups
//! from `/proc/PID/task/*`, and the kernel's inotify mark slabs.
//!
//! May touch: nothing; it only reads `/proc` and `/sys/kernel/slab`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct TaskSample {
    pub comm: String,
    pub run_ns: u64,
    pub slices: u64,
    pub vol_switches: u64,
    pub invol_switches: u64,
}

/// Per-thread `schedstat` (on-CPU ns, timeslices) and context switches.
pub fn task_samples(pid: i32) -> HashMap<i32, TaskSample> {
    let mut out = HashMap::new();
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let p = e.path();
        let sched = fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        let mut it = sched
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let run_ns = it.next().unwrap_or(0);
        let _wait = it.next();
        let slices = it.next().unwrap_or(0);
        let status = fs::read_to_string(p.join("status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        out.insert(
            tid,
            TaskSample {
                comm: fs::read_to_string(p.join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                run_ns,
                slices,
                vol_switches: field("voluntary_ctxt_switches"),
                invol_switches: field("nonvoluntary_ctxt_switches"),
            },
        );
    }
    out
}

/// Differences between two task samples: (total on-CPU ns, total wakeups, per-thread detail).
pub fn task_delta(
    a: &HashMap<i32, TaskSample>,
    b: &HashMap<i32, TaskSample>,
) -> (u64, u64, u64, Vec<Value>) {
    let (mut run, mut wake, mut slices) = (0, 0, 0);
    let mut per = Vec::new();
    let mut tids: Vec<&i32> = b.keys().collect();
    tids.sort();
    for tid in tids {
        let y = &b[tid];
        let x = a.get(tid).cloned().unwrap_or_default();
        let r = y.run_ns.saturating_sub(x.run_ns);
        let w = y.vol_switches.saturating_sub(x.vol_switches);
        let s = y.slices.saturating_sub(x.slices);
        run += r;
        wake += w;
        slices += s;
        per.push(json!({
            "tid": tid, "thread": y.comm, "cpu_us": r / 1000, "wakeups": w,
            "timeslices": s,
            "involuntary_switches": y.invol_switches.saturating_sub(x.invol_switches),
        }));
    }
    (run, wake, slices, per)
}

/// Kernel memory of inotify marks: `inotify_inode_mark` and `fsnotify_mark_connector` slab
/// objects (bytes). The caches may be merged with others; the harness only uses differences.
pub fn inotify_slab_bytes() -> Option<u64> {
    let read = |name: &str| -> Option<u64> {
        let base = Path::new("/sys/kernel/slab").join(name);
        let objs: u64 = fs::read_to_string(base.join("objects"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let size: u64 = fs::read_to_string(base.join("slab_size"))
            .or_else(|_| fs::read_to_string(base.join("object_size")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(objs * size)
    };
    Some(read("inotify_inode_mark")? + read("fsnotify_mark_connector").unwrap_or(0))
}
