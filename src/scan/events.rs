//! Applying one event path: find the deepest directory of it the index knows, and look again
//! at the next name below it (an event path is only a hint of *where* to look; what the index
//! records always comes from a fresh `statx`). Also the root's own trouble (removed, replaced)
//! and the writers' state.
//!
//! May touch: the root's index (through `RootState` and `Index` methods), the disk read-only
//! through `fsops` (fd-relative, no symlinks), and the root's watches through the `Watcher` it is
//! given; reopening a vanished root goes through `root`.

use crate::fsops::{self, Kind};
use crate::index::{DirId, ROOT};
use crate::root::RootState;
use crate::watcher::Watcher;
use std::ffi::OsStr;
use std::path::{Component, Path};

impl RootState {
    /// Looks again at the paths an eviction pass found different from the index. A file that
    /// turns out unchanged (it changed back, or the disk disagrees in a way a `statx` does
    /// not show) is left alone for a while rather than tried again at once.
    pub fn apply_stale(&mut self, w: &mut Watcher) {
        for s in std::mem::take(&mut self.stale) {
            self.refresh(&s.path, w);
            let Some(e) = s.expect else { continue };
            let Some((d, true, name)) = self.locate(&s.path) else {
                continue;
            };
            if let Some(f) = self.index.find_file(d, name) {
                let slot = *self.index.file(f);
                if slot.ino == e.ino && slot.size == e.size && slot.mtime_ns == e.mtime_ns {
                    self.index.hold(
                        f,
                        crate::index::HoldReason::Changed,
                        std::time::Instant::now() + std::time::Duration::from_secs(30),
                    );
                }
            }
        }
    }

    /// Handles one event path: finds the deepest directory of it the index knows, and
    /// re-examines the next name below it.
    pub fn refresh(&mut self, abs: &Path, w: &mut Watcher) {
        let before = self.index.total_bytes;
        self.refresh_path(abs, w);
        let delta = self.index.total_bytes as i64 - before as i64;
        if delta != 0 {
            self.capacity.on_write(delta, std::time::SystemTime::now());
        }
    }

    fn refresh_path(&mut self, abs: &Path, w: &mut Watcher) {
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
        let comps = self.index.dir_path(d);
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
            let f = self.upsert_entry(d, &dir_comps, name, &m);
            // A changed file is looked at afresh (a lock released, a failure fixed); a writer's
            // hold stays until the writer is quiet.
            if self
                .index
                .hold_of(f)
                .is_some_and(|h| h.reason != crate::index::HoldReason::Writing)
            {
                self.index.unhold(f);
            }
            return;
        }
        if !root.same_mount(&m) {
            self.forget_name(d, name, w);
            return;
        }
        if let Some(f) = self.index.find_file(d, name) {
            self.index.remove_file(f);
        }
        match self.index.find_dir(d, name) {
            Some(x) if self.index.dir(x).ino == m.ino => {}
            other => {
                if let Some(x) = other {
                    self.drop_dir(x, w);
                }
                let child = self.index.add_dir(d, name, m.ino);
                self.crawl(child, false, w);
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
        }
        if let Some(x) = self.index.find_dir(d, name) {
            self.drop_dir(x, w);
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

    /// IN_MODIFY / IN_CLOSE_WRITE on a file: it is being written (since now), or its writer
    /// closed it.
    pub fn set_writing(&mut self, abs: &Path, writing: bool) {
        let Some((d, true, last)) = self.locate(abs) else {
            return;
        };
        if let Some(f) = self.index.find_file(d, last) {
            if writing {
                self.index.mark_writing(f, std::time::Instant::now());
            } else {
                self.index.clear_writing(f);
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
}
