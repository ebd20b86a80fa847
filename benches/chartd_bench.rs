//! chartd benchmark harness (`harness = false`). One command:
//!
//! ```sh
//! cargo bench --bench chartd_bench -- [--sizes 10k,100k,1m] [--quick] [--cold] [--only LIST]
//! ```
//!
//! It builds synthetic chart trees once (cached under `$CHARTD_BENCH_DIR`, default
//! `/var/tmp/chartd-bench`), runs the release `chartd` that Cargo built for this bench against
//! them, and measures every figure next to a reference taken in the same run, so that the noise
//! of a shared machine cancels: crawl vs `find`, RSS vs an empty root, reaction latency vs a
//! minimal inotify reactor, status vs an empty-root daemon, idle vs an empty-root daemon,
//! event throughput vs the writer alone. Results go to `target/bench/results-<date>.json` and
//! the table into `BENCHMARKS.md`. See BENCHMARKS.md for the method. Needs root (sysctl,
//! drop_caches); it raises `fs.inotify.max_user_watches` for the run and restores it.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_chartd");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(ctx: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    sizes: Vec<usize>,
    quick: bool,
    cold: bool,
    only: Option<Vec<String>>,
    reps_small: usize,
    reps_large: usize,
    status_n: usize,
    idle_secs: u64,
    reaction_n: usize,
    tp_secs: u64,
    tp_rates: Vec<u64>,
    write_md: bool,
    prepare: bool,
    base: PathBuf,
}

const USAGE: &str = "\
usage: cargo bench --bench chartd_bench -- [options]
  --sizes LIST      tree sizes, e.g. 10k,100k,1m (default: 10k,100k,1m)
  --quick           fewer repetitions and shorter windows (a smoke run; numbers are noisier)
  --cold            also measure find and the crawl with a cold page cache (drop_caches)
  --only LIST       subset of: crawl,status,idle,reaction,overshoot,throughput
                    (crawl includes memory)
  --reps N          repetitions of crawl/memory for sizes < 1M (default 5; quick 2)
  --reps-large N    repetitions for 1M and above (default 3; quick 1)
  --status-n N      status round trips per daemon (default 2000; quick 300)
  --idle-secs S     idle window (default 60; quick 10)
  --reaction-n N    reaction samples (default 300; quick 60)
  --tp-secs S       seconds per throughput step (default 30; quick 5)
  --tp-rates LIST   throughput ladder in files/s (default 5k,10k,25k,50k,75k,100k)
  --no-md           do not rewrite the results section of BENCHMARKS.md
  --prepare         only build (or repair) the cached trees of --sizes, then exit
env: CHARTD_BENCH_DIR (default /var/tmp/chartd-bench) holds the cached trees and scratch files.";

fn parse_count(s: &str) -> Res<usize> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = if let Some(n) = s.strip_suffix('k') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 1_000_000)
    } else {
        (s.as_str(), 1)
    };
    let v: f64 = num.parse().map_err(|_| format!("not a count: {s}"))?;
    Ok((v * mul as f64).round() as usize)
}

fn parse_opts() -> Res<Opts> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench` to every bench target.
    args.retain(|a| a != "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        sizes: vec![10_000, 100_000, 1_000_000],
        quick,
        cold: false,
        only: None,
        reps_small: if quick { 2 } else { 5 },
        reps_large: if quick { 1 } else { 3 },
        status_n: if quick { 300 } else { 2000 },
        idle_secs: if quick { 10 } else { 60 },
        reaction_n: if quick { 60 } else { 300 },
        tp_secs: if quick { 5 } else { 30 },
        tp_rates: vec![5_000, 10_000, 25_000, 50_000, 75_000, 100_000],
        write_md: true,
        prepare: false,
        base: std::env::var_os("CHARTD_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/chartd-bench")),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {}
            "--cold" => o.cold = true,
            "--no-md" => o.write_md = false,
            "--prepare" => o.prepare = true,
            "--sizes" => {
                o.sizes = val()?
                    .split(',')
                    .map(parse_count)
                    .collect::<Res<Vec<_>>>()?;
                for &n in &o.sizes {
                    if n < 1000 || n % 4 != 0 {
                        return Err(format!("size {n}: must be a multiple of 4, at least 1k"));
                    }
                }
            }
            "--only" => o.only = Some(val()?.split(',').map(|s| s.trim().to_string()).collect()),
            "--reps" => o.reps_small = parse_count(&val()?)?.max(1),
            "--reps-large" => o.reps_large = parse_count(&val()?)?.max(1),
            "--status-n" => o.status_n = parse_count(&val()?)?.max(1),
            "--idle-secs" => o.idle_secs = parse_count(&val()?)?.max(1) as u64,
            "--reaction-n" => o.reaction_n = parse_count(&val()?)?.max(1),
            "--tp-secs" => o.tp_secs = parse_count(&val()?)?.max(1) as u64,
            "--tp-rates" => {
                o.tp_rates = val()?
                    .split(',')
                    .map(|s| parse_count(s).map(|v| v as u64))
                    .collect::<Res<Vec<_>>>()?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

impl Opts {
    fn wants(&self, what: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == what))
    }
    fn reps(&self, n: usize) -> usize {
        if n >= 1_000_000 {
            self.reps_large
        } else {
            self.reps_small
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Nearest-rank percentile of a sample (p in 0..=100). With fewer than 100 samples, p99 is the
/// maximum.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn stats(v: &[f64]) -> Value {
    json!({
        "n": v.len(),
        "median": pct(v, 50.0),
        "p99": pct(v, 99.0),
        "min": pct(v, 0.0),
        "max": pct(v, 100.0),
    })
}

// ---------------------------------------------------------------------------------------------
// Cleanup on exit and on signals: children are killed, the sysctl restored.

static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SYSCTL_RESTORE: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

fn cleanup_everything() {
    if let Ok(mut c) = CHILDREN.lock() {
        for pid in c.drain(..) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
    if let Ok(mut s) = SYSCTL_RESTORE.lock() {
        for (path, val) in s.drain(..).rev() {
            match fs::write(&path, &val) {
                Ok(()) => eprintln!("restored {} = {}", path.display(), val.trim()),
                Err(e) => eprintln!("could not restore {}: {e}", path.display()),
            }
        }
    }
    unmount_all();
}

fn install_signal_cleanup() -> Res<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut sigs =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(err("signals"))?;
    thread::spawn(move || {
        if let Some(s) = sigs.forever().next() {
            eprintln!("\nsignal {s}: cleaning up");
            cleanup_everything();
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Restores the sysctl on drop (and on a signal, through `cleanup_everything`).
struct SysctlGuard;

impl SysctlGuard {
    fn raise_at_least(path: &str, want: u64) -> Res<Option<SysctlGuard>> {
        let p = PathBuf::from(path);
        let cur = fs::read_to_string(&p).map_err(err(path))?;
        let v: u64 = cur.trim().parse().map_err(err(path))?;
        if v >= want {
            return Ok(None);
        }
        SYSCTL_RESTORE
            .lock()
            .unwrap()
            .push((p.clone(), cur.clone()));
        fs::write(&p, format!("{want}\n")).map_err(err(path))?;
        eprintln!("raised {path} from {} to {want} for this run", cur.trim());
        Ok(Some(SysctlGuard))
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = SYSCTL_RESTORE.lock() {
            for (path, val) in s.drain(..).rev() {
                if fs::write(&path, &val).is_ok() {
                    eprintln!("restored {} = {}", path.display(), val.trim());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic trees: N/4 SYMBOL_INTERVAL directories with four PNG names each, sparse files of
// 300–800 KiB apparent size, mtimes spread over 48 h before the tree's base time. Everything is
// a pure function of the file index, so the harness knows every file's size and mtime.

const IVS: [&str; 6] = ["1m", "5m", "15m", "1h", "4h", "1d"];
const CHARTS: [&str; 4] = ["price.png", "volume.png", "rsi.png", "macd.png"];
const MIN_SIZE: u64 = 300 * 1024;
const MAX_SIZE: u64 = 800 * 1024;
const SPREAD_NS: u64 = 48 * 3600 * 1_000_000_000;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn rand_size(seed: u64) -> u64 {
    MIN_SIZE + mix(seed) % (MAX_SIZE - MIN_SIZE + 1)
}

fn dir_name(d: usize) -> String {
    format!("S{:05}_{}", d / IVS.len(), IVS[d % IVS.len()])
}

struct Tree {
    n: usize,
    /// Holds `root/`, the `base` time and the `complete` marker.
    dir: PathBuf,
    root: PathBuf,
    base_ns: i64,
}

impl Tree {
    fn dirs(&self) -> usize {
        self.n / 4
    }
    fn size(&self, i: usize) -> u64 {
        rand_size(i as u64 ^ 0x5157_0000_0000)
    }
    fn mtime_ns(&self, i: usize) -> i64 {
        self.base_ns - (mix(i as u64 ^ 0xA6E0_0000_0000_0000) % SPREAD_NS) as i64
    }
    fn dir_path(&self, d: usize) -> PathBuf {
        self.root.join(dir_name(d))
    }
    fn file_path(&self, i: usize) -> PathBuf {
        self.dir_path(i / 4).join(CHARTS[i % 4])
    }
    fn total_bytes(&self) -> u64 {
        (0..self.n).map(|i| self.size(i)).sum()
    }
    /// chartd's eviction order: oldest mtime first, larger first on equal mtimes.
    fn eviction_order(&self) -> Vec<u32> {
        let mut v: Vec<u32> = (0..self.n as u32).collect();
        v.sort_by_key(|&i| {
            (
                self.mtime_ns(i as usize),
                std::cmp::Reverse(self.size(i as usize)),
            )
        });
        v
    }
    fn complete_marker(&self) -> PathBuf {
        self.dir.join("complete")
    }
    fn mark_dirty(&self) -> Res<()> {
        match fs::remove_file(self.complete_marker()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.complete_marker().display())),
        }
    }

    /// Opens (building or repairing as needed) the tree of `n` files under `dir`.
    fn ensure(dir: &Path, n: usize) -> Res<Tree> {
        fs::create_dir_all(dir).map_err(err("tree dir"))?;
        let base_file = dir.join("base");
        let base_ns = match fs::read_to_string(&base_file) {
            Ok(s) => s.trim().parse().map_err(err("tree base"))?,
            Err(_) => {
                let b = now_ns();
                fs::write(&base_file, format!("{b}\n")).map_err(err("tree base"))?;
                b
            }
        };
        let t = Tree {
            n,
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            base_ns,
        };
        if t.complete_marker().exists() {
            return Ok(t);
        }
        eprintln!(
            "building/repairing {n}-file tree at {} (once; cached)",
            t.root.display()
        );
        let started = Instant::now();
        fs::create_dir_all(&t.root).map_err(err("tree root"))?;
        // Anything the live phases added (zz_* directories) goes.
        for e in fs::read_dir(&t.root).map_err(err("tree root"))?.flatten() {
            if e.file_name().to_string_lossy().starts_with("zz_") {
                fs::remove_dir_all(e.path()).map_err(err("remove scratch dir"))?;
            }
        }
        let t = Arc::new(t);
        let workers = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(4);
        let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let t = t.clone();
                let created = created.clone();
                thread::spawn(move || -> Res<()> {
                    let dirs = t.dirs();
                    let mut d = w;
                    while d < dirs {
                        let dp = t.dir_path(d);
                        match fs::create_dir(&dp) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(format!("{}: {e}", dp.display())),
                        }
                        for (k, chart) in CHARTS.iter().enumerate() {
                            let i = d * 4 + k;
                            let p = dp.join(chart);
                            let (size, mt) = (t.size(i), t.mtime_ns(i));
                            if let Ok(m) = fs::symlink_metadata(&p) {
                                if m.is_file()
                                    && m.len() == size
                                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == mt
                                {
                                    continue;
                                }
                            }
                            make_file(&p, size, Some(mt))?;
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                        if w == 0 && d % (dirs / 10).max(1) < workers {
                            eprint!("  {}%", d * 100 / dirs);
                        }
                        d += workers;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| "tree builder panicked".to_string())??;
        }
        eprintln!(
            "\n  {} files (re)created in {:.1} s",
            created.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
        fs::write(t.complete_marker(), format!("{n}\n")).map_err(err("marker"))?;
        Arc::try_unwrap(t).map_err(|_| "tree still shared".to_string())
    }
}

/// Creates (truncating) a sparse file of `size` bytes, optionally with an mtime.
fn make_file(p: &Path, size: u64, mtime_ns: Option<i64>) -> Res<()> {
    let f = fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
    f.set_len(size)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    if let Some(mt) = mtime_ns {
        f.set_modified(UNIX_EPOCH + Duration::from_nanos(mt as u64))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

// ---------------------------------------------------------------------------------------------
// /proc

fn proc_status_kb(pid: i32, key: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of the whole process, in seconds (10 ms resolution).
fn proc_cpu_secs(pid: i32) -> f64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = s.rsplit_once(')').map(|x| x.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3; utime is field 14, stime 15 → indices 11 and 12 here.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux for every architecture this runs on.
    ticks as f64 / 100.0
}

#[derive(Debug, Clone, Default)]
struct TaskSample {
    comm: String,
    run_ns: u64,
    slices: u64,
    vol_switches: u64,
    invol_switches: u64,
}

/// Per-thread `schedstat` (on-CPU ns, timeslices) and context switches.
fn task_samples(pid: i32) -> HashMap<i32, TaskSample> {
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
fn task_delta(
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
fn inotify_slab_bytes() -> Option<u64> {
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

fn drop_caches() -> Res<()> {
    rustix::fs::sync();
    fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(err("drop_caches (needs root)"))
}

// ---------------------------------------------------------------------------------------------
// The daemon

struct Daemon {
    child: Child,
    pid: i32,
    run: PathBuf,
    socket: PathBuf,
    /// Spawn → READY=1.
    ready_after: Duration,
}

static RUN_SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct DaemonCfg<'a> {
    root: &'a Path,
    cleanup: bool,
    /// Extra lines under the root.
    root_lines: &'a str,
}

impl Daemon {
    fn start(base: &Path, c: &DaemonCfg, timeout: Duration) -> Res<Daemon> {
        let seq = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
        let run = base
            .join("run")
            .join(format!("{}-{seq}", std::process::id()));
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).map_err(err("run dir"))?;
        let socket = run.join("chartd.sock");
        let notify_path = run.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).map_err(err("notify socket"))?;
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(err("notify socket"))?;
        let mut cfg = format!(
            "socket: {}\nlog: {{ level: warn, format: text }}\ncleanup_enabled: {}\n\
             resync_interval: 24h\nroots:\n  - path: {}\n",
            socket.display(),
            c.cleanup,
            c.root.display()
        );
        for l in c.root_lines.lines().filter(|l| !l.trim().is_empty()) {
            cfg.push_str("    ");
            cfg.push_str(l.trim());
            cfg.push('\n');
        }
        let cfg_path = run.join("chartd.yaml");
        fs::write(&cfg_path, cfg).map_err(err("config"))?;
        let log = fs::File::create(run.join("chartd.log")).map_err(err("log"))?;
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg("--config").arg(&cfg_path);
        for v in [
            "CHART_OUTPUT_DIR",
            "CHART_MAX_AGE_HOURS",
            "CHART_MAX_SIZE_MB",
            "CHART_CLEANUP_INTERVAL_MINUTES",
            "CHART_ENABLE_CLEANUP",
            "ENVIRONMENT",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
            "RUST_LOG",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let t0 = Instant::now();
        let child = cmd.spawn().map_err(err("spawn chartd"))?;
        let pid = child.id() as i32;
        CHILDREN.lock().unwrap().push(pid);
        let mut d = Daemon {
            child,
            pid,
            run,
            socket,
            ready_after: Duration::ZERO,
        };
        let mut buf = [0u8; 4096];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]);
                    if msg.lines().any(|l| l == "READY=1") {
                        d.ready_after = t0.elapsed();
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("notify socket: {e}")),
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                return Err(format!(
                    "chartd exited ({st}) before READY=1; log:\n{}",
                    d.log_tail()
                ));
            }
            if t0.elapsed() > timeout {
                return Err(format!("chartd not ready after {timeout:?}"));
            }
        }
        Ok(d)
    }

    fn log_tail(&self) -> String {
        let s = fs::read_to_string(self.run.join("chartd.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn status(&self) -> Res<Value> {
        let v = request(&self.socket, r#"{"cmd":"status"}"#)?;
        Ok(v["roots"][0].clone())
    }

    fn rss_kb(&self) -> u64 {
        proc_status_kb(self.pid, "VmRSS")
    }

    fn stop(mut self) -> Res<()> {
        if let Some(p) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        CHILDREN.lock().unwrap().retain(|&p| p != self.pid);
        let _ = fs::remove_dir_all(&self.run);
        Ok(())
    }
}

fn request(socket: &Path, line: &str) -> Res<Value> {
    let mut s = UnixStream::connect(socket).map_err(err("connect"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(err("socket"))?;
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(err("write"))?;
    let mut out = String::new();
    BufReader::new(s).read_line(&mut out).map_err(err("read"))?;
    serde_json::from_str(&out).map_err(err("status json"))
}

/// One `status` round trip as `chartd status` does it: connect, send, read the whole line.
fn status_rtt(socket: &Path, buf: &mut Vec<u8>) -> Res<Duration> {
    let t = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(err("connect"))?;
    s.write_all(b"{\"cmd\":\"status\"}\n")
        .map_err(err("write"))?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).map_err(err("read"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.last() == Some(&b'\n') {
            break;
        }
    }
    let d = t.elapsed();
    if !buf.starts_with(b"{") {
        return Err("bad status answer".into());
    }
    Ok(d)
}

/// Waits until the daemon's status satisfies `f` (polling every 100 ms).
fn wait_status(d: &Daemon, timeout: Duration, mut f: impl FnMut(&Value) -> bool) -> Res<Value> {
    let t = Instant::now();
    loop {
        let s = d.status()?;
        if f(&s) {
            return Ok(s);
        }
        if t.elapsed() > timeout {
            return Err(format!("timed out waiting for chartd; last status: {s}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// The harness's own inotify watcher (a separate instance from chartd's), on a thread that
// blocks in read(2) and timestamps every event the moment read returns.

struct Evt {
    t: Instant,
    wd: i32,
    mask: u32,
    name: Vec<u8>,
}

struct Watcher {
    fd: Arc<OwnedFd>,
    rx: mpsc::Receiver<Evt>,
    stop: Arc<AtomicBool>,
    wake_dir: PathBuf,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    fn new(wake_dir: &Path) -> Res<Watcher> {
        use rustix::fs::inotify;
        fs::create_dir_all(wake_dir).map_err(err("wake dir"))?;
        let fd = Arc::new(inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?);
        inotify::add_watch(&*fd, wake_dir, inotify::WatchFlags::CREATE)
            .map_err(err("inotify_add_watch"))?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (fd2, stop2) = (fd.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 256 * 1024];
            let mut r = inotify::Reader::new(fd2.as_fd(), &mut buf);
            loop {
                let ev = match r.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                };
                let e = Evt {
                    t: Instant::now(),
                    wd: ev.wd(),
                    mask: ev.events().bits(),
                    name: ev
                        .file_name()
                        .map(|n| n.to_bytes().to_vec())
                        .unwrap_or_default(),
                };
                if tx.send(e).is_err() {
                    return;
                }
                if stop2.load(Ordering::Acquire) && r.is_buffer_empty() {
                    return;
                }
            }
        });
        Ok(Watcher {
            fd,
            rx,
            stop,
            wake_dir: wake_dir.to_path_buf(),
            thread: Some(thread),
        })
    }

    fn add(&self, path: &Path, flags: rustix::fs::inotify::WatchFlags) -> Res<i32> {
        rustix::fs::inotify::add_watch(&*self.fd, path, flags)
            .map_err(|e| format!("inotify_add_watch {}: {e}", path.display()))
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let p = self.wake_dir.join(format!("wake-{}", now_ns()));
        let _ = fs::File::create(&p);
        let _ = fs::remove_file(&p);
        if let Some(t) = self.thread.take() {
            // Drain so the thread is never blocked on the channel.
            while !t.is_finished() {
                self.drain();
                thread::sleep(Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}

const IN_DELETE: u32 = 0x200;
const IN_Q_OVERFLOW: u32 = 0x4000;

/// A minimal reactor, the reference for reaction latency: on IN_CLOSE_WRITE of `w<i>.png` in
/// `dir` it unlinks `v<i>.png` there. The floor any inotify-driven deleter pays on this machine
/// right now (two inotify wake-ups and an unlink).
fn start_reactor(dir: &Path) -> Res<(thread::JoinHandle<()>, PathBuf)> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    inotify::add_watch(&fd, dir, inotify::WatchFlags::CLOSE_WRITE)
        .map_err(err("inotify_add_watch"))?;
    let dir2 = dir.to_path_buf();
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(fd.as_fd(), &mut buf);
        loop {
            let Ok(ev) = r.next() else { return };
            let Some(name) = ev.file_name() else { continue };
            let name = name.to_string_lossy();
            if name == "stop" {
                return;
            }
            if let Some(i) = name.strip_prefix('w') {
                let _ = fs::remove_file(dir2.join(format!("v{i}")));
            }
        }
    });
    Ok((h, dir.join("stop")))
}

// ---------------------------------------------------------------------------------------------
// Phases

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

fn observe_cfg(root: &Path) -> DaemonCfg<'_> {
    DaemonCfg {
        root,
        cleanup: false,
        root_lines: "max_age: 0\nmax_size: 0",
    }
}

fn crawl_timeout(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64 / 1000)
}

/// Crawl, memory (and, with the last daemon still up, status and idle) for one tree.
fn phase_observe(o: &Opts, tree: &Tree, empty_root: &Path, out: &mut Value) -> Res<()> {
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
        let hwm = proc_status_kb(d.pid, "VmHWM");
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

/// What notify's own watch tables cost per indexed file, the part of chartd's memory that lives
/// inside notify: the harness watches the tree's directories with a bare `INotifyWatcher`, one
/// non-recursive watch each as chartd does, and reports its own RSS growth divided by N.
fn notify_share(tree: &Tree) -> Res<(f64, f64, f64)> {
    use notify::Watcher as _;
    let me = std::process::id() as i32;
    let before = proc_status_kb(me, "VmRSS");
    let t0 = Instant::now();
    let mut w = notify::INotifyWatcher::new(
        |_: notify::Result<notify::Event>| {},
        notify::Config::default(),
    )
    .map_err(err("notify"))?;
    let mode = notify::RecursiveMode::NonRecursive;
    w.watch(&tree.root, mode).map_err(err("notify watch"))?;
    for d in 0..tree.n / 4 {
        w.watch(&tree.dir_path(d), mode)
            .map_err(err("notify watch"))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = proc_status_kb(me, "VmRSS");
    drop(w);
    // The same watches with bare inotify_add_watch(2) calls, for scale.
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    let t1 = Instant::now();
    let flags = inotify::WatchFlags::CREATE
        | inotify::WatchFlags::DELETE
        | inotify::WatchFlags::CLOSE_WRITE;
    inotify::add_watch(&fd, &tree.root, flags).map_err(err("inotify_add_watch"))?;
    for d in 0..tree.n / 4 {
        inotify::add_watch(&fd, tree.dir_path(d), flags).map_err(err("inotify_add_watch"))?;
    }
    let raw = t1.elapsed().as_secs_f64();
    drop(fd);
    Ok((
        after.saturating_sub(before) as f64 * 1024.0 / tree.n as f64,
        secs,
        raw,
    ))
}

/// `status` round trips, alternating between the N-file daemon and the empty-root one.
fn phase_status(o: &Opts, d: &Daemon, empty: &Daemon, out: &mut Value) -> Res<()> {
    let mut a = Vec::with_capacity(o.status_n);
    let mut b = Vec::with_capacity(o.status_n);
    let mut buf = Vec::new();
    let mut bytes = 0;
    // Warm-up.
    for _ in 0..20 {
        status_rtt(&d.socket, &mut buf)?;
        status_rtt(&empty.socket, &mut buf)?;
    }
    for i in 0..o.status_n {
        if i % 2 == 0 {
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
            bytes = buf.len();
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
        } else {
            b.push(status_rtt(&empty.socket, &mut buf)?.as_secs_f64() * 1e3);
            a.push(status_rtt(&d.socket, &mut buf)?.as_secs_f64() * 1e3);
        }
    }
    eprintln!(
        "  [{}] status p50/p99 {:.3}/{:.3} ms (empty root {:.3}/{:.3} ms)",
        tree_n(d),
        pct(&a, 50.0),
        pct(&a, 99.0),
        pct(&b, 50.0),
        pct(&b, 99.0)
    );
    out["status"] = json!({
        "ms": stats(&a),
        "empty_root_ms": stats(&b),
        "answer_bytes": bytes,
    });
    Ok(())
}

fn tree_n(d: &Daemon) -> u64 {
    d.status()
        .ok()
        .and_then(|s| s["total_files"].as_u64())
        .unwrap_or(0)
}

/// Idle: CPU and wake-ups of both daemons over the same window with nothing happening.
fn phase_idle(o: &Opts, d: &Daemon, empty: &Daemon, out: &mut Value) -> Res<()> {
    thread::sleep(Duration::from_secs(2));
    let (a0, b0) = (task_samples(d.pid), task_samples(empty.pid));
    let (ac0, bc0) = (proc_cpu_secs(d.pid), proc_cpu_secs(empty.pid));
    let t = Instant::now();
    thread::sleep(Duration::from_secs(o.idle_secs));
    let secs = t.elapsed().as_secs_f64();
    let (a1, b1) = (task_samples(d.pid), task_samples(empty.pid));
    let (ac1, bc1) = (proc_cpu_secs(d.pid), proc_cpu_secs(empty.pid));
    let (ar, aw, asl, aper) = task_delta(&a0, &a1);
    let (br, bw, bsl, bper) = task_delta(&b0, &b1);
    let cpu_pct = |ns: u64| ns as f64 / 1e9 / secs * 100.0;
    eprintln!(
        "  idle {secs:.0} s: CPU {:.4} % ({} µs), {aw} wakeups; empty root: CPU {:.4} %, {bw} wakeups",
        cpu_pct(ar),
        ar / 1000,
        cpu_pct(br)
    );
    out["idle"] = json!({
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
    });
    Ok(())
}

/// The live tree: chartd with cleanup on, the root exactly at `max_size`, `low_watermark:
/// 100%` (so every crossing evicts just enough), no age limit. Reaction latency, then the
/// overshoot burst. The tree is repaired afterwards (victims recreated, new files removed).
#[derive(Clone, Copy, PartialEq)]
enum Live {
    Reaction,
    Overshoot,
}

/// A live tree: chartd with cleanup on, the root exactly at `max_size`, `low_watermark: 100%`
/// (so every crossing evicts just enough), no age limit. Reaction latency runs on the cached
/// tree on disk (repaired afterwards: victims recreated, new files removed); the overshoot
/// burst on a tree built in the harness's tmpfs (removed afterwards), because this disk cannot
/// create 10k files/s.
fn phase_live(o: &Opts, n: usize, what: Live, base: &Path, out: &mut Value) -> Res<()> {
    let dir = base.join("live").join(n.to_string());
    let tree = Tree::ensure(&dir, n)?;
    tree.mark_dirty()?;
    let r = live_inner(o, &tree, what, out);
    if what == Live::Reaction {
        // Repair whatever happened, even after an error.
        Tree::ensure(&tree.dir, n)?;
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    r
}

fn live_inner(o: &Opts, tree: &Tree, what: Live, out: &mut Value) -> Res<()> {
    let n = tree.n;
    let total = tree.total_bytes();
    let order = tree.eviction_order();
    let new_dir = tree.root.join("zz_bench_new");
    let burst_dir = tree.root.join("zz_bench_burst");
    fs::create_dir_all(&new_dir).map_err(err("new dir"))?;
    const BURST_DIRS: usize = 100;
    if what == Live::Overshoot {
        for k in 0..BURST_DIRS {
            fs::create_dir_all(burst_dir.join(format!("d{k:03}"))).map_err(err("burst dir"))?;
        }
    }
    let lines = format!(
        "max_age: 0\nmax_size: {total}\nlow_watermark: 100%\ngrace: 60s\nprune_empty_dirs: false"
    );
    let d = Daemon::start(
        &o.base,
        &DaemonCfg {
            root: &tree.root,
            cleanup: true,
            root_lines: &lines,
        },
        crawl_timeout(n),
    )?;
    let r = (|| -> Res<()> {
        let st = d.status()?;
        if st["total_bytes"].as_u64() != Some(total) || st["files_removed"].as_u64() != Some(0) {
            return Err(format!(
                "live tree not at its limit: status {st}, expected {total} bytes"
            ));
        }
        thread::sleep(Duration::from_millis(500));
        let scratch = o
            .base
            .join("scratch")
            .join(format!("{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        let mut next_victim = 0usize;
        match what {
            Live::Reaction => reaction(
                o,
                tree,
                &d,
                &order,
                &mut next_victim,
                &new_dir,
                &scratch,
                out,
            )?,
            Live::Overshoot => overshoot(o, tree, &d, &order, &mut next_victim, &burst_dir, out)?,
        }
        let _ = fs::remove_dir_all(&scratch);
        Ok(())
    })();
    d.stop()?;
    r
}

/// A private tmpfs for the figures that need more file creations per second than the disk
/// gives (overshoot at 10k files/s, throughput ≥ 50k files/s); unmounted on drop and on signals.
struct Tmpfs {
    path: PathBuf,
}

static MOUNTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl Tmpfs {
    fn mount(path: &Path) -> Res<Tmpfs> {
        fs::create_dir_all(path).map_err(err("tmpfs dir"))?;
        let _ = Command::new("umount")
            .arg(path)
            .stderr(Stdio::null())
            .status();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=8g,nr_inodes=4m,mode=0755",
                "chartd-bench",
            ])
            .arg(path)
            .status()
            .map_err(err("mount"))?;
        if !st.success() {
            return Err(format!(
                "mount tmpfs on {} failed (needs root)",
                path.display()
            ));
        }
        MOUNTS.lock().unwrap().push(path.to_path_buf());
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

fn unmount_all() {
    if let Ok(mut m) = MOUNTS.lock() {
        for p in m.drain(..) {
            let _ = Command::new("umount").arg(&p).status();
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(mut m) = MOUNTS.lock() {
            m.retain(|p| p != &self.path);
        }
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[allow(clippy::too_many_arguments)]
fn reaction(
    o: &Opts,
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    next_victim: &mut usize,
    new_dir: &Path,
    scratch: &Path,
    out: &mut Value,
) -> Res<()> {
    use rustix::fs::inotify::WatchFlags;
    let samples = o.reaction_n.min(tree.n / 4);
    let refdir = scratch.join("ref");
    fs::create_dir_all(&refdir).map_err(err("ref dir"))?;
    for j in 0..samples {
        make_file(&refdir.join(format!("v{j}.png")), 1, None)?;
    }
    let (reactor, reactor_stop) = start_reactor(&refdir)?;
    let w = Watcher::new(&scratch.join("wake-r"))?;
    let ref_wd = w.add(&refdir, WatchFlags::DELETE)?;
    let mut close_ms = Vec::new();
    let mut create_ms = Vec::new();
    let mut ref_ms = Vec::new();
    let mut early = 0;
    let mut missed = 0;
    let wait_delete = |wd: i32, name: &[u8]| -> Option<Instant> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.rx.recv_timeout(left) {
                Ok(e) if e.wd == wd && e.mask & IN_DELETE != 0 && e.name == name => {
                    return Some(e.t)
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    for j in 0..samples {
        // chartd
        let v = order[*next_victim] as usize;
        *next_victim += 1;
        let wd = w.add(&tree.dir_path(v / 4), WatchFlags::DELETE)?;
        w.drain();
        let size = tree.size(v);
        let t_create = Instant::now();
        let f = fs::File::create(new_dir.join(format!("n{j:06}.png"))).map_err(err("write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        let t_close = Instant::now();
        drop(f);
        match wait_delete(wd, CHARTS[v % 4].as_bytes()) {
            Some(t) => {
                if t < t_close {
                    early += 1;
                }
                let signed = if t >= t_close {
                    (t - t_close).as_secs_f64()
                } else {
                    -(t_close - t).as_secs_f64()
                };
                close_ms.push(signed.max(0.0) * 1e3);
                create_ms.push((t - t_create).as_secs_f64() * 1e3);
            }
            None => {
                missed += 1;
                if missed > 5 {
                    return Err(format!(
                        "victim {} not deleted within 5 s (more than 5 misses); chartd log:\n{}",
                        tree.file_path(v).display(),
                        d.log_tail()
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(3));
        // reference reactor
        w.drain();
        let f = fs::File::create(refdir.join(format!("w{j}.png"))).map_err(err("write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        let t_close = Instant::now();
        drop(f);
        if let Some(t) = wait_delete(ref_wd, format!("v{j}.png").as_bytes()) {
            ref_ms.push((t - t_close).as_secs_f64() * 1e3);
        }
        thread::sleep(Duration::from_millis(3));
    }
    let _ = fs::File::create(&reactor_stop);
    let _ = reactor.join();
    drop(w);
    let st = d.status()?;
    eprintln!(
        "  [{}] reaction close→gone p50/p99 {:.3}/{:.3} ms (reference reactor {:.3}/{:.3} ms); {early} evicted before close, {missed} missed",
        tree.n,
        pct(&close_ms, 50.0),
        pct(&close_ms, 99.0),
        pct(&ref_ms, 50.0),
        pct(&ref_ms, 99.0)
    );
    out["reaction"] = json!({
        "indexed_files": tree.n,
        "close_to_gone_ms": stats(&close_ms),
        "create_to_gone_ms": stats(&create_ms),
        "reference_reactor_ms": stats(&ref_ms),
        "evicted_before_close": early,
        "missed": missed,
        "files_removed": st["files_removed"],
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn overshoot(
    o: &Opts,
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    next_victim: &mut usize,
    burst_dir: &Path,
    out: &mut Value,
) -> Res<()> {
    use rustix::fs::inotify;
    let rate = 10_000.0;
    let count = (tree.n / 2).min(if o.quick { 10_000 } else { 30_000 });
    // The bytes the burst adds; the victims that pay for it come from the front of `order`.
    let sizes: Vec<u64> = (0..count)
        .map(|j| rand_size(0xB0B0_0000 ^ j as u64))
        .collect();
    let burst_bytes: u64 = sizes.iter().sum();

    // The reference first: the same burst against a minimal reactor (see `overshoot_reference`).
    let reference = overshoot_reference(&tree.dir.join("overshoot-reference"), &sizes, rate)?;

    // The writer reads deletions itself, non-blocking, right before each write: the kernel
    // queues an IN_DELETE synchronously with the unlink, so what it finds there is exactly
    // what has been deleted so far, whatever the scheduler does to any thread.
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let mut wd_dir: HashMap<i32, usize> = HashMap::new();
    let (mut covered, mut k) = (0u64, *next_victim);
    while covered < burst_bytes * 2 && k < order.len() {
        let v = order[k] as usize;
        let wd = inotify::add_watch(&fd, tree.dir_path(v / 4), inotify::WatchFlags::DELETE)
            .map_err(err("inotify_add_watch"))?;
        wd_dir.insert(wd, v / 4);
        covered += tree.size(v);
        k += 1;
    }
    let s0 = d.status()?;
    let max = tree.total_bytes();
    let removed0 = s0["files_removed"].as_u64().unwrap_or(0);
    // Excess of the disk total over max_size, in bytes.
    let excess0 = s0["total_bytes"].as_u64().unwrap_or(0) as i64 - max as i64;
    let victim_size = |wd: i32, name: &[u8]| {
        let dir = *wd_dir.get(&wd)?;
        let kk = CHARTS.iter().position(|c| c.as_bytes() == name)?;
        Some(tree.size(dir * 4 + kk))
    };
    let b = burst(&fd, excess0, burst_dir, &sizes, rate, victim_size)?;
    // Let chartd catch up.
    let catch_up = Instant::now();
    // Caught up: the index holds every file written (N + burst − removed) and is within the limit.
    let expect_files = (tree.n + count) as u64;
    let settled = wait_status(d, Duration::from_secs(120), |s| {
        let removed = s["files_removed"].as_u64().unwrap_or(0) - removed0;
        s["total_bytes"].as_u64().is_some_and(|b| b <= max)
            && s["total_files"].as_u64() == Some(expect_files - removed)
    });
    let catch_up = catch_up.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(200));
    let mut after = drain_after(&fd, victim_size);
    after.deleted += b.deleted;
    let s1 = d.status()?;
    let removed = s1["files_removed"].as_u64().unwrap_or(0) - removed0;
    let overflows = s1["overflows"].as_u64().unwrap_or(0) - s0["overflows"].as_u64().unwrap_or(0);
    *next_victim += removed as usize;
    let avg = ((MIN_SIZE + MAX_SIZE) / 2) as f64;
    eprintln!(
        "  [{}] overshoot: {count} files at {:.0}/s: max excess {:.0} KiB (~{:.1} files; p99 {:.1}, p50 {:.1}); reference reactor max ~{:.1} files (p99 {:.1}); {} deletions seen / {removed} by chartd; {overflows} overflows; catch-up {catch_up:.2} s",
        tree.n,
        b.achieved,
        b.worst as f64 / 1024.0,
        b.worst as f64 / avg,
        b.p99 / avg,
        b.p50 / avg,
        reference.worst as f64 / avg,
        reference.p99 / avg,
        after.deleted,
    );
    out["overshoot"] = json!({
        "indexed_files": tree.n,
        "burst_files": count,
        "rate_target": rate,
        "rate_achieved": b.achieved,
        "max_excess_bytes": b.worst,
        "max_excess_files": b.worst as f64 / avg,
        "p99_excess_files": b.p99 / avg,
        "p50_excess_files": b.p50 / avg,
        "reference_max_excess_files": reference.worst as f64 / avg,
        "reference_p99_excess_files": reference.p99 / avg,
        "reference_p50_excess_files": reference.p50 / avg,
        "reference_rate_achieved": reference.achieved,
        "one_file_max_bytes": MAX_SIZE,
        "deletions_seen": after.deleted,
        "deletions_by_chartd": removed,
        "chartd_overflows": overflows,
        "all_deletions_accounted": after.deleted == removed && b.unknown + after.unknown == 0 && !(b.overflow || after.overflow),
        "unknown_deletions": b.unknown + after.unknown,
        "harness_watcher_overflowed": b.overflow || after.overflow,
        "catch_up_s": catch_up,
        "settled_under_limit": settled.is_ok(),
    });
    Ok(())
}

/// What a paced burst saw: the excess over the limit (bytes) at every write.
#[derive(Default)]
struct Burst {
    worst: i64,
    p50: f64,
    p99: f64,
    achieved: f64,
    deleted: u64,
    unknown: u64,
    overflow: bool,
}

/// Reads the deletions still queued after a burst (accounting only).
fn drain_after(fd: &OwnedFd, victim_size: impl Fn(i32, &[u8]) -> Option<u64>) -> Burst {
    let mut b = Burst::default();
    read_deletions(fd, &victim_size, &mut 0, &mut b);
    b
}

/// Drains, non-blocking, the IN_DELETEs queued on `fd`, subtracting each victim's size.
fn read_deletions(
    fd: &OwnedFd,
    victim_size: &impl Fn(i32, &[u8]) -> Option<u64>,
    excess: &mut i64,
    b: &mut Burst,
) {
    use rustix::fs::inotify;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut r = inotify::Reader::new(fd, &mut buf);
    loop {
        match r.next() {
            Ok(e) => {
                let m = e.events().bits();
                b.overflow |= m & IN_Q_OVERFLOW != 0;
                if m & IN_DELETE == 0 {
                    continue;
                }
                let name = e.file_name().map(|n| n.to_bytes()).unwrap_or_default();
                match victim_size(e.wd(), name) {
                    Some(size) => {
                        *excess -= size as i64;
                        b.deleted += 1;
                    }
                    None => b.unknown += 1,
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Creates `sizes.len()` files paced at `rate` (four per directory, over `dirs/dNNN/`), and,
/// right before each write, accounts the deletions queued on `fd` (IN_DELETE watches on the
/// victims' directories). Returns the excess over the limit seen at each write.
fn burst(
    fd: &OwnedFd,
    excess0: i64,
    dirs: &Path,
    sizes: &[u64],
    rate: f64,
    victim_size: impl Fn(i32, &[u8]) -> Option<u64>,
) -> Res<Burst> {
    let mut b = Burst {
        worst: excess0.max(0),
        ..Burst::default()
    };
    let mut excess = excess0;
    let mut samples = Vec::with_capacity(sizes.len());
    let start = Instant::now();
    for (j, &size) in sizes.iter().enumerate() {
        pace(start, j as u64, rate);
        read_deletions(fd, &victim_size, &mut excess, &mut b);
        let p = dirs
            .join(format!("d{:03}", (j / 4) % 100))
            .join(format!("b{j:06}.png"));
        let f = fs::File::create(&p).map_err(err("burst write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        drop(f);
        excess += size as i64;
        b.worst = b.worst.max(excess);
        samples.push(excess.max(0) as f64);
    }
    b.achieved = sizes.len() as f64 / start.elapsed().as_secs_f64();
    b.p50 = pct(&samples, 50.0);
    b.p99 = pct(&samples, 99.0);
    Ok(b)
}

/// The overshoot reference, in the same run: the same paced burst, against the smallest
/// possible inotify deleter (a harness thread that, on each IN_CLOSE_WRITE in the burst
/// directories, unlinks the next victim, a file of the same size). What it overshoots is what
/// this machine's scheduling and inotify delivery impose on any deleter: a floor, not a
/// target chartd can beat.
fn overshoot_reference(dir: &Path, sizes: &[u64], rate: f64) -> Res<Burst> {
    use rustix::fs::inotify;
    let _ = fs::remove_dir_all(dir);
    let victims = dir.join("victims");
    fs::create_dir_all(&victims).map_err(err("reference dir"))?;
    for (k, &size) in sizes.iter().enumerate() {
        let f = fs::File::create(victims.join(format!("v{k:06}"))).map_err(err("victim"))?;
        f.set_len(size).map_err(err("set_len"))?;
    }
    let burst_dirs = dir.join("burst");
    let reactor = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    for k in 0..100 {
        let d = burst_dirs.join(format!("d{k:03}"));
        fs::create_dir_all(&d).map_err(err("reference burst dir"))?;
        inotify::add_watch(&reactor, &d, inotify::WatchFlags::CLOSE_WRITE)
            .map_err(err("inotify_add_watch"))?;
    }
    let count = sizes.len();
    let victims2 = victims.clone();
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(reactor.as_fd(), &mut buf);
        let mut k = 0;
        while k < count {
            let Ok(ev) = r.next() else { return };
            if ev.file_name().is_some_and(|n| n.to_bytes() == b"stop") {
                return;
            }
            let _ = fs::remove_file(victims2.join(format!("v{k:06}")));
            k += 1;
        }
    });
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let wd = inotify::add_watch(&fd, &victims, inotify::WatchFlags::DELETE)
        .map_err(err("inotify_add_watch"))?;
    let victim_size = |w: i32, name: &[u8]| {
        let k: usize = std::str::from_utf8(name.strip_prefix(b"v")?)
            .ok()?
            .parse()
            .ok()?;
        (w == wd).then(|| sizes.get(k).copied()).flatten()
    };
    let b = burst(&fd, 0, &burst_dirs, sizes, rate, victim_size);
    let _ = fs::File::create(burst_dirs.join("d000").join("stop"));
    let _ = h.join();
    let _ = fs::remove_dir_all(dir);
    b
}

fn pace(start: Instant, k: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(k as f64 / rate);
    let now = Instant::now();
    if due > now {
        thread::sleep(due - now);
    }
}

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
        let f = fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.set_len(size).map_err(err("set_len"))?;
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
fn phase_throughput(o: &Opts, fast: &Path, out: &mut Value) -> Res<()> {
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

// ---------------------------------------------------------------------------------------------
// Report

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(MANIFEST_DIR)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let base = std::env::var("CHARTD_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let fstype = sh("findmnt", &["-no", "FSTYPE", "-T", &base]);
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "os": os,
        "cpus": thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "mem_total_kb": proc_status_kb_file("/proc/meminfo", "MemTotal"),
        "bench_fs": fstype,
        "max_user_watches_default": fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").ok().map(|s| s.trim().to_string()),
    })
}

fn proc_status_kb_file(path: &str, key: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// UTC date and time, from the Unix epoch (days-to-civil, H. Hinnant).
fn utc(ts: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (ts / 86400) as i64;
    let secs = ts % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

fn label(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn f(v: &Value, ptr: &str) -> Option<f64> {
    v.pointer(ptr).and_then(Value::as_f64)
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x < 1.0 => format!("{:.0} µs", x * 1000.0),
        Some(x) if x.is_finite() => format!("{x:.2} ms"),
        _ => "–".into(),
    }
}

fn fmt_s(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x < 1.0 => format!("{:.0} ms", x * 1000.0),
        Some(x) if x.is_finite() => format!("{x:.2} s"),
        _ => "–".into(),
    }
}

fn fmt_pair(a: String, b: String) -> String {
    format!("{a} / {b}")
}

fn fmt_bytes(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 1024.0 * 1024.0 => {
            format!("{:.1} MiB", x / 1024.0 / 1024.0)
        }
        Some(x) if x.is_finite() && x >= 1024.0 => format!("{:.0} KiB", x / 1024.0),
        Some(x) if x.is_finite() => format!("{x:.0} B"),
        _ => "–".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "–",
    }
}

/// The results table (Markdown), one column per size.
fn table(results: &Value, o: &Opts) -> String {
    let sizes: Vec<(String, &Value)> = results["sizes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (label(s["n"].as_u64().unwrap_or(0) as usize), s))
                .collect()
        })
        .unwrap_or_default();
    let largest = sizes.last().map(|x| x.1);
    let mut rows: Vec<(String, Vec<String>, String, String)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&Value) -> String, target: &str, ok: Option<bool>| {
        rows.push((
            name.to_string(),
            sizes.iter().map(|(_, s)| cell(s)).collect(),
            target.to_string(),
            verdict(ok).to_string(),
        ));
    };
    let lg = |p: &str| largest.and_then(|s| f(s, p));
    row(
        "crawl: chartd start → READY=1 (median / p99)",
        &|s| {
            fmt_pair(
                fmt_s(f(s, "/crawl/chartd_s/median")),
                fmt_s(f(s, "/crawl/chartd_s/p99")),
            )
        },
        "",
        None,
    );
    row(
        "crawl reference: `find -printf '%s %T@'`, warm (median / p99)",
        &|s| {
            fmt_pair(
                fmt_s(f(s, "/crawl/find_s/median")),
                fmt_s(f(s, "/crawl/find_s/p99")),
            )
        },
        "",
        None,
    );
    row(
        "crawl: of which fixed start-up (empty root → READY=1, median)",
        &|s| fmt_s(f(s, "/crawl/empty_root_startup_s/median")),
        "",
        None,
    );
    row(
        "crawl ratio chartd / find (median / p99)",
        &|s| match (f(s, "/crawl/ratio/median"), f(s, "/crawl/ratio/p99")) {
            (Some(a), Some(b)) => format!("{a:.2}× / {b:.2}×"),
            _ => "–".into(),
        },
        "≤ 1.0×",
        lg("/crawl/ratio/median").map(|r| r <= 1.0),
    );
    if o.cold {
        row(
            "crawl cold: chartd / find (median)",
            &|s| {
                format!(
                    "{} / {} ({:.2}×)",
                    fmt_s(f(s, "/crawl_cold/chartd_s/median")),
                    fmt_s(f(s, "/crawl_cold/find_s/median")),
                    f(s, "/crawl_cold/ratio/median").unwrap_or(f64::NAN)
                )
            },
            "",
            None,
        );
    }
    row(
        "memory: (RSS − RSS of empty root) / N (median / p99)",
        &|s| {
            fmt_pair(
                fmt_bytes(f(s, "/memory/rss_bytes_per_file/median")),
                fmt_bytes(f(s, "/memory/rss_bytes_per_file/p99")),
            )
        },
        "≤ 120 B/file at 1M",
        lg("/memory/rss_bytes_per_file/median").map(|b| b <= 120.0),
    );
    row(
        "memory: peak RSS (VmHWM − empty) / N; index_bytes / N",
        &|s| {
            fmt_pair(
                fmt_bytes(f(s, "/memory/hwm_bytes_per_file/median")),
                fmt_bytes(f(s, "/memory/index_bytes_per_file/median")),
            )
        },
        "",
        None,
    );
    row(
        "notify alone: a bare `INotifyWatcher` watching the same directories: memory / N; time to add the watches (bare `inotify_add_watch` calls)",
        &|s| {
            format!(
                "{}; {} ({})",
                fmt_bytes(f(s, "/memory/notify_bytes_per_file")),
                fmt_s(f(s, "/memory/notify_watch_s")),
                fmt_s(f(s, "/memory/raw_inotify_watch_s"))
            )
        },
        "",
        None,
    );
    row(
        "kernel: inotify watches; slab Δ (estimate 100 B/watch)",
        &|s| {
            format!(
                "{}; {} ({})",
                s["memory"]["watches"]
                    .as_u64()
                    .map_or("–".into(), |w| w.to_string()),
                fmt_bytes(f(s, "/memory/kernel_inotify_slab_bytes/median")),
                fmt_bytes(f(s, "/memory/kernel_estimate_100b_per_watch"))
            )
        },
        "",
        None,
    );
    row(
        "reaction: writer close() → victim gone (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/close_to_gone_ms/median")),
                fmt_ms(f(s, "/reaction/close_to_gone_ms/p99")),
            )
        },
        "p99 ≤ 5 ms at 1M",
        lg("/reaction/close_to_gone_ms/p99").map(|x| x <= 5.0),
    );
    row(
        "reaction reference: minimal inotify reactor (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/reference_reactor_ms/median")),
                fmt_ms(f(s, "/reaction/reference_reactor_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "overshoot: max excess over max_size, burst at 10k files/s",
        &|s| {
            match f(s, "/overshoot/max_excess_bytes") {
            Some(b) => format!(
                "{} (~{:.0} files; p99 {:.1}, p50 {:.1} files; {:.0}/s achieved; caught up {:.1} s after)",
                fmt_bytes(Some(b)),
                f(s, "/overshoot/max_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/p99_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/p50_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/rate_achieved").unwrap_or(0.0),
                f(s, "/overshoot/catch_up_s").unwrap_or(0.0)
            ),
            None => "–".into(),
        }
        },
        "≤ one file (800 KiB) + grace",
        lg("/overshoot/max_excess_bytes").map(|b| b <= MAX_SIZE as f64),
    );
    row(
        "overshoot reference: minimal inotify deleter, same burst (max / p99 / p50)",
        &|s| match f(s, "/overshoot/reference_max_excess_files") {
            Some(m) => format!(
                "~{:.0} / {:.1} / {:.1} files",
                m,
                f(s, "/overshoot/reference_p99_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/reference_p50_excess_files").unwrap_or(0.0),
            ),
            None => "–".into(),
        },
        "",
        None,
    );
    row(
        "status round trip (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/status/ms/median")),
                fmt_ms(f(s, "/status/ms/p99")),
            )
        },
        "p99 ≤ 1 ms at 1M",
        lg("/status/ms/p99").map(|x| x <= 1.0),
    );
    row(
        "status reference: empty-root daemon (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/status/empty_root_ms/median")),
                fmt_ms(f(s, "/status/empty_root_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "idle: CPU %, wakeups / window (observe-only)",
        &|s| match f(s, "/idle/cpu_percent") {
            Some(c) => format!(
                "{c:.4} %, {} / {:.0} s",
                s["idle"]["wakeups"].as_u64().unwrap_or(0),
                f(s, "/idle/window_s").unwrap_or(0.0)
            ),
            None => "–".into(),
        },
        "< 0.1 %, only watchdog + expiry timer",
        lg("/idle/cpu_percent").map(|c| c < 0.1),
    );
    row(
        "idle reference: empty-root daemon",
        &|s| match f(s, "/idle/empty_root/cpu_percent") {
            Some(c) => format!(
                "{c:.4} %, {}",
                s["idle"]["empty_root"]["wakeups"].as_u64().unwrap_or(0)
            ),
            None => "–".into(),
        },
        "",
        None,
    );
    let mut t = String::new();
    t.push_str("| figure |");
    for (l, _) in &sizes {
        t.push_str(&format!(" {l} |"));
    }
    t.push_str(" target | at largest N |\n|---|");
    for _ in &sizes {
        t.push_str("---|");
    }
    t.push_str("---|---|\n");
    for (name, cells, target, ok) in rows {
        t.push_str(&format!("| {name} |"));
        for c in cells {
            t.push_str(&format!(" {c} |"));
        }
        t.push_str(&format!(" {target} | {ok} |\n"));
    }
    for (l, s) in &sizes {
        for e in s["errors"].as_array().into_iter().flatten() {
            let msg = e["error"].as_str().unwrap_or("");
            let first = msg.lines().next().unwrap_or("");
            t.push_str(&format!(
                "\n**{l}: {} failed**: {}\n",
                e["phase"].as_str().unwrap_or(""),
                first.chars().take(300).collect::<String>()
            ));
        }
    }
    if let Some(tp) = results.get("throughput").filter(|v| !v.is_null()) {
        let best = tp["max_sustained_files_per_s"].as_f64();
        t.push_str(&format!(
            "\n**Event throughput** (observe-only, on tmpfs, four files per directory in turn over {} directories, {} s per step, kernel \
             `max_queued_events` {}): highest sustained rate with no overflow and an exact \
             index: **{}**{} (target ≥ 50k files/s: {}); chartd CPU {} µs/file. Reference: the \
             writer alone, measured right before each step.\n\n| rate | achieved | writer alone \
             | overflows | index exact | catch-up | CPU µs/file | result |\n\
             |---|---|---|---|---|---|---|---|\n",
            tp["directories"],
            tp["seconds_per_step"],
            tp["kernel_max_queued_events"],
            best.map_or("none".into(), |b| format!("{b:.0} files/s")),
            if tp["writer_limited"] == true {
                " (writer-limited: the machine could not create files faster, so chartd's limit \
                 is at least this)"
            } else {
                ""
            },
            verdict(Some(best.is_some_and(|b| b >= 50_000.0 * 0.95))),
            tp["cpu_us_per_file"].as_f64().map_or("–".into(), |c| format!("{c:.1}")),
        ));
        for s in tp["steps"].as_array().into_iter().flatten() {
            t.push_str(&format!(
                "| {} | {:.0} | {:.0} | {} | {} | {:.2} s | {:.1} | {} |\n",
                s["rate"],
                s["achieved"].as_f64().unwrap_or(0.0),
                s["writer_alone"].as_f64().unwrap_or(0.0),
                s["overflows"],
                s["index_exact"],
                s["catch_up_s"].as_f64().unwrap_or(0.0),
                s["cpu_us_per_file"].as_f64().unwrap_or(0.0),
                match (s["pass"] == true, s["writer_limited"] == true) {
                    (true, false) => "pass",
                    (true, true) => "pass (writer-limited)",
                    _ => "FAIL",
                }
            ));
        }
    }
    t
}

fn write_md(results: &Value, table: &str) -> Res<()> {
    let path = Path::new(MANIFEST_DIR).join("BENCHMARKS.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->");
    let block = format!(
        "{begin}\n_Generated by `cargo bench --bench chartd_bench{}` on {} (commit `{}`{}); \
         machine: {}, {} CPUs ({}), kernel {}, {:.0} GiB RAM; trees on {}. Each figure's reference \
         was measured in the same run. Medians and p99 over {}; with fewer than 100 samples p99 \
         is the maximum._\n\n{table}\n{end}",
        match results["args"].as_str().unwrap_or("") {
            "" => String::new(),
            args => format!(" -- {args}"),
        },
        results["date"].as_str().unwrap_or(""),
        results["commit"].as_str().unwrap_or(""),
        if results["dirty"] == true {
            ", with uncommitted changes"
        } else {
            ""
        },
        results["machine"]["os"].as_str().unwrap_or(""),
        results["machine"]["cpus"],
        results["machine"]["cpu_model"].as_str().unwrap_or(""),
        results["machine"]["kernel"].as_str().unwrap_or(""),
        results["machine"]["mem_total_kb"].as_f64().unwrap_or(0.0) / 1024.0 / 1024.0,
        results["machine"]["bench_fs"].as_str().unwrap_or(""),
        results["repetitions"].as_str().unwrap_or(""),
    );
    let new = match (text.find(begin), text.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &text[..a], &text[b + end.len()..])
        }
        _ => format!("{text}\n## Latest results\n\n{block}\n"),
    };
    fs::write(&path, new).map_err(err("BENCHMARKS.md"))
}

// ---------------------------------------------------------------------------------------------

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
    let tmpfs = if o.wants("overshoot") || o.wants("throughput") {
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
        sizes.push(out);
    }
    let mut results = json!({ "sizes": sizes });
    if o.wants("throughput") {
        eprintln!("== event throughput");
        let mut tp = json!({});
        if let Some(t) = &tmpfs {
            let r = phase_throughput(o, &t.path, &mut tp);
            note_err(&mut tp, "throughput", r);
        }
        results["throughput"] = tp["throughput"].take();
        if let Some(e) = tp.get("errors") {
            results["throughput_errors"] = e.clone();
        }
    }
    Ok(results)
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
    results["repetitions"] = json!(format!(
        "{} runs (N < 1M) / {} (N ≥ 1M) for crawl and memory, {} status round trips, {} reaction samples, {} s idle",
        o.reps_small, o.reps_large, o.status_n, o.reaction_n, o.idle_secs
    ));
    results["quick"] = json!(o.quick);
    let t = table(&results, &o);
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
