//! The randomized model test's engine (used by `tests/model.rs` and by item 8 of
//! `tests/trust_late.rs`).
//!
//! A seeded generator drives the real daemon under size pressure while it keeps a model of
//! every file it made: path -> (version: inode, token, mtime, size; kind). Anything that
//! vanished without the generator removing it was removed by chartd, and is judged against
//! what the file was at that moment:
//!
//! - never legitimate: outside the root (sibling dirs, symlink targets, directories renamed out
//!   of the root, a replaced root), unmanaged (`*.csv`, `*.json`, excluded `.*.tmp`), protected
//!   (`*_keep.png`), symlinks, files we hold a `flock` on, files we hold open for writing.
//!   A lock counts from the moment it is ours, for every name of its inode (hard links): all
//!   names are checked right after our `flock` returns, so one found gone then went before the
//!   lock and is judged as unlocked; and all are checked again right before we drop it;
//! - a managed file only once it is older than `grace`: removed while younger -> failure. The
//!   oracle knows when it last saw the file intact (`last_ok`) and when it found it gone; if
//!   `grace` passed in between, the deletion's log line (`deleted PATH (`) and its timestamp
//!   decide. Young files are checked on every step, so a fresh chart renamed over (or rewritten
//!   in place over) an expiring one and then deleted is caught with its age.
//!
//! After the run (quiescence): writers closed, locks dropped, `grace` waited out; then, polling
//! with a deadline, `status` (per root) and `groups` (per group) must equal a walk of the disk
//! (hard links once), the size limit must hold or `holding.blocked` must say why, no managed
//! unprotected file may be older than max_age (+1 s), and `stale` must not be true. Every
//! sacred file is checked by inode and content at the end.
//!
//! Modules: [`rng`] (the seed's random source, the workload profile, a seed's summary),
//! [`log_reader`] (chartd's deletion lines), [`model`] (what the generator knows of each file),
//! [`oracle`] (judging a file found gone), [`ops_files`] and [`ops_tree`] (the world's
//! operations), [`quiesce`] (the end state against a walk of the disk), [`run`] (one seed,
//! and the oracle's flock self-test). This file holds the world itself and the policy.
//!
//! May touch: the daemon's temp dirs (its workspace and root: files, links, symlinks,
//! directories, renames, `flock`s), the chartd processes it starts (signalled by PID), its
//! control socket and log, and `fs.inotify.max_queued_events` (root only, restored).

#![allow(dead_code)]

mod log_reader;
mod model;
mod ops_files;
mod ops_tree;
mod oracle;
mod quiesce;
mod rng;
mod run;

// What the test targets use (`tests/model.rs`, `tests/trust_late.rs`; `tests/trust.rs` uses
// none): each target leaves some of these unused.
#[allow(unused_imports)]
pub use ops_tree::sig;
#[allow(unused_imports)]
pub use rng::{Profile, Rng, Summary};
#[allow(unused_imports)]
pub use run::{oracle_flock_selftest, run};

use crate::common::*;
use log_reader::LogIndex;
use model::{Entry, Version, Writer};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";
pub const GRACE: Duration = Duration::from_secs(2);
/// chartd's writer timeout for this grace: `max(grace, evict::MIN_WRITER_QUIET)`.
const WRITER_QUIET: Duration = if GRACE.as_nanos() > chartd::evict::MIN_WRITER_QUIET.as_nanos() {
    GRACE
} else {
    chartd::evict::MIN_WRITER_QUIET
};

struct World {
    seed: u64,
    rng: Rng,
    prof: Profile,
    d: Daemon,
    ws: PathBuf,
    root: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    versions: Vec<Version>,
    locked: HashMap<usize, fs::File>,
    writers: Vec<Writer>,
    away: Vec<PathBuf>,
    log: LogIndex,
    counter: u64,
    max_size: u64,
    max_age: Duration,
    last_kill: i128,
    sum: Summary,
    failures: Vec<String>,
    /// The oracle's self-test plants violations on purpose: they are not printed as real ones.
    selftest: bool,
}

fn policy(max_size: u64, max_age: Duration) -> String {
    format!(
        "max_size: {max_size}\nmax_age: {}s\ngrace: {}s\nlow_watermark: 90%\ninclude: [\"*.png\"]\n\
         exclude: [\"*.tmp\", \".*\"]\nprotect: [\"*_keep.png\"]\nprune_empty_dirs: true\n\
         rules: [{{match: \"G0\", max_age: {}s}}, {{match: \"G1\", keep_newest: 2}}, \
         {{match: \"G2\", group_max_files: 8}}, {{match: \"G3\", max_age: 0}}]\n\
         ^resync_interval: 1h",
        max_age.as_secs(),
        GRACE.as_secs(),
        // G0 ages twice as fast (never below grace), G1 keeps its two newest, G2 has a quota,
        // G3 has no age limit: the rules reorder the queue under every operation above.
        (max_age.as_secs() / 2).max(GRACE.as_secs()),
    )
}

const SIZES: [u64; 3] = [256 * 1024, 384 * 1024, 512 * 1024];
const AGES: [u64; 3] = [4, 6, 10];
const GROUPS: usize = 6;

impl World {
    fn token(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("seed {} #{} {what}\n", self.seed, self.counter)
    }

    fn under_root(&self, p: &Path) -> bool {
        p.starts_with(&self.root)
    }
}

impl World {
    fn new(
        seed: u64,
        rng: Rng,
        prof: Profile,
        d: Daemon,
        max_size: u64,
        max_age: Duration,
    ) -> World {
        let ws = d.dir.path().to_path_buf();
        let root = d.root.clone();
        World {
            seed,
            rng,
            prof,
            d,
            ws,
            root,
            entries: BTreeMap::new(),
            versions: Vec::new(),
            locked: HashMap::new(),
            writers: Vec::new(),
            away: Vec::new(),
            log: LogIndex {
                offset: 0,
                by_path: HashMap::new(),
                beneath: HashMap::new(),
                count: 0,
            },
            counter: 0,
            max_size,
            max_age,
            last_kill: 0,
            sum: Summary {
                seed,
                ..Summary::default()
            },
            failures: Vec::new(),
            selftest: false,
        }
    }
}
