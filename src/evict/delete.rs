//! Deleting one chosen file, and pruning the directories eviction emptied.
//!
//! The file goes through [`fsops::delete_file`] (taken off its name, checked, then unlinked);
//! whatever the disk says instead (gone, changed, locked, unreadable, failing) updates the
//! index or holds the file with a retry time. Eviction never re-reads the disk into the index
//! itself: a file found changed is held and its path handed back (`RootState::stale`), and the
//! root's `enforce` has the scanner look at it before the next pass. So data flows one way,
//! and an id chosen by a pass is never used after a refresh could have rebuilt the index.
//!
//! Emptied directories are pruned only once they have been quiet for the writer timeout
//! (`grace`, at least 2 s): a writer that has just made sure its directory exists (`mkdir -p`)
//! and is about to create a file in it must not find it gone. `purge` prunes at once: the
//! operator asked for the group to go.
//!
//! May touch: the root's index and counters (through `RootState` and `Index` methods) and the disk
//! only through `fsops` (one file deleted, emptied directories removed); never the watcher or the
//! scanner (changed paths go back in `RootState::stale`).

use super::Pass;
use crate::fsops::{self, DeleteOutcome, Expect};
use crate::index::{DirId, FileId, HoldReason, ROOT};
use crate::root::{now_ns, RootState};
use crate::stats::Reason;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a `flock`ed (or changed-back) file is left alone before it is tried again.
const LOCKED_RETRY: Duration = Duration::from_secs(30);

/// How soon a file found changed under its deletion is looked at again if the refresh of its
/// path does not settle it.
const CHANGED_RETRY: Duration = Duration::from_secs(1);

/// A path eviction found different from the index: the scanner looks at it before the next
/// pass (see `RootState::enforce`).
#[derive(Debug, Clone)]
pub struct Stale {
    pub path: PathBuf,
    /// The identity the deletion expected, when it was about a file: if the refresh finds the
    /// same file again, it is left alone for a while instead of tried again at once.
    pub expect: Option<Expect>,
}

/// A file removed (or, in a dry run, that would be).
#[derive(Debug, Clone)]
pub struct Removal {
    pub path: PathBuf,
    pub bytes: u64,
    pub age: Duration,
    pub reason: Reason,
}

impl RootState {
    /// Holds `id` for a retry after a failure, with the root's error backoff.
    fn hold_failing(&mut self, id: FileId, reason: HoldReason) {
        let retry = Instant::now() + self.error_backoff;
        self.error_backoff = (self.error_backoff * 2).min(Duration::from_secs(300));
        self.index.hold(id, reason, retry);
    }

    /// Deletes one file safely (or records it, in a dry run).
    pub fn evict_one(&mut self, id: FileId, reason: Reason, pass: &mut Pass) {
        pass.budget = pass.budget.saturating_sub(1);
        let slot = *self.index.file(id);
        let counted = self.index.is_counted(id);
        let comps = self.index.file_path(id);
        let refs: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
        let path = self.abs_path(&refs);
        let age = Duration::from_nanos(now_ns().saturating_sub(slot.mtime_ns).max(0) as u64);
        if pass.dry_run {
            self.index.set_held(id, true);
            pass.temp_held.push(id);
            let bytes = if counted { slot.size } else { 0 };
            pass.virtual_bytes += bytes;
            pass.virtual_free += bytes;
            pass.virtual_files += u64::from(counted);
            pass.files += 1;
            pass.bytes += bytes;
            if pass.collect {
                pass.removals.push(Removal {
                    path,
                    bytes,
                    age,
                    reason,
                });
            }
            return;
        }
        let Some((name, dir_comps)) = refs.split_last() else {
            return;
        };
        let expect = Expect {
            ino: slot.ino,
            size: slot.size,
            mtime_ns: slot.mtime_ns,
        };
        let Some(root) = &self.dir else { return };
        let dir_fd = match root.open_dir_path(dir_comps) {
            Ok(fd) => fd,
            Err(e) if fsops::is_gone(&e) => {
                // Its directory is gone or replaced: the index is behind. Held until the
                // scanner has looked at the directory (see `enforce`).
                let mut real = self.real_path.clone();
                real.extend(dir_comps);
                self.stale.push(Stale {
                    path: real,
                    expect: None,
                });
                self.index
                    .hold(id, HoldReason::Changed, Instant::now() + CHANGED_RETRY);
                return;
            }
            Err(e) => {
                // The directory cannot be entered (EACCES, say): hold the file back rather
                // than retrying in a loop.
                self.counters.errors += 1;
                let p = path.display().to_string();
                let hint = fsops::hint(&e);
                self.warn_limited("open-dir-error", || {
                    format!("cannot open the directory of {p}: {e}. {hint}")
                });
                self.hold_failing(id, HoldReason::Failing);
                return;
            }
        };
        // Beneath the root, and the root still where it is configured: a root renamed away
        // (replaced by a new directory) takes its whole tree out of chartd's charge, although
        // every fd chartd holds still reaches it (the long model run deleted files 0.7 s after
        // such a move, before the events saying so were handled, on a loaded machine).
        // The directory's ancestor at its depth still the root (one `statx` of `../..`), or,
        // when that does not say so, the directory found again by a walk from the root fd;
        // then, last (both follow a root renamed away), the root still the directory at its
        // path. A directory beneath the root while the root is the directory at its path is
        // beneath the configured root.
        let real_path = &self.real_path;
        let still_beneath = || {
            (fsops::beneath_at_depth(root, &dir_fd, dir_comps.len())
                || root
                    .open_dir_path(dir_comps)
                    .and_then(|fd| Ok((fsops::stat_fd(&fd)?, fsops::stat_fd(&dir_fd)?)))
                    .is_ok_and(|(now, ours)| now.ino == ours.ino && root.same_mount(&now)))
                && fsops::stat_path(real_path).is_ok_and(|m| {
                    m.kind == fsops::Kind::Dir && m.ino == root.meta.ino && root.same_mount(&m)
                })
        };
        match fsops::delete_file(root, &dir_fd, name, expect, still_beneath) {
            Ok(DeleteOutcome::Superseded { .. }) => {
                tracing::info!(
                    target: "chartd::evict",
                    path = %path.display(),
                    "{}: the file taken off this name was newer than the one chosen, and by the \
                     time it was to be put back a writer had renamed another file over the \
                     name: removed the one in hand (what that rename did to it); the name's \
                     new file is kept",
                    path.display()
                );
                let mut real = self.real_path.clone();
                real.extend(&refs);
                self.stale.push(Stale {
                    path: real,
                    expect: None,
                });
                self.index
                    .hold(id, HoldReason::Changed, Instant::now() + CHANGED_RETRY);
            }
            Ok(DeleteOutcome::Deleted {
                freed,
                beneath_at_ns,
            }) => {
                let size = slot.size;
                let before = self.index.total_bytes;
                self.index.remove_file(id);
                let bytes = before.saturating_sub(self.index.total_bytes);
                let trigger = pass.trigger.unwrap_or_else(Instant::now);
                self.record_removal(reason, bytes, trigger);
                self.error_backoff = Duration::from_secs(1);
                self.space.free_bytes = self.space.free_bytes.saturating_add(freed);
                pass.files += 1;
                pass.bytes += bytes;
                if reason.is_pressure() {
                    self.pressure_evicted_age = Some(age);
                }
                self.capacity.on_evict(
                    age,
                    bytes,
                    reason,
                    RootState::path_hash(&refs),
                    std::time::SystemTime::now(),
                );
                tracing::info!(
                    target: "chartd::evict",
                    path = %path.display(),
                    bytes = size,
                    age_seconds = age.as_secs(),
                    reason = reason.as_str(),
                    beneath_at_ns,
                    "deleted {} ({} bytes, age {}, reason {})",
                    path.display(),
                    size,
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    reason.as_str()
                );
                if pass.collect {
                    pass.removals.push(Removal {
                        path,
                        bytes,
                        age,
                        reason,
                    });
                }
                if self.cfg.prune_empty_dirs {
                    if reason == Reason::Purge {
                        self.prune_now(slot.dir);
                    } else {
                        let at = Instant::now() + self.writer_quiet();
                        self.index.schedule_prune(slot.dir, at);
                    }
                }
            }
            Ok(DeleteOutcome::Gone) => {
                self.index.remove_file(id);
            }
            Ok(DeleteOutcome::LeftRoot) => {
                tracing::info!(
                    target: "chartd::evict",
                    path = %path.display(),
                    "{}: not deleted: its directory was moved out of the root (or the root \
                     away from its path) while it was being deleted; put back under its name",
                    path.display()
                );
                self.index.remove_file(id);
            }
            Ok(DeleteOutcome::Changed(_)) => {
                let mut real = self.real_path.clone();
                real.extend(&refs);
                self.stale.push(Stale {
                    path: real,
                    expect: Some(expect),
                });
                self.index
                    .hold(id, HoldReason::Changed, Instant::now() + CHANGED_RETRY);
            }
            Ok(DeleteOutcome::Locked) => {
                tracing::debug!(path = %path.display(), "locked by a writer (flock); skipped");
                pass.skipped += 1;
                self.index
                    .hold(id, HoldReason::Locked, Instant::now() + LOCKED_RETRY);
            }
            Ok(DeleteOutcome::Unreadable) => {
                self.counters.errors += 1;
                pass.skipped += 1;
                let p = path.display().to_string();
                self.warn_limited("unreadable", || {
                    format!(
                        "cannot open {p} to check it before deleting it (permission denied): \
                         kept. chartd needs read permission on the files it manages (see \
                         README, Permissions)"
                    )
                });
                self.hold_failing(id, HoldReason::Unreadable);
            }
            Err(e) => {
                self.counters.errors += 1;
                pass.skipped += 1;
                let hint = fsops::hint(&e);
                let p = path.display().to_string();
                self.warn_limited("delete-error", || format!("cannot delete {p}: {e}. {hint}"));
                self.hold_failing(id, HoldReason::Failing);
            }
        }
    }

    /// Removes the directories whose prune is due, if they are still empty and have been quiet
    /// (no entry added or removed) for the writer timeout.
    pub fn run_due_prunes(&mut self) {
        let quiet = self.writer_quiet();
        for d in self.index.due_prunes(Instant::now()) {
            if d == ROOT || !self.index.is_live_dir(d) || !self.index.dir_is_empty(d) {
                continue;
            }
            match self.dir_mtime(d) {
                Some(m) => {
                    let quiet_ns = quiet.as_nanos().min(i64::MAX as u128) as i64;
                    let wait = m.saturating_add(quiet_ns).saturating_sub(now_ns());
                    if wait > 0 {
                        let at = Instant::now() + Duration::from_nanos(wait as u64);
                        self.index.schedule_prune(d, at);
                        continue;
                    }
                }
                None => continue,
            }
            let parent = self.index.dir(d).parent;
            if self.remove_if_empty(d) && parent != ROOT && self.index.dir_is_empty(parent) {
                self.index.schedule_prune(parent, Instant::now() + quiet);
            }
        }
    }

    fn dir_mtime(&self, d: DirId) -> Option<i64> {
        let root = self.dir.as_ref()?;
        let comps = self.index.dir_path(d);
        let fd = root.open_dir_path(&comps).ok()?;
        fsops::stat_fd(&fd).ok().map(|m| m.mtime_ns)
    }

    /// Removes emptied directories at once, up to (and including) the group directory, never
    /// the root (`purge`).
    fn prune_now(&mut self, mut d: DirId) {
        while d != ROOT && self.index.is_live_dir(d) && self.index.dir_is_empty(d) {
            let parent = self.index.dir(d).parent;
            if !self.remove_if_empty(d) {
                return;
            }
            d = parent;
        }
    }

    /// `rmdir` of `d` if it is still the empty directory the index knows, on the root's mount.
    fn remove_if_empty(&mut self, d: DirId) -> bool {
        let node = *self.index.dir(d);
        let name = self.index.dir_name(d).to_owned();
        let parent_comps = self.index.dir_path(node.parent);
        // Not in a root that was renamed away (see `evict_one`).
        if !self.root_unchanged() {
            return false;
        }
        let Some(root) = &self.dir else { return false };
        let Ok(pfd) = root.open_dir_path(&parent_comps) else {
            return false;
        };
        match fsops::remove_empty_dir(root, &pfd, &name, node.ino) {
            Ok(true) => {
                // notify drops the watch itself when the directory's IN_DELETE_SELF arrives.
                self.index.remove_dir_tree(d);
                true
            }
            _ => false,
        }
    }
}
