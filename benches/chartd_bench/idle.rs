//! Phase `idle`: CPU time and wake-ups of the N-file daemon and the empty-root one over the
//! same quiet window (run for each binary in turn, on its last crawl repetition's daemons).
//!
//! May touch: nothing; it sleeps and reads `/proc` of the daemons.

use crate::common::cpu_secs;
use crate::compare::{block, row, Better};
use crate::daemon::Daemon;
use crate::opts::Opts;
use crate::sample::{task_delta, task_samples};
use crate::util::Res;
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

/// Idle: CPU and wake-ups of both daemons over the same window with nothing happening.
pub fn idle_window(o: &Opts, label: &str, d: &Daemon, empty: &Daemon) -> Res<Value> {
    thread::sleep(Duration::from_secs(2));
    let (a0, b0) = (task_samples(d.pid), task_samples(empty.pid));
    let (ac0, bc0) = (cpu_secs(d.pid), cpu_secs(empty.pid));
    let t = Instant::now();
    thread::sleep(Duration::from_secs(o.idle_secs));
    let secs = t.elapsed().as_secs_f64();
    let (a1, b1) = (task_samples(d.pid), task_samples(empty.pid));
    let (ac1, bc1) = (cpu_secs(d.pid), cpu_secs(empty.pid));
    let (ar, aw, asl, aper) = task_delta(&a0, &a1);
    let (br, bw, bsl, bper) = task_delta(&b0, &b1);
    let cpu_pct = |ns: u64| ns as f64 / 1e9 / secs * 100.0;
    eprintln!(
        "  idle {secs:.0} s: {label}: CPU {:.4} % ({} µs), {aw} wakeups; empty root: CPU {:.4} %, {bw} wakeups",
        cpu_pct(ar),
        ar / 1000,
        cpu_pct(br)
    );
    Ok(json!({
        "window_s": secs,
        "cpu_percent": cpu_pct(ar),
        "cpu_us": ar / 1000,
        "cpu_stat_ticks_s": ac1 - ac0,
        "wakeups": aw,
        "timeslices": asl,
        "threads": aper,
        "empty_root": {
            "cpu_percent": cpu_pct(br), "cpu_us": br / 1000, "cpu_stat_ticks_s": bc1 - bc0,
            "wakeups": bw, "timeslices": bsl, "threads": bper,
        },
    }))
}

/// `out["idle"]` for this build, and the comparison with the baseline (`windows[1]`), if any.
pub fn idle_json(windows: &[Value], labels: &[&str], out: &mut Value) {
    let Some(first) = windows.first() else { return };
    out["idle"] = first.clone();
    if let Some(b) = windows.get(1) {
        out["idle"]["baseline"] = b.clone();
        out["idle"]["baseline"]["label"] = json!(labels[1]);
        let pair = |key: &str, what: &str, unit: &str| {
            let f = |v: &Value| v[key].as_f64().unwrap_or(0.0);
            let (a, b) = (f(first), f(b));
            row(what, unit, Better::Lower, None, (a, &[a]), (b, &[b]))
        };
        out["compare"]["idle"] = block(
            labels[0],
            labels[1],
            vec![
                pair("cpu_percent", "idle: CPU", "%"),
                pair("wakeups", "idle: wake-ups / window", "n"),
            ],
        );
    }
}
