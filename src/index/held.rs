//! Why a managed file is out of the eviction queue for now, and when to look at it again.
//!
//! This state lives here, beside the file slots, and dies with them: removing a file, a
//! subtree or the whole index (a replaced root) removes its hold and its writer record too,
//! so no file id outlives its file anywhere else in chartd (the review behind issue #7 found
//! an eviction panicking on a hold that had outlived the index it was about).
//!
//! Every hold has a retry time, kept in a priority queue so that the owner's timer finds the
//! next one in O(1) and releases due ones in O(log n) each. A file being written is held until
//! it has been quiet for the writer timeout: a lost `IN_CLOSE_WRITE` (an overflow) or a
//! `truncate(2)` (which has none) can delay its eviction, never block it for good.
//!
//! May touch: the index's holds, writer records and their retry queue; never the disk.

use super::*;
use std::cmp::Reverse;
use std::time::Instant;

/// Why a file is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// Written to recently (IN_MODIFY, or found modified by a directory read).
    Writing,
    /// A writer holds a BSD `flock` on it.
    Locked,
    /// Deleting it failed (EACCES, EROFS, EIO...): retried with a backoff.
    Failing,
    /// chartd cannot open it to check its identity and lock: never deleted blind.
    Unreadable,
    /// The name changed under a deletion and came back the same: looked at again later.
    Changed,
    /// Inside its group's grace period while a limit presses and files behind it may go
    /// (rules give groups different ages): back in the queue when its grace ends.
    Grace,
}

#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub reason: HoldReason,
    pub retry: Instant,
}

/// Holds, retries and writer records of one index.
#[derive(Debug, Default)]
pub(super) struct Holds {
    held: HashMap<FileId, Hold>,
    retries: PriorityQueue<FileId, Reverse<Instant>, DefaultHashBuilder>,
    /// Files flagged WRITING, and when they last changed.
    writers: HashMap<FileId, Instant>,
    /// Directories eviction emptied, and when to prune them (see `evict/delete.rs`).
    prunes: PriorityQueue<DirId, Reverse<Instant>, DefaultHashBuilder>,
}

impl Holds {
    pub(super) fn held_ids(&self) -> impl Iterator<Item = FileId> + '_ {
        self.held.keys().copied()
    }

    pub(super) fn heap_bytes(&self) -> usize {
        (self.held.capacity() + self.writers.capacity()) * 40
            + (self.retries.capacity() + self.prunes.capacity()) * 48
    }
}

impl Index {
    /// Takes a file out of the eviction queue until `retry` (or until [`Index::unhold`]).
    pub fn hold(&mut self, id: FileId, reason: HoldReason, retry: Instant) {
        if !self.is_live(id) {
            return;
        }
        self.set_held(id, true);
        self.holds.held.insert(id, Hold { reason, retry });
        self.holds.retries.push(id, Reverse(retry));
    }

    /// Puts a held file back into the eviction queue.
    pub fn unhold(&mut self, id: FileId) {
        if self.holds.held.remove(&id).is_some() {
            self.holds.retries.remove(&id);
        }
        if self.is_live(id) {
            self.set_held(id, false);
        }
    }

    pub fn hold_of(&self, id: FileId) -> Option<Hold> {
        self.holds.held.get(&id).copied()
    }

    /// Removes and returns the held files whose retry time has come.
    pub fn due_holds(&mut self, now: Instant) -> Vec<FileId> {
        let mut due = Vec::new();
        while let Some((&id, &Reverse(t))) = self.holds.retries.peek() {
            if t > now {
                break;
            }
            self.holds.retries.pop();
            due.push(id);
        }
        due
    }

    /// The earliest retry of a held file.
    pub fn next_hold_retry(&self) -> Option<Instant> {
        self.holds.retries.peek().map(|(_, r)| r.0)
    }

    /// Every hold, for the status figures (the held set is small: writers, locks, failures).
    pub fn holds(&self) -> impl Iterator<Item = (FileId, Hold)> + '_ {
        self.holds.held.iter().map(|(&id, &h)| (id, h))
    }

    /// The file changed at `at` (IN_MODIFY, or a recent mtime found by a directory read): it
    /// counts as being written until it has been quiet for the writer timeout.
    pub fn mark_writing(&mut self, id: FileId, at: Instant) {
        if !self.is_live(id) {
            return;
        }
        self.files[id as usize].flags |= flag::WRITING;
        let last = self.holds.writers.entry(id).or_insert(at);
        if at > *last {
            *last = at;
        }
    }

    /// The writer closed it, or it has been quiet long enough: no longer being written. A
    /// hold taken only because it was being written ends too.
    pub fn clear_writing(&mut self, id: FileId) {
        self.holds.writers.remove(&id);
        if self.is_live(id) {
            self.files[id as usize].flags &= !flag::WRITING;
            if self
                .hold_of(id)
                .is_some_and(|h| h.reason == HoldReason::Writing)
            {
                self.unhold(id);
            }
        }
    }

    /// When the file being written last changed.
    pub fn last_write(&self, id: FileId) -> Option<Instant> {
        self.holds.writers.get(&id).copied()
    }

    /// Prune the (emptied) directory `d` at `at`, unless something happens to it first.
    pub fn schedule_prune(&mut self, d: DirId, at: Instant) {
        if self.is_live_dir(d) && d != ROOT {
            self.holds.prunes.push(d, Reverse(at));
        }
    }

    /// Removes and returns the directories whose prune is due.
    pub fn due_prunes(&mut self, now: Instant) -> Vec<DirId> {
        let mut due = Vec::new();
        while let Some((&d, &Reverse(t))) = self.holds.prunes.peek() {
            if t > now {
                break;
            }
            self.holds.prunes.pop();
            due.push(d);
        }
        due
    }

    pub fn next_prune(&self) -> Option<Instant> {
        self.holds.prunes.peek().map(|(_, r)| r.0)
    }

    /// The directory left the index: so does its prune.
    pub(super) fn forget_prune(&mut self, d: DirId) {
        self.holds.prunes.remove(&d);
    }

    /// Drops whatever state `id` had here (the file left the index).
    pub(super) fn forget_holds(&mut self, id: FileId) {
        self.holds.held.remove(&id);
        self.holds.retries.remove(&id);
        self.holds.writers.remove(&id);
    }
}
