//! Keeping the index equal to the disk: the crawl (watch first, then read, so nothing created
//! meanwhile is missed), the resync (mark and sweep), and the handling of one event path.
//!
//! Everything is fd-relative beneath the root: directories are opened with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, entries are `statx`ed without
//! following symlinks, and a directory on another mount is never entered. An event path is only
//! a hint of *where* to look; what the index records always comes from a fresh `statx`.

use crate::fsops::{self, Kind, Meta};
use crate::index::{DirId, FileId, FileInfo, ROOT};
use crate::root::RootState;
use crate::watcher::{WatchResult, Watcher};
use rustix::fs::FileType;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How long a file found by a directory read must have been unmodified before chartd stops
/// presuming that a writer still has it open (see `presume_writing`).
const PRESUMED_WRITING: std::time::Duration = std::time::Duration::from_secs(2);

/// Directory fds the crawl keeps open ahead of reading them (well below the fd limit).
const MAX_HELD_FDS: usize = 256;

impl RootState {
    fn owned_components(&self, d: DirId) -> Vec<OsString> {
        self.index
            .dir_components(d)
            .into_iter()
            .map(|s| s.to_owned())
            .collect()
    }

    /// Crawls the whole root (first start) or resyncs it against the disk (overflow, safety
    /// net, `cleanup`): every entry seen is (re)indexed, every indexed entry not seen is dropped.
    pub fn resync_all(&mut self, w: &mut Watcher) {
        if self.dir.is_some() && !self.root_unchanged() {
            // Removed, replaced or mounted over since it was opened (no event need say so).
            self.check_root(w);
        }
        if self.dir.is_none() && !self.open_root() {
            self.watch_parent(w);
            return;
        }
        self.watch_limit_hit = false;
        // notify may have dropped watches whose events were then lost (a full channel):
        // re-add every watch (re-adding a live one is a no-op for the kernel).
        self.forget_watches(ROOT);
        self.resync_dir(ROOT, w, false);
        // After the tree: when watches are scarce, the tree's come first.
        self.watch_parent(w);
        self.update_degraded();
        self.update_space();
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
        if d == ROOT && !shallow {
            self.crawl_all(w);
        } else {
            self.walk(d, w, shallow);
        }
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
                    self.held.remove(&f);
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

    /// Reads directories depth-first from `start`, indexing what it finds and adding a watch
    /// to each directory before reading it.
    fn walk(&mut self, start: DirId, w: &mut Watcher, shallow: bool) {
        // Directories still to read, with their fd when it was opened relative to the parent
        // (one `openat` instead of a resolution from the root). Directories pushed while too
        // many fds are held are opened from the root when their turn comes.
        let mut stack: Vec<(DirId, Option<OwnedFd>)> = vec![(start, None)];
        let mut held_fds = 0usize;
        let mut subdirs: Vec<DirId> = Vec::new();
        let now = crate::root::now_ns();
        while let Some((d, pre)) = stack.pop() {
            if pre.is_some() {
                held_fds -= 1;
            }
            if self.progress.cancelled() {
                return;
            }
            self.progress.tick();
            let Some(root) = &self.dir else { return };
            let comps = self.owned_components(d);
            let fd = match pre.map_or_else(|| root.open_dir(&comps), Ok) {
                Ok(fd) => fd,
                // Gone, replaced by a symlink, or a mount point: left unseen, so swept.
                Err(_) => continue,
            };
            match fsops::stat_fd(&fd) {
                Ok(m) if d == ROOT || root.same_mount(&m) => {
                    self.index
                        .set_dir_read(d, m.ino, m.mtime_ns, crate::root::now_ns())
                }
                _ => continue,
            }
            self.index.mark_dir_seen(d);
            // Watch first, then read: whatever is created from now on produces an event.
            self.ensure_watched(d, &comps, w);
            // Reading through the same fd (no reopen of ".") halves the IN_OPEN/IN_CLOSE
            // events chartd's own crawl generates.
            let mut entries = match rustix::fs::Dir::new(fd) {
                Ok(it) => it,
                Err(_) => continue,
            };
            let Ok(dfd) = entries.fd() else { continue };
            let dfd = dfd.try_clone_to_owned().ok();
            let Some(dfd) = dfd else { continue };
            let dir_comps: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
            subdirs.clear();
            while let Some(entry) = entries.read() {
                let Ok(entry) = entry else { break };
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let is_dir = match entry.file_type() {
                    FileType::Directory => true,
                    FileType::Unknown => {
                        matches!(fsops::stat_at(&dfd, name), Ok(m) if m.kind == Kind::Dir)
                    }
                    _ => false,
                };
                if is_dir {
                    if let Some(f) = self.index.find_file(d, name) {
                        self.index.remove_file(f);
                    }
                    let known = self.index.find_dir(d, name);
                    let child = self.index.add_dir(d, name, entry.ino());
                    if !shallow || known.is_none() {
                        subdirs.push(child);
                    } else {
                        self.index.mark_dir_seen(child);
                    }
                    continue;
                }
                match fsops::stat_at(&dfd, name) {
                    Ok(m) if m.kind == Kind::Dir => {
                        // Raced: it became a directory since readdir. Look again next time.
                        continue;
                    }
                    Ok(m) => {
                        let f = self.upsert_entry(d, &dir_comps, name, &m);
                        self.presume_writing(f, m.mtime_ns, now);
                    }
                    Err(_) => continue,
                }
            }
            drop(entries);
            for &child in &subdirs {
                let pre = if held_fds < MAX_HELD_FDS {
                    fsops::open_subdir(&dfd, self.index.dir_name(child)).ok()
                } else {
                    None
                };
                held_fds += usize::from(pre.is_some());
                stack.push((child, pre));
            }
        }
    }

    pub(crate) fn ensure_watched(&mut self, d: DirId, comps: &[OsString], w: &mut Watcher) {
        if !w.enabled() || self.index.is_watched(d) || self.watch_limit_hit {
            return;
        }
        let mut abs = self.real_path.clone();
        abs.extend(comps);
        match w.watch(&abs) {
            WatchResult::Watched => self.index.set_watched(d, true),
            WatchResult::LimitReached => {
                self.watch_limit_hit = true;
                tracing::warn!(
                    root = %self.cfg.path.display(),
                    "inotify watch limit reached (fs.inotify.max_user_watches); the remaining \
                     directories are rescanned periodically instead. Fix: sysctl -w \
                     fs.inotify.max_user_watches=1048576 (persist it in /etc/sysctl.d/), then \
                     `chartd reload`"
                );
            }
            WatchResult::Skipped => {}
            WatchResult::Failed(e) => {
                tracing::debug!(path = %abs.display(), "cannot watch: {e}");
            }
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
        let mut comps: Vec<&OsStr> = dir_comps.to_vec();
        comps.push(name);
        let managed = m.kind == Kind::File && self.policy.managed(&comps);
        let protected = managed && self.policy.protected(&comps);
        self.index.upsert_file(
            d,
            name,
            FileInfo {
                size: m.size,
                mtime_ns: m.mtime_ns,
                ino: m.ino,
                nlink: m.nlink,
                managed,
                protected,
            },
        )
    }

    /// A file found by reading a directory (not through an event) may be open for writing
    /// without chartd having seen its IN_MODIFY: it was written before the directory's watch
    /// existed (a new directory, a restart). If it changed in the last [`PRESUMED_WRITING`], it
    /// is held back until it has been quiet that long; a later write sets the real flag.
    pub(crate) fn presume_writing(&mut self, f: FileId, mtime_ns: i64, now: i64) {
        let quiet_at = mtime_ns.saturating_add(PRESUMED_WRITING.as_nanos() as i64);
        if quiet_at > now && self.index.file(f).managed() && !self.index.file(f).held() {
            let wait = std::time::Duration::from_nanos((quiet_at - now) as u64);
            self.hold(f, Some(std::time::Instant::now() + wait));
        }
    }

    /// Handles one event path: finds the deepest directory of it the index knows, and
    /// re-examines the next name below it.
    pub fn refresh(&mut self, abs: &Path, w: &mut Watcher) {
        if abs == self.real_path {
            // The root itself (or its name in the watched parent): also when it is missing, so
            // that its creation is seen at once rather than at the next retry.
            self.check_root(w);
            return;
        }
        if self.dir.is_none() {
            return;
        }
        if let Some((d, _, name)) = self.locate(abs) {
            self.refresh_name(d, name, w);
        }
    }

    fn refresh_name(&mut self, d: DirId, name: &OsStr, w: &mut Watcher) {
        let Some(root) = &self.dir else { return };
        let comps = self.owned_components(d);
        let fd = match root.open_dir_path(&comps) {
            Ok(fd) => fd,
            Err(e) if fsops::is_gone(&e) => {
                // The directory itself went away or was replaced: look at it from its parent.
                if d == ROOT {
                    self.check_root(w);
                } else {
                    let parent = self.index.dir(d).parent;
                    let own = self.index.dir_name(d).to_owned();
                    self.refresh_name(parent, &own, w);
                }
                return;
            }
            Err(_) => return,
        };
        let m = match fsops::stat_at(&fd, name) {
            Ok(m) => m,
            Err(e) if fsops::is_gone(&e) => {
                if d == ROOT && !self.root_unchanged() {
                    // Names vanishing from the root itself: maybe the whole root is being
                    // removed, which no event of its own announces (see `root_unchanged`).
                    self.check_root(w);
                    return;
                }
                self.forget_name(d, name, w);
                return;
            }
            Err(_) => return,
        };
        if m.kind != Kind::Dir {
            let dir_comps: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
            self.upsert_entry(d, &dir_comps, name, &m);
            if let Some(f) = self.index.find_file(d, name) {
                if self.index.file(f).held() {
                    self.unhold(f);
                }
            }
            return;
        }
        if !root.same_mount(&m) {
            self.forget_name(d, name, w);
            return;
        }
        if let Some(f) = self.index.find_file(d, name) {
            self.index.remove_file(f);
            self.held.remove(&f);
        }
        match self.index.find_dir(d, name) {
            Some(x) if self.index.dir(x).ino == m.ino => {}
            other => {
                if let Some(x) = other {
                    self.drop_dir(x, w);
                }
                let child = self.index.add_dir(d, name, m.ino);
                self.walk(child, w, false);
            }
        }
    }

    /// Marks `d` and its subtree unwatched in the index, so the next walk watches them again.
    fn forget_watches(&mut self, d: DirId) {
        for sub in self.index.subtree(d) {
            if self.index.is_watched(sub) {
                self.index.set_watched(sub, false);
            }
        }
    }

    /// After a name was moved away or removed ([`crate::watcher::Ev::Gone`]), notify has dropped
    /// the watches at and below it. If the index (refreshed already) still holds a directory
    /// there, i.e. it was moved back or swapped with another, its subtree is watched and read
    /// again: otherwise the index would believe it watched and miss every later change in it.
    pub fn rewatch(&mut self, abs: &Path, w: &mut Watcher) {
        if self.dir.is_none() {
            return;
        }
        let Some((parent, true, name)) = self.locate(abs) else {
            return;
        };
        let Some(d) = self.index.find_dir(parent, name) else {
            return;
        };
        self.forget_watches(d);
        self.resync_dir(d, w, false);
    }

    /// Drops whatever the index has under `name` in `d` (it is gone from disk).
    fn forget_name(&mut self, d: DirId, name: &OsStr, w: &mut Watcher) {
        if let Some(f) = self.index.find_file(d, name) {
            self.index.remove_file(f);
            self.held.remove(&f);
        }
        if let Some(x) = self.index.find_dir(d, name) {
            self.drop_dir(x, w);
        }
    }

    /// Removes a directory subtree from the index, dropping any watch left on it.
    pub fn drop_dir(&mut self, x: DirId, w: &mut Watcher) {
        for sub in self.index.subtree(x) {
            if self.index.is_watched(sub) {
                let mut abs = self.real_path.clone();
                abs.extend(self.index.dir_components(sub));
                w.unwatch(&abs);
            }
        }
        self.index.remove_dir_tree(x);
    }

    /// Watches the root's parent directory (once), for the root's own name: the root's watch
    /// cannot report the root's removal while chartd holds it open, nor its re-creation. Events
    /// for the parent's other entries do not match the root and are dropped by the owner. The
    /// watch is kept for the daemon's life (another root may share the parent).
    pub fn watch_parent(&mut self, w: &mut Watcher) {
        if self.parent_watched || !w.enabled() {
            return;
        }
        let path = if self.dir.is_some() {
            &self.real_path
        } else {
            &self.cfg.path
        };
        if let Some(parent) = path.parent() {
            self.parent_watched = matches!(w.watch(parent), WatchResult::Watched);
        }
    }

    /// The root itself had an event (deleted, moved, replaced) or could not be opened.
    pub fn check_root(&mut self, w: &mut Watcher) {
        self.watch_parent(w);
        let before = self.dir.as_ref().map(|d| (d.meta.dev, d.meta.ino));
        // Removed or replaced: start from an empty index. Still intact (an event that only
        // looked like root trouble): keep the index; reopening must not wipe it.
        let intact = self.root_unchanged();
        if !intact {
            self.dir = None;
        }
        if self.open_root() {
            let now = self.dir.as_ref().map(|d| (d.meta.dev, d.meta.ino));
            if now != before || !intact {
                self.resync_dir(ROOT, w, false);
            }
        }
    }

    /// IN_MODIFY / IN_CLOSE_WRITE on a file: it is (or is no longer) open for writing.
    pub fn set_writing(&mut self, abs: &Path, writing: bool) {
        let Some((d, true, last)) = self.locate(abs) else {
            return;
        };
        if let Some(f) = self.index.find_file(d, last) {
            self.index.set_writing(f, writing);
            // Held back only because it was being written: back into the queue.
            if !writing && self.held.get(&f) == Some(&None) {
                self.unhold(f);
            }
        }
    }

    /// Whether the index holds nothing at `abs` although it knows the directory `abs` is in:
    /// then a removal event for `abs` has nothing to remove.
    pub fn knows_nothing_of(&self, abs: &Path) -> bool {
        match self.locate(abs) {
            Some((d, true, name)) => {
                self.index.find_file(d, name).is_none() && self.index.find_dir(d, name).is_none()
            }
            _ => false,
        }
    }

    /// Where an event path lands in the index, without allocating: the deepest directory the
    /// index knows on the way, whether that is the path's own parent, and the name below it
    /// (the path's last name when it is the parent). `None` for the root itself and for paths
    /// outside it.
    fn locate<'p>(&self, abs: &'p Path) -> Option<(DirId, bool, &'p OsStr)> {
        let rel = abs.strip_prefix(&self.real_path).ok()?;
        let mut comps = rel.components().peekable();
        let mut d = ROOT;
        while let Some(c) = comps.next() {
            let Component::Normal(name) = c else {
                return None;
            };
            if comps.peek().is_none() {
                return Some((d, true, name));
            }
            match self.index.find_dir(d, name) {
                Some(x) => d = x,
                None => return Some((d, false, name)),
            }
        }
        None
    }

    /// Rescans the directories that have no watch (watch limit reached), retrying to watch
    /// them: this is how limits keep holding, and how full watching comes back once the limit
    /// is raised.
    pub fn rescan_unwatched(&mut self, w: &mut Watcher) {
        if self.dir.is_none() || !w.enabled() {
            return;
        }
        self.watch_limit_hit = false;
        for d in self.index.unwatched_dirs() {
            if self.progress.cancelled() {
                return;
            }
            if self.index.is_live_dir(d) {
                self.resync_dir(d, w, true);
            }
        }
        self.update_degraded();
    }

    pub fn update_degraded(&mut self) {
        if self.dir.is_none() {
            return;
        }
        let unwatched = self.index.dir_count.saturating_sub(self.index.watched_dirs);
        self.degraded = if self.watch_limit_hit && unwatched > 0 {
            Some(format!(
                "{unwatched} directories are not watched (inotify watch limit reached); they are \
                 rescanned periodically. Fix: sysctl -w fs.inotify.max_user_watches=1048576 \
                 (persist it in /etc/sysctl.d/), then `chartd reload`"
            ))
        } else {
            None
        };
    }

    /// Puts a held file back into the eviction queue.
    pub fn unhold(&mut self, f: crate::index::FileId) {
        self.index.set_held(f, false);
        self.held.remove(&f);
    }

    pub fn abs_path(&self, comps: &[&OsStr]) -> PathBuf {
        let mut p = self.cfg.path.clone();
        p.extend(comps);
        p
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
