//! Mark and sweep: a resync clears the SEEN marks, the walk sets them on everything it finds,
//! and whatever is left unmarked is gone from disk.
//!
//! May touch: the SEEN marks of the index's files and directories; never the disk (the walk is the
//! caller's).

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

    /// Records the identity and mtime of a directory about to be read. A directory modified
    /// within the last 50 ms is recorded as "unknown" (i64::MIN): timestamps are coarse (a
    /// clock tick), so a change right after this read could leave the mtime unchanged.
    pub fn set_dir_read(&mut self, d: DirId, ino: u64, mtime_ns: i64, now_ns: i64) {
        self.set_dir_ino(d, ino);
        let n = &mut self.dirs[d as usize];
        n.read_mtime_ns = if now_ns.saturating_sub(mtime_ns) < 50_000_000 {
            i64::MIN
        } else {
            mtime_ns
        };
    }

    /// Live directories with an inotify watch.
    pub fn watched_dir_ids(&self) -> Vec<DirId> {
        self.dirs
            .iter()
            .enumerate()
            .filter(|(_, n)| n.flags & (flag::LIVE | flag::WATCHED) == flag::LIVE | flag::WATCHED)
            .map(|(i, _)| i as DirId)
            .collect()
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

    pub fn mark_file_seen(&mut self, f: FileId) {
        self.files[f as usize].flags |= flag::SEEN;
    }

    pub fn mark_dir_seen(&mut self, d: DirId) {
        self.dirs[d as usize].flags |= flag::SEEN;
    }

    pub fn dir_seen(&self, d: DirId) -> bool {
        self.dirs[d as usize].flags & flag::SEEN != 0
    }
}
