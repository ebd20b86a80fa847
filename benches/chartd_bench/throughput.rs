//! Phase `throughput`: a ladder of file-creation rates, each held for `--tp-secs`, over 1000
//! directories on the tmpfs, on an observe-only daemon, next to the writer alone right before
//! each step.
//!
//! May touch: `<tmpfs>/tp` (created and removed) and the daemons it starts.

use crate::daemon::{observe_cfg, wait_status, Daemon};
use crate::opts::Opts;
use crate::sample::{task_delta, task_samples};
use crate::tree::{make_file, rand_size};
use crate::util::{err, pace, Res};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Creates `count` files round-robin over `dirs` at `rate` files/s (unpaced when rate is 0).
/// Returns (files, bytes, seconds).
fn write_files(root: &Path, dirs: usize, count: u64, rate: f64, tag: u64) -> Res<(u64, u64, f64)> {
    let start = Instant::now();
    let mut bytes = 0;
    for j in 0..count {
        if rate > 0.0 {
            pace(start, j, rate);
        }
        let size = rand_size(tag ^ j);
        let p = root
            .join(format!("d{:04}", (j as usize / 4) % dirs))
            .join(format!("f{j:08}.png"));
        make_file(&p, size, None)?;
        bytes += size;
    }
    Ok((count, bytes, start.elapsed().as_secs_f64()))
}

fn make_dirs(root: &Path, dirs: usize) -> Res<()> {
    let _ = fs::remove_dir_all(root);
    for k in 0..dirs {
        fs::create_dir_all(root.join(format!("d{k:04}"))).map_err(err("tp dir"))?;
    }
    Ok(())
}

/// Event throughput: a ladder of creation rates, each held for `tp_secs`, over 1000
/// directories, on an observe-only daemon. A step passes when the writer achieved the rate,
/// chartd saw no queue overflow, and its index matches the disk exactly afterwards.
pub fn phase_throughput(o: &Opts, fast: &Path, out: &mut Value) -> Res<()> {
    const DIRS: usize = 1000;
    let root = fast.join("tp").join("root");
    let mut steps = Vec::new();
    let mut best: Option<f64> = None;
    let mut writer_limited_at_best = false;
    for &rate in &o.tp_rates {
        // The writer alone, right before the step: what this machine allows right now.
        make_dirs(&root, DIRS)?;
        let (wf, _, ws) = write_files(&root, DIRS, (rate * 2).min(100_000), 0.0, 2)?;
        let alone = wf as f64 / ws;
        make_dirs(&root, DIRS)?;
        let d = Daemon::start(&o.base, &observe_cfg(&root), Duration::from_secs(120))?;
        let count = rate * o.tp_secs;
        let before = task_samples(d.pid);
        let r = write_files(&root, DIRS, count, rate as f64, rate);
        let (files, bytes, secs) = match r {
            Ok(x) => x,
            Err(e) => {
                d.stop()?;
                return Err(e);
            }
        };
        let achieved = files as f64 / secs;
        let t_end = Instant::now();
        let settled = wait_status(&d, Duration::from_secs(180), |s| {
            (s["total_files"].as_u64() == Some(files) && s["total_bytes"].as_u64() == Some(bytes))
                || s["overflows"].as_u64().unwrap_or(0) > 0
        });
        let lag = t_end.elapsed().as_secs_f64();
        let after = task_samples(d.pid);
        let (run_ns, wakeups, _, _) = task_delta(&before, &after);
        let st = d.status()?;
        d.stop()?;
        let overflows = st["overflows"].as_u64().unwrap_or(0);
        let exact =
            st["total_files"].as_u64() == Some(files) && st["total_bytes"].as_u64() == Some(bytes);
        let writer_limited = achieved < rate as f64 * 0.95;
        let pass = overflows == 0 && exact && settled.is_ok();
        let cpu_us = run_ns as f64 / 1e3 / files as f64;
        eprintln!(
            "  throughput {rate}/s × {} s: achieved {achieved:.0}/s (writer alone now: {alone:.0}/s), overflows {overflows}, index exact {exact}, catch-up {lag:.2} s, {cpu_us:.1} µs CPU/file → {}{}",
            o.tp_secs,
            if pass { "PASS" } else { "FAIL" },
            if writer_limited { " (writer-limited)" } else { "" }
        );
        steps.push(json!({
            "rate": rate, "achieved": achieved, "writer_alone": alone, "files": files,
            "overflows": overflows, "resyncs": st["resyncs"], "index_exact": exact,
            "catch_up_s": lag, "cpu_us_per_file": cpu_us, "wakeups": wakeups, "pass": pass,
            "writer_limited": writer_limited,
            "indexed_files": st["total_files"], "indexed_bytes": st["total_bytes"],
            "expected_bytes": bytes,
        }));
        if pass && best.is_none_or(|b| achieved > b) {
            best = Some(achieved);
            writer_limited_at_best = writer_limited;
        }
        if !pass || writer_limited {
            break;
        }
    }
    let _ = fs::remove_dir_all(fast.join("tp"));
    let cpu = steps
        .iter()
        .rev()
        .find(|s| s["pass"] == true)
        .or(steps.last())
        .map(|s| s["cpu_us_per_file"].clone());
    out["throughput"] = json!({
        "seconds_per_step": o.tp_secs,
        "directories": DIRS,
        "max_sustained_files_per_s": best,
        "writer_limited": writer_limited_at_best,
        "cpu_us_per_file": cpu,
        "steps": steps,
        "kernel_max_queued_events": fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok().and_then(|s| s.trim().parse::<u64>().ok()),
    });
    Ok(())
}
