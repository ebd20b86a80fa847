//! The live tree both `reaction` and `overshoot` run on: chartd with cleanup on, the root
//! exactly at `max_size`, `low_watermark: 100%` (so every crossing evicts just enough), no age
//! limit.
//!
//! May touch: the live tree (`<base>/live/<n>`: files are written and evicted there; repaired
//! or removed afterwards), its scratch directory, and the daemon it starts.

use crate::daemon::{crawl_timeout, Daemon, DaemonCfg};
use crate::opts::Opts;
use crate::overshoot::overshoot;
use crate::reaction::reaction;
use crate::tree::Tree;
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

/// A live tree: chartd with cleanup on, the root exactly at `max_size`, `low_watermark: 100%`
/// (so every crossing evicts just enough), no age limit. Reaction latency runs on the cached
/// tree on disk (repaired afterwards: victims recreated, new files removed); the overshoot
/// burst on a tree built in the harness's tmpfs (removed afterwards), because this disk cannot
/// create 10k files/s.
pub fn phase_live(o: &Opts, n: usize, what: Live, base: &Path, out: &mut Value) -> Res<()> {
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

/// Starts the live daemon on `tree`, checks it is exactly at its limit, and runs `what`.
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
