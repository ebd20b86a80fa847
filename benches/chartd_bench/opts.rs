//! The benchmark's command line (`cargo bench --bench chartd_bench -- ...`): flags, their
//! defaults and the `--quick` variants, and the binaries measured (this build, a baseline).
//!
//! May touch: nothing (reads the arguments and `$CHARTD_BENCH_DIR`; runs `git rev-parse` in a
//! baseline binary's directory to name it).

use crate::util::Res;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Opts {
    pub sizes: Vec<usize>,
    pub quick: bool,
    pub cold: bool,
    pub only: Option<Vec<String>>,
    pub reps_small: usize,
    pub reps_large: usize,
    pub status_n: usize,
    pub idle_secs: u64,
    pub reaction_n: usize,
    pub tp_secs: u64,
    pub tp_rates: Vec<u64>,
    /// Throughput ladders to run: `observe` (no limit) and `evict` (under a size limit).
    pub tp_modes: Vec<String>,
    /// Blocks the reaction samples are split into when two variants alternate (a baseline
    /// binary, or the rules phase): one daemon per variant per block.
    pub reaction_blocks: usize,
    /// Bursts per variant in the overshoot phase.
    pub overshoot_reps: usize,
    /// Another chartd build measured side by side with this one (`--baseline-bin`).
    pub baseline: Option<Bin>,
    pub write_md: bool,
    pub prepare: bool,
    pub base: PathBuf,
}

/// A chartd binary and the name it is shown under.
#[derive(Debug, Clone)]
pub struct Bin {
    pub path: PathBuf,
    pub label: String,
}

impl Bin {
    /// The binary Cargo built for this bench.
    pub fn current() -> Bin {
        Bin {
            path: PathBuf::from(crate::common::BIN),
            label: "current".into(),
        }
    }
}

pub const USAGE: &str = "\
usage: cargo bench --bench chartd_bench -- [options]
  --sizes LIST      tree sizes, e.g. 10k,100k,1m (default: 10k,100k,1m)
  --quick           fewer repetitions and shorter windows (a smoke run; numbers are noisier)
  --cold            also measure find and the crawl with a cold page cache (drop_caches)
  --only LIST       subset of: crawl,status,idle,reaction,overshoot,throughput,rules,floor
                    (crawl includes memory; rules: crawl, memory and reaction with 20
                    retention rules against the same binary without rules)
  --baseline-bin P  also run every chartd measurement with the binary P (another build, e.g.
                    of an older commit), interleaved with this one; shown side by side
  --baseline-label L  its name in the tables (default: the short commit of P's git work tree,
                    else `baseline`)
  --reps N          repetitions of crawl/memory for sizes < 1M (default 5; quick 2)
  --reps-large N    repetitions for 1M and above (default 3; quick 1)
  --status-n N      status round trips per daemon (default 2000; quick 300)
  --idle-secs S     idle window (default 60; quick 10)
  --reaction-n N    reaction samples per variant (default 300; quick 60)
  --reaction-blocks N  with two variants (baseline, rules), one daemon per variant per block,
                    alternating (default 6; quick 2)
  --overshoot-reps N   bursts per variant (default 1; with a baseline the order alternates)
  --tp-secs S       seconds per throughput step (default 30; quick 5)
  --tp-rates LIST   throughput ladder in files/s (default 5k,10k,25k,50k,75k,100k)
  --tp-modes LIST   throughput ladders: observe (no limit), evict (a size limit: every file
                    written costs one deletion) (default observe,evict)
  --no-md           do not rewrite the results section of BENCHMARKS.md
  --prepare         only build (or repair) the cached trees of --sizes, then exit
env: CHARTD_BENCH_DIR (default /var/tmp/chartd-bench) holds the cached trees and scratch files.";

pub fn parse_count(s: &str) -> Res<usize> {
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

pub fn parse_opts() -> Res<Opts> {
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
        reaction_n: if quick { 60 } else { 600 },
        tp_secs: if quick { 5 } else { 30 },
        tp_rates: vec![5_000, 10_000, 25_000, 50_000, 75_000, 100_000],
        tp_modes: vec!["observe".into(), "evict".into()],
        reaction_blocks: if quick { 2 } else { 12 },
        overshoot_reps: 1,
        baseline: None,
        write_md: true,
        prepare: false,
        base: std::env::var_os("CHARTD_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/chartd-bench")),
    };
    let mut baseline_label = None;
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
            "--reaction-blocks" => o.reaction_blocks = parse_count(&val()?)?.max(1),
            "--overshoot-reps" => o.overshoot_reps = parse_count(&val()?)?.max(1),
            "--baseline-bin" => {
                let p = PathBuf::from(val()?);
                if !p.is_file() {
                    return Err(format!("--baseline-bin {}: no such file", p.display()));
                }
                o.baseline = Some(Bin {
                    path: p,
                    label: String::new(),
                });
            }
            "--baseline-label" => baseline_label = Some(val()?),
            "--tp-modes" => {
                o.tp_modes = val()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(m) = o.tp_modes.iter().find(|m| *m != "observe" && *m != "evict") {
                    return Err(format!("--tp-modes: unknown mode {m}"));
                }
            }
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
    if let Some(b) = o.baseline.as_mut() {
        b.label = baseline_label.unwrap_or_else(|| commit_of(&b.path));
    } else if baseline_label.is_some() {
        return Err("--baseline-label needs --baseline-bin".into());
    }
    Ok(o)
}

/// The short commit of the git work tree a binary was built in (`…/target/release/chartd`),
/// else "baseline".
fn commit_of(bin: &std::path::Path) -> String {
    let dir = bin.parent().unwrap_or(bin);
    std::process::Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "baseline".into())
}

impl Opts {
    pub fn wants(&self, what: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == what))
    }
    /// The binaries every chartd measurement runs: this build, then the baseline if any.
    pub fn bins(&self) -> Vec<Bin> {
        std::iter::once(Bin::current())
            .chain(self.baseline.clone())
            .collect()
    }
    pub fn reps(&self, n: usize) -> usize {
        if n >= 1_000_000 {
            self.reps_large
        } else {
            self.reps_small
        }
    }
}
