//! Phase `throughput`: ladders of file-creation rates, each step held for `--tp-secs`, over
//! 1000 directories on the tmpfs, next to the writer alone right before each step. Two ladders
//! (`--tp-modes`): `observe` (an observe-only daemon on an empty root: the event path alone)
//! and `evict` (the root starts full of old files exactly at `max_size`, `low_watermark: 100%`,
//! `grace: 0s`: every file written past the limit costs a deletion, first of the old files,
//! then of the step's own oldest, so deletions run at the write rate). With a baseline binary
//! each step runs both binaries, the order alternating.
//!
//! May touch: `<tmpfs>/tp` (created and removed) and the daemons it starts.

use crate::compare::{block, row, turn_order, Better};
use crate::daemon::{wait_status, Daemon, DaemonCfg};
use crate::opts::{Bin, Opts};
use crate::sample::{task_delta, task_samples};
use crate::tree::{make_file, rand_size};
use crate::util::{err, now_ns, pace, Res};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const DIRS: usize = 1000;
/// Old files the `evict` ladder starts with (its `max_size` is their total).
const PREFILL: u64 = 20_000;

/// Creates `count` files round-robin over the directories at `rate` files/s (unpaced when
/// rate is 0), named `<prefix><j>.png`, with `mtime_ns` if given. Returns (files, bytes, s).
fn write_files(
    root: &Path,
    count: u64,
    rate: f64,
    tag: u64,
    prefix: &str,
    mtime_ns: Option<i64>,
) -> Res<(u64, u64, f64)> {
    let start = Instant::now();
    let mut bytes = 0;
    for j in 0..count {
        if rate > 0.0 {
            pace(start, j, rate);
        }
        let size = rand_size(tag ^ j);
        let p = root
            .join(format!("d{:04}", (j as usize / 4) % DIRS))
            .join(format!("{prefix}{j:08}.png"));
        make_file(&p, size, mtime_ns.map(|t| t + j as i64 * 1000))?;
        bytes += size;
    }
    Ok((count, bytes, start.elapsed().as_secs_f64()))
}

fn make_dirs(root: &Path) -> Res<()> {
    let _ = fs::remove_dir_all(root);
    for k in 0..DIRS {
        fs::create_dir_all(root.join(format!("d{k:04}"))).map_err(err("tp dir"))?;
    }
    Ok(())
}

/// The files and bytes on disk under `root`.
fn disk_totals(root: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for d in fs::read_dir(root).into_iter().flatten().flatten() {
        for f in fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if let Ok(m) = f.metadata() {
                files += 1;
                bytes += m.len();
            }
        }
    }
    (files, bytes)
}

/// One step of one binary: a fresh daemon, `rate` files/s for `tp_secs`, then until it has
/// caught up.
fn step(o: &Opts, root: &Path, evict: bool, bin: &Bin, rate: u64) -> Res<Value> {
    make_dirs(root)?;
    let (prefill, limit) = if evict {
        // A day old, a microsecond apart: evicted before anything the step writes.
        let (f, b, _) = write_files(
            root,
            PREFILL,
            0.0,
            7,
            "p",
            Some(now_ns() - 86_400_000_000_000),
        )?;
        (f, b)
    } else {
        (0, 0)
    };
    let lines = if evict {
        format!("max_age: 0\nmax_size: {limit}\nlow_watermark: 100%\ngrace: 0s\nprune_empty_dirs: false")
    } else {
        "max_age: 0\nmax_size: 0".into()
    };
    let cfg = DaemonCfg {
        bin: &bin.path,
        root,
        cleanup: evict,
        root_lines: &lines,
    };
    let d = Daemon::start(&o.base, &cfg, Duration::from_secs(120))?;
    let r = measure(o, root, &d, rate, prefill, limit, evict);
    d.stop()?;
    let mut v = r?;
    v["binary"] = json!(bin.label);
    Ok(v)
}

fn measure(
    o: &Opts,
    root: &Path,
    d: &Daemon,
    rate: u64,
    prefill: u64,
    limit: u64,
    evict: bool,
) -> Res<Value> {
    let count = rate * o.tp_secs;
    let before = task_samples(d.pid);
    let (files, bytes, secs) = write_files(root, count, rate as f64, rate, "f", None)?;
    let achieved = files as f64 / secs;
    let t_end = Instant::now();
    let at_end = d.status()?;
    let removed_during = at_end["files_removed"].as_u64().unwrap_or(0);
    let settled = wait_status(d, Duration::from_secs(180), |s| {
        let overflowed = s["overflows"].as_u64().unwrap_or(0) > 0;
        let (tf, tb) = (s["total_files"].as_u64(), s["total_bytes"].as_u64());
        if evict {
            let removed = s["files_removed"].as_u64().unwrap_or(0);
            overflowed || (tb.is_some_and(|b| b <= limit) && tf == Some(prefill + files - removed))
        } else {
            overflowed || (tf == Some(files) && tb == Some(bytes))
        }
    });
    let lag = t_end.elapsed().as_secs_f64();
    let after = task_samples(d.pid);
    let (run_ns, wakeups, _, _) = task_delta(&before, &after);
    let st = d.status()?;
    let overflows = st["overflows"].as_u64().unwrap_or(0);
    let (disk_files, disk_bytes) = if evict {
        disk_totals(root)
    } else {
        (files, bytes)
    };
    let exact = st["total_files"].as_u64() == Some(disk_files)
        && st["total_bytes"].as_u64() == Some(disk_bytes);
    let writer_limited = achieved < rate as f64 * 0.95;
    let pass = overflows == 0 && exact && settled.is_ok();
    let cpu_us = run_ns as f64 / 1e3 / files as f64;
    let removed = st["files_removed"].as_u64().unwrap_or(0);
    Ok(json!({
        "rate": rate, "achieved": achieved, "files": files,
        "overflows": overflows, "resyncs": st["resyncs"], "index_exact": exact,
        "catch_up_s": lag, "cpu_us_per_file": cpu_us, "wakeups": wakeups, "pass": pass,
        "writer_limited": writer_limited,
        "indexed_files": st["total_files"], "indexed_bytes": st["total_bytes"],
        "expected_files": disk_files, "expected_bytes": disk_bytes,
        "files_removed": removed,
        "deletions_per_s_during_step": removed_during as f64 / secs,
        "max_size": limit,
    }))
}

/// One ladder: every rate for every binary (the order alternating per step), after the writer
/// alone. Stops after a step that no binary passed, or where the writer was limited.
fn ladder(o: &Opts, fast: &Path, evict: bool, bins: &[Bin]) -> Res<Vec<Vec<Value>>> {
    let root = fast.join("tp").join("root");
    let mut steps: Vec<Vec<Value>> = bins.iter().map(|_| Vec::new()).collect();
    let mode = if evict { "evict" } else { "observe" };
    for (i, &rate) in o.tp_rates.iter().enumerate() {
        // The writer alone, right before the step: what this machine allows right now.
        make_dirs(&root)?;
        let (wf, _, ws) = write_files(&root, (rate * 2).min(100_000), 0.0, 2, "f", None)?;
        let alone = wf as f64 / ws;
        let mut go_on = false;
        for k in turn_order(i, bins.len()) {
            let mut s = step(o, &root, evict, &bins[k], rate)?;
            s["writer_alone"] = json!(alone);
            let (pass, limited) = (s["pass"] == true, s["writer_limited"] == true);
            eprintln!(
                "  throughput {mode} {}: {rate}/s × {} s: achieved {:.0}/s (writer alone now: {alone:.0}/s), overflows {}, index exact {}, catch-up {:.2} s, {:.1} µs CPU/file{} → {}{}",
                bins[k].label,
                o.tp_secs,
                s["achieved"].as_f64().unwrap_or(0.0),
                s["overflows"],
                s["index_exact"],
                s["catch_up_s"].as_f64().unwrap_or(0.0),
                s["cpu_us_per_file"].as_f64().unwrap_or(0.0),
                if evict { format!(", {:.0} deletions/s", s["deletions_per_s_during_step"].as_f64().unwrap_or(0.0)) } else { String::new() },
                if pass { "PASS" } else { "FAIL" },
                if limited { " (writer-limited)" } else { "" }
            );
            go_on |= pass && !limited;
            steps[k].push(s);
        }
        if !go_on {
            break;
        }
    }
    let _ = fs::remove_dir_all(fast.join("tp"));
    Ok(steps)
}

/// A ladder's summary, in the form the table renders.
fn summary(o: &Opts, evict: bool, steps: &[Value]) -> Value {
    let mut best: Option<f64> = None;
    let mut writer_limited = false;
    for s in steps.iter().filter(|s| s["pass"] == true) {
        let a = s["achieved"].as_f64().unwrap_or(0.0);
        if best.is_none_or(|b| a > b) {
            best = Some(a);
            writer_limited = s["writer_limited"] == true;
        }
    }
    let cpu = steps
        .iter()
        .rev()
        .find(|s| s["pass"] == true)
        .or(steps.last())
        .map(|s| s["cpu_us_per_file"].clone());
    json!({
        "mode": if evict { "evict" } else { "observe" },
        "seconds_per_step": o.tp_secs,
        "directories": DIRS,
        "prefill_files": if evict { PREFILL } else { 0 },
        "max_sustained_files_per_s": best,
        "writer_limited": writer_limited,
        "cpu_us_per_file": cpu,
        "steps": steps,
        "kernel_max_queued_events": fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok().and_then(|s| s.trim().parse::<u64>().ok()),
    })
}

/// Rows for one ladder: the highest sustained rate (no verdict when either ladder ended on a
/// pass: the rate is then the writer's or the ladder's), and CPU per file at the highest rate
/// both binaries passed without being writer-limited (so both ran at that rate), with the
/// spread of the ratio over every such rate.
fn rows(mode: &str, a: &Value, b: &Value) -> Vec<Value> {
    let best = |v: &Value| v["max_sustained_files_per_s"].as_f64().unwrap_or(f64::NAN);
    // A ladder that ended on a pass (the writer limited, or no higher rate to try) gives a
    // floor, not the limit.
    let floor = |v: &Value| {
        v["steps"]
            .as_array()
            .and_then(|s| s.last())
            .is_some_and(|s| s["pass"] == true)
    };
    let limited = floor(a) || floor(b);
    let mut out = vec![row(
        &format!(
            "throughput ({mode}): highest sustained rate{}",
            if limited {
                " (a ladder ended on a pass: a floor, no verdict)"
            } else {
                ""
            }
        ),
        "files/s",
        Better::Higher,
        (!limited).then_some(1.10),
        (best(a), &[best(a)]),
        (best(b), &[best(b)]),
    )];
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    let mut top = None;
    let steps = |v: &Value| v["steps"].as_array().cloned().unwrap_or_default();
    for (x, y) in steps(a).iter().zip(&steps(b)) {
        let clean = |s: &Value| s["pass"] == true && s["writer_limited"] != true;
        if clean(x) && clean(y) {
            ca.push(x["cpu_us_per_file"].as_f64().unwrap_or(0.0));
            cb.push(y["cpu_us_per_file"].as_f64().unwrap_or(0.0));
            top = x["rate"].as_u64();
        }
    }
    let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
    out.push(row(
        &format!(
            "throughput ({mode}): CPU per file at {} files/s, the highest rate both passed at that rate (spread: every such rate)",
            top.map_or("–".into(), |r| r.to_string())
        ),
        "µs",
        Better::Lower,
        Some(1.10),
        (last(&ca), &ca),
        (last(&cb), &cb),
    ));
    out
}

/// The ladders of `--tp-modes` for this build (and the baseline, if any).
pub fn phase_throughput(o: &Opts, fast: &Path, out: &mut Value) -> Res<()> {
    let bins = o.bins();
    let mut cmp = Vec::new();
    for mode in &o.tp_modes {
        let evict = mode == "evict";
        let steps = ladder(o, fast, evict, &bins)?;
        let sums: Vec<Value> = steps.iter().map(|s| summary(o, evict, s)).collect();
        let key = if evict {
            "throughput_evict"
        } else {
            "throughput"
        };
        out[key] = sums[0].clone();
        if let Some(b) = sums.get(1) {
            out[key]["baseline"] = b.clone();
            cmp.extend(rows(mode, &sums[0], b));
        }
    }
    if bins.len() > 1 {
        out["throughput_compare"] = block(&bins[0].label, &bins[1].label, cmp);
    }
    Ok(())
}
