//! Choosing what a root's limits require deleting now, incrementally: called after every batch
//! of events and when the owner's timer fires, it deletes only what a limit requires right now
//! and tells the owner when to look again (the moment the oldest file expires, or leaves its
//! grace period, or a held file's retry comes).
//!
//! - age: every file whose expiry (`mtime + max_age` of its group's rule) has passed;
//! - size (count): once `total > max_size` (`max_files`), in queue order until
//!   `total <= low_watermark * limit`;
//! - free space (inodes): below `min_free` (`min_free_inodes`), in queue order until
//!   `floor * (2 - low_watermark)` is free;
//! - group quotas: a group over `group_max_size` / `group_max_files` loses its own files, in
//!   queue order, down to `low_watermark * quota` (`quota.rs`).
//!
//! Queue order is soonest expiry first; files with no age limit after those with one, oldest
//! first; each group's `keep_newest` files last (see `index/queue.rs`, `QKey`). Without rules
//! that is plain oldest-first.
//!
//! Once a size, count or floor limit is crossed, the root stays "under pressure" until the
//! low watermark is reached, even when the pass is blocked meanwhile (every remaining file in
//! its grace period, say): eviction resumes down to the watermark as files become eligible,
//! rather than stopping just under the limit.
//!
//! Never deleted: files inside `grace`, unmanaged or protected files (not in the queue at
//! all), files being written, `flock`ed, unreadable or failing (held out of the queue, see
//! `index/held.rs`). Deleting one chosen file is `delete.rs`.
//!
//! May touch: the root's index (queue, holds, writers), its limit state and counters, the
//! filesystem's free space (`RootState::update_space`), and the disk only through `delete`; never
//! the watcher, the scanner or the owner.

mod delete;
mod quota;

pub use delete::{Removal, Stale};

use crate::index::{FileId, HoldReason};
/// Re-exported where eviction is: the tests judge writers by it.
pub use crate::root::MIN_WRITER_QUIET;
use crate::root::{now_ns, ns_to_time, RootState};
use crate::stats::{Blocked, Reason};
use std::time::{Duration, Instant, SystemTime};

/// At most this many deletions per pass, so that events and commands are not starved; the
/// owner runs another pass at once when a pass stops early.
const PASS_BUDGET: usize = 20_000;

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
    virtual_files: u64,
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

/// The limits that put a root under pressure (index into `RootState::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_size`: managed bytes.
    Size = 0,
    /// `max_files`: managed files.
    Count = 1,
    /// `min_free`: the filesystem's free bytes.
    Free = 2,
    /// `min_free_inodes`: the filesystem's free inodes.
    Inodes = 3,
}

impl Limit {
    pub const ALL: [Limit; 4] = [Limit::Size, Limit::Count, Limit::Free, Limit::Inodes];

    /// The config key, as status names a blocked limit.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Size => "max_size",
            Limit::Count => "max_files",
            Limit::Free => "min_free",
            Limit::Inodes => "min_free_inodes",
        }
    }

    fn reason(self) -> Reason {
        match self {
            Limit::Size => Reason::Size,
            Limit::Count => Reason::Count,
            Limit::Free => Reason::FreeSpace,
            Limit::Inodes => Reason::Inodes,
        }
    }

    /// Counted in files (count, inodes) rather than bytes.
    fn in_files(self) -> bool {
        matches!(self, Limit::Count | Limit::Inodes)
    }

    /// A floor on what is free, rather than a ceiling on what is used.
    fn is_floor(self) -> bool {
        matches!(self, Limit::Free | Limit::Inodes)
    }
}

/// Pressure and blocking of one limit of a root.
#[derive(Debug, Default, Clone)]
pub struct LimitState {
    /// Crossed, and the low watermark not reached yet: evict as files become eligible, even
    /// below the limit itself.
    pub pressure: bool,
    /// Crossed, and nothing may be deleted now (see `stats::Blocked`).
    pub blocked: Option<crate::stats::Blocked>,
}

/// Why the head of the queue cannot go now.
enum NoVictim {
    /// The oldest candidate is inside its grace period until this wall-clock ns.
    Grace(i64),
    /// Nothing is in the queue at all.
    Empty,
}

impl RootState {
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
        while let Some((id, p)) = self.index.peek() {
            if pass.budget == 0 {
                pass.more = true;
                break;
            }
            // The queue holds files with an age limit first, soonest expiry first: the first
            // one without an expiry (no age limit, or kept) ends the age pass.
            let Some(due) = p.expires_ns else { break };
            if due > now {
                pass.due(due);
                break;
            }
            if self.hold_if_writing(id) {
                continue;
            }
            self.evict_one(id, Reason::Age, pass);
        }
        self.enforce_quotas(pass, now);
        for limit in Limit::ALL {
            self.enforce_limit(limit, pass, now);
        }
        // A dry run leaves the index as it found it. Nothing in a dry pass deletes or
        // re-reads the disk, so the ids are this index's; checked all the same, as `purge` does.
        for id in std::mem::take(&mut pass.temp_held) {
            if self.index.is_live(id) {
                self.index.set_held(id, false);
            }
        }
    }

    /// The configured value of `limit` (bytes or files; for floors, what must stay free).
    fn limit_value(&self, limit: Limit) -> Option<u64> {
        match limit {
            Limit::Size => self.cfg.max_size.filter(|&m| m > 0),
            Limit::Count => self.cfg.max_files.filter(|&m| m > 0),
            Limit::Free => self.min_free_bytes(),
            Limit::Inodes => self.min_free_inodes(),
        }
    }

    /// What `limit` measures right now, a dry run's would-be deletions included.
    fn measure(&self, limit: Limit, pass: &Pass) -> u64 {
        match limit {
            Limit::Size => self.index.total_bytes.saturating_sub(pass.virtual_bytes),
            Limit::Count => self.index.total_files.saturating_sub(pass.virtual_files),
            Limit::Free => self.space.free_bytes.saturating_add(pass.virtual_free),
            Limit::Inodes => self.space.free_inodes.saturating_add(pass.virtual_files),
        }
    }

    /// Whether `limit` is crossed at `value` (over a ceiling, under a floor).
    fn crossed(limit: Limit, measured: u64, value: u64) -> bool {
        if limit.is_floor() {
            measured < value
        } else {
            measured > value
        }
    }

    /// Evicts for one size, count or floor limit: once crossed, down to its low watermark.
    fn enforce_limit(&mut self, limit: Limit, pass: &mut Pass, now: i64) {
        let i = limit as usize;
        let Some(value) = self.limit_value(limit) else {
            self.limits[i] = LimitState::default();
            return;
        };
        if limit.is_floor() {
            self.update_space();
        }
        let crossed = Self::crossed(limit, self.measure(limit, pass), value);
        if crossed && !pass.dry_run {
            self.limits[i].pressure = true;
        }
        if !crossed && !self.limits[i].pressure {
            if !pass.dry_run {
                self.limits[i].blocked = None;
            }
            return;
        }
        let wm = self.cfg.low_watermark;
        let target = if limit.is_floor() {
            (value as f64 * (2.0 - wm)) as u64
        } else {
            (value as f64 * wm) as u64
        };
        let short_of_target = |m: u64| {
            if limit.is_floor() {
                m < target
            } else {
                m > target
            }
        };
        let mut since_update = 0u32;
        while short_of_target(self.measure(limit, pass)) && pass.budget > 0 {
            match self.next_victim(now, pass) {
                Ok(id) => {
                    self.evict_one(id, limit.reason(), pass);
                    since_update += 1;
                    // The estimate of what each deletion freed drifts (other writers, delayed
                    // block release): look at the real figure now and then.
                    if limit.is_floor() && since_update >= 64 && !pass.dry_run {
                        since_update = 0;
                        self.update_space();
                    }
                }
                Err(why) => {
                    let m = self.measure(limit, pass);
                    let excess = if limit.is_floor() {
                        value.saturating_sub(m)
                    } else {
                        m.saturating_sub(value)
                    };
                    if excess > 0 && !pass.dry_run {
                        self.note_blocked(limit, excess, why);
                    }
                    break;
                }
            }
        }
        pass.more |= pass.budget == 0;
        if pass.dry_run {
            return;
        }
        if limit.is_floor() {
            self.update_space();
        }
        let m = self.measure(limit, pass);
        if !short_of_target(m) {
            self.limits[i].pressure = false;
        }
        if !Self::crossed(limit, m, value) {
            self.limits[i].blocked = None;
        }
    }

    /// Records that a limit is crossed and nothing more may go now, and why (for status and
    /// the log), keeping the time it was first found so.
    fn note_blocked(&mut self, limit: Limit, excess: u64, why: NoVictim) {
        let (cause, next) = match why {
            NoVictim::Grace(at) => ("grace", Some(ns_to_time(at))),
            NoVictim::Empty => (
                self.dominant_holder(),
                self.index
                    .next_hold_retry()
                    .map(|t| SystemTime::now() + t.saturating_duration_since(Instant::now())),
            ),
        };
        let slot = &mut self.limits[limit as usize].blocked;
        let since = slot.as_ref().map_or_else(SystemTime::now, |b| b.since);
        let (excess_bytes, excess_files) = if limit.in_files() {
            (0, excess)
        } else {
            (excess, 0)
        };
        *slot = Some(Blocked {
            limit: limit.key(),
            excess_bytes,
            excess_files,
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
        let unit = if limit.in_files() { "files" } else { "bytes" };
        let key = limit.key();
        self.warn_limited(key, || {
            format!(
                "{root}: over {key} by {excess} {unit} and nothing more may be deleted now: {what}"
            )
        });
    }

    /// What holds most of the files that are out of the queue.
    fn dominant_holder(&self) -> &'static str {
        let mut n = [0u64; 4];
        for (_, h) in self.index.holds() {
            let i = match h.reason {
                HoldReason::Writing => 0,
                HoldReason::Locked => 1,
                HoldReason::Grace => 3,
                _ => 2,
            };
            n[i] += 1;
        }
        match n.iter().enumerate().max_by_key(|(_, &c)| c) {
            Some((_, 0)) | None if self.index.protected_files > 0 => "protected",
            Some((_, 0)) | None => "nothing_left",
            Some((0, _)) => "writing",
            Some((1, _)) => "locked",
            Some((3, _)) => "grace",
            Some(_) => "failing",
        }
    }

    /// The next file that may go now under pressure, holding back files being written.
    ///
    /// Without rules the head of the queue is the oldest file: if it is inside its grace
    /// period, so is every other one, and the pass stops there. With rules (or
    /// `keep_newest`) a file behind an in-grace head may be older (a longer `max_age`), so
    /// the head is held until it leaves grace and the next one is looked at; kept files go
    /// only when nothing else is left, in grace or not.
    fn next_victim(&mut self, now: i64, pass: &mut Pass) -> Result<FileId, NoVictim> {
        let uniform = self.index.rules().uniform();
        loop {
            let Some((id, p)) = self.index.peek() else {
                return Err(NoVictim::Empty);
            };
            if p.kept
                && self
                    .index
                    .holds()
                    .any(|(_, h)| h.reason == HoldReason::Grace)
            {
                return Err(NoVictim::Empty);
            }
            let free_at = p.mtime_ns.saturating_add(p.grace_ns);
            if free_at > now {
                pass.due(free_at);
                if uniform {
                    return Err(NoVictim::Grace(free_at));
                }
                if pass.dry_run {
                    self.index.set_held(id, true);
                    pass.temp_held.push(id);
                } else {
                    let wait = Duration::from_nanos(free_at.saturating_sub(now).max(0) as u64);
                    self.index
                        .hold(id, HoldReason::Grace, Instant::now() + wait);
                }
                continue;
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
mod tests;
