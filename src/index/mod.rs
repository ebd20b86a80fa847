//! The in-memory index of one root: every entry under it, the managed files ordered by
//! (mtime, size) in an indexed priority queue, and running totals kept up to date on every
//! change so that stats are O(1).
//!
//! Memory matters (millions of files), so nothing here stores a path: directories form a tree
//! of [`DirNode`]s, files are [`FileSlot`]s in a slab linked into their directory, names live in
//! one byte arena, and the two lookup tables ((dir, name) → id) store bare `u32` ids, hashing
//! through the slabs.
//!
//! The index only records what the caller tells it; it never touches the disk.
//!
//! May touch: only its own memory, and the compiled `Rules` it is given (read); never the disk, the
//! watcher, eviction or the owner.

mod dirs;
mod held;
mod links;
mod names;
mod queue;
mod resync;
mod retention;

pub use dirs::begin_kernel_read;
pub use held::{Hold, HoldReason};

use crate::rules::{RuleId, Rules};
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use names::{NameRef, Names};
use priority_queue::PriorityQueue;
use queue::{band, QKey};
use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// With rules, the oldest file's mtime is found by a scan, at most this often.
const OLDEST_SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Every index gets a new epoch: an id kept across a call that may rebuild the index (a
/// replaced root) is checked against it before it is used again.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

pub type FileId = u32;
pub type DirId = u32;
/// "No id": the end of a linked list, the root's parent.
pub const NONE: u32 = u32::MAX;
/// The root directory is always node 0.
pub const ROOT: DirId = 0;

/// A queued file's eviction data, as [`Index::peek`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prio {
    pub mtime_ns: i64,
    pub size: u64,
    /// When it may be deleted for its age (its group's `max_age` after its mtime); `None`:
    /// no age limit, or one of its group's `keep_newest` files.
    pub expires_ns: Option<i64>,
    /// Its group's grace.
    pub grace_ns: i64,
    /// One of its group's `keep_newest` files (goes only when nothing else is left).
    pub kept: bool,
}

mod flag {
    pub const LIVE: u8 = 1;
    /// Matches include and not exclude: counted in the totals, may be evicted.
    pub const MANAGED: u8 = 2;
    /// Matches `protect`: counted, never evicted (kept out of the queue).
    pub const PROTECTED: u8 = 4;
    /// Modified and not yet closed by its writer: never evicted.
    pub const WRITING: u8 = 8;
    /// Out of the queue for now (locked, failing, being written); see `set_held`.
    pub const HELD: u8 = 16;
    /// Seen by the current resync (mark and sweep).
    pub const SEEN: u8 = 32;
    /// Carries its inode's share of the totals (see `links.rs`).
    pub const COUNTED: u8 = 64;
    /// Directory: has an inotify watch.
    pub const WATCHED: u8 = 128;
    /// Directory: big enough that its files are queued one by one (see `queue.rs`).
    pub const BIG: u8 = 2;
    /// File: one of its group's `keep_newest` newest files (see `retention.rs`). Shares its
    /// bit with `WATCHED`, which only directories carry.
    pub const KEEP: u8 = 128;
    /// Group directory: over its quota, listed in `Index::over_quota` (see `retention.rs`).
    pub const OVER: u8 = 4;
    /// Group directory: lost a kept file, listed in `Index::keep_dirty` (see `retention.rs`).
    pub const KEEP_DIRTY: u8 = 8;
}

/// One file. `packed(4)`: the three `u64`s would otherwise pad the slot from 44 to 48 bytes
/// (every field is read by value, never borrowed, except the byte-aligned `name`).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub struct FileSlot {
    pub dir: DirId,
    next: FileId,
    prev: FileId,
    name: NameRef,
    flags: u8,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

const _: () = assert!(std::mem::size_of::<FileSlot>() == 44);

impl FileSlot {
    pub fn managed(&self) -> bool {
        self.flags & flag::MANAGED != 0
    }
    pub fn protected(&self) -> bool {
        self.flags & flag::PROTECTED != 0
    }
    pub fn writing(&self) -> bool {
        self.flags & flag::WRITING != 0
    }
    pub fn held(&self) -> bool {
        self.flags & flag::HELD != 0
    }
    fn in_queue(&self) -> bool {
        self.flags & (flag::MANAGED | flag::PROTECTED | flag::HELD) == flag::MANAGED
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DirNode {
    pub parent: DirId,
    name: NameRef,
    flags: u8,
    first_file: FileId,
    first_child: DirId,
    next_sib: DirId,
    prev_sib: DirId,
    /// The top-level directory this one belongs to (ROOT for the root itself).
    pub group: DirId,
    pub ino: u64,
    /// The directory's mtime when chartd last read it (i64::MIN: never read). A quick resync
    /// rereads only directories whose mtime moved since.
    pub read_mtime_ns: i64,
    /// File slots linked into this directory (any kind), for the queue's two levels.
    n_files: u32,
    /// Managed files and their bytes in this group (meaningful on group directories and ROOT).
    pub g_files: u32,
    pub g_bytes: u64,
    /// The retention rule this group follows (meaningful on group directories and ROOT).
    pub rule: RuleId,
}

/// What the caller learnt about a file from `statx`.
#[derive(Debug, Clone, Copy)]
pub struct FileInfo {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub managed: bool,
    pub protected: bool,
}

/// What [`Index::managed_newer_than`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NewerThan {
    pub files: u64,
    pub bytes: u64,
    /// The oldest mtime among them.
    pub oldest_ns: Option<i64>,
}

#[derive(Debug)]
pub struct Index {
    files: Vec<FileSlot>,
    free_files: Vec<FileId>,
    dirs: Vec<DirNode>,
    free_dirs: Vec<DirId>,
    names: Names,
    by_name: HashTable<FileId>,
    dir_by_name: HashTable<DirId>,
    hasher: DefaultHashBuilder,
    /// The eviction queue, in two levels (see `queue.rs`): files of big directories, and
    /// small directories keyed by their best file.
    file_queue: PriorityQueue<FileId, QKey, DefaultHashBuilder>,
    dir_queue: PriorityQueue<DirId, QKey, DefaultHashBuilder>,
    /// Managed files by inode (see `links.rs`).
    by_ino: HashTable<FileId>,
    /// Watched directories per inode (see `Index::watched_with_ino`), with the watch epoch
    /// (see `dirs::begin_kernel_read`) in which the inode's watch was first counted.
    watched_inos: HashMap<u64, (u32, u32)>,
    holds: held::Holds,
    /// The root's retention rules (see `retention.rs`).
    rules: Arc<Rules>,
    /// Groups with `keep_newest`: their kept files, oldest first (at most N each).
    keep: HashMap<DirId, Vec<FileId>>,
    /// Groups that lost a kept file and may have to promote another one.
    keep_dirty: Vec<DirId>,
    /// The last scan for the oldest file (see [`Index::oldest_mtime`]).
    oldest_scan: Option<(std::time::Instant, Option<i64>)>,
    /// Groups found over their quota, for eviction to trim (deduplicated by `flag::OVER`).
    over_quota: Vec<DirId>,
    epoch: u64,
    /// Bumped by every change to the files' totals (see [`Index::changes`]).
    changes: u64,
    /// Managed files and bytes, each inode once.
    pub total_files: u64,
    pub total_bytes: u64,
    /// The sum of their mtimes (for the mean age; an i128 cannot overflow).
    pub mtime_sum_ns: i128,
    pub unmanaged: u64,
    pub protected_files: u64,
    pub protected_bytes: u64,
    pub watched_dirs: u64,
    pub dir_count: u64,
    /// Newest mtime among managed files; recomputed lazily after the newest one leaves.
    newest: Option<i64>,
    newest_stale: bool,
}

impl Index {
    pub fn new(root_ino: u64) -> Index {
        Index::with_rules(root_ino, Arc::new(Rules::default()))
    }

    /// An empty index whose groups follow `rules`.
    pub fn with_rules(root_ino: u64, rules: Arc<Rules>) -> Index {
        let mut ix = Index {
            files: Vec::new(),
            free_files: Vec::new(),
            dirs: Vec::new(),
            free_dirs: Vec::new(),
            names: Names::default(),
            by_name: HashTable::new(),
            dir_by_name: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            file_queue: PriorityQueue::with_default_hasher(),
            dir_queue: PriorityQueue::with_default_hasher(),
            by_ino: HashTable::new(),
            watched_inos: HashMap::new(),
            holds: held::Holds::default(),
            rules,
            keep: HashMap::new(),
            keep_dirty: Vec::new(),
            over_quota: Vec::new(),
            oldest_scan: None,
            epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed),
            changes: 0,
            total_files: 0,
            total_bytes: 0,
            mtime_sum_ns: 0,
            unmanaged: 0,
            protected_files: 0,
            protected_bytes: 0,
            watched_dirs: 0,
            dir_count: 1,
            newest: None,
            newest_stale: false,
        };
        ix.dirs.push(DirNode {
            parent: NONE,
            name: NameRef::EMPTY,
            flags: flag::LIVE,
            first_file: NONE,
            first_child: NONE,
            next_sib: NONE,
            prev_sib: NONE,
            group: ROOT,
            ino: root_ino,
            read_mtime_ns: i64::MIN,
            n_files: 0,
            g_files: 0,
            g_bytes: 0,
            rule: 0,
        });
        ix
    }

    /// This index's epoch (unique per index built in this process).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A counter bumped by every change to a file's share of the totals (a file added, removed,
    /// resized, touched, reclassified): a figure derived from the files is still exact while
    /// this and [`Index::epoch`] are unchanged.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn key_hash(&self, parent: u32, name: &OsStr) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    // ---------------------------------------------------------------- files

    pub fn file(&self, f: FileId) -> &FileSlot {
        &self.files[f as usize]
    }

    pub fn find_file(&self, dir: DirId, name: &OsStr) -> Option<FileId> {
        let h = self.key_hash(dir, name);
        self.by_name
            .find(h, |&f| {
                let s = &self.files[f as usize];
                s.dir == dir && self.names.get(s.name) == name
            })
            .copied()
    }

    /// Inserts or updates a file; returns its id.
    pub fn upsert_file(&mut self, dir: DirId, name: &OsStr, info: FileInfo) -> FileId {
        let id = match self.find_file(dir, name) {
            Some(id) => {
                self.account(id, false);
                id
            }
            None => self.insert_slot(dir, name),
        };
        let s = &mut self.files[id as usize];
        s.size = info.size;
        s.mtime_ns = info.mtime_ns;
        s.ino = info.ino;
        s.flags &= flag::LIVE | flag::WRITING | flag::HELD;
        s.flags |= flag::SEEN;
        if info.managed {
            s.flags |= flag::MANAGED;
            if info.protected {
                s.flags |= flag::PROTECTED;
            }
        }
        self.account(id, true);
        id
    }

    fn insert_slot(&mut self, dir: DirId, name: &OsStr) -> FileId {
        self.make_room_for_name(name);
        let nref = self.names.push(name);
        let slot = FileSlot {
            dir,
            next: self.dirs[dir as usize].first_file,
            prev: NONE,
            name: nref,
            flags: flag::LIVE,
            size: 0,
            mtime_ns: 0,
            ino: 0,
        };
        let id = match self.free_files.pop() {
            Some(id) => {
                self.files[id as usize] = slot;
                id
            }
            None => {
                self.files.push(slot);
                (self.files.len() - 1) as FileId
            }
        };
        if slot.next != NONE {
            self.files[slot.next as usize].prev = id;
        }
        self.dirs[dir as usize].first_file = id;
        self.q_count(dir, true);
        let h = self.key_hash(dir, name);
        let files = &self.files;
        let names = &self.names;
        let hasher = &self.hasher;
        self.by_name.insert_unique(h, id, |&f| {
            let s = &files[f as usize];
            hasher.hash_one((s.dir, names.get(s.name)))
        });
        id
    }

    /// Removes a file from the index; returns what it was.
    pub fn remove_file(&mut self, id: FileId) -> FileSlot {
        self.account(id, false);
        let s = self.files[id as usize];
        let h = self.key_hash(s.dir, self.names.get(s.name));
        if let Ok(e) = self.by_name.find_entry(h, |&x| x == id) {
            e.remove();
        }
        if s.prev != NONE {
            self.files[s.prev as usize].next = s.next;
        } else {
            self.dirs[s.dir as usize].first_file = s.next;
        }
        if s.next != NONE {
            self.files[s.next as usize].prev = s.prev;
        }
        self.names.release(s.name);
        self.forget_holds(id);
        self.files[id as usize].flags = 0;
        self.q_count(s.dir, false);
        self.free_files.push(id);
        self.maybe_compact();
        s
    }

    /// The next eviction candidate: the managed, unprotected, not held file that expires
    /// first (the oldest, without rules).
    pub fn peek(&mut self) -> Option<(FileId, Prio)> {
        self.settle_keep();
        self.q_peek().map(|id| (id, self.prio(id)))
    }

    /// File `id`'s eviction data.
    pub fn prio(&self, id: FileId) -> Prio {
        let s = &self.files[id as usize];
        let lim = self.limits_of(s.dir);
        let kept = s.flags & flag::KEEP != 0;
        Prio {
            mtime_ns: s.mtime_ns,
            size: s.size,
            expires_ns: lim
                .age_ns
                .filter(|_| !kept)
                .map(|a| s.mtime_ns.saturating_add(a)),
            grace_ns: lim.grace_ns,
            kept,
        }
    }

    /// Takes a file out of the eviction queue (`true`) or puts it back (`false`). Holds go
    /// through [`Index::hold`]; a dry run hides the files it would delete with this directly
    /// and shows them again at the end of its pass.
    pub fn set_held(&mut self, id: FileId, held: bool) {
        let s = &mut self.files[id as usize];
        if s.flags & flag::LIVE == 0 || s.held() == held {
            return;
        }
        let was_queued = s.in_queue();
        s.flags ^= flag::HELD;
        let now_queued = s.in_queue();
        if was_queued && !now_queued {
            self.q_remove(id);
        } else if now_queued && !was_queued {
            self.q_insert(id);
        }
    }

    pub fn is_live(&self, id: FileId) -> bool {
        self.files
            .get(id as usize)
            .is_some_and(|s| s.flags & flag::LIVE != 0)
    }

    /// Names from the root down to the file.
    pub fn file_components(&self, id: FileId) -> Vec<&OsStr> {
        let s = &self.files[id as usize];
        let mut v = self.dir_components(s.dir);
        v.push(self.names.get(s.name));
        v
    }

    pub fn newest_mtime(&mut self) -> Option<i64> {
        if self.newest_stale {
            self.newest = self
                .files
                .iter()
                .filter(|s| s.flags & flag::LIVE != 0 && s.managed())
                .map(|s| s.mtime_ns)
                .max();
            self.newest_stale = false;
        }
        self.newest
    }

    /// The oldest managed file's mtime, including held ones (protected files are left out:
    /// they are never in the queue, and a scan for them would cost O(n)).
    ///
    /// With rules the head of the queue is the file that expires first, not the oldest: then
    /// the answer is a scan of the index, at most every `OLDEST_SCAN_EVERY` (status reads
    /// it on every snapshot).
    pub fn oldest_mtime(&mut self) -> Option<i64> {
        if !self.rules.uniform() {
            let now = std::time::Instant::now();
            if let Some((at, v)) = self.oldest_scan {
                if now.duration_since(at) < OLDEST_SCAN_EVERY {
                    return v;
                }
            }
            let v = self
                .files
                .iter()
                .filter(|s| s.flags & flag::LIVE != 0 && s.managed() && !s.protected())
                .map(|s| s.mtime_ns)
                .min();
            self.oldest_scan = Some((now, v));
            return v;
        }
        let q = self.peek().map(|(_, p)| p.mtime_ns);
        let held: Vec<i64> = self
            .holds
            .held_ids()
            .map(|f| self.files[f as usize].mtime_ns)
            .collect();
        held.into_iter().chain(q).min()
    }

    /// Managed files (counted names) with an mtime after `ns`, their bytes, and the oldest
    /// such mtime (when the count next drops by time alone): O(n), for the status figures of a
    /// blocked limit only (rate-limited by the caller).
    pub fn managed_newer_than(&self, ns: i64) -> NewerThan {
        self.files
            .iter()
            .filter(|s| s.flags & (flag::LIVE | flag::COUNTED) == flag::LIVE | flag::COUNTED)
            .filter(|s| s.mtime_ns > ns)
            .fold(NewerThan::default(), |n, s| NewerThan {
                files: n.files + 1,
                bytes: n.bytes.saturating_add(s.size),
                oldest_ns: Some(n.oldest_ns.map_or(s.mtime_ns, |o| o.min(s.mtime_ns))),
            })
    }

    // ---------------------------------------------------------------- housekeeping

    /// Reclaims the name arena when removals have left more garbage than live names (called
    /// on every removal: amortised O(1), since a compaction halves the arena at least).
    pub fn maybe_compact(&mut self) {
        if self.names.wants_compaction() {
            self.compact_names();
        }
    }

    /// The arena's offsets are `u32`: before a name would not fit below 4 GiB, the garbage is
    /// reclaimed. Live names alone past 4 GiB (a hundred million files) are beyond what one
    /// index supports; `Names::push` then refuses to wrap (see there).
    fn make_room_for_name(&mut self, name: &OsStr) {
        if !self.names.fits(name) {
            self.compact_names();
        }
    }

    fn compact_names(&mut self) {
        let files = self
            .files
            .iter_mut()
            .filter(|s| s.flags & flag::LIVE != 0)
            .map(|s| &mut s.name);
        let dirs = self
            .dirs
            .iter_mut()
            .filter(|d| d.flags & flag::LIVE != 0)
            .map(|d| &mut d.name);
        self.names.compact(files.chain(dirs));
    }

    /// Heap bytes held by the index (an estimate from capacities).
    pub fn heap_bytes(&self) -> usize {
        self.files.capacity() * std::mem::size_of::<FileSlot>()
            + self.dirs.capacity() * std::mem::size_of::<DirNode>()
            + self.names.heap_bytes()
            + (self.by_name.capacity() + self.dir_by_name.capacity() + self.by_ino.capacity()) * 5
            + self.queue_heap_bytes()
            + self.holds.heap_bytes()
    }
}

#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;
