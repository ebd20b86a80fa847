//! Keeping the index equal to the disk by reading it: the crawl (watch first, then read, so
//! nothing created meanwhile is missed; `crawl.rs` pipelines the full one), the resync (mark
//! and sweep), and the recording of one directory entry.
//!
//! Everything is fd-relative beneath the root: directories are opened with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, entries are `statx`ed without
//! following symlinks, and a directory on another mount is never entered. A directory that
//! cannot be read (EACCES, EMFILE, EIO: anything but "gone") keeps what the index knows of it:
//! only what is known to be gone is swept.
//!
//! May touch: the root's index and counters, the disk through `fsops` (read; its one write
//! settles chartd's own leftover private names: put back or removed), watches through the
//! `Watcher`, and the allocator (`malloc_trim`).

mod crawl;
mod events;
mod watches;

pub use watches::WatchState;

pub use watches::{kernel_watches, KernelRead, KernelReader, KernelWatches};

use crate::fsops::{self, Kind, Meta};
use crate::index::{DirId, FileId, FileInfo, ROOT};
use crate::root::RootState;
use crate::watcher::Watcher;
use std::ffi::OsStr;
use std::path::PathBuf;

impl RootState {
    /// Crawls the whole root (first start) or resyncs it against the disk (overflow, safety
    /// net, `cleanup`): every entry seen is (re)indexed, every indexed entry not seen is dropped.
    pub fn resync_all(&mut self, w: &mut Watcher) {
        self.resync_all_with(w, self.cleanup_enabled);
    }

    /// [`Self::resync_all`]; `remove_leftovers`: whether leftovers of interrupted deletions
    /// that the walk finds are settled (put back, or removed when their name holds a newer
    /// file; see `settle_leftovers`). Never by a root that only observes
    /// (`cleanup_enabled: false`) nor by a dry run: those promise that nothing is deleted.
    pub fn resync_all_with(&mut self, w: &mut Watcher, remove_leftovers: bool) {
        if self.dir.is_some() && !self.root_unchanged() {
            // Removed, replaced or mounted over since it was opened (no event need say so).
            self.check_root(w);
        }
        if self.dir.is_none() && !self.open_root() {
            self.watch_parent(w);
            return;
        }
        self.watch.limit_hit = false;
        // notify may have dropped watches whose events were then lost (a full channel):
        // re-add every watch (re-adding a live one is a no-op for the kernel).
        self.forget_watches(ROOT);
        self.resync_dir(ROOT, w, false);
        if remove_leftovers {
            self.settle_leftovers();
        } else {
            // Found again by the next walk (of a root that may delete).
            self.leftovers.clear();
        }
        // After the tree: when watches are scarce, the tree's come first.
        self.watch_parent(w);
        self.update_degraded();
        self.update_space();
        self.capacity
            .set_usage(self.index.total_bytes, std::time::SystemTime::now());
        self.index.maybe_compact();
        release_free_heap();
    }

    /// After lost events (an overflow): rereads only the directories whose mtime moved since
    /// chartd last read them (entries created, deleted or renamed in them), instead of the
    /// whole tree. One `statx` per known directory; a directory that cannot be looked at, or
    /// whose inode changed, is reread through the safe path (and dropped if it is gone). Files
    /// rewritten in place in an unchanged directory are caught by their next event or by the
    /// periodic full resync.
    pub fn quick_resync(&mut self, w: &mut Watcher) {
        let Some(root) = &self.dir else {
            self.resync_all(w);
            return;
        };
        let mut stale = Vec::new();
        for d in self.index.subtree(ROOT) {
            let node = *self.index.dir(d);
            let rel: PathBuf = self.index.dir_components(d).into_iter().collect();
            let now = if d == ROOT {
                fsops::stat_fd(&root.fd)
            } else {
                fsops::stat_at(&root.fd, rel.as_os_str())
            };
            match now {
                Ok(m)
                    if m.kind == Kind::Dir
                        && m.ino == node.ino
                        && m.mtime_ns == node.read_mtime_ns => {}
                _ => stale.push(d),
            }
        }
        for d in stale {
            if self.progress.cancelled() {
                return;
            }
            if self.index.is_live_dir(d) {
                self.resync_dir(d, w, true);
            }
        }
        self.update_degraded();
        self.update_space();
    }

    /// Mark and sweep below `d`; `shallow`: only `d`'s own entries (and directories new to the
    /// index), used to rescan directories that have no watch.
    pub fn resync_dir(&mut self, d: DirId, w: &mut Watcher, shallow: bool) {
        if shallow {
            for f in self.index.files_in(d) {
                self.index.unmark_file(f);
            }
            for c in self.index.children(d) {
                self.index.unmark_dir(c);
            }
        } else {
            self.index.unmark_subtree(d);
        }
        self.crawl(d, shallow, w);
        if self.progress.cancelled() {
            return;
        }
        // Sweep: whatever the walk did not see is gone from disk.
        let scope = if shallow {
            vec![d]
        } else {
            self.index.subtree(d)
        };
        for x in scope {
            if !self.index.is_live_dir(x) {
                continue;
            }
            for f in self.index.files_in(x) {
                if !self.index.file_seen(f) {
                    self.index.remove_file(f);
                }
            }
            for c in self.index.children(x) {
                if !self.index.dir_seen(c) {
                    self.drop_dir(c, w);
                }
            }
        }
        if d == ROOT && !self.index.dir_seen(ROOT) {
            self.check_root(w);
        }
    }

    /// Records a non-directory entry: managed files in the totals and the queue, everything
    /// else (excluded, symlinks, sockets, ...) as unmanaged.
    pub(crate) fn upsert_entry(
        &mut self,
        d: DirId,
        dir_comps: &[&OsStr],
        name: &OsStr,
        m: &Meta,
    ) -> FileId {
        if let Some(old) = self.index.find_dir(d, name) {
            self.index.remove_dir_tree(old);
        }
        // The path's components on the stack for the usual depths: this runs for every file
        // of a crawl.
        let n = dir_comps.len();
        let mut stack = [OsStr::new(""); 16];
        let heap: Vec<&OsStr>;
        let comps: &[&OsStr] = if n < stack.len() {
            stack[..n].copy_from_slice(dir_comps);
            stack[n] = name;
            &stack[..=n]
        } else {
            heap = dir_comps.iter().copied().chain([name]).collect();
            &heap
        };
        let managed =
            m.kind == Kind::File && !fsops::is_private_name(name) && self.policy.managed(comps);
        let protected = managed && (self.index.rule_protects(d) || self.policy.protected(comps));
        if managed && self.capacity.remembers_evictions() && self.index.find_file(d, name).is_none()
        {
            self.capacity
                .on_create(RootState::path_hash(comps), std::time::SystemTime::now());
        }
        self.index.upsert_file(
            d,
            name,
            FileInfo {
                size: m.size,
                mtime_ns: m.mtime_ns,
                ino: m.ino,
                managed,
                protected,
            },
        )
    }

    /// A file found by reading a directory (not through an event) may be open for writing
    /// without chartd having seen its IN_MODIFY: it was written before the directory's watch
    /// existed (a new directory, a restart). If it changed within the writer timeout, it counts
    /// as being written since its mtime (held when it comes up for eviction, until quiet).
    pub(crate) fn presume_writing(&mut self, f: FileId, mtime_ns: i64, now: i64) {
        let quiet_ns = self.writer_quiet().as_nanos().min(i64::MAX as u128) as i64;
        if mtime_ns.saturating_add(quiet_ns) > now && self.index.file(f).managed() {
            let ago = std::time::Duration::from_nanos(now.saturating_sub(mtime_ns).max(0) as u64);
            let at = std::time::Instant::now()
                .checked_sub(ago)
                .unwrap_or_else(std::time::Instant::now);
            self.index.mark_writing(f, at);
        }
    }

    /// A directory that could not be read (anything but "gone"): everything the index knows
    /// below it stays (marked seen), the error is counted and reported.
    pub(crate) fn keep_unreadable(&mut self, d: DirId, e: &std::io::Error) {
        for x in self.index.subtree(d) {
            self.index.mark_dir_seen(x);
            for f in self.index.files_in(x) {
                self.index.mark_file_seen(f);
            }
        }
        self.counters.errors = self.counters.errors.saturating_add(1);
        let p = self
            .abs_path(&self.index.dir_components(d))
            .display()
            .to_string();
        let hint = fsops::hint(e);
        self.warn_limited("read-dir-error", || {
            format!("cannot read the directory {p}: {e}; what chartd knew of it is kept. {hint}")
        });
    }

    /// Settles leftovers of interrupted deletions that a walk found (chartd's private names,
    /// see `fsops/delete.rs`): each goes back under the name it carries when that name is free
    /// (and is judged again like any file); it is removed only when that name holds a newer
    /// regular file and the carried path is managed and not protected; else kept and reported.
    /// Nothing is settled in a root that is no longer the directory at its path.
    pub(crate) fn settle_leftovers(&mut self) {
        if !self.root_unchanged() {
            self.leftovers.clear();
            return;
        }
        for (d, name, ino) in std::mem::take(&mut self.leftovers) {
            if !self.index.is_live_dir(d) {
                continue;
            }
            let Some(root) = &self.dir else { return };
            let comps = self.index.dir_path(d);
            let Ok(fd) = root.open_dir_path(&comps) else {
                continue;
            };
            let may_remove = fsops::carried_name(&name).is_some_and(|orig| {
                let mut c: Vec<&std::ffi::OsStr> = self.index.dir_components(d);
                c.push(orig);
                self.policy.managed(&c)
                    && !self.policy.protected(&c)
                    && !self.index.rule_protects(d)
            });
            let dir = self.abs_path(&self.index.dir_components(d));
            match fsops::settle_leftover(root, &fd, &name, ino, may_remove) {
                Ok(fsops::Leftover::PutBack(orig)) => {
                    tracing::warn!(
                        root = %self.cfg.path.display(),
                        "put {} back under its name (found as {}): chartd was stopped while it \
                         had the file off its name to delete it; it is judged again",
                        dir.join(&orig).display(),
                        name.to_string_lossy()
                    );
                    // Indexed now, not when its rename event comes: the pass that follows this
                    // walk must see it (an old chart put back after that pass chose newer
                    // victims would outlive them).
                    if let Ok(m) = fsops::stat_at(&fd, &orig) {
                        let comps = self.index.dir_path(d);
                        let refs: Vec<&std::ffi::OsStr> =
                            comps.iter().map(|c| c.as_os_str()).collect();
                        let f = self.upsert_entry(d, &refs, &orig, &m);
                        self.presume_writing(f, m.mtime_ns, crate::root::now_ns());
                    }
                }
                Ok(fsops::Leftover::Removed) => tracing::warn!(
                    root = %self.cfg.path.display(),
                    "removed {} in {}: a file chartd had taken off its name to delete it when \
                     it was stopped{}",
                    name.to_string_lossy(),
                    dir.display(),
                    "; its name holds a newer file by now"
                ),
                Ok(fsops::Leftover::Kept(why)) => self.warn_limited("leftover-kept", || {
                    format!(
                        "kept {} in {}, a file chartd had taken off its name to delete it when \
                         it was stopped: {why}. Rename it back or remove it by hand",
                        name.to_string_lossy(),
                        dir.display()
                    )
                }),
                Ok(fsops::Leftover::NotOurs) => {}
                Err(e) => tracing::warn!(
                    root = %self.cfg.path.display(),
                    "cannot settle {} in {}: {e}; it stays",
                    name.to_string_lossy(),
                    dir.display()
                ),
            }
        }
    }
}

/// Gives the heap pages that a full crawl's temporaries used (directory listings, paths,
/// channel buffers, and the per-thread arenas of the crawl's reader threads) back to the
/// kernel. Without it they stay resident for the daemon's life: freed, but never returned,
/// because glibc only trims the top of the main heap on its own.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only releases memory malloc owns and that is
    // free; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
