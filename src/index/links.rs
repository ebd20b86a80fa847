//! The running totals, counted once per inode.
//!
//! A file with several hard links under a root is one file on disk: `du` counts it once, and
//! so does chartd, at every level (root and group), whenever the links were made (before the
//! crawl or while chartd runs). Exactly one indexed name of each managed inode carries the
//! inode's contribution (the `COUNTED` flag): the name indexed first, and when that name goes,
//! another remaining one (so the inode moves to that name's group). Finding the other names
//! is a lookup in `by_ino`, a table of bare ids (about 5 bytes a file) hashed by inode.
//!
//! Every change to a file's totals goes through [`Index::account`].
//!
//! May touch: the index's totals (root and group) and its `by_ino` table; never the disk.

use super::*;

impl Index {
    fn ino_hash(&self, ino: u64) -> u64 {
        self.hasher.hash_one(ino)
    }

    /// Another managed name of inode `ino` (not `except`) that carries its contribution, or,
    /// with `counted == false`, any other managed name of it.
    fn other_link(&self, ino: u64, except: FileId, counted: bool) -> Option<FileId> {
        self.by_ino
            .iter_hash(self.ino_hash(ino))
            .copied()
            .find(|&f| {
                let s = &self.files[f as usize];
                f != except && s.ino == ino && (!counted || s.flags & flag::COUNTED != 0)
            })
    }

    /// Adds (`add`) or withdraws one name's share of the totals and its place in the queue.
    pub(super) fn account(&mut self, id: FileId, add: bool) {
        self.changes = self.changes.wrapping_add(1);
        let s = self.files[id as usize];
        if !s.managed() {
            self.unmanaged = if add {
                self.unmanaged.saturating_add(1)
            } else {
                self.unmanaged.saturating_sub(1)
            };
            return;
        }
        let h = self.ino_hash(s.ino);
        if add {
            let files = &self.files;
            let hasher = &self.hasher;
            self.by_ino
                .insert_unique(h, id, |&f| hasher.hash_one(files[f as usize].ino));
            match self.other_link(s.ino, id, true) {
                None => {
                    self.files[id as usize].flags |= flag::COUNTED;
                    self.contribute(id, true);
                }
                Some(c) if self.files[c as usize].size != s.size => {
                    // Another name of a counted inode, seen with a new size: the inode changed,
                    // and so did every name of it (inotify reports a write under one name only).
                    self.resize_links(s.ino, id, s.size);
                }
                Some(_) => {}
            }
            self.keep_consider(id);
            if s.in_queue() {
                self.q_insert(id);
            }
            // At or above the (possibly stale) maximum: certainly the newest now. This keeps the
            // common "newest file closed again" update O(1) instead of a rescan.
            if self.newest.is_none_or(|n| s.mtime_ns >= n) {
                self.newest = Some(s.mtime_ns);
                self.newest_stale = false;
            }
        } else {
            if s.in_queue() {
                self.q_remove(id);
            }
            self.keep_release(id);
            if let Ok(e) = self.by_ino.find_entry(h, |&x| x == id) {
                e.remove();
            }
            if s.flags & flag::COUNTED != 0 {
                self.contribute(id, false);
                self.files[id as usize].flags &= !flag::COUNTED;
                if let Some(o) = self.other_link(s.ino, id, false) {
                    self.files[o as usize].flags |= flag::COUNTED;
                    self.contribute(o, true);
                    // The inode's kept place (if any) passes to this name: the group is looked
                    // at again before the next candidate is chosen (see `retention.rs`).
                    self.keep_recheck(o);
                }
            }
            if self.newest == Some(s.mtime_ns) {
                self.newest_stale = true;
            }
        }
    }

    /// Every other name of inode `ino` (not `except`) takes the inode's new size; the counted
    /// one carries it into the totals.
    fn resize_links(&mut self, ino: u64, except: FileId, size: u64) {
        let names: Vec<FileId> = self
            .by_ino
            .iter_hash(self.ino_hash(ino))
            .copied()
            .filter(|&f| f != except && self.files[f as usize].ino == ino)
            .collect();
        for f in names {
            let queued = self.files[f as usize].in_queue();
            let counted = self.is_counted(f);
            if queued {
                self.q_remove(f);
            }
            if counted {
                self.contribute(f, false);
            }
            self.files[f as usize].size = size;
            if counted {
                self.contribute(f, true);
            }
            if queued {
                self.q_insert(f);
            }
        }
    }

    /// The inode's share: one file and its bytes, in the root's and its group's totals.
    pub(super) fn contribute(&mut self, id: FileId, add: bool) {
        let s = self.files[id as usize];
        let g = self.dirs[s.dir as usize].group as usize;
        let protected = s.protected();
        if add {
            self.total_files += 1;
            self.total_bytes = self.total_bytes.saturating_add(s.size);
            self.mtime_sum_ns += i128::from(s.mtime_ns);
            self.dirs[g].g_files = self.dirs[g].g_files.saturating_add(1);
            self.dirs[g].g_bytes = self.dirs[g].g_bytes.saturating_add(s.size);
            if protected {
                self.protected_files += 1;
                self.protected_bytes = self.protected_bytes.saturating_add(s.size);
            }
            self.check_quota(g as DirId);
        } else {
            self.total_files = self.total_files.saturating_sub(1);
            self.total_bytes = self.total_bytes.saturating_sub(s.size);
            self.mtime_sum_ns -= i128::from(s.mtime_ns);
            self.dirs[g].g_files = self.dirs[g].g_files.saturating_sub(1);
            self.dirs[g].g_bytes = self.dirs[g].g_bytes.saturating_sub(s.size);
            if protected {
                self.protected_files = self.protected_files.saturating_sub(1);
                self.protected_bytes = self.protected_bytes.saturating_sub(s.size);
            }
        }
    }

    /// The mean mtime of the counted managed files (each inode once), from the running sum:
    /// O(1). `None` without files.
    pub fn mean_mtime_ns(&self) -> Option<i64> {
        let n = i128::from(self.total_files);
        (n > 0).then(|| (self.mtime_sum_ns / n).clamp(i64::MIN.into(), i64::MAX.into()) as i64)
    }

    /// Whether this name carries its inode's share of the totals (false for the other names
    /// of a multiply-linked file, and for unmanaged files).
    pub fn is_counted(&self, id: FileId) -> bool {
        self.files[id as usize].flags & flag::COUNTED != 0
    }
}
