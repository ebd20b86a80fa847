//! The inotify watches of a root: one per directory, added before the directory is read,
//! dropped only when no other indexed directory shares its inode (inotify has one watch per
//! inode, and a directory renamed while events were lost is briefly indexed under both names),
//! checked against what the kernel holds after every resync, and the degraded state when the
//! watch limit leaves directories without one.
//!
//! May touch: the root's watches (through the `Watcher` it is given), the watched flags of its
//! index, and `/proc/self/fd` and `/proc/self/fdinfo` (read, `kernel_watches`).

use crate::index::DirId;
use crate::root::RootState;
use crate::watcher::{WatchResult, Watcher};
use std::ffi::OsString;

impl RootState {
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

    /// Marks `d` and its subtree unwatched in the index, so the next walk watches them again.
    pub(crate) fn forget_watches(&mut self, d: DirId) {
        for sub in self.index.subtree(d) {
            if self.index.is_watched(sub) {
                self.index.set_watched(sub, false);
            }
        }
    }

    /// Removes a directory subtree from the index, dropping any watch left on it.
    pub fn drop_dir(&mut self, x: DirId, w: &mut Watcher) {
        for sub in self.index.subtree(x) {
            // Another indexed directory with the same inode (this one's new name) shares the
            // kernel's watch: unwatching this name would remove it (issue #7, item 3).
            let shared = self.index.watched_with_ino(self.index.dir(sub).ino) > 1;
            if self.index.is_watched(sub) && !shared {
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
}

/// The (device, inode) of every directory this process's inotify instance watches, read from
/// `/proc/self/fdinfo` (`inotify wd:N ino:HEX sdev:HEX ...`). `None` where that is not
/// readable (no /proc, no inotify instance yet). Devices are in the kernel's internal encoding
/// (`major << 20 | minor`).
pub fn kernel_watches() -> Option<std::collections::HashSet<(u64, u64)>> {
    let fd = std::fs::read_dir("/proc/self/fd").ok()?.find_map(|e| {
        let e = e.ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        (target.as_os_str() == "anon_inode:inotify").then(|| e.file_name())
    })?;
    let text = std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(fd)).ok()?;
    let mut set = std::collections::HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("inotify wd:")) {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| u64::from_str_radix(v, 16).ok())
        };
        if let (Some(ino), Some(dev)) = (field("ino:"), field("sdev:")) {
            set.insert((dev, ino));
        }
    }
    Some(set)
}

impl RootState {
    /// Compares the index's watched directories with what the kernel holds, and re-adds the
    /// watches the kernel lost (issue #7, item 3: a watch silently gone while status counted
    /// it). Runs after every resync.
    pub fn check_watches(
        &mut self,
        kernel: &std::collections::HashSet<(u64, u64)>,
        w: &mut Watcher,
    ) {
        let Some(root) = &self.dir else { return };
        let (major, minor) = root.meta.dev;
        let dev = (u64::from(major) << 20) | u64::from(minor);
        let mut lost = Vec::new();
        for d in self.index.watched_dir_ids() {
            if !kernel.contains(&(dev, self.index.dir(d).ino)) {
                lost.push(d);
            }
        }
        let held = self
            .index
            .watched_inos()
            .filter(|&ino| kernel.contains(&(dev, ino)))
            .count() as u64;
        self.kernel_watches = Some(held);
        if lost.is_empty() {
            return;
        }
        tracing::warn!(
            root = %self.cfg.path.display(),
            "{} directories were counted as watched but the kernel held no watch for them; \
             watching them again and rereading them",
            lost.len()
        );
        self.watch_repairs = self.watch_repairs.saturating_add(lost.len() as u64);
        for d in lost {
            if self.index.is_live_dir(d) {
                self.index.set_watched(d, false);
                self.resync_dir(d, w, true);
            }
        }
        self.update_degraded();
    }
}
