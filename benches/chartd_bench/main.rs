//! chartd benchmark harness (`harness = false`). One command:
//!
//! ```sh
//! cargo bench --bench chartd_bench -- [--sizes 10k,100k,1m] [--quick] [--cold] [--only LIST]
//!     [--baseline-bin PATH [--baseline-label NAME]]
//! ```
//!
//! It builds synthetic chart trees once (cached under `$CHARTD_BENCH_DIR`, default
//! `/var/tmp/chartd-bench`), runs the release `chartd` that Cargo built for this bench against
//! them, and measures every figure next to a reference taken in the same run, so that the noise
//! of a shared machine cancels: crawl vs `find`, RSS vs an empty root, reaction latency vs a
//! minimal inotify reactor, status vs an empty-root daemon, idle vs an empty-root daemon,
//! event throughput vs the writer alone. With `--baseline-bin`, every measurement that runs
//! chartd also runs the baseline binary (another build, e.g. of an older commit), interleaved
//! with this one, and a side-by-side table shows both with their ratio. The `rules` phase
//! compares 20 retention rules against none on this build. Results go to
//! `target/bench/results-<date>.json` and the table into `BENCHMARKS.md` (unless `--no-md`).
//! See BENCHMARKS.md for the method. Needs root (sysctl, drop_caches, tmpfs); it raises
//! `fs.inotify.max_user_watches` for the run and restores it.
//!
//! This file is the entry point only: the command line, the order of the phases, and writing
//! the results. Each phase is a module of its own next to this file, the table renderers are
//! `render.rs` and `render_cmp.rs` (side by side), and the daemon runner, requests and files
//! come from the dev harness the integration tests use (`tests/common/`, included below by
//! path).
//!
//! May touch: `$CHARTD_BENCH_DIR` (trees, run directories, the tmpfs), the sysctl and page
//! cache as above (restored / harmless), `target/bench/` and BENCHMARKS.md's results block.

#[path = "../../tests/common/mod.rs"]
mod common;

mod compare;
mod crawl;
mod daemon;
mod floor;
mod idle;
mod inotify;
mod live;
mod memory;
mod meta;
mod opts;
mod overshoot;
mod reaction;
mod render;
mod render_cmp;
mod rules;
mod sample;
mod status;
mod system;
mod throughput;
mod tree;
mod util;
mod victim;

use common::BIN;
use crawl::phase_observe;
use live::{phase_live, Live};
use meta::{machine, sh, utc, MANIFEST_DIR};
use opts::{parse_opts, Opts};
use render::{label, table, write_md};
use rules::phase_rules;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use system::{cleanup_everything, install_signal_cleanup, SysctlGuard, Tmpfs};
use throughput::phase_throughput;
use tree::Tree;
use util::{err, Res};

/// Files per loop and loops per protocol of the `floor` phase.
const FLOOR_FILES: usize = 20_000;
const FLOOR_REPS: usize = 5;

/// A failed phase is recorded (and shown under the table); the run goes on.
fn note_err(out: &mut Value, phase: &str, r: Res<()>) {
    if let Err(e) = r {
        let e: String = e.chars().take(2000).collect();
        eprintln!("  {phase} FAILED: {e}");
        if !out["errors"].is_array() {
            out["errors"] = json!([]);
        }
        if let Some(a) = out["errors"].as_array_mut() {
            a.push(json!({ "phase": phase, "error": e }));
        }
    }
}

fn run(o: &Opts) -> Res<Value> {
    if o.baseline.is_some() {
        // The baseline's replies predate today's typed replies: read them untyped.
        common::CHECK_TYPED.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        eprintln!(
            "warning: not root: the watch limit cannot be raised and --cold cannot drop caches"
        );
    }
    fs::create_dir_all(&o.base).map_err(err("bench dir"))?;
    let max_n = o.sizes.iter().copied().max().unwrap_or(0);
    // chartd's watches (N/4 + a few), the harness's own, and what else runs here.
    let need = (max_n / 4) as u64 + 20_000;
    let _guard = if uid == 0 {
        SysctlGuard::raise_at_least("/proc/sys/fs/inotify/max_user_watches", need.max(600_000))?
    } else {
        None
    };
    let tmpfs = if o.wants("overshoot") || o.wants("throughput") || o.wants("floor") {
        Some(Tmpfs::mount(&o.base.join("tmpfs"))?)
    } else {
        None
    };
    let empty_root = o.base.join("empty-root");
    fs::create_dir_all(&empty_root).map_err(err("empty root"))?;
    let mut sizes = Vec::new();
    for &n in &o.sizes {
        eprintln!("== N = {}", label(n));
        let mut out = json!({ "n": n });
        if o.wants("crawl") || o.wants("status") || o.wants("idle") {
            let tree = Tree::ensure(&o.base.join("trees").join(n.to_string()), n)?;
            // The cached tree is only read: chartd runs observe-only on it.
            let r = phase_observe(o, &tree, &empty_root, &mut out);
            note_err(&mut out, "crawl/memory/status/idle", r);
        }
        if o.wants("reaction") {
            let r = phase_live(o, n, Live::Reaction, &o.base, &mut out);
            note_err(&mut out, "reaction", r);
        }
        if let Some(t) = tmpfs.as_ref().filter(|_| o.wants("overshoot")) {
            let r = phase_live(o, n, Live::Overshoot, &t.path, &mut out);
            note_err(&mut out, "overshoot", r);
        }
        if o.wants("rules") {
            let r = phase_rules(o, n, &empty_root, &mut out);
            note_err(&mut out, "rules", r);
        }
        sizes.push(out);
    }
    let mut results = json!({ "sizes": sizes });
    if o.wants("floor") {
        eprintln!("== deletion protocols alone (floor)");
        let mut f = json!({});
        let places = [
            ("disk", Some(o.base.join("scratch").join("floor"))),
            ("tmpfs", tmpfs.as_ref().map(|t| t.path.join("floor"))),
        ];
        for (name, dir) in places {
            let Some(dir) = dir else { continue };
            match floor::floor_on(&dir, FLOOR_FILES, FLOOR_REPS) {
                Ok(v) => {
                    eprintln!(
                        "  {name}: plain unlink {:.1} µs/file, airtight {:.1} µs/file: {:.2}×",
                        v["plain_us"].as_f64().unwrap_or(0.0),
                        v["airtight_us"].as_f64().unwrap_or(0.0),
                        v["ratio"].as_f64().unwrap_or(0.0)
                    );
                    f[name] = v;
                }
                Err(e) => note_err(&mut f, "floor", Err(e)),
            }
        }
        results["floor"] = f;
    }
    if o.wants("throughput") {
        eprintln!("== event throughput");
        let mut tp = json!({});
        if let Some(t) = &tmpfs {
            let r = phase_throughput(o, &t.path, &mut tp);
            note_err(&mut tp, "throughput", r);
        }
        if let Some(m) = tp.as_object_mut() {
            for (k, v) in std::mem::take(m) {
                let k = if k == "errors" {
                    "throughput_errors".into()
                } else {
                    k
                };
                results[k] = v;
            }
        }
    }
    Ok(results)
}

/// `BIN --version`, first line.
fn version_of(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("chartd_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = install_signal_cleanup() {
        eprintln!("chartd_bench: {e}");
        std::process::exit(1);
    }
    if o.prepare {
        for &n in &o.sizes {
            for sub in ["trees", "live"] {
                if let Err(e) = Tree::ensure(&o.base.join(sub).join(n.to_string()), n) {
                    eprintln!("chartd_bench: {e}");
                    std::process::exit(1);
                }
            }
        }
        return;
    }
    let started = SystemTime::now();
    // The commit being measured: taken now, not after a run that can last half an hour.
    let commit = sh("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let r = run(&o);
    cleanup_everything();
    let mut results = match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("chartd_bench: {e}");
            std::process::exit(1);
        }
    };
    let ts = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = utc(ts);
    let date = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    results["date"] = json!(date);
    results["commit"] = json!(commit);
    results["dirty"] = json!(dirty);
    results["machine"] = machine();
    results["args"] = json!(args.join(" "));
    results["chartd"] = json!(BIN);
    if let Some(b) = &o.baseline {
        results["baseline"] = json!({
            "bin": b.path,
            "label": b.label,
            "version": version_of(&b.path),
        });
    }
    results["repetitions"] = json!(format!(
        "{} runs (N < 1M) / {} (N ≥ 1M) for crawl and memory, {} status round trips, {} reaction samples, {} s idle",
        o.reps_small, o.reps_large, o.status_n, o.reaction_n, o.idle_secs
    ));
    results["quick"] = json!(o.quick);
    let mut t = table(&results, &o);
    t.push_str(&render_cmp::tables(&results));
    println!("\n{t}");
    let dir = Path::new(MANIFEST_DIR).join("target").join("bench");
    let _ = fs::create_dir_all(&dir);
    let file = dir.join(format!(
        "results-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}.json"
    ));
    match fs::write(
        &file,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    ) {
        Ok(()) => println!("results: {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
    if o.write_md {
        match write_md(&results, &t) {
            Ok(()) => println!("table written to BENCHMARKS.md"),
            Err(e) => eprintln!("{e}"),
        }
    }
}
