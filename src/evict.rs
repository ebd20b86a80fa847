//! Enforcing a root's limits, incrementally: called after every batch of events and when the
//! owner's timer fires, it deletes only what a limit requires right now and tells the owner
//! when to look again (the moment the oldest file expires, or leaves its grace period).
//!
//! - age: every file whose `mtime + max_age` has passed;
//! - size: once `total > max_size`, oldest first until `total <= low_watermark * max_size`;
//! - free space: below `min_free`, oldest first until `min_free * (2 - low_watermark)` is free.
//!
//! Never deleted: files inside `grace`, unmanaged or protected files (not in the queue at
//! all), files open for writing or `flock`ed (held out of the queue), anything that is no
//! longer the file the index recorded (re-indexed instead).

use crate::fsops::{self, DeleteOutcome, Expect};
use crate::index::{DirId, FileId, ROOT};
use crate::root::{now_ns, RootState};
use crate::stats::Reason;
use crate::watcher::Watcher;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// At most this many deletions per pass, so that events and commands are not starved; the
/// owner runs another pass at once when a pass stops early.
const PASS_BUDGET: usize = 20_000;
/// How long a `flock`ed file is left alone before it is tried again.
const LOCKED_RETRY: Duration = Duration::from_secs(30);

/// A file removed (or, in a dry run, that would be).
#[derive(Debug, Clone)]
pub struct Removal {
    pub path: PathBuf,
    pub bytes: u64,
    pub age: Duration,
    pub reason: Reason,
}

/// The result of one enforcement pass.
#[derive(Debug, Default)]
pub struct Pass {
    pub dry_run: bool,
    /// Record every removal (for `clean --once`, `cleanup`, `purge` answers).
    pub collect: bool,
    pub removals: Vec<Removal>,
    pub files: u64,
    pub bytes: u64,
    /// Wall-clock ns at which something becomes due (expiry, or end of a blocking grace).
    pub next_due_ns: Option<i64>,
    /// The budget ran out: run again soon.
    pub more: bool,
    /// Files skipped, with why (purge answers).
    pub skipped: u64,
    budget: usize,
    started: Option<Instant>,
    virtual_bytes: u64,
    virtual_free: u64,
    temp_held: Vec<FileId>,
}

impl Pass {
    pub fn new(dry_run: bool, collect: bool) -> Pass {
        Pass {
            dry_run,
            collect,
            budget: PASS_BUDGET,
            started: Some(Instant::now()),
            ..Pass::default()
        }
    }

    /// No per-pass deletion budget (explicit `cleanup` / `purge` / `clean --once`).
    pub fn unlimited(&mut self) {
        self.budget = usize::MAX;
    }

    /// Files a dry run took out of the queue, to be put back by the caller.
    pub fn take_temp_held(&mut self) -> Vec<FileId> {
        std::mem::take(&mut self.temp_held)
    }

    fn due(&mut self, at: i64) {
        self.next_due_ns = Some(self.next_due_ns.map_or(at, |n| n.min(at)));
    }
}

impl RootState {
    fn grace_ns(&self) -> i64 {
        self.cfg.grace.as_nanos().min(i64::MAX as u128) as i64
    }

    /// Enforces every limit of this root once.
    pub fn enforce(&mut self, w: &mut Watcher, pass: &mut Pass) {
        if self.dir.is_none() || !(self.cleanup_enabled || pass.dry_run) {
            return;
        }
        self.release_due_held(Instant::now());
        let now = now_ns();
        let grace = self.grace_ns();
        if let Some(max_age) = self.cfg.max_age.filter(|d| !d.is_zero()) {
            let max_age = (max_age.as_nanos().min(i64::MAX as u128) as i64).max(grace);
            while let Some((id, p)) = self.index.peek() {
                if pass.budget == 0 {
                    pass.more = true;
                    break;
                }
                let due = p.mtime_ns.saturating_add(max_age);
                if due > now {
                    pass.due(due);
                    break;
                }
                if self.index.file(id).writing() {
                    self.hold(id, None);
                    continue;
                }
                self.evict_one(id, Reason::Age, pass, w);
            }
        }
        if let Some(max) = self.cfg.max_size.filter(|&m| m > 0) {
            if self.bytes_now(pass) > max {
                let target = (max as f64 * self.cfg.low_watermark) as u64;
                while self.bytes_now(pass) > target && pass.budget > 0 {
                    let Some(id) = self.next_victim(now, pass) else {
                        let (total, target) = (self.bytes_now(pass), target);
                        self.warn_limited("size-blocked", || {
                            format!(
                                "over max_size ({total} bytes > target {target}) but every \
                                 remaining file is in grace, protected, locked or being written; \
                                 looking again when the oldest leaves its grace"
                            )
                        });
                        break;
                    };
                    self.evict_one(id, Reason::Size, pass, w);
                }
                pass.more |= pass.budget == 0;
            }
        }
        if let Some(floor) = self.min_free_bytes() {
            self.update_space();
            if self.free_now(pass) < floor {
                let target = (floor as f64 * (2.0 - self.cfg.low_watermark)) as u64;
                while self.free_now(pass) < target && pass.budget > 0 {
                    let Some(id) = self.next_victim(now, pass) else {
                        let free = self.free_now(pass);
                        self.warn_limited("free-blocked", || {
                            format!(
                                "free space {free} bytes is below min_free ({floor} bytes) and \
                                 nothing more may be deleted now (grace, protected, locked, \
                                 being written, or other files fill the filesystem)"
                            )
                        });
                        break;
                    };
                    self.evict_one(id, Reason::FreeSpace, pass, w);
                }
                pass.more |= pass.budget == 0;
                self.update_space();
            }
        }
        // A dry run leaves the index as it found it.
        for id in std::mem::take(&mut pass.temp_held) {
            self.index.set_held(id, false);
        }
    }

    fn bytes_now(&self, pass: &Pass) -> u64 {
        self.index.total_bytes.saturating_sub(pass.virtual_bytes)
    }

    fn free_now(&self, pass: &Pass) -> u64 {
        self.fs_free.saturating_add(pass.virtual_free)
    }

    /// The oldest file that may go now, holding back files being written; `None` when the
    /// head of the queue is still in its grace period (the pass is told when that ends).
    fn next_victim(&mut self, now: i64, pass: &mut Pass) -> Option<FileId> {
        loop {
            let (id, p) = self.index.peek()?;
            let free_at = p.mtime_ns.saturating_add(self.grace_ns());
            if free_at > now {
                pass.due(free_at);
                return None;
            }
            if self.index.file(id).writing() {
                self.hold(id, None);
                continue;
            }
            return Some(id);
        }
    }

    /// Takes a file out of the queue until `retry` (or its next event when `None`).
    pub fn hold(&mut self, id: FileId, retry: Option<Instant>) {
        self.index.set_held(id, true);
        self.held.insert(id, retry);
    }

    fn release_due_held(&mut self, now: Instant) {
        let due: Vec<FileId> = self
            .held
            .iter()
            .filter(|(_, r)| r.is_some_and(|t| t <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.unhold(id);
        }
    }

    /// The earliest retry of a held file.
    pub fn next_held_retry(&self) -> Option<Instant> {
        self.held.values().filter_map(|r| *r).min()
    }

    fn file_comps(&self, id: FileId) -> Vec<OsString> {
        self.index
            .file_components(id)
            .into_iter()
            .map(|s| s.to_owned())
            .collect()
    }

    /// Deletes one file safely (or records it, in a dry run).
    pub fn evict_one(&mut self, id: FileId, reason: Reason, pass: &mut Pass, w: &mut Watcher) {
        pass.budget = pass.budget.saturating_sub(1);
        let slot = *self.index.file(id);
        let comps = self.file_comps(id);
        let refs: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
        let path = self.abs_path(&refs);
        let age = Duration::from_nanos(now_ns().saturating_sub(slot.mtime_ns).max(0) as u64);
        if pass.dry_run {
            self.index.set_held(id, true);
            pass.temp_held.push(id);
            pass.virtual_bytes += slot.size;
            pass.virtual_free += slot.size;
            pass.files += 1;
            pass.bytes += slot.size;
            if pass.collect {
                pass.removals.push(Removal {
                    path,
                    bytes: slot.size,
                    age,
                    reason,
                });
            }
            return;
        }
        let Some((name, dir_comps)) = refs.split_last() else {
            return;
        };
        let Some(root) = &self.dir else { return };
        let dir_fd = match root.open_dir_path(dir_comps) {
            Ok(fd) => fd,
            Err(e) => {
                // Its directory is gone or replaced: let the index catch up instead. If the
                // file is still indexed afterwards, the directory cannot be entered (EACCES,
                // say): hold the file back rather than retrying in a loop.
                let mut real = self.real_path.clone();
                real.extend(dir_comps);
                self.refresh(&real, w);
                if self.index.is_live(id) && !self.index.file(id).held() {
                    if !fsops::is_gone(&e) {
                        self.counters.errors += 1;
                        let p = path.display().to_string();
                        let hint = fsops::hint(&e);
                        self.warn_limited("open-dir-error", || {
                            format!("cannot open the directory of {p}: {e}. {hint}")
                        });
                    }
                    let retry = Instant::now() + self.error_backoff;
                    self.error_backoff = (self.error_backoff * 2).min(Duration::from_secs(300));
                    self.hold(id, Some(retry));
                }
                return;
            }
        };
        let expect = Expect {
            ino: slot.ino,
            size: slot.size,
            mtime_ns: slot.mtime_ns,
        };
        match fsops::delete_file(root, &dir_fd, name, expect) {
            Ok(DeleteOutcome::Deleted { freed }) => {
                self.index.remove_file(id);
                self.held.remove(&id);
                let started = pass.started.unwrap_or_else(Instant::now);
                self.record_removal(reason, slot.size, started);
                self.error_backoff = Duration::from_secs(1);
                pass.virtual_free += freed;
                pass.files += 1;
                pass.bytes += slot.size;
                let size = slot.size;
                tracing::info!(
                    target: "chartd::evict",
                    path = %path.display(),
                    bytes = size,
                    age_seconds = age.as_secs(),
                    reason = reason.as_str(),
                    "deleted {} ({} bytes, age {}, reason {})",
                    path.display(),
                    size,
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    reason.as_str()
                );
                if pass.collect {
                    pass.removals.push(Removal {
                        path,
                        bytes: slot.size,
                        age,
                        reason,
                    });
                }
                if self.cfg.prune_empty_dirs {
                    self.prune(slot.dir);
                }
            }
            Ok(DeleteOutcome::Gone) => {
                self.index.remove_file(id);
                self.held.remove(&id);
            }
            Ok(DeleteOutcome::Changed(_)) => {
                let mut real = self.real_path.clone();
                real.extend(&refs);
                self.refresh(&real, w);
                // Still the same entry at the head (e.g. it changed back)? Leave it for now.
                if self.index.is_live(id) && self.index.peek().map(|p| p.0) == Some(id) {
                    self.hold(id, Some(Instant::now() + LOCKED_RETRY));
                }
            }
            Ok(DeleteOutcome::Locked) => {
                tracing::debug!(path = %path.display(), "locked by a writer (flock); skipped");
                pass.skipped += 1;
                self.hold(id, Some(Instant::now() + LOCKED_RETRY));
            }
            Err(e) => {
                self.counters.errors += 1;
                pass.skipped += 1;
                let hint = fsops::hint(&e);
                let p = path.display().to_string();
                self.warn_limited("delete-error", || format!("cannot delete {p}: {e}. {hint}"));
                let retry = Instant::now() + self.error_backoff;
                self.error_backoff = (self.error_backoff * 2).min(Duration::from_secs(300));
                self.hold(id, Some(retry));
            }
        }
    }

    /// Removes directories that eviction emptied, up to (and including) the group directory,
    /// never the root.
    fn prune(&mut self, mut d: DirId) {
        while d != ROOT && self.index.is_live_dir(d) && self.index.dir_is_empty(d) {
            let node = *self.index.dir(d);
            let name = self.index.dir_name(d).to_owned();
            let parent_comps: Vec<OsString> = self
                .index
                .dir_components(node.parent)
                .into_iter()
                .map(|s| s.to_owned())
                .collect();
            let Some(root) = &self.dir else { return };
            let Ok(pfd) = root.open_dir_path(&parent_comps) else {
                return;
            };
            match fsops::remove_empty_dir(root, &pfd, &name, node.ino) {
                Ok(true) => {
                    // notify drops the watch itself when the directory's IN_DELETE_SELF arrives.
                    self.index.remove_dir_tree(d);
                    d = node.parent;
                }
                _ => return,
            }
        }
    }
}
