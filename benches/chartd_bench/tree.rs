//! Synthetic chart trees: N/4 SYMBOL_INTERVAL directories with four PNG names each, sparse
//! files of 300–800 KiB apparent size, mtimes spread over 48 h before the tree's base time.
//! Everything is a pure function of the file index, so the benchmark knows every file's size
//! and mtime (and chartd's eviction order) without reading the disk. Trees are built once and
//! cached; `ensure` repairs whatever a live phase changed.
//!
//! May touch: the tree directories it is given (`root/`, the `base` time and the `complete`
//! marker), nothing else.

use crate::common::sparse_file;
use crate::util::{err, now_ns, Res};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

const IVS: [&str; 6] = ["1m", "5m", "15m", "1h", "4h", "1d"];
pub const CHARTS: [&str; 4] = ["price.png", "volume.png", "rsi.png", "macd.png"];
pub const MIN_SIZE: u64 = 300 * 1024;
pub const MAX_SIZE: u64 = 800 * 1024;
const SPREAD_NS: u64 = 48 * 3600 * 1_000_000_000;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn rand_size(seed: u64) -> u64 {
    MIN_SIZE + mix(seed) % (MAX_SIZE - MIN_SIZE + 1)
}

pub fn dir_name(d: usize) -> String {
    format!("S{:05}_{}", d / IVS.len(), IVS[d % IVS.len()])
}

pub struct Tree {
    pub n: usize,
    /// Holds `root/`, the `base` time and the `complete` marker.
    pub dir: PathBuf,
    pub root: PathBuf,
    pub base_ns: i64,
}

impl Tree {
    pub fn dirs(&self) -> usize {
        self.n / 4
    }
    pub fn size(&self, i: usize) -> u64 {
        rand_size(i as u64 ^ 0x5157_0000_0000)
    }
    pub fn mtime_ns(&self, i: usize) -> i64 {
        self.base_ns - (mix(i as u64 ^ 0xA6E0_0000_0000_0000) % SPREAD_NS) as i64
    }
    pub fn dir_path(&self, d: usize) -> PathBuf {
        self.root.join(dir_name(d))
    }
    pub fn file_path(&self, i: usize) -> PathBuf {
        self.dir_path(i / 4).join(CHARTS[i % 4])
    }
    pub fn total_bytes(&self) -> u64 {
        (0..self.n).map(|i| self.size(i)).sum()
    }
    /// chartd's eviction order: oldest mtime first, larger first on equal mtimes.
    pub fn eviction_order(&self) -> Vec<u32> {
        let mut v: Vec<u32> = (0..self.n as u32).collect();
        v.sort_by_key(|&i| {
            (
                self.mtime_ns(i as usize),
                std::cmp::Reverse(self.size(i as usize)),
            )
        });
        v
    }
    pub fn complete_marker(&self) -> PathBuf {
        self.dir.join("complete")
    }
    pub fn mark_dirty(&self) -> Res<()> {
        match fs::remove_file(self.complete_marker()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.complete_marker().display())),
        }
    }

    /// Opens (building or repairing as needed) the tree of `n` files under `dir`.
    pub fn ensure(dir: &Path, n: usize) -> Res<Tree> {
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
        let created = Arc::new(AtomicUsize::new(0));
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

/// Creates (truncating) a sparse file of `size` bytes, optionally with an mtime (ns since the
/// epoch): the harness's `sparse_file`, with the tree's integer times.
pub fn make_file(p: &Path, size: u64, mtime_ns: Option<i64>) -> Res<()> {
    sparse_file(
        p,
        size,
        mtime_ns.map(|mt| UNIX_EPOCH + Duration::from_nanos(mt as u64)),
    )
}
