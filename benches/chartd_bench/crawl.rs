//! Phase `crawl` (with `memory`, and then `status` and `idle` on the last daemons): chartd's
//! start → READY=1 on a cached tree next to `find` over the same tree, RSS and index bytes per
//! file next to an empty-root daemon, and the kernel's inotify slab growth; a block of status
//! round trips on each repetition's daemons, and the idle window on the last. With a baseline
//! binary, every repetition runs both binaries in turn (their order alternating), and the
//! comparison rows go to `compare`. The rules phase reuses the repetitions ([`observe_reps`]).
//!
//! May touch: the cached tree (read only: the daemons run observe-only), the page cache
//! (`--cold`), and the daemons it starts.

use crate::common::proc_status_kib;
use crate::compare::{bin_variants, block, row_reps, turn_order, Better, Variant};
use crate::daemon::{crawl_timeout, Daemon, DaemonCfg};
use crate::idle::{idle_json, idle_window};
use crate::memory::notify_share;
use crate::opts::Opts;
use crate::sample::inotify_slab_bytes;
use crate::status::{status_block, status_json, StatusRuns};
use crate::system::drop_caches;
use crate::tree::Tree;
use crate::util::{err, stats, Res};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// `find ROOT -type f -printf '%s %T@\n' > /dev/null`, timed.
pub fn time_find(root: &Path) -> Res<f64> {
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

/// What one variant's repetitions measured, one value per repetition.
#[derive(Default)]
pub struct ObserveRuns {
    pub crawl_s: Vec<f64>,
    pub startup_s: Vec<f64>,
    pub rss_per_file: Vec<f64>,
    pub hwm_per_file: Vec<f64>,
    pub index_per_file: Vec<f64>,
    pub kmem: Vec<f64>,
    pub watches: u64,
}

/// An observe-only daemon of variant `v` on `root`.
fn start_observe(o: &Opts, v: &Variant, root: &Path, timeout: Duration) -> Res<Daemon> {
    let lines = format!("max_age: 0\nmax_size: 0\n{}", v.lines);
    let c = DaemonCfg {
        bin: &v.bin,
        root,
        cleanup: false,
        root_lines: &lines,
    };
    Daemon::start(&o.base, &c, timeout)
}

/// One repetition of one variant: a daemon on the empty root, then one on the tree; both are
/// sampled and returned running (empty, full).
fn observe_once(
    o: &Opts,
    tree: &Tree,
    empty_root: &Path,
    v: &Variant,
    r: &mut ObserveRuns,
) -> Res<(Daemon, Daemon)> {
    let n = tree.n;
    let empty = start_observe(o, v, empty_root, Duration::from_secs(60))?;
    r.startup_s.push(empty.ready_after.as_secs_f64());
    thread::sleep(Duration::from_millis(300));
    let rss_empty = empty.rss_kb();
    let slab0 = inotify_slab_bytes();
    let d = match start_observe(o, v, &tree.root, crawl_timeout(n)) {
        Ok(d) => d,
        Err(e) => {
            empty.stop()?;
            return Err(e);
        }
    };
    let crawl = d.ready_after.as_secs_f64();
    let slab1 = inotify_slab_bytes();
    thread::sleep(Duration::from_millis(300));
    let rss = d.rss_kb();
    let hwm = proc_status_kib(d.pid, "VmHWM");
    let st = match d.status() {
        Ok(st) => st,
        Err(e) => {
            d.stop()?;
            empty.stop()?;
            return Err(e);
        }
    };
    let files_seen = st["total_files"].as_u64().unwrap_or(0);
    r.watches = st["watches"].as_u64().unwrap_or(0);
    if files_seen != n as u64 {
        d.stop()?;
        empty.stop()?;
        return Err(format!(
            "{}: chartd indexed {files_seen} files, the tree has {n}",
            v.label
        ));
    }
    let idx = st["index_bytes"].as_u64().unwrap_or(0);
    r.crawl_s.push(crawl);
    r.rss_per_file
        .push((rss.saturating_sub(rss_empty) * 1024) as f64 / n as f64);
    r.hwm_per_file
        .push((hwm.saturating_sub(rss_empty) * 1024) as f64 / n as f64);
    r.index_per_file.push(idx as f64 / n as f64);
    if let (Some(a), Some(b)) = (slab0, slab1) {
        r.kmem.push(b.saturating_sub(a) as f64);
    }
    eprintln!(
        "  [{n}] {}: crawl {crawl:.3} s, RSS {:.0} B/file, index {:.0} B/file, watches {}",
        v.label,
        r.rss_per_file.last().unwrap_or(&0.0),
        idx as f64 / n as f64,
        r.watches
    );
    Ok((empty, d))
}

/// Called with each repetition's daemons of one variant, before they are stopped: (rep,
/// variant, empty-root daemon, N-file daemon).
pub type AfterRep<'a> = dyn FnMut(usize, usize, &Daemon, &Daemon) -> Res<()> + 'a;

/// The repetitions: each runs every variant in turn (the order rotating), with `find` timed
/// before the first (even repetitions) or after the last (odd ones) when `find_s` is given.
/// Only one variant's daemons run at a time (chartd refuses a second daemon on a tree it
/// governs): `after` measures what needs them running, then they are stopped.
pub fn observe_reps(
    o: &Opts,
    tree: &Tree,
    empty_root: &Path,
    variants: &[Variant],
    mut find_s: Option<&mut Vec<f64>>,
    after: &mut AfterRep,
) -> Res<Vec<ObserveRuns>> {
    let reps = o.reps(tree.n);
    let mut runs: Vec<ObserveRuns> = variants.iter().map(|_| ObserveRuns::default()).collect();
    for rep in 0..reps {
        let mut f = 0.0;
        if rep % 2 == 0 && find_s.is_some() {
            f = time_find(&tree.root)?;
        }
        for k in turn_order(rep, variants.len()) {
            let (empty, d) = observe_once(o, tree, empty_root, &variants[k], &mut runs[k])?;
            let r = after(rep, k, &empty, &d);
            d.stop()?;
            empty.stop()?;
            r?;
        }
        if let Some(fs_) = find_s.as_deref_mut() {
            if rep % 2 == 1 {
                f = time_find(&tree.root)?;
            }
            fs_.push(f);
            eprintln!("  [{}] rep {}/{reps}: find {f:.3} s", tree.n, rep + 1);
        }
    }
    Ok(runs)
}

/// Cold: `find` and a crawl of this build, each after `drop_caches`.
fn cold_rep(o: &Opts, tree: &Tree, v: &Variant, cold: &mut [Vec<f64>; 3]) -> Res<()> {
    drop_caches()?;
    let fc = time_find(&tree.root)?;
    drop_caches()?;
    let d = start_observe(o, v, &tree.root, crawl_timeout(tree.n))?;
    let cc = d.ready_after.as_secs_f64();
    d.stop()?;
    eprintln!(
        "  [{}] cold: crawl {cc:.3} s, find {fc:.3} s (×{:.2})",
        tree.n,
        cc / fc
    );
    cold[0].push(cc);
    cold[1].push(fc);
    cold[2].push(cc / fc);
    Ok(())
}

/// Crawl, memory (and, with the last daemons still up, status and idle) for one tree, for this
/// build and the baseline if any.
pub fn phase_observe(o: &Opts, tree: &Tree, empty_root: &Path, out: &mut Value) -> Res<()> {
    let n = tree.n;
    let variants = bin_variants(o);
    // Warm-up (untimed): the first walk after a build or another size reads from disk.
    if !o.cold {
        time_find(&tree.root)?;
    }
    let mut find_s = Vec::new();
    let reps = o.reps(n);
    let labels: Vec<&str> = variants.iter().map(|v| v.label.as_str()).collect();
    let mut st: Vec<StatusRuns> = variants.iter().map(|_| StatusRuns::default()).collect();
    let mut idle = vec![Value::Null; variants.len()];
    let per_block = o.status_n.div_ceil(reps);
    let mut after = |rep: usize, k: usize, empty: &Daemon, d: &Daemon| -> Res<()> {
        if o.wants("status") {
            let (a, b, bytes) = status_block(per_block, d, empty)?;
            st[k].ms.push(a);
            st[k].empty_ms.push(b);
            st[k].bytes = bytes;
        }
        if o.wants("idle") && rep + 1 == reps {
            idle[k] = idle_window(o, &variants[k].label, d, empty)?;
        }
        Ok(())
    };
    let runs = observe_reps(
        o,
        tree,
        empty_root,
        &variants,
        Some(&mut find_s),
        &mut after,
    )?;
    let mut cold = [Vec::new(), Vec::new(), Vec::new()];
    if o.cold {
        for _ in 0..o.reps(n) {
            cold_rep(o, tree, &variants[0], &mut cold)?;
        }
    }
    let ratio_of = |r: &ObserveRuns| -> Vec<f64> {
        r.crawl_s.iter().zip(&find_s).map(|(c, f)| c / f).collect()
    };
    let cur = &runs[0];
    out["crawl"] = json!({
        "cache": "warm",
        "chartd_s": stats(&cur.crawl_s),
        "find_s": stats(&find_s),
        "ratio": stats(&ratio_of(cur)),
        "empty_root_startup_s": stats(&cur.startup_s),
        "files": n,
    });
    if o.cold {
        out["crawl_cold"] = json!({
            "cache": "cold",
            "chartd_s": stats(&cold[0]),
            "find_s": stats(&cold[1]),
            "ratio": stats(&cold[2]),
        });
    }
    let (notify_per_file, notify_watch_s, raw_watch_s) = notify_share(tree)?;
    eprintln!("  [{n}] a bare notify INotifyWatcher on the same directories: {notify_per_file:.0} B/file, {notify_watch_s:.2} s to add the watches ({raw_watch_s:.2} s with bare inotify_add_watch calls)");
    out["memory"] = json!({
        "notify_bytes_per_file": notify_per_file,
        "notify_watch_s": notify_watch_s,
        "raw_inotify_watch_s": raw_watch_s,
        "rss_bytes_per_file": stats(&cur.rss_per_file),
        "hwm_bytes_per_file": stats(&cur.hwm_per_file),
        "index_bytes_per_file": stats(&cur.index_per_file),
        "watches": cur.watches,
        "kernel_inotify_slab_bytes": stats(&cur.kmem),
        "kernel_estimate_100b_per_watch": cur.watches * 100,
    });
    if let Some(base) = runs.get(1) {
        let lower = Better::Lower;
        let rows = vec![
            row_reps(
                "crawl: start → READY=1",
                "s",
                lower,
                Some(1.10),
                &cur.crawl_s,
                &base.crawl_s,
            ),
            row_reps(
                "crawl ratio to `find` (same repetition)",
                "x",
                lower,
                Some(1.10),
                &ratio_of(cur),
                &ratio_of(base),
            ),
            row_reps(
                "start-up on an empty root",
                "s",
                lower,
                None,
                &cur.startup_s,
                &base.startup_s,
            ),
            row_reps(
                "memory: (RSS − empty root) / N",
                "B",
                lower,
                Some(1.10),
                &cur.rss_per_file,
                &base.rss_per_file,
            ),
            row_reps(
                "memory: peak (VmHWM − empty root) / N",
                "B",
                lower,
                None,
                &cur.hwm_per_file,
                &base.hwm_per_file,
            ),
            row_reps(
                "memory: index_bytes / N",
                "B",
                lower,
                None,
                &cur.index_per_file,
                &base.index_per_file,
            ),
        ];
        out["compare"]["observe"] = block(&variants[0].label, &variants[1].label, rows);
    }
    if o.wants("status") {
        status_json(n, &st, &labels, out);
    }
    if o.wants("idle") {
        idle_json(&idle, &labels, out);
    }
    Ok(())
}
