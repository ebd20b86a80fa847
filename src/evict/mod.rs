//! Choosing what a root's limits require deleting now, incrementally: called after every batch
//! of events and when the owner's timer fires, it deletes only what a limit requires right now
//! and tells the owner when to look again (the moment the oldest file expires, or leaves its
//! grace period, or a held file's retry comes).
//!
//! - age: every file whose `mtime + max_age` has passed;
//! - size: once `total > max_size`, oldest first until `total <= low_watermark * max_size`;
//! - free space: below `min_free`, oldest first until `min_free * (2 - low_watermark)` is free.
//!
//! Once a size or free-space limit is crossed, the root stays "under pressure" until the low
//! watermark is reached, even when the pass is blocked meanwhile (every remaining file in its
//! grace period, say): eviction resumes down to the watermark as files become eligible, rather
//! than stopping just under the limit.
//!
//! Never deleted: files inside `grace`, unmanaged or protected files (not in the queue at
//! all), files being written, `flock`ed, unreadable or failing (held out of the queue, see
//! `index/held.rs`). Deleting one chosen file is `delete.rs`.

mod delete;

pub use delete::{Removal, Stale};

use crate::index::{FileId, HoldReason};
use crate::root::{now_ns, ns_to_time, RootState};
use crate::stats::{Blocked, Reason};
use std::time::{Duration, Instant, SystemTime};

/// At most this many deletions per pass, so that events and commands are not starved; the
/// owner runs another pass at once when a pass stops early.
const PASS_BUDGET: usize = 20_000;
/// A file being written (or found recently modified) is held until it has been quiet this
/// long at least (or `grace`, when longer): a lost close event delays its eviction by that
/// much, never for good.
pub const MIN_WRITER_QUIET: Duration = Duration::from_secs(2);

/// The result of one enforcement pass.
#[derive(Debug, Default)]
pub struct Pass {
    pub dry_run: bool,
    /// Record every removal (for `clean --once`, `cleanup`, `purge` answers).
    pub collect: bool,
    pub removals: Vec<Removal>,
    pub files: u64,
    pub bytes: u64,
    /// Wall-clock ns at which something becomes due (expiry, or end of a blocking grace).
    pub next_due_ns: Option<i64>,
    /// The budget ran out: run again soon.
    pub more: bool,
    /// Files skipped (locked, unreadable, failing, changed), for purge answers.
    pub skipped: u64,
    budget: usize,
    /// When the owner received what this pass acts on (see [`Pass::triggered_at`]): the
    /// eviction-latency histogram counts from here to each unlink.
    trigger: Option<Instant>,
    /// A dry run's would-be deletions, so that its figures add up as if they had happened.
    virtual_bytes: u64,
    virtual_free: u64,
    temp_held: Vec<FileId>,
}

impl Pass {
    pub fn new(dry_run: bool, collect: bool) -> Pass {
        Pass {
            dry_run,
            collect,
            budget: PASS_BUDGET,
            trigger: Some(Instant::now()),
            ..Pass::default()
        }
    }

    /// The moment the owner received the batch of events, the timer firing or the command
    /// that this pass acts on (by default, the pass's own start). A limit crossed by an event
    /// is acted on in the pass that follows the batch holding the event, so the latency
    /// recorded for each deletion is the time from that batch's receipt to the unlink.
    pub fn triggered_at(mut self, at: Instant) -> Pass {
        self.trigger = Some(at);
        self
    }

    /// No per-pass deletion budget (explicit `cleanup` / `purge` / `clean --once`).
    pub fn unlimited(&mut self) {
        self.budget = usize::MAX;
    }

    /// Files a dry run took out of the queue, to be put back by the caller.
    pub fn take_temp_held(&mut self) -> Vec<FileId> {
        std::mem::take(&mut self.temp_held)
    }

    fn due(&mut self, at: i64) {
        self.next_due_ns = Some(self.next_due_ns.map_or(at, |n| n.min(at)));
    }
}

/// Why the head of the queue cannot go now.
enum NoVictim {
    /// The oldest candidate is inside its grace period until this wall-clock ns.
    Grace(i64),
    /// Nothing is in the queue at all.
    Empty,
}

impl RootState {
    pub(crate) fn grace_ns(&self) -> i64 {
        self.cfg.grace.as_nanos().min(i64::MAX as u128) as i64
    }

    /// How long a file must have been quiet before it no longer counts as being written.
    pub fn writer_quiet(&self) -> Duration {
        self.cfg.grace.max(MIN_WRITER_QUIET)
    }

    /// Enforces every limit of this root once, from the index as it is (what it finds changed
    /// on disk is left in `stale` for the scanner; see `RootState::enforce`).
    pub fn evict_pass(&mut self, pass: &mut Pass) {
        if self.dir.is_none() || !(self.cleanup_enabled || pass.dry_run) {
            return;
        }
        if !pass.dry_run {
            self.release_due_holds(Instant::now());
        }
        let now = now_ns();
        let grace = self.grace_ns();
        if let Some(max_age) = self.cfg.max_age.filter(|d| !d.is_zero()) {
            let max_age = (max_age.as_nanos().min(i64::MAX as u128) as i64).max(grace);
            while let Some((id, p)) = self.index.peek() {
                if pass.budget == 0 {
                    pass.more = true;
                    break;
                }
                let due = p.mtime_ns.saturating_add(max_age);
                if due > now {
                    pass.due(due);
                    break;
                }
                if self.hold_if_writing(id) {
                    continue;
                }
                self.evict_one(id, Reason::Age, pass);
            }
        }
        self.enforce_size(pass, now);
        self.enforce_free(pass, now);
        // A dry run leaves the index as it found it.
        for id in std::mem::take(&mut pass.temp_held) {
            self.index.set_held(id, false);
        }
    }

    fn enforce_size(&mut self, pass: &mut Pass, now: i64) {
        let Some(max) = self.cfg.max_size.filter(|&m| m > 0) else {
            self.size_pressure = false;
            self.blocked_size = None;
            return;
        };
        let over = self.bytes_now(pass) > max;
        if over && !pass.dry_run {
            self.size_pressure = true;
        }
        if !over && !self.size_pressure {
            if !pass.dry_run {
                self.blocked_size = None;
            }
            return;
        }
        let target = (max as f64 * self.cfg.low_watermark) as u64;
        while self.bytes_now(pass) > target && pass.budget > 0 {
            match self.next_victim(now, pass) {
                Ok(id) => self.evict_one(id, Reason::Size, pass),
                Err(why) => {
                    let excess = self.bytes_now(pass).saturating_sub(max);
                    if excess > 0 && !pass.dry_run {
                        self.note_blocked("max_size", excess, why);
                    }
                    break;
                }
            }
        }
        pass.more |= pass.budget == 0;
        if pass.dry_run {
            return;
        }
        if self.bytes_now(pass) <= target {
            self.size_pressure = false;
        }
        if self.index.total_bytes <= max {
            self.blocked_size = None;
        }
    }

    fn enforce_free(&mut self, pass: &mut Pass, now: i64) {
        let Some(floor) = self.min_free_bytes() else {
            self.free_pressure = false;
            self.blocked_free = None;
            return;
        };
        self.update_space();
        let under = self.free_now(pass) < floor;
        if under && !pass.dry_run {
            self.free_pressure = true;
        }
        if !under && !self.free_pressure {
            if !pass.dry_run {
                self.blocked_free = None;
            }
            return;
        }
        let target = (floor as f64 * (2.0 - self.cfg.low_watermark)) as u64;
        let mut since_update = 0u32;
        while self.free_now(pass) < target && pass.budget > 0 {
            match self.next_victim(now, pass) {
                Ok(id) => {
                    self.evict_one(id, Reason::FreeSpace, pass);
                    since_update += 1;
                    // The estimate of what each deletion freed drifts (other writers, delayed
                    // block release): look at the real figure now and then.
                    if since_update >= 64 && !pass.dry_run {
                        since_update = 0;
                        self.update_space();
                    }
                }
                Err(why) => {
                    let missing = floor.saturating_sub(self.free_now(pass));
                    if missing > 0 && !pass.dry_run {
                        self.note_blocked("min_free", missing, why);
                    }
                    break;
                }
            }
        }
        pass.more |= pass.budget == 0;
        if pass.dry_run {
            return;
        }
        self.update_space();
        if self.fs_free >= target {
            self.free_pressure = false;
        }
        if self.fs_free >= floor {
            self.blocked_free = None;
        }
    }

    /// Records that a limit is crossed and nothing more may go now, and why (for status and
    /// the log), keeping the time it was first found so.
    fn note_blocked(&mut self, limit: &'static str, excess: u64, why: NoVictim) {
        let (cause, next) = match why {
            NoVictim::Grace(at) => ("grace", Some(ns_to_time(at))),
            NoVictim::Empty => (
                self.dominant_holder(),
                self.index
                    .next_hold_retry()
                    .map(|t| SystemTime::now() + t.saturating_duration_since(Instant::now())),
            ),
        };
        let slot = if limit == "max_size" {
            &mut self.blocked_size
        } else {
            &mut self.blocked_free
        };
        let since = slot.as_ref().map_or_else(SystemTime::now, |b| b.since);
        *slot = Some(Blocked {
            limit,
            excess_bytes: excess,
            cause,
            since,
            next_eligible: next,
            grace_files: 0,
            grace_bytes: 0,
        });
        let root = self.cfg.path.display().to_string();
        let what = match cause {
            "grace" => "every remaining file is inside its grace period; looking again when the \
                        oldest leaves it"
                .to_string(),
            "writing" => "the remaining files are being written".to_string(),
            "locked" => "the remaining files are locked (flock) by their writers".to_string(),
            "failing" => "deleting the remaining files fails (see the errors above: permissions? \
                          a read-only filesystem?)"
                .to_string(),
            "protected" => "the remaining files are protected".to_string(),
            _ => "no managed file is left to delete (other files fill the filesystem)".to_string(),
        };
        self.warn_limited(if limit == "max_size" { "size-blocked" } else { "free-blocked" }, || {
            format!("{root}: over {limit} by {excess} bytes and nothing more may be deleted now: {what}")
        });
    }

    /// What holds most of the files that are out of the queue.
    fn dominant_holder(&self) -> &'static str {
        let mut n = [0u64; 3];
        for (_, h) in self.index.holds() {
            let i = match h.reason {
                HoldReason::Writing => 0,
                HoldReason::Locked => 1,
                _ => 2,
            };
            n[i] += 1;
        }
        match n.iter().enumerate().max_by_key(|(_, &c)| c) {
            Some((_, 0)) | None if self.index.protected_files > 0 => "protected",
            Some((_, 0)) | None => "nothing_left",
            Some((0, _)) => "writing",
            Some((1, _)) => "locked",
            Some(_) => "failing",
        }
    }

    fn bytes_now(&self, pass: &Pass) -> u64 {
        self.index.total_bytes.saturating_sub(pass.virtual_bytes)
    }

    fn free_now(&self, pass: &Pass) -> u64 {
        self.fs_free.saturating_add(pass.virtual_free)
    }

    /// The oldest file that may go now, holding back files being written.
    fn next_victim(&mut self, now: i64, pass: &mut Pass) -> Result<FileId, NoVictim> {
        loop {
            let Some((id, p)) = self.index.peek() else {
                return Err(NoVictim::Empty);
            };
            let free_at = p.mtime_ns.saturating_add(self.grace_ns());
            if free_at > now {
                pass.due(free_at);
                return Err(NoVictim::Grace(free_at));
            }
            if self.hold_if_writing(id) {
                continue;
            }
            return Ok(id);
        }
    }

    /// Whether `id` is being written: changed within the writer timeout (a stale flag, from a
    /// lost close event or a `truncate`, is cleared here).
    pub fn is_being_written(&mut self, id: FileId) -> bool {
        if !self.index.file(id).writing() {
            return false;
        }
        let quiet = self.writer_quiet();
        match self.index.last_write(id) {
            Some(t) if t + quiet > Instant::now() => true,
            _ => {
                self.index.clear_writing(id);
                false
            }
        }
    }

    /// A file at the head of the queue that is still being written is held until it has been
    /// quiet long enough; one whose writer went quiet long ago (a lost close event, a
    /// `truncate`) is no longer treated as being written.
    fn hold_if_writing(&mut self, id: FileId) -> bool {
        if !self.index.file(id).writing() {
            return false;
        }
        let quiet = self.writer_quiet();
        let now = Instant::now();
        match self.index.last_write(id) {
            Some(t) if t + quiet > now => {
                self.index.hold(id, HoldReason::Writing, t + quiet);
                true
            }
            _ => {
                self.index.clear_writing(id);
                false
            }
        }
    }

    /// Puts files whose hold is due back into the queue (a writer still writing is held again
    /// until it has been quiet long enough).
    fn release_due_holds(&mut self, now: Instant) {
        let quiet = self.writer_quiet();
        for id in self.index.due_holds(now) {
            let Some(h) = self.index.hold_of(id) else {
                continue;
            };
            if h.reason == HoldReason::Writing {
                match self.index.last_write(id) {
                    Some(t) if t + quiet > now => {
                        self.index.hold(id, HoldReason::Writing, t + quiet);
                        continue;
                    }
                    _ => self.index.clear_writing(id),
                }
            }
            self.index.unhold(id);
        }
    }

    /// The earliest retry of a held file.
    pub fn next_held_retry(&self) -> Option<Instant> {
        self.index.next_hold_retry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Progress;
    use crate::watcher::Watcher;
    use std::sync::Arc;

    /// A root of four 10-byte charts, an hour old, limited to 20 bytes (low watermark 100 %):
    /// a pass deletes two of them.
    fn over_limit() -> (tempfile::TempDir, RootState, Watcher) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            let p = dir.path().join(format!("g/c{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(10).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
        }
        let rc = crate::config::RootConfig {
            path: dir.path().to_path_buf(),
            create: false,
            max_age: None,
            max_size: Some(20),
            low_watermark: 1.0,
            min_free: None,
            grace: Duration::ZERO,
            include: vec!["*.png".into()],
            exclude: vec![],
            protect: vec![],
            prune_empty_dirs: false,
        };
        let mut root = RootState::new(
            rc,
            true,
            Duration::from_secs(3600),
            Arc::new(Progress::default()),
        )
        .unwrap();
        let mut w = Watcher::disabled();
        root.resync_all(&mut w);
        (dir, root, w)
    }

    #[test]
    fn eviction_latency_counts_from_the_trigger() {
        // The owner received the batch that crossed the limit 2 s before the pass ran: each
        // deletion's latency includes those 2 s.
        let Some(received) = Instant::now().checked_sub(Duration::from_secs(2)) else {
            return; // a machine up for less than 2 s
        };
        let (_dir, mut root, mut w) = over_limit();
        let mut pass = Pass::new(false, false).triggered_at(received);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 2);
        let h = &root.counters.latency;
        assert_eq!(h.count, 2);
        assert!(h.sum_seconds >= 4.0, "{h:?}");
        assert_eq!(h.buckets.last(), Some(&0), "{h:?}"); // none within 1 s

        // Without a trigger, a pass counts from its own start.
        let (_dir, mut root, mut w) = over_limit();
        let mut pass = Pass::new(false, false);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 2);
        assert!(root.counters.latency.sum_seconds < 2.0);
    }
}
