//! The live tree both `reaction` and `overshoot` (and the rules phase's reaction) run on:
//! chartd with cleanup on, the root exactly at `max_size`, `low_watermark: 100%` (so every
//! crossing evicts just enough), no age limit at the root. Each variant (this build, a
//! baseline build, rules) gets daemons of its own on the same tree, one after the other; after
//! each daemon the tree is put back as it was (victims recreated, added files removed), so that
//! every run starts from the same files.
//!
//! May touch: the live tree (`<base>/live/<n>`: files are written and evicted there; repaired
//! or removed afterwards), its scratch directory, and the daemons it starts.

use crate::compare::{bin_variants, Variant};
use crate::daemon::{crawl_timeout, Daemon, DaemonCfg};
use crate::opts::Opts;
use crate::overshoot::overshoot;
use crate::reaction::{reaction, reaction_json};
use crate::tree::{make_file, Tree};
use crate::util::{err, Res};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

/// Which measurement a live tree is set up for.
#[derive(Clone, Copy, PartialEq)]
pub enum Live {
    Reaction,
    Overshoot,
}

/// A variant on the live tree, with the order its daemon evicts the tree's files in.
pub struct LiveVariant {
    pub v: Variant,
    pub order: Vec<u32>,
}

/// The directories the live phases add files to, under the tree's root (`zz_*`: removed by a
/// repair).
pub const NEW_DIR: &str = "zz_bench_new";
pub const BURST_DIR: &str = "zz_bench_burst";
pub const BURST_DIRS: usize = 100;

/// Runs `f` on the live tree of `n` files under `base` (built or repaired first). Reaction
/// latency runs on the cached tree on disk (repaired afterwards); the overshoot burst on a tree
/// built in the harness's tmpfs (removed afterwards), because this disk cannot create 10k
/// files/s.
pub fn with_live_tree(
    n: usize,
    what: Live,
    base: &Path,
    f: impl FnOnce(&Tree) -> Res<()>,
) -> Res<()> {
    let dir = base.join("live").join(n.to_string());
    let tree = Tree::ensure(&dir, n)?;
    tree.mark_dirty()?;
    let r = (|| {
        added_dirs(&tree, what == Live::Overshoot)?;
        f(&tree)
    })();
    if what == Live::Reaction {
        // Repair whatever happened, even after an error.
        Tree::ensure(&tree.dir, n)?;
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    r
}

/// The directories the phases write into (`NEW_DIR`, and the burst directories for the
/// overshoot phase), empty. Made again after a repair, which removes what is not the tree's.
fn added_dirs(tree: &Tree, burst: bool) -> Res<()> {
    fs::create_dir_all(tree.root.join(NEW_DIR)).map_err(err("new dir"))?;
    for k in (0..BURST_DIRS).filter(|_| burst) {
        fs::create_dir_all(tree.root.join(BURST_DIR).join(format!("d{k:03}")))
            .map_err(err("burst dir"))?;
    }
    Ok(())
}

/// The reaction or overshoot phase for this build and the baseline binary, if any.
pub fn phase_live(o: &Opts, n: usize, what: Live, base: &Path, out: &mut Value) -> Res<()> {
    with_live_tree(n, what, base, |tree| {
        let order = tree.eviction_order();
        let variants: Vec<LiveVariant> = bin_variants(o)
            .into_iter()
            .map(|v| LiveVariant {
                v,
                order: order.clone(),
            })
            .collect();
        match what {
            Live::Reaction => {
                let runs = reaction(o, tree, &variants)?;
                reaction_json(tree, &variants, &runs, out);
                Ok(())
            }
            Live::Overshoot => overshoot(o, tree, &variants, out),
        }
    })
}

/// Starts variant `v`'s daemon on the live tree and checks that it is exactly at its limit. A
/// tree that is not (a run before evicted a file the harness did not predict) is repaired
/// once, by a full walk, and the daemon started again.
pub fn start_live(o: &Opts, tree: &Tree, v: &Variant) -> Res<Daemon> {
    let total = tree.total_bytes();
    let lines = format!(
        "max_age: 0\nmax_size: {total}\nlow_watermark: 100%\ngrace: 60s\nprune_empty_dirs: false\n{}",
        v.lines
    );
    let cfg = DaemonCfg {
        bin: &v.bin,
        root: &tree.root,
        cleanup: true,
        root_lines: &lines,
    };
    for attempt in 0..2 {
        let d = Daemon::start(&o.base, &cfg, crawl_timeout(tree.n))?;
        let st = d.status()?;
        if st["total_bytes"].as_u64() == Some(total) && st["files_removed"].as_u64() == Some(0) {
            thread::sleep(Duration::from_millis(500));
            return Ok(d);
        }
        d.stop()?;
        if attempt == 1 {
            return Err(format!(
                "{}: live tree not at its limit: status {st}, expected {total} bytes",
                v.label
            ));
        }
        eprintln!("  live tree not at its limit after a run: repairing it");
        let burst = tree.root.join(BURST_DIR).is_dir();
        tree.mark_dirty()?;
        Tree::ensure(&tree.dir, tree.n)?;
        // The repair removes what is not the tree's: the phase's own directories too (the
        // overshoot phase failed on a missing burst directory after a repair).
        added_dirs(tree, burst)?;
    }
    Err("unreachable".into())
}

/// Puts the tree back after a daemon ran on it (the daemon stopped): the `victims` (file
/// indices) recreated with their size and mtime, everything under the added directories
/// removed (the directories themselves kept, empty).
pub fn restore(tree: &Tree, victims: impl IntoIterator<Item = usize>) -> Res<()> {
    for v in victims {
        make_file(&tree.file_path(v), tree.size(v), Some(tree.mtime_ns(v)))?;
    }
    for sub in [NEW_DIR, BURST_DIR] {
        let d = tree.root.join(sub);
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                for f in fs::read_dir(&p).map_err(err("restore"))?.flatten() {
                    fs::remove_file(f.path()).map_err(err("restore"))?;
                }
            } else {
                fs::remove_file(&p).map_err(err("restore"))?;
            }
        }
    }
    Ok(())
}
