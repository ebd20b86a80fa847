//! Phase `crawl` (with `memory`, and then `status` and `idle` on the last daemons): chartd's
//! start → READY=1 on a cached tree next to `find` over the same tree, RSS and index bytes per
//! file next to an empty-root daemon, and the kernel's inotify slab growth.
//!
//! May touch: the cached tree (read only: the daemons run observe-only), the page cache
//! (`--cold`), and the daemons it starts.

use crate::common::proc_status_kib;
use crate::daemon::{crawl_timeout, observe_cfg, Daemon};
use crate::idle::phase_idle;
use crate::memory::notify_share;
use crate::opts::Opts;
use crate::sample::inotify_slab_bytes;
use crate::status::phase_status;
use crate::system::drop_caches;
use crate::tree::Tree;
use crate::util::{err, stats, Res};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// `find ROOT -type f -printf '%s %T@\n' > /dev/null`, timed.
fn time_find(root: &Path) -> Res<f64> {
    let t = Instant::now();
    let st = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-printf", "%s %T@\n"])
        .stdout(Stdio::null())
        .status()
        .map_err(err("find"))?;
    if !st.success() {
        return Err(format!("find failed: {st}"));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Crawl, memory (and, with the last daemon still up, status and idle) for one tree.
pub fn phase_observe(o: &Opts, tree: &Tree, empty_root: &Path, out: &mut Value) -> Res<()> {
    let n = tree.n;
    let reps = o.reps(n);
    let mut chartd_s = Vec::new();
    let mut startup_s = Vec::new();
    let mut find_s = Vec::new();
    let mut ratio = Vec::new();
    let mut cold = (Vec::new(), Vec::new(), Vec::new());
    let mut per_file = Vec::new();
    let mut index_per_file = Vec::new();
    let mut hwm_per_file = Vec::new();
    let mut kmem = Vec::new();
    let mut last: Option<(Daemon, Daemon)> = None;
    let mut files_seen = 0u64;
    // Warm-up (untimed): the first walk after a build or another size reads from disk.
    if !o.cold {
        time_find(&tree.root)?;
    }
    let mut watches = 0u64;
    for rep in 0..reps {
        // Alternate the order so that neither always runs on the other's warm-up.
        let f = || time_find(&tree.root);
        let mut fs_ = 0.0;
        if rep % 2 == 0 {
            fs_ = f()?;
        }
        let empty = Daemon::start(&o.base, &observe_cfg(empty_root), Duration::from_secs(60))?;
        startup_s.push(empty.ready_after.as_secs_f64());
        thread::sleep(Duration::from_millis(300));
        let rss_empty = empty.rss_kb();
        let slab0 = inotify_slab_bytes();
        let d = Daemon::start(&o.base, &observe_cfg(&tree.root), crawl_timeout(n))?;
        let crawl = d.ready_after.as_secs_f64();
        let slab1 = inotify_slab_bytes();
        if rep % 2 == 1 {
            fs_ = f()?;
        }
        thread::sleep(Duration::from_millis(300));
        let rss = d.rss_kb();
        let hwm = proc_status_kib(d.pid, "VmHWM");
        let st = d.status()?;
        files_seen = st["total_files"].as_u64().unwrap_or(0);
        watches = st["watches"].as_u64().unwrap_or(0);
        if files_seen != n as u64 {
            return Err(format!(
                "chartd indexed {files_seen} files, the tree has {n}"
            ));
        }
        let idx = st["index_bytes"].as_u64().unwrap_or(0);
        chartd_s.push(crawl);
        find_s.push(fs_);
        ratio.push(crawl / fs_);
        per_file.push((rss.saturating_sub(rss_empty) * 1024) as f64 / n as f64);
        hwm_per_file.push((hwm.saturating_sub(rss_empty) * 1024) as f64 / n as f64);
        index_per_file.push(idx as f64 / n as f64);
        if let (Some(a), Some(b)) = (slab0, slab1) {
            kmem.push(b.saturating_sub(a) as f64);
        }
        eprintln!(
            "  [{n}] rep {}/{reps}: crawl {crawl:.3} s, find {fs_:.3} s (×{:.2}), RSS {:.0} B/file, index {:.0} B/file, watches {watches}",
            rep + 1,
            crawl / fs_,
            per_file.last().unwrap(),
            idx as f64 / n as f64
        );
        if o.cold {
            d.stop()?;
            drop_caches()?;
            let fc = time_find(&tree.root)?;
            drop_caches()?;
            let d2 = Daemon::start(&o.base, &observe_cfg(&tree.root), crawl_timeout(n))?;
            let cc = d2.ready_after.as_secs_f64();
            eprintln!(
                "  [{n}] cold: crawl {cc:.3} s, find {fc:.3} s (×{:.2})",
                cc / fc
            );
            cold.0.push(cc);
            cold.1.push(fc);
            cold.2.push(cc / fc);
            if rep + 1 == reps {
                last = Some((d2, empty));
            } else {
                d2.stop()?;
                empty.stop()?;
            }
        } else if rep + 1 == reps {
            last = Some((d, empty));
        } else {
            d.stop()?;
            empty.stop()?;
        }
    }
    out["crawl"] = json!({
        "cache": "warm",
        "chartd_s": stats(&chartd_s),
        "find_s": stats(&find_s),
        "ratio": stats(&ratio),
        "empty_root_startup_s": stats(&startup_s),
        "files": files_seen,
    });
    if o.cold {
        out["crawl_cold"] = json!({
            "cache": "cold",
            "chartd_s": stats(&cold.0),
            "find_s": stats(&cold.1),
            "ratio": stats(&cold.2),
        });
    }
    let (notify_per_file, notify_watch_s, raw_watch_s) = notify_share(tree)?;
    eprintln!("  [{n}] a bare notify INotifyWatcher on the same directories: {notify_per_file:.0} B/file, {notify_watch_s:.2} s to add the watches ({raw_watch_s:.2} s with bare inotify_add_watch calls)");
    out["memory"] = json!({
        "notify_bytes_per_file": notify_per_file,
        "notify_watch_s": notify_watch_s,
        "raw_inotify_watch_s": raw_watch_s,
        "rss_bytes_per_file": stats(&per_file),
        "hwm_bytes_per_file": stats(&hwm_per_file),
        "index_bytes_per_file": stats(&index_per_file),
        "watches": watches,
        "kernel_inotify_slab_bytes": stats(&kmem),
        "kernel_estimate_100b_per_watch": watches * 100,
    });
    let (d, empty) = last.ok_or("no daemon")?;
    let r = (|| -> Res<()> {
        if o.wants("status") {
            phase_status(o, &d, &empty, out)?;
        }
        if o.wants("idle") {
            phase_idle(o, &d, &empty, out)?;
        }
        Ok(())
    })();
    d.stop()?;
    empty.stop()?;
    r
}
