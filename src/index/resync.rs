//! Mark and sweep: a resync clears the SEEN marks, the walk sets them on everything it finds,
//! and whatever is left unmarked is gone from disk.

use super::*;

impl Index {
    /// Clears the SEEN mark below `d` before a resync walks it again.
    pub fn unmark_subtree(&mut self, d: DirId) {
        for x in self.subtree(d) {
            self.dirs[x as usize].flags &= !flag::SEEN;
            for f in self.files_in(x) {
                self.files[f as usize].flags &= !flag::SEEN;
            }
        }
    }

    pub fn unmark_file(&mut self, f: FileId) {
        self.files[f as usize].flags &= !flag::SEEN;
    }

    pub fn unmark_dir(&mut self, d: DirId) {
        self.dirs[d as usize].flags &= !flag::SEEN;
    }

    pub fn file_seen(&self, f: FileId) -> bool {
        self.files[f as usize].flags & flag::SEEN != 0
    }

    pub fn is_live_dir(&self, d: DirId) -> bool {
        self.dirs
            .get(d as usize)
            .is_some_and(|n| n.flags & flag::LIVE != 0)
    }

    pub fn set_dir_ino(&mut self, d: DirId, ino: u64) {
        self.dirs[d as usize].ino = ino;
    }

    /// Live directories without an inotify watch.
    pub fn unwatched_dirs(&self) -> Vec<DirId> {
        self.dirs
            .iter()
            .enumerate()
            .filter(|(_, n)| n.flags & (flag::LIVE | flag::WATCHED) == flag::LIVE)
            .map(|(i, _)| i as DirId)
            .collect()
    }

    pub fn mark_dir_seen(&mut self, d: DirId) {
        self.dirs[d as usize].flags |= flag::SEEN;
    }

    pub fn dir_seen(&self, d: DirId) -> bool {
        self.dirs[d as usize].flags & flag::SEEN != 0
    }
}
