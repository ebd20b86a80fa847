//! The model test's random source (splitmix64, one u64 seed per run), the workload profile
//! (which operations a run may do) and what one seed did (its summary).
//!
//! May touch: nothing outside its values (pure computation).

use std::collections::BTreeMap;
use std::time::Duration;

// ------------------------------------------------------------------------------- PRNG

/// splitmix64: every random choice of a run comes from one u64 seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// True with probability `p` per mille.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
}

// ------------------------------------------------------------------------------- profile

#[derive(Clone, Debug)]
pub struct Profile {
    pub secs: Duration,
    /// Lower max_queued_events for chartd's inotify instance (root only).
    pub overflow: bool,
    pub slow_writers: bool,
    pub locks: bool,
    pub symlinks: bool,
    pub dir_moves: bool,
    pub root_replace: bool,
    pub sighup: bool,
    pub purge: bool,
    pub cleanup: bool,
    pub kill: bool,
    pub regen_at_expiry: bool,
    pub bursts: bool,
}

impl Profile {
    /// Writes, renames, links and truncations only (item 8).
    pub fn mix(secs: Duration) -> Profile {
        Profile {
            secs,
            overflow: false,
            slow_writers: false,
            locks: false,
            symlinks: false,
            dir_moves: false,
            root_replace: false,
            sighup: false,
            purge: false,
            cleanup: false,
            kill: false,
            regen_at_expiry: false,
            bursts: false,
        }
    }
    /// Everything.
    pub fn full(secs: Duration) -> Profile {
        Profile {
            secs,
            overflow: true,
            slow_writers: true,
            locks: true,
            symlinks: true,
            dir_moves: true,
            root_replace: true,
            sighup: true,
            purge: true,
            cleanup: true,
            kill: true,
            regen_at_expiry: true,
            bursts: true,
        }
    }
}

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub seed: u64,
    pub ops: u64,
    pub op_counts: BTreeMap<&'static str, u64>,
    /// Files that vanished without us and were judged (all legitimate, or the run failed).
    pub deletions_checked: u64,
    /// `deleted` lines in chartd's log.
    pub chartd_deletions: u64,
    pub restarts: u64,
    pub overflows: u64,
    pub root_replacements: u64,
    pub sacred_checked: u64,
    /// Unlinks that raced our rename of the file's directory out of the root: chartd saw the
    /// directory beneath the root before the rename returned, and unlinked right after.
    pub raced_renames: u64,
    /// Files deleted while open for writing after their writer had been quiet for chartd's
    /// writer timeout (accepted: see `writer_went_quiet`).
    pub writer_timeouts: u64,
    /// Names found empty and then holding the same inode again: chartd took the file off its
    /// name, found it changed, and put it back (see `check`).
    pub put_back_seen: u64,
    /// Names found gone right after we took a lock on another name of their inode (they went
    /// before the lock: judged as unlocked).
    pub gone_before_lock: u64,
    pub quiescence: Duration,
}
