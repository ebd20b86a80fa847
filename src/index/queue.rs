//! The eviction queue: which managed file goes next.
//!
//! An entry of a `PriorityQueue` costs about 60 bytes at a million entries (the key, the id,
//! the stored hash, an index slot and two heap positions): more than the file's own slot.
//! Chart trees hold a handful of files per directory (four per `SYMBOL_INTERVAL/`), so the
//! queue has two levels:
//!
//! - a *small* directory (fewer than [`BIG_AT`] files) is one entry of `dir_queue`, keyed by
//!   its best candidate, which is found again by scanning its few files when it is needed;
//! - a *big* directory's files are entries of `file_queue`, one each, so that a flat directory
//!   of 100k files is never scanned.
//!
//! [`Index::q_peek`] takes the better of the two tops. At four files per directory this cuts
//! the queue's memory to a quarter and keeps every operation O(log n) plus a scan of at most
//! `BIG_AT` slots.
//!
//! The invariant: a small directory is in `dir_queue` if and only if it holds a queued file
//! (`FileSlot::in_queue`), with the greatest key among them; a queued file of a big directory
//! is in `file_queue` with its key. Every change to a file's key or queued state goes through
//! `q_insert` / `q_remove`, every change to a directory's file count through `q_count`.
//!
//! The queues' key, [`QKey`], is defined here too: one `u64` whose order is the eviction order.
//!
//! May touch: the index's two eviction queues and the queued flags of its file slots; never the
//! disk.

use super::*;

/// A directory turns big at this many files, and small again at [`SMALL_AT`]: the gap keeps a
/// directory that hovers around the threshold from moving its files back and forth.
const BIG_AT: u32 = 32;
const SMALL_AT: u32 = 16;

/// The queue's key: one `u64` whose order is the eviction order (the greatest goes first).
///
/// - the top 2 bits are a band: files with an age limit (2) go before files without one (1),
///   which go before each group's `keep_newest` files (0);
/// - the next 52 bits are a time, inverted so that the soonest goes first: the file's expiry
///   (mtime plus its group's `max_age`) in band 2, its mtime in bands 1 and 0, in
///   microseconds since 1970 (clamped to 1970..2112);
/// - the low 10 bits a logarithmic size class (6 bits of exponent, 4 of mantissa): of two
///   files due in the same microsecond, the larger goes first.
///
/// With no rules every file has the same `max_age`, so expiry order is mtime order: the
/// oldest file goes first, as it always did. Why not a tuple: the queue stores the key next
/// to a hash and the id for every queued file, and one `u64` saves 8 bytes per file at
/// millions of files. The slot keeps the exact mtime and size; the key only orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct QKey(u64);

const TIME_BITS: u32 = 52;

/// Bands of [`QKey`].
pub(super) mod band {
    pub const KEPT: u64 = 0;
    pub const NO_AGE: u64 = 1;
    pub const AGED: u64 = 2;
}

impl QKey {
    pub(super) fn new(band: u64, at_ns: i64, size: u64) -> QKey {
        let max = (1u64 << TIME_BITS) - 1;
        let t = (at_ns.max(0) / 1000).unsigned_abs().min(max);
        QKey(band << 62 | (max - t) << 10 | size_class(size))
    }
}

/// A 10-bit class that never decreases as `size` grows.
fn size_class(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let bits = 64 - u64::from(size.leading_zeros()); // 1..=64
    let mantissa = if bits > 5 {
        (size >> (bits - 5)) & 15
    } else {
        (size << (5 - bits)) & 15
    };
    (bits - 1) << 4 | mantissa
}

impl Index {
    /// File `id`, queued by its flags, enters the queue.
    pub(super) fn q_insert(&mut self, id: FileId) {
        let s = self.files[id as usize];
        let key = self.key_of(&s);
        if self.is_big(s.dir) {
            self.file_queue.push(id, key);
        } else if self.dir_queue.get_priority(&s.dir).is_none_or(|&k| k < key) {
            self.dir_queue.push(s.dir, key);
        }
    }

    /// File `id` leaves the queue, whatever its flags say at this moment (callers withdraw a
    /// file before they change its key or flags).
    pub(super) fn q_remove(&mut self, id: FileId) {
        let s = self.files[id as usize];
        if self.is_big(s.dir) {
            self.file_queue.remove(&id);
            return;
        }
        // Only the directory's best candidate leaving changes the directory's key.
        if self.dir_queue.get_priority(&s.dir) == Some(&self.key_of(&s)) {
            match self.best_in(s.dir, id) {
                Some((_, key)) => {
                    self.dir_queue.push(s.dir, key);
                }
                None => {
                    self.dir_queue.remove(&s.dir);
                }
            }
        }
    }

    /// The next eviction candidate.
    ///
    /// `&mut`: should a directory's entry ever disagree with its files (it cannot, as long as
    /// every change goes through `q_insert` / `q_remove` / `q_count`), the entry is corrected
    /// here rather than left on top, where it would hide every other small directory's files
    /// from eviction. Debug builds (the tests) fail loudly instead.
    pub(super) fn q_peek(&mut self) -> Option<FileId> {
        let from_files = self.file_queue.peek().map(|(&f, &k)| (f, k));
        let from_dirs = loop {
            let Some((&d, &key)) = self.dir_queue.peek() else {
                break None;
            };
            match self.best_in(d, NONE) {
                Some((f, real)) if real == key => break Some((f, key)),
                Some((_, real)) => {
                    debug_assert!(false, "directory {d} queued under a stale key");
                    self.dir_queue.push(d, real);
                }
                None => {
                    debug_assert!(false, "directory {d} queued without a queued file");
                    self.dir_queue.remove(&d);
                }
            }
        };
        match (from_files, from_dirs) {
            (Some(a), Some(b)) => Some(if b.1 > a.1 { b.0 } else { a.0 }),
            (a, b) => a.or(b).map(|(f, _)| f),
        }
    }

    /// A file slot was linked into `d` (`added`) or unlinked from it, out of the queue: keeps
    /// the directory's count and moves it between the levels at the thresholds.
    pub(super) fn q_count(&mut self, d: DirId, added: bool) {
        let n = &mut self.dirs[d as usize];
        n.n_files = if added {
            n.n_files.saturating_add(1)
        } else {
            n.n_files.saturating_sub(1)
        };
        let (count, big) = (n.n_files, n.flags & flag::BIG != 0);
        if !big && count >= BIG_AT {
            self.dir_queue.remove(&d);
            self.dirs[d as usize].flags |= flag::BIG;
            let mut f = self.dirs[d as usize].first_file;
            while f != NONE {
                let s = self.files[f as usize];
                if s.in_queue() {
                    let key = self.key_of(&s);
                    self.file_queue.push(f, key);
                }
                f = s.next;
            }
        } else if big && count <= SMALL_AT {
            let mut f = self.dirs[d as usize].first_file;
            while f != NONE {
                self.file_queue.remove(&f);
                f = self.files[f as usize].next;
            }
            self.dirs[d as usize].flags &= !flag::BIG;
            if let Some((_, key)) = self.best_in(d, NONE) {
                self.dir_queue.push(d, key);
            }
        }
    }

    /// A directory leaves the index: whatever entry it still has goes too.
    pub(super) fn q_forget_dir(&mut self, d: DirId) {
        self.dir_queue.remove(&d);
    }

    fn is_big(&self, d: DirId) -> bool {
        self.dirs[d as usize].flags & flag::BIG != 0
    }

    /// The queued file of `d` that goes first, leaving out `except` (a scan of `d`'s files:
    /// only ever called on small directories, or once per peek).
    fn best_in(&self, d: DirId, except: FileId) -> Option<(FileId, QKey)> {
        let mut best: Option<(FileId, QKey)> = None;
        let mut f = self.dirs[d as usize].first_file;
        while f != NONE {
            let s = &self.files[f as usize];
            if f != except && s.in_queue() {
                let k = self.key_of(s);
                if best.is_none_or(|(_, b)| k > b) {
                    best = Some((f, k));
                }
            }
            f = s.next;
        }
        best
    }

    /// Heap bytes of both queues (capacity × the entry, its index slot and heap positions).
    pub(super) fn queue_heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u64, u32, QKey)>() + 8 + 9 + 16;
        (self.file_queue.capacity() + self.dir_queue.capacity()) * entry
    }
}
