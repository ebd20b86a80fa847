//! One governed root: its policy, its open directory, its index, and its counters.
//!
//! The owner task holds a `RootState` per configured root and is the only code that touches
//! it: the crawl and event handling (`src/scan/`) keep the index equal to the disk,
//! the enforcement (`src/evict/`) deletes from it, and [`RootState::stats`] summarises it for
//! the snapshot that `status` reads.
//!
//! May touch: its own fields and index; the disk through `fsops` (open and check the root, free
//! space), plus creating a missing root and taking its `rootlock`; eviction and the scanner only
//! through `enforce`.

use crate::config::{MinFree, RootConfig};
use crate::fsops::{self, RootDir};
use crate::index::{FileId, HoldReason, Index};
use crate::policy::Policy;
use crate::rules::Rules;
use crate::stats::{Histogram, Holding, Reason, RootStats};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A file being written (or found recently modified) is held until it has been quiet this
/// long at least (or `grace`, when longer): a lost close event delays its eviction by that
/// much, never for good.
pub const MIN_WRITER_QUIET: Duration = Duration::from_secs(2);

/// Shared with the supervisor: lets it see that a long crawl is progressing (for the
/// watchdog) and ask it to stop.
#[derive(Debug, Default)]
pub struct Progress {
    pub ticks: AtomicU64,
    pub cancel: AtomicBool,
    /// The owner is waiting for work (not stuck in a filesystem call).
    pub idle: AtomicBool,
}

impl Progress {
    pub fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

pub struct RootState {
    pub(crate) cfg: RootConfig,
    pub(crate) policy: Policy,
    pub(crate) cleanup_enabled: bool,
    /// The root's real path (symlinks in the configured path resolved once, at start); event
    /// paths are relative to this.
    pub(crate) real_path: PathBuf,
    /// `real_path` has been resolved. From then on the root is reopened at `real_path` without
    /// following any symlink: resolving again would follow a root swapped for a symlink to
    /// wherever it points, and evict there.
    resolved: bool,
    /// `None` while the root is missing or unusable.
    pub(crate) dir: Option<RootDir>,
    /// The scanner's watch bookkeeping beyond the index's per-directory flag.
    pub(crate) watch: crate::scan::WatchState,
    /// Everything known of the files and directories under the root, including per-file
    /// hold and writer state (which dies with the index when the root is replaced).
    pub(crate) index: Index,
    pub(crate) progress: Arc<Progress>,
    pub(crate) degraded: Option<String>,
    pub(crate) counters: Counters,
    /// The filesystem's free and total space and inodes, as last measured (`update_space`);
    /// deletions add what they free to `space.free_bytes` until the next measure.
    pub(crate) space: fsops::Space,
    /// When the owner must next act on this root without an event.
    pub(crate) wake: Wakeups,
    /// Per-kind time of the last rate-limited warning.
    pub(crate) last_warn: HashMap<&'static str, Instant>,
    /// Backoff for files whose deletion failed.
    pub(crate) error_backoff: Duration,
    pub(crate) ready: bool,
    /// Pressure and blocking of the size, count, free-space and inode limits (indexed by
    /// `evict::Limit`).
    pub(crate) limits: [crate::evict::LimitState; 4],
    /// The compiled per-group rules; every index of this root is built with them.
    pub(crate) rules: Arc<Rules>,
    pub(crate) pressure_evicted_age: Option<Duration>,
    /// Write and eviction rates, retention, premature evictions (fixed memory).
    pub(crate) capacity: Box<crate::capacity::CapacityTracker>,
    /// Take the one-daemon-per-tree lock when the root is opened (the daemon does; a one-shot
    /// `clean --once` does not).
    pub(crate) take_lock: bool,
    /// Paths the last eviction pass found different from the index (see `enforce`).
    pub(crate) stale: Vec<crate::evict::Stale>,
    /// Leftover private names a walk found (removed after it, see `fsops/delete.rs`).
    pub(crate) leftovers: Vec<(crate::index::DirId, std::ffi::OsString, u64)>,
    /// Files inside grace, as last counted (a scan: only while a limit is blocked, and at most
    /// once a second; see [`RootState::grace_recount_due`]).
    grace_count: Option<GraceCount>,
}

/// When the owner must next act on a root without an event: the times its timer sleeps until.
#[derive(Debug, Clone, Copy)]
pub struct Wakeups {
    /// Next full safety-net resync.
    pub resync: Instant,
    /// Next resync of unwatched directories (while degraded).
    pub degraded_check: Option<Instant>,
    /// When to look at a missing root again, and the current backoff.
    pub retry_root: Option<(Instant, Duration)>,
    /// Wall-clock ns when the next file expires or leaves a blocking grace period.
    pub due_ns: Option<i64>,
    /// The last enforcement pass ran out of budget: run another one at once. Holds the trigger
    /// of the unfinished work, so that the deletions of the next passes count their latency
    /// from it rather than from the wake-up that resumes them.
    pub more: Option<Instant>,
}

/// A count of the files inside grace, and what it was taken from.
#[derive(Debug, Clone, Copy)]
struct GraceCount {
    at: Instant,
    files: u64,
    bytes: u64,
    /// The index it counted (`Index::epoch`, `Index::changes`): if either differs now, files
    /// were added, removed or rewritten since and the count may be off.
    index: (u64, u64),
    /// Wall-clock ns at which the oldest counted file leaves grace (the count drops then with
    /// no change to the index at all).
    ages_out_ns: Option<i64>,
}

/// The grace count is scanned at most this often (it is O(files)).
const GRACE_RECOUNT: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub files_removed: u64,
    pub bytes_freed: u64,
    pub by_reason: [u64; Reason::COUNT],
    pub errors: u64,
    pub overflows: u64,
    pub resyncs: u64,
    pub last_eviction: Option<SystemTime>,
    pub latency: Histogram,
}

pub fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

pub fn ns_to_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

impl RootState {
    /// A root for unit tests: cleanup on, an hour between resyncs, progress of its own.
    #[cfg(test)]
    pub(crate) fn for_tests(rc: RootConfig) -> RootState {
        RootState::new(
            rc,
            true,
            Duration::from_secs(3600),
            Arc::new(Progress::default()),
        )
        .expect("a test root's config is valid")
    }

    pub(crate) fn grace_ns(&self) -> i64 {
        self.cfg.grace.as_nanos().min(i64::MAX as u128) as i64
    }

    /// How long a file must have been quiet before it no longer counts as being written (the
    /// scanner holds recently modified files that long, eviction waits for it): the root's
    /// `grace`, at least [`MIN_WRITER_QUIET`].
    pub fn writer_quiet(&self) -> Duration {
        self.cfg.grace.max(MIN_WRITER_QUIET)
    }

    pub fn new(
        cfg: RootConfig,
        cleanup_enabled: bool,
        resync_interval: Duration,
        progress: Arc<Progress>,
    ) -> Result<RootState, String> {
        let policy = Policy::new(&cfg).map_err(|e| format!("root {}: {e}", cfg.path.display()))?;
        let rules =
            Arc::new(Rules::new(&cfg).map_err(|e| format!("root {}: {e}", cfg.path.display()))?);
        let real_path = cfg.path.clone();
        Ok(RootState {
            cfg,
            policy,
            cleanup_enabled,
            real_path,
            resolved: false,
            dir: None,
            watch: crate::scan::WatchState::default(),
            index: Index::with_rules(0, rules.clone()),
            progress,
            degraded: None,
            counters: Counters::default(),
            space: fsops::Space::default(),
            wake: Wakeups {
                resync: Instant::now() + resync_interval,
                degraded_check: None,
                retry_root: None,
                due_ns: None,
                more: None,
            },
            last_warn: HashMap::new(),
            error_backoff: Duration::from_secs(1),
            ready: false,
            limits: Default::default(),
            rules,
            pressure_evicted_age: None,
            leftovers: Vec::new(),
            stale: Vec::new(),
            take_lock: false,
            capacity: Box::new(crate::capacity::CapacityTracker::new(SystemTime::now())),
            grace_count: None,
        })
    }

    /// Opens the root (creating it first when configured). On failure the root is marked
    /// degraded and retried with a backoff; the daemon keeps running.
    pub fn open_root(&mut self) -> bool {
        if self.cfg.create && !self.cfg.path.exists() {
            if let Err(e) = std::fs::create_dir_all(&self.cfg.path) {
                tracing::warn!(root = %self.cfg.path.display(), "cannot create root: {e}");
            }
        }
        let resolved = if self.resolved {
            Ok(self.real_path.clone())
        } else {
            std::fs::canonicalize(&self.cfg.path)
        };
        let real = match resolved {
            Ok(p) => p,
            Err(e) => {
                return self.root_unusable(format!(
                    "root {} is missing ({e}); chartd watches it again shortly",
                    self.cfg.path.display()
                ))
            }
        };
        match RootDir::open_nofollow(&real) {
            Ok(d) => {
                if self.take_lock {
                    // A root that appeared (or was replaced) since start is locked now; one
                    // another daemon governs is left alone, and said so.
                    if let Err(e) = crate::rootlock::lock_root(&real) {
                        return self.root_unusable(e);
                    }
                }
                if self
                    .dir
                    .as_ref()
                    .is_some_and(|old| old.meta.ino != d.meta.ino || old.meta.dev != d.meta.dev)
                {
                    tracing::warn!(root = %self.cfg.path.display(), "root was replaced; re-indexing");
                    self.new_index(d.meta.ino);
                } else if self.dir.is_none() {
                    self.new_index(d.meta.ino);
                }
                self.real_path = real;
                self.resolved = true;
                self.dir = Some(d);
                self.wake.retry_root = None;
                if self
                    .degraded
                    .as_deref()
                    .is_some_and(|r| r.starts_with("root "))
                {
                    self.degraded = None;
                }
                self.update_space();
                true
            }
            Err(e) => self.root_unusable(format!(
                "root {} cannot be opened: {e}",
                self.cfg.path.display()
            )),
        }
    }

    /// Whether the open root is still the directory at `real_path`: not removed (a removed
    /// directory has no links left; chartd's own fd on it delays `IN_DELETE_SELF` until that fd
    /// is closed, so no event says so), and not replaced (renamed away, mounted over, swapped
    /// for a symlink).
    pub fn root_unchanged(&self) -> bool {
        let Some(d) = &self.dir else { return false };
        if !fsops::stat_fd(&d.fd).is_ok_and(|m| m.nlink > 0) {
            return false;
        }
        fsops::stat_path(&self.real_path)
            .is_ok_and(|m| m.kind == fsops::Kind::Dir && m.ino == d.meta.ino && d.same_mount(&m))
    }

    /// A fresh, empty index for the root whose inode is `ino` (0: no root). What named the
    /// old index's directories goes with it: a leftover found by a walk of the old tree is
    /// found again by the walk of the new one, and an old `DirId` may name another directory.
    fn new_index(&mut self, ino: u64) {
        self.index = Index::with_rules(ino, self.rules.clone());
        self.leftovers.clear();
    }

    fn root_unusable(&mut self, why: String) -> bool {
        if self.dir.is_some() || self.degraded.as_deref() != Some(why.as_str()) {
            tracing::warn!("{why}");
        }
        self.dir = None;
        self.new_index(0);
        self.degraded = Some(why);
        let backoff = self
            .wake
            .retry_root
            .map(|(_, b)| (b * 2).min(Duration::from_secs(30)))
            .unwrap_or(Duration::from_millis(500));
        self.wake.retry_root = Some((Instant::now() + backoff, backoff));
        false
    }

    /// Enforces every limit of this root: eviction passes over the index, and between them the
    /// scanner looks at whatever a pass found changed on disk (a chart regenerated under its
    /// deletion, a directory gone). Bounded: a few rounds, then the next event or timer.
    pub fn enforce(&mut self, w: &mut crate::watcher::Watcher, pass: &mut crate::evict::Pass) {
        for _ in 0..4 {
            self.evict_pass(pass);
            if self.stale.is_empty() {
                return;
            }
            self.apply_stale(w);
        }
    }

    /// Re-reads the filesystem's free and total space.
    pub fn update_space(&mut self) {
        if let Some(d) = &self.dir {
            use std::os::fd::AsFd;
            if let Ok(sp) = fsops::fs_space(d.fd.as_fd()) {
                self.space = sp;
            }
        }
    }

    /// Whether the managed bytes are over `max_size` (and chartd may delete).
    pub fn over_max_size(&self) -> bool {
        self.cleanup_enabled
            && self
                .cfg
                .max_size
                .is_some_and(|m| m > 0 && self.index.total_bytes > m)
    }

    /// The free-space floor in bytes, if configured.
    pub fn min_free_bytes(&self) -> Option<u64> {
        match self.cfg.min_free? {
            MinFree::Bytes(b) => Some(b),
            MinFree::Percent(p) => Some((self.space.total_bytes as f64 * p / 100.0) as u64),
        }
    }

    /// The free-inode floor as a count, if configured.
    pub fn min_free_inodes(&self) -> Option<u64> {
        match self.cfg.min_free_inodes? {
            crate::config::InodeFloor::Count(n) => Some(n),
            crate::config::InodeFloor::Percent(p) => {
                Some((self.space.total_inodes as f64 * p / 100.0) as u64)
            }
        }
    }

    /// Applies a reloaded root config to the running root: the new rules re-key the indexed
    /// files in place (no re-crawl).
    pub fn apply_rules(&mut self, rules: Rules) {
        self.rules = Arc::new(rules);
        let policy = &self.policy;
        self.index
            .set_rules(self.rules.clone(), |comps| policy.protected(comps));
    }

    /// Logs a warning at most once a minute per `kind`.
    pub fn warn_limited(&mut self, kind: &'static str, msg: impl FnOnce() -> String) {
        let now = Instant::now();
        match self.last_warn.get(kind) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => {}
            _ => {
                self.last_warn.insert(kind, now);
                tracing::warn!(root = %self.cfg.path.display(), "{}", msg());
            }
        }
    }

    /// A stable hash of a path relative to the root (for the premature-eviction figures).
    pub fn path_hash(comps: &[&std::ffi::OsStr]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for c in comps {
            c.hash(&mut h);
        }
        h.finish()
    }

    pub fn abs_path(&self, comps: &[&std::ffi::OsStr]) -> PathBuf {
        let mut p = self.cfg.path.clone();
        p.extend(comps);
        p
    }

    /// Counts one deletion; `trigger` is when the owner received what the pass acts on (see
    /// `Pass::triggered_at`), the start of the eviction latency.
    pub fn record_removal(&mut self, reason: Reason, bytes: u64, trigger: Instant) {
        let c = &mut self.counters;
        c.files_removed = c.files_removed.saturating_add(1);
        c.bytes_freed = c.bytes_freed.saturating_add(bytes);
        c.by_reason[reason as usize] = c.by_reason[reason as usize].saturating_add(1);
        c.last_eviction = Some(SystemTime::now());
        c.latency.observe(trigger.elapsed());
    }

    /// Drops every watch of this root (it is no longer configured).
    pub fn unwatch_all(&mut self, w: &mut crate::watcher::Watcher) {
        for d in self.index.subtree(crate::index::ROOT) {
            if self.index.is_watched(d) {
                let mut abs = self.real_path.clone();
                abs.extend(self.index.dir_components(d));
                w.unwatch(&abs);
            }
        }
    }

    /// What holds back files a limit would delete: the held set by reason, protected files,
    /// and the blocked limit if any.
    fn holding(&mut self) -> Holding {
        let mut h = Holding {
            protected_files: self.index.protected_files,
            protected_bytes: self.index.protected_bytes,
            ..Holding::default()
        };
        let mut writing: Vec<FileId> = Vec::new();
        for (id, hold) in self.index.holds() {
            let size = self.index.file(id).size;
            let (f, b) = match hold.reason {
                HoldReason::Writing => {
                    writing.push(id);
                    (&mut h.writing_files, &mut h.writing_bytes)
                }
                HoldReason::Locked | HoldReason::Changed => {
                    (&mut h.locked_files, &mut h.locked_bytes)
                }
                HoldReason::Failing | HoldReason::Unreadable => {
                    (&mut h.failing_files, &mut h.failing_bytes)
                }
                // Shown as the files inside grace of a blocked limit.
                HoldReason::Grace => continue,
            };
            *f += 1;
            *b = b.saturating_add(size);
        }
        let mut blocked = self.limits.iter().find_map(|l| l.blocked.clone());
        match &mut blocked {
            Some(b) => {
                let c = self.grace_count();
                b.grace_files = c.files;
                b.grace_bytes = c.bytes;
            }
            // Nothing blocked: no count is kept, and none is due (no timer while idle).
            None => self.grace_count = None,
        }
        h.blocked = blocked;
        h
    }

    /// The files inside grace: the last count while it is still exact (the index unchanged and
    /// no counted file out of grace since), else a new count, but not more often than once a
    /// second (between two counts a snapshot may under-count; the owner then publishes again
    /// at [`RootState::grace_recount_due`]).
    fn grace_count(&mut self) -> GraceCount {
        let now = Instant::now();
        let wall = now_ns();
        let index = (self.index.epoch(), self.index.changes());
        if let Some(c) = self.grace_count {
            let exact = c.index == index && c.ages_out_ns.is_none_or(|t| wall < t);
            if exact || now.duration_since(c.at) < GRACE_RECOUNT {
                return c;
            }
        }
        let grace = self.grace_ns();
        let n = self.index.managed_newer_than(wall.saturating_sub(grace));
        let c = GraceCount {
            at: now,
            files: n.files,
            bytes: n.bytes,
            index,
            ages_out_ns: n.oldest_ns.map(|o| o.saturating_add(grace)),
        };
        self.grace_count = Some(c);
        c
    }

    /// When the published grace count may be wrong and must be taken again: the index changed
    /// since it was counted (files written inside the last second of a burst: no event follows
    /// the last batch to publish them), or a counted file leaves grace. `None` while no limit
    /// is blocked (no count is kept then), and while the count stays exact.
    pub fn grace_recount_due(&self) -> Option<Instant> {
        let c = self.grace_count?;
        if self.limits.iter().all(|l| l.blocked.is_none()) {
            return None;
        }
        let earliest = c.at + GRACE_RECOUNT;
        if c.index != (self.index.epoch(), self.index.changes()) {
            return Some(earliest);
        }
        let ages_out = c.ages_out_ns?;
        let wait = Duration::from_nanos(ages_out.saturating_sub(now_ns()).max(0) as u64);
        Some(earliest.max(Instant::now() + wait))
    }

    pub fn stats(&mut self) -> RootStats {
        let holding = self.holding();
        RootStats {
            path: self.cfg.path.clone(),
            total_files: self.index.total_files,
            total_bytes: self.index.total_bytes,
            oldest_mtime: self.index.oldest_mtime().map(ns_to_time),
            newest_mtime: self.index.newest_mtime().map(ns_to_time),
            average_mtime: self.index.mean_mtime_ns().map(ns_to_time),
            max_age: self.cfg.max_age,
            max_size: self.cfg.max_size,
            min_free_bytes: self.min_free_bytes(),
            fs_free_bytes: self.space.free_bytes,
            fs_total_bytes: self.space.total_bytes,
            max_files: self.cfg.max_files,
            min_free_inodes: self.min_free_inodes(),
            fs_free_inodes: self.space.free_inodes,
            fs_total_inodes: self.space.total_inodes,
            unmanaged_files: self.index.unmanaged,
            files_removed: self.counters.files_removed,
            bytes_freed: self.counters.bytes_freed,
            removed_by_reason: self.counters.by_reason,
            errors: self.counters.errors,
            last_eviction: self.counters.last_eviction,
            cleanup_enabled: self.cleanup_enabled,
            watches: self.index.watched_dirs,
            overflows: self.counters.overflows,
            resyncs: self.counters.resyncs,
            degraded: self.degraded.is_some(),
            degraded_reason: self.degraded.clone(),
            ready: self.ready,
            eviction_latency: self.counters.latency.clone(),
            index_bytes: self.index.heap_bytes() as u64,
            holding,
            pressure_evicted_age: self.pressure_evicted_age,
            kernel_watches: self.watch.kernel,
            watch_repairs: self.watch.repairs,
            capacity: self.capacity.figures(
                SystemTime::now(),
                &crate::capacity::Room::new(
                    self.index.total_bytes,
                    self.cfg.max_size.filter(|&m| m > 0),
                    self.space.free_bytes,
                    self.space.total_bytes,
                    self.min_free_bytes(),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leftover private name is recorded by its directory's id in the index a walk built; once
    /// that index is replaced (the root replaced or gone), the id may name another directory.
    #[test]
    fn a_new_index_forgets_the_leftovers_found_in_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let rc = crate::policy::tests::test_root(&dir.path().to_string_lossy());
        let mut root = RootState::for_tests(rc);
        assert!(root.open_root());
        root.leftovers
            .push((crate::index::ROOT, ".chartd-evict.1.0=c.png".into(), 7));
        root.root_unusable("the root is gone".into());
        assert!(root.leftovers.is_empty());
    }
}
