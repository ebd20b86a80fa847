//! The randomized model test's engine (used by `tests/model.rs` and by item 8 of
//! `tests/trust.rs`).
//!
//! A seeded generator drives the real daemon under size pressure while it keeps a model of
//! every file it made: path -> (version: inode, token, mtime, size; kind). Anything that
//! vanished without the generator removing it was removed by chartd, and is judged against
//! what the file was at that moment:
//!
//! - never legitimate: outside the root (sibling dirs, symlink targets, directories renamed out
//!   of the root, a replaced root), unmanaged (`*.csv`, `*.json`, excluded `.*.tmp`), protected
//!   (`*_keep.png`), symlinks, files we hold a `flock` on, files we hold open for writing.
//!   A lock counts from the moment it is ours, for every name of its inode (hard links): all
//!   names are checked right after our `flock` returns, so one found gone then went before the
//!   lock and is judged as unlocked; and all are checked again right before we drop it;
//! - a managed file only once it is older than `grace`: removed while younger -> failure. The
//!   oracle knows when it last saw the file intact (`last_ok`) and when it found it gone; if
//!   `grace` passed in between, the deletion's log line (`deleted PATH (`) and its timestamp
//!   decide. Young files are checked on every step, so a fresh chart renamed over (or rewritten
//!   in place over) an expiring one and then deleted is caught with its age.
//!
//! After the run (quiescence): writers closed, locks dropped, `grace` waited out; then, polling
//! with a deadline, `status` (per root) and `groups` (per group) must equal a walk of the disk
//! (hard links once), the size limit must hold or `holding.blocked` must say why, no managed
//! unprotected file may be older than max_age (+1 s), and `stale` must not be true. Every
//! sacred file is checked by inode and content at the end.

#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";
pub const GRACE: Duration = Duration::from_secs(2);
/// chartd's writer timeout for this grace: `max(grace, evict::MIN_WRITER_QUIET)`.
const WRITER_QUIET: Duration = if GRACE.as_nanos() > chartd::evict::MIN_WRITER_QUIET.as_nanos() {
    GRACE
} else {
    chartd::evict::MIN_WRITER_QUIET
};

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

// ------------------------------------------------------------------------------- model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Managed,
    Unmanaged,
    Protected,
    Symlink,
}

#[derive(Clone, Debug)]
struct Version {
    ino: u64,
    token: String,
    mtime: i128,
    size: u64,
    /// For symlinks: the target.
    target: Option<PathBuf>,
    /// (when we changed it, the mtime from then on), oldest first.
    history: Vec<(i128, i128)>,
}

impl Version {
    fn set_mtime(&mut self, m: i128) {
        self.set_mtime_at(m, now_ns());
    }
    /// A change that made the file older counts from before its syscall, one that made it
    /// younger from after it: in chartd's favour by the length of the syscall only.
    fn set_mtime_at(&mut self, m: i128, when: i128) {
        self.mtime = m;
        self.history.push((when, m));
    }
    /// The mtime in effect at `t`.
    fn mtime_at(&self, t: i128) -> i128 {
        self.history
            .iter()
            .rev()
            .find(|(w, _)| *w <= t)
            .or(self.history.first())
            .map(|x| x.1)
            .unwrap_or(self.mtime)
    }
    /// The oldest and the newest mtime in effect at some time in (from, now].
    fn mtime_range(&self, from: i128) -> (i128, i128) {
        let mut lo = self.mtime_at(from);
        let mut hi = lo;
        for (w, m) in &self.history {
            if *w > from {
                lo = lo.min(*m);
                hi = hi.max(*m);
            }
        }
        (lo, hi)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    vid: usize,
    kind: Kind,
    last_ok: i128,
    /// When (just after the rename returned) and from where we moved it out of the root.
    moved_out: Option<(i128, PathBuf)>,
}

struct Writer {
    path: PathBuf,
    vid: usize,
    file: fs::File,
    next: Instant,
    end: Instant,
}

/// A log reader: `deleted PATH (` lines, by path, with their timestamps (unix ns).
struct LogIndex {
    offset: u64,
    by_path: HashMap<String, Vec<i128>>,
    /// Per deleted path, when chartd last saw its directory beneath the root before the
    /// unlink (`beneath_at_ns` of the log line), in the order of `by_path`.
    beneath: HashMap<String, Vec<Option<i128>>>,
    count: u64,
}

impl LogIndex {
    fn update(&mut self, log: &Path) {
        let Ok(mut f) = fs::File::open(log) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut r = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !line.ends_with('\n') {
                        break; // half a line: read it next time
                    }
                    self.offset += n as u64;
                    if let Some(i) = line.find(" deleted ") {
                        let rest = &line[i + 9..];
                        if let Some(end) = rest.find(" (") {
                            let ts = parse_ts(line.split_whitespace().next().unwrap_or(""));
                            let beneath = line.find("beneath_at_ns=").and_then(|j| {
                                line[j + 14..]
                                    .split(|c: char| !c.is_ascii_digit())
                                    .next()
                                    .and_then(|d| d.parse::<i128>().ok())
                            });
                            self.count += 1;
                            self.by_path
                                .entry(rest[..end].to_string())
                                .or_default()
                                .push(ts.unwrap_or(0));
                            self.beneath
                                .entry(rest[..end].to_string())
                                .or_default()
                                .push(beneath);
                        }
                    }
                }
            }
        }
    }
}

/// `2026-12-01T21:13:01.211494Z` -> unix ns.
fn parse_ts(s: &str) -> Option<i128> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    let ns: i64 = frac.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) as i128) * 1_000_000_000 + ns as i128)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

fn mtime_of(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

const RELOOK_SHORT: u32 = 5;
const RELOOK_LONG: u32 = 100;

/// What a re-look at a name found.
#[derive(Debug, PartialEq, Eq)]
enum Presence {
    /// The inode is at the name.
    There,
    /// Missing at first, back at the name within the re-look: chartd had it off its name for
    /// a moment and put it back.
    PutBack,
    Missing,
}

/// Looks for inode `ino` at `path`, looking again `tries` times 2 ms apart when it is missing: chartd
/// takes a victim off its name before it checks it and puts it back when the check fails (a
/// chart regenerated under its deletion, or its directory renamed out of the root meanwhile),
/// so for a moment the name is empty although nothing is deleted. On a loaded machine that
/// moment stretches to milliseconds (the long run's seed 1027 judged a put-back as a deletion
/// with a single look after a directory rename). A real deletion stays gone. A short re-look
/// ([`RELOOK_SHORT`]) on every check; a long one ([`RELOOK_LONG`]) before any verdict that
/// would fail the run.
fn relook(path: &Path, ino: u64, tries: u32) -> Presence {
    for attempt in 0..=tries {
        match fs::symlink_metadata(path) {
            Ok(m) if m.ino() == ino => {
                return if attempt == 0 {
                    Presence::There
                } else {
                    Presence::PutBack
                };
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    Presence::Missing
}

fn secs(ns: i128) -> f64 {
    ns as f64 / 1e9
}

struct World {
    seed: u64,
    rng: Rng,
    prof: Profile,
    d: Daemon,
    ws: PathBuf,
    root: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    versions: Vec<Version>,
    locked: HashMap<usize, fs::File>,
    writers: Vec<Writer>,
    away: Vec<PathBuf>,
    log: LogIndex,
    counter: u64,
    max_size: u64,
    max_age: Duration,
    last_kill: i128,
    sum: Summary,
    failures: Vec<String>,
    /// The oracle's self-test plants violations on purpose: they are not printed as real ones.
    selftest: bool,
}

fn policy(max_size: u64, max_age: Duration) -> String {
    format!(
        "max_size: {max_size}\nmax_age: {}s\ngrace: {}s\nlow_watermark: 90%\ninclude: [\"*.png\"]\n\
         exclude: [\"*.tmp\", \".*\"]\nprotect: [\"*_keep.png\"]\nprune_empty_dirs: true\n\
         rules: [{{match: \"G0\", max_age: {}s}}, {{match: \"G1\", keep_newest: 2}}, \
         {{match: \"G2\", group_max_files: 8}}, {{match: \"G3\", max_age: 0}}]\n\
         ^resync_interval: 1h",
        max_age.as_secs(),
        GRACE.as_secs(),
        // G0 ages twice as fast (never below grace), G1 keeps its two newest, G2 has a quota,
        // G3 has no age limit: the rules reorder the queue under every operation above.
        (max_age.as_secs() / 2).max(GRACE.as_secs()),
    )
}

const SIZES: [u64; 3] = [256 * 1024, 384 * 1024, 512 * 1024];
const AGES: [u64; 3] = [4, 6, 10];
const GROUPS: usize = 6;

impl World {
    fn token(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("seed {} #{} {what}\n", self.seed, self.counter)
    }

    fn under_root(&self, p: &Path) -> bool {
        p.starts_with(&self.root)
    }

    /// Why a vanished entry may never have been deleted (None: a managed file inside the root).
    fn sacred(&self, path: &Path, e: &Entry) -> Option<&'static str> {
        if !self.under_root(path) {
            return Some("outside the root");
        }
        match e.kind {
            Kind::Unmanaged => return Some("unmanaged"),
            Kind::Protected => return Some("protected"),
            Kind::Symlink => return Some("symlink"),
            Kind::Managed => {}
        }
        if self.locked.contains_key(&e.vid) {
            return Some("flocked");
        }
        if self.writers.iter().any(|w| w.vid == e.vid) && !self.writer_went_quiet(path, e) {
            return Some("open for writing");
        }
        None
    }

    /// Whether the writer of `e`'s version had stopped changing it for chartd's writer
    /// timeout by the time it was last seen intact: a file open for writing counts as being
    /// written while it keeps changing (issue #10: a lost close event must not pin a file for
    /// good), so a writer stalled that long (the model's own process starved on a loaded
    /// machine) may lose it. Judged at the earliest moment the deletion can have happened.
    ///
    /// When the file was last seen intact too soon to tell, chartd's log decides: its
    /// deletion line carries the moment right before the unlink (`beneath_at_ns`), a lower
    /// bound of when the file went.
    fn writer_went_quiet(&self, path: &Path, e: &Entry) -> bool {
        let quiet = WRITER_QUIET.as_nanos() as i128;
        let history = &self.versions[e.vid].history;
        // The kernel's time of the last write before `t` (the mtimes), not when this process
        // got round to noting it: on a loaded machine the two are hundreds of milliseconds
        // apart, and chartd's writer timeout counts from the write (an event or the mtime).
        let last_write_before = |t: i128| {
            history
                .iter()
                .map(|(_, m)| *m)
                .filter(|m| *m <= t)
                .max()
                .unwrap_or(i128::MIN / 2)
        };
        if last_write_before(i128::MAX).saturating_add(quiet) <= e.last_ok {
            return true;
        }
        // chartd's deletion line after we last saw the file intact: the moment right before
        // its unlink. Writes after that moment went to the deleted inode (a writer keeps
        // writing to an unlinked file) and do not count.
        let key = path.display().to_string();
        let (Some(ts), Some(b)) = (self.log.by_path.get(&key), self.log.beneath.get(&key)) else {
            return false;
        };
        ts.iter()
            .zip(b)
            .rev()
            .find(|(t, _)| **t >= e.last_ok)
            .and_then(|(_, b)| *b)
            .is_some_and(|at| at >= last_write_before(at).saturating_add(quiet))
    }

    /// What the oracle knows of a file deleted while open for writing (for the message).
    fn writer_story(&self, path: &Path, e: &Entry) -> String {
        let now = now_ns();
        let key = path.display().to_string();
        let logged: Vec<String> = self
            .log
            .by_path
            .get(&key)
            .into_iter()
            .flatten()
            .zip(self.log.beneath.get(&key).into_iter().flatten())
            .map(|(t, b)| {
                format!(
                    "logged {:+.3} s, unlink after {}",
                    secs(t - now),
                    b.map_or("?".into(), |b| format!("{:+.3} s", secs(b - now)))
                )
            })
            .collect();
        let writes: Vec<String> = self.versions[e.vid]
            .history
            .iter()
            .rev()
            .take(4)
            .map(|(w, m)| format!("mtime {:+.3} (noted {:+.3})", secs(m - now), secs(w - now)))
            .collect();
        format!(
            "last seen intact {:+.3} s; last writes (newest first): {writes:?}; chartd: {logged:?}",
            secs(e.last_ok - now)
        )
    }

    /// Reads chartd's log until it holds a deletion of `path` (at most 200 ms: the line is
    /// written right after the unlink), for judging a file that had a writer.
    fn await_deletion_line(&mut self, path: &Path) {
        let key = path.display().to_string();
        for _ in 0..20 {
            self.log.update(&self.d.log);
            if self.log.by_path.contains_key(&key) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn new_version(&mut self, mut v: Version) -> usize {
        v.history.push((now_ns(), v.mtime));
        self.versions.push(v);
        self.versions.len() - 1
    }

    /// The entry at `path` vanished without us: judge it; drops it from the model.
    fn judge(&mut self, path: &Path) {
        let Some(e) = self.entries.remove(path) else {
            return;
        };
        self.sum.deletions_checked += 1;
        let now = now_ns();
        let v = self.versions[e.vid].clone();
        if self.writers.iter().any(|w| w.vid == e.vid) {
            self.await_deletion_line(path);
        }
        if let Some(why) = self.sacred(path, &e) {
            if let Some((t_mv, inside)) = &e.moved_out {
                // Moved out of the root by a rename: chartd may have checked it just before and
                // unlinked it just after (a race of one syscall that no cleaner can close).
                // chartd logs when it last saw the directory beneath the root, right before
                // the unlink: at or before the rename (`t_mv`, taken when the rename returned),
                // the deletion was decided and checked inside the root. Lines without that
                // field are judged by the log time, within 1 ms of the rename.
                let key = inside.display().to_string();
                let mut ts = None;
                for _ in 0..20 {
                    self.log.update(&self.d.log);
                    ts = self.log.by_path.get(&key).and_then(|v| {
                        let b = self.log.beneath.get(&key);
                        v.iter()
                            .enumerate()
                            .rev()
                            .find(|(_, &t)| t >= t_mv - 1_000_000_000)
                            .map(|(i, &t)| (t, b.and_then(|b| b.get(i).copied().flatten())))
                    });
                    if ts.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if let Some((ts, beneath)) = ts {
                    let raced = match beneath {
                        Some(b) => b <= *t_mv,
                        None => ts <= t_mv + 1_000_000,
                    };
                    if raced {
                        self.sum.raced_renames += 1;
                        return;
                    }
                    self.fail(format!(
                        "chartd deleted {} ({}) {:.3} s after its directory was renamed out of \
                         the root to {} (token {:?}; chartd saw it beneath the root {})",
                        inside.display(),
                        why,
                        secs(ts - t_mv),
                        path.display(),
                        v.token.trim(),
                        match beneath {
                            Some(b) => format!("{:.6} s after the rename", secs(b - t_mv)),
                            None => "at an unlogged time".to_string(),
                        }
                    ));
                    return;
                }
            }
            if self.came_back(path, &e) {
                return;
            }
            let story = if why == "open for writing" {
                format!("; {}", self.writer_story(path, &e))
            } else {
                String::new()
            };
            self.fail(format!(
                "chartd removed a {why} file: {} ({:?}, {} bytes, token {:?}, age {:.3} s{story})",
                path.display(),
                e.kind,
                v.size,
                v.token.trim(),
                secs(now - v.mtime)
            ));
            return;
        }
        let grace = GRACE.as_nanos() as i128;
        let (lo, hi) = v.mtime_range(e.last_ok);
        if lo + grace > now {
            if self.came_back(path, &e) {
                return;
            }
            self.fail(format!(
                "chartd removed {} while in grace: age at most {:.3} s at detection (grace {} s), \
                 token {:?}, inode {}; seen intact {:.3} s before; its mtimes (relative to now): \
                 {:?}",
                path.display(),
                secs(now - lo),
                GRACE.as_secs(),
                v.token.trim(),
                v.ino,
                secs(now - e.last_ok),
                v.history
                    .iter()
                    .map(|(w, m)| format!("at {:+.3}: mtime {:+.3}", secs(w - now), secs(m - now)))
                    .collect::<Vec<_>>()
            ));
            return;
        }
        if hi + grace <= e.last_ok {
            return; // old enough whenever it went
        }
        // Ambiguous: it went between last_ok and now, and was younger than grace at some point
        // of that interval. The log says when: judge by the mtime in effect at that moment.
        let key = path.display().to_string();
        let mut ts = None;
        for _ in 0..40 {
            self.log.update(&self.d.log);
            ts = self.log.by_path.get(&key).and_then(|v| {
                v.iter()
                    .rev()
                    .find(|&&t| t >= e.last_ok - 5_000_000)
                    .copied()
            });
            if ts.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match ts {
            Some(t) if t - v.mtime_at(t) >= grace => {}
            Some(t) => {
                let hist: Vec<String> = v
                    .history
                    .iter()
                    .map(|(w, m)| format!("at {:+.3}: mtime {:+.3}", secs(w - t), secs(m - t)))
                    .collect();
                self.fail(format!(
                    "chartd deleted {} at age {:.3} s (log timestamp against the mtime then; \
                     grace {} s), token {:?}, inode {}; its mtimes relative to the deletion: \
                     {hist:?}; last seen intact {:+.3} s",
                    path.display(),
                    secs(t - v.mtime_at(t)),
                    GRACE.as_secs(),
                    v.token.trim(),
                    v.ino,
                    secs(e.last_ok - t)
                ))
            }
            None if self.last_kill >= e.last_ok => {} // killed between unlink and log line
            None if self.came_back(path, &e) => {}
            None => self.fail(format!(
                "{} vanished with no deletion logged, age {:.3}..{:.3} s",
                path.display(),
                secs(e.last_ok - hi),
                secs(now - lo)
            )),
        }
    }

    /// Before a failing verdict on `path`: is its inode back at the name after all (put back by
    /// chartd later than the short re-look)? Then nothing was deleted: the entry returns.
    fn came_back(&mut self, path: &Path, e: &Entry) -> bool {
        let ino = self.versions[e.vid].ino;
        if relook(path, ino, RELOOK_LONG) == Presence::Missing {
            return false;
        }
        self.sum.put_back_seen += 1;
        self.sum.deletions_checked = self.sum.deletions_checked.saturating_sub(1);
        let mut e = e.clone();
        e.last_ok = now_ns();
        self.entries.insert(path.to_path_buf(), e);
        true
    }

    fn fail(&mut self, msg: String) {
        if !self.selftest {
            eprintln!("MODEL SEED={} VIOLATION: {msg}", self.seed);
        }
        self.failures.push(msg);
    }

    /// Stat one entry: intact -> last_ok = now; gone or replaced -> judged.
    fn check(&mut self, path: &Path) {
        let Some(e) = self.entries.get(path) else {
            return;
        };
        let ino = self.versions[e.vid].ino;
        let t = now_ns();
        // chartd takes a victim off its name before it checks it, and puts it back when the
        // check fails: for a moment the name is empty although nothing is deleted (`relook`).
        match relook(path, ino, RELOOK_SHORT) {
            Presence::There => {
                self.entries.get_mut(path).unwrap().last_ok = t;
            }
            Presence::PutBack => {
                self.sum.put_back_seen += 1;
                self.entries.get_mut(path).unwrap().last_ok = t;
            }
            Presence::Missing => self.judge(path),
        }
    }

    fn check_hot(&mut self) {
        let now = now_ns();
        let horizon = (GRACE + Duration::from_millis(1500)).as_nanos() as i128;
        let hot: Vec<PathBuf> = self
            .entries
            .iter()
            .filter(|(p, e)| {
                now - self.versions[e.vid].mtime < horizon
                    || (self.sacred(p, e).is_some() && e.kind == Kind::Managed)
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in hot {
            self.check(&p);
        }
    }

    fn check_all(&mut self) {
        let all: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for p in all {
            self.check(&p);
        }
    }

    fn alive_and_fresh(&mut self) {
        if !alive(self.d.pid()) {
            let st = self.d.child.try_wait();
            self.fail(format!("chartd died: {st:?}"));
            return;
        }
        match request_within(
            &self.d.socket,
            r#"{"cmd":"status"}"#,
            Duration::from_secs(5),
        ) {
            None => self.fail("status did not answer within 5 s".into()),
            Some(st) => {
                if st.get("stale") == Some(&Value::Bool(true)) {
                    self.fail(format!("status says stale: true: {st}"));
                }
                // `groups` is answered by the index owner itself: a dead owner behind a
                // status that still answers from its last snapshot shows here.
                let g = request_within(
                    &self.d.socket,
                    r#"{"cmd":"groups","top":1}"#,
                    Duration::from_secs(10),
                );
                if g.is_none() {
                    self.fail(format!(
                        "status answers but the index owner does not (`groups` unanswered for \
                         10 s): status serves stale figures ({})",
                        st["roots"][0]
                    ));
                }
            }
        }
    }

    fn managed_in_root(&self, nlink1: bool) -> Vec<PathBuf> {
        let mut count: HashMap<usize, usize> = HashMap::new();
        if nlink1 {
            for e in self.entries.values() {
                *count.entry(e.vid).or_default() += 1;
            }
        }
        self.entries
            .iter()
            .filter(|(p, e)| {
                e.kind == Kind::Managed
                    && self.under_root(p)
                    && !self.writers.iter().any(|w| w.vid == e.vid)
                    && (!nlink1 || count[&e.vid] == 1)
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn pick_managed(&mut self, nlink1: bool) -> Option<PathBuf> {
        let v = self.managed_in_root(nlink1);
        self.rng.pick(&v).cloned()
    }

    fn group_dir(&mut self) -> PathBuf {
        let g = self.rng.below(GROUPS as u64);
        let mut p = self.root.join(format!("G{g}"));
        if self.rng.chance(400) {
            p = p.join(format!("s{}", self.rng.below(3)));
        }
        p
    }

    /// Writes a new file (create, write, close), retrying when chartd pruned the directory.
    fn write_at(&mut self, path: &Path, kind: Kind, size: usize, age: Option<Duration>) {
        let token = self.token("new");
        let mut body = token.clone().into_bytes();
        body.resize(size.max(body.len()), b'#');
        for _ in 0..5 {
            if let Some(p) = path.parent() {
                let _ = fs::create_dir_all(p);
            }
            let r = (|| -> std::io::Result<fs::Metadata> {
                let mut f = fs::File::create(path)?;
                f.write_all(&body)?;
                if let Some(a) = age {
                    f.set_modified(SystemTime::now() - a)?;
                }
                f.metadata()
            })();
            match r {
                Ok(m) => {
                    self.forget_prior(path);
                    let vid = self.new_version(Version {
                        ino: m.ino(),
                        token,
                        mtime: mtime_of(&m),
                        size: m.len(),
                        target: None,
                        history: Vec::new(),
                    });
                    self.entries.insert(
                        path.to_path_buf(),
                        Entry {
                            vid,
                            kind,
                            last_ok: now_ns(),
                            moved_out: None,
                        },
                    );
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("write {}: {e}", path.display()),
            }
        }
    }

    /// Something at `path` is being replaced by us: the old entry (if it was still there) is
    /// removed by the generator. If it had vanished already, judge that.
    fn forget_prior(&mut self, path: &Path) {
        self.entries.remove(path);
    }

    fn op_new(&mut self) {
        let dir = self.group_dir();
        self.counter += 1;
        let n = self.counter;
        let r = self.rng.below(100);
        let size = 512 + self.rng.below(16 * 1024) as usize;
        if r < 5 {
            let ext = if r < 3 { "csv" } else { "json" };
            self.write_at(
                &dir.join(format!("d{n}.{ext}")),
                Kind::Unmanaged,
                size,
                Some(hours(3)),
            );
        } else if r < 7 {
            self.write_at(
                &dir.join(format!("p{n}_keep.png")),
                Kind::Protected,
                700,
                Some(hours(3)),
            );
        } else {
            let age = if self.rng.chance(250) {
                Some(Duration::from_millis(self.rng.below(20_000)))
            } else {
                None
            };
            self.write_at(&dir.join(format!("c{n}.png")), Kind::Managed, size, age);
        }
    }

    /// A fresh chart renamed over an existing name (atomic replace).
    fn rename_over(&mut self, target: &Path) {
        self.check(target);
        let token = self.token("rename-over");
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = target.with_file_name(format!(".{name}.{}.tmp", self.counter));
        let mut body = token.clone().into_bytes();
        body.resize(1024 + self.rng.below(8192) as usize, b'=');
        if let Some(p) = tmp.parent() {
            let _ = fs::create_dir_all(p);
        }
        if fs::write(&tmp, &body).is_err() {
            return;
        }
        let m = fs::metadata(&tmp).unwrap();
        if let Err(e) = fs::rename(&tmp, target) {
            // chartd must never delete our excluded temp file.
            if tmp.exists() {
                let _ = fs::remove_file(&tmp);
                return;
            }
            self.fail(format!(
                "our excluded temp file {} vanished: {e}",
                tmp.display()
            ));
            return;
        }
        self.forget_prior(target);
        let vid = self.new_version(Version {
            ino: m.ino(),
            token,
            mtime: mtime_of(&m),
            size: m.len(),
            target: None,
            history: Vec::new(),
        });
        self.entries.insert(
            target.to_path_buf(),
            Entry {
                vid,
                kind: Kind::Managed,
                last_ok: now_ns(),
                moved_out: None,
            },
        );
    }

    /// Rewrites in place: open(O_TRUNC), write, close (savefig with a fixed name).
    fn rewrite(&mut self, path: &Path) {
        self.check(path);
        let Some(e) = self.entries.get(path).cloned() else {
            return;
        };
        let token = self.token("rewrite");
        let mut body = token.clone().into_bytes();
        body.resize(1024 + self.rng.below(8192) as usize, b'~');
        let r = (|| -> std::io::Result<fs::Metadata> {
            let mut f = fs::File::create(path)?;
            f.write_all(&body)?;
            f.metadata()
        })();
        let Ok(m) = r else { return };
        if m.ino() == self.versions[e.vid].ino {
            let v = &mut self.versions[e.vid];
            v.token = token;
            v.set_mtime(mtime_of(&m));
            v.size = m.len();
            self.entries.get_mut(path).unwrap().last_ok = now_ns();
        } else {
            // The old inode went just before our open (chartd evicted it): judge that name.
            let old = self.entries.get(path).cloned().unwrap();
            let tmp_e = old;
            self.entries.insert(path.to_path_buf(), tmp_e);
            self.judge(path);
            let vid = self.new_version(Version {
                ino: m.ino(),
                token,
                mtime: mtime_of(&m),
                size: m.len(),
                target: None,
                history: Vec::new(),
            });
            self.entries.insert(
                path.to_path_buf(),
                Entry {
                    vid,
                    kind: e.kind,
                    last_ok: now_ns(),
                    moved_out: None,
                },
            );
        }
    }

    fn op_truncate(&mut self) {
        let Some(p) = self.pick_managed(false) else {
            return;
        };
        self.check(&p);
        let Some(e) = self.entries.get(&p).cloned() else {
            return;
        };
        let v = &self.versions[e.vid];
        let len = (v.size / 2).max(v.token.len() as u64 + 8);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: truncate(2) on a NUL-terminated path.
        if unsafe { libc::truncate(c.as_ptr(), len as libc::off_t) } != 0 {
            self.check(&p);
            return;
        }
        match fs::symlink_metadata(&p) {
            Ok(m) if m.ino() == v.ino => {
                let v = &mut self.versions[e.vid];
                v.set_mtime(mtime_of(&m));
                v.size = m.len();
            }
            _ => self.check(&p),
        }
    }

    fn op_link(&mut self) {
        let Some(p) = self.pick_managed(false) else {
            return;
        };
        self.check(&p);
        let Some(e) = self.entries.get(&p).cloned() else {
            return;
        };
        self.counter += 1;
        let q = p.with_file_name(format!("l{}.png", self.counter));
        self.link_as(&p, &q, &e);
    }

    /// Another name `q` for the file at `p` (entry `e`), in the model if it got made.
    fn link_as(&mut self, p: &Path, q: &Path, e: &Entry) {
        if fs::hard_link(p, q).is_err() {
            self.check(p);
            return;
        }
        match fs::symlink_metadata(q) {
            Ok(m) if m.ino() == self.versions[e.vid].ino => {
                // a link changes ctime only; mtime stays
                self.entries.insert(
                    q.to_path_buf(),
                    Entry {
                        vid: e.vid,
                        kind: e.kind,
                        last_ok: now_ns(),
                        moved_out: None,
                    },
                );
            }
            _ => {}
        }
    }

    fn op_rename_file(&mut self) {
        let across = self.rng.chance(500);
        let Some(p) = self.pick_managed(across) else {
            return;
        };
        self.check(&p);
        if !self.entries.contains_key(&p) {
            return;
        }
        self.counter += 1;
        let q = if across {
            self.group_dir().join(format!("r{}.png", self.counter))
        } else {
            p.with_file_name(format!("r{}.png", self.counter))
        };
        if let Some(d) = q.parent() {
            let _ = fs::create_dir_all(d);
        }
        match fs::rename(&p, &q) {
            Ok(()) => {
                let mut e = self.entries.remove(&p).unwrap();
                e.last_ok = now_ns();
                self.entries.insert(q, e);
            }
            Err(_) => self.check(&p),
        }
    }

    fn op_delete(&mut self) {
        let Some(p) = self.pick_managed(false) else {
            return;
        };
        self.check(&p);
        if self.entries.contains_key(&p) && fs::remove_file(&p).is_ok() {
            self.entries.remove(&p);
        }
    }

    fn op_slow_writer(&mut self) {
        if self.writers.len() >= 3 {
            return;
        }
        let dir = self.group_dir();
        self.counter += 1;
        let path = dir.join(format!("w{}.png", self.counter));
        let _ = fs::create_dir_all(&dir);
        let Ok(mut f) = fs::File::create(&path) else {
            return;
        };
        let token = self.token("slow");
        f.write_all(token.as_bytes()).unwrap();
        let m = f.metadata().unwrap();
        let vid = self.new_version(Version {
            ino: m.ino(),
            token,
            mtime: mtime_of(&m),
            size: m.len(),
            target: None,
            history: Vec::new(),
        });
        self.entries.insert(
            path.clone(),
            Entry {
                vid,
                kind: Kind::Managed,
                last_ok: now_ns(),
                moved_out: None,
            },
        );
        let dur = Duration::from_millis(300 + self.rng.below(2500));
        self.writers.push(Writer {
            path,
            vid,
            file: f,
            next: Instant::now() + Duration::from_millis(100),
            end: Instant::now() + dur,
        });
    }

    fn tick_writers(&mut self, all: bool) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.writers.len() {
            let w = &mut self.writers[i];
            if all || w.end <= now {
                let _ = w.file.write_all(&[b'!'; 300]);
                let m = w.file.metadata().unwrap();
                let (vid, path) = (w.vid, w.path.clone());
                let w = self.writers.swap_remove(i);
                drop(w.file); // close: IN_CLOSE_WRITE
                let v = &mut self.versions[vid];
                v.set_mtime(mtime_of(&m));
                v.size = m.len();
                // While it was open, it was sacred: check it right now (looking again for a
                // few ms: chartd may have it off its name for a moment, see `check`).
                let t = now_ns();
                match relook(&path, m.ino(), RELOOK_SHORT) {
                    found @ (Presence::There | Presence::PutBack) => {
                        if found == Presence::PutBack {
                            self.sum.put_back_seen += 1;
                        }
                        if let Some(e) = self.entries.get_mut(&path) {
                            e.last_ok = t;
                        }
                    }
                    Presence::Missing => {
                        if self.entries.contains_key(&path) {
                            // Judge it as still open (it was, until just now).
                            let e = self.entries.remove(&path).unwrap();
                            self.await_deletion_line(&path);
                            if self.under_root(&path) && self.writer_went_quiet(&path, &e) {
                                self.sum.writer_timeouts += 1;
                                self.sum.deletions_checked += 1;
                            } else if self.under_root(&path) && self.came_back(&path, &e) {
                                self.sum.deletions_checked += 1; // came_back took one off
                            } else if self.under_root(&path) {
                                let story = self.writer_story(&path, &e);
                                self.fail(format!(
                                    "chartd removed {} while it was open for writing ({story})",
                                    path.display()
                                ));
                            } else {
                                self.entries.insert(path.clone(), e);
                                self.judge(&path);
                            }
                        }
                    }
                }
                continue;
            }
            if w.next <= now {
                let _ = w.file.write_all(&[b'+'; 200]);
                w.next = now + Duration::from_millis(100);
                let m = w.file.metadata().unwrap();
                let vid = w.vid;
                let v = &mut self.versions[vid];
                v.set_mtime(mtime_of(&m));
                v.size = m.len();
            }
            i += 1;
        }
    }

    fn op_lock(&mut self) {
        if self.locked.len() >= 4 || self.rng.chance(300) {
            // unlock one
            let keys: Vec<usize> = self.locked.keys().copied().collect();
            if let Some(k) = self.rng.pick(&keys).copied() {
                self.unlock(k);
            }
            return;
        }
        let Some(p) = self.pick_managed(false) else {
            return;
        };
        self.lock_path(&p);
    }

    /// Takes a shared `flock` on the file at `path` (as a reader would); true if it is ours.
    fn lock_path(&mut self, path: &Path) -> bool {
        let Some(e) = self.entries.get(path).cloned() else {
            return false;
        };
        if self.locked.contains_key(&e.vid) {
            return false;
        }
        let Ok(f) = fs::File::open(path) else {
            self.check(path);
            return false;
        };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_err() {
            return false;
        }
        // Locked now; but was it deleted (or replaced) before the lock was ours?
        let fino = f.metadata().unwrap().ino();
        match fs::symlink_metadata(path) {
            Ok(m) if m.ino() == fino && fino == self.versions[e.vid].ino && m.nlink() > 0 => {
                // The lock is on the inode, so it covers every name of it from now on, not
                // from when each name is next looked at: check them all before it counts. A
                // name found gone went before the lock was ours (chartd takes a name off and
                // unlinks it as `Deleted` only while its own LOCK_EX | LOCK_NB on that inode
                // holds, impossible while we hold ours), so it is judged as an unlocked file.
                // Seed 2 once failed here: chartd deleted the link l1804 (logged, reason size),
                // then this lock was taken through another name of the inode, and the link,
                // looked at only afterwards, was blamed as "flocked".
                for q in self.names_of(e.vid) {
                    self.check(&q);
                    if !self.entries.contains_key(&q) {
                        self.sum.gone_before_lock += 1;
                    }
                }
                self.locked.insert(e.vid, f);
                true
            }
            _ => {
                drop(f);
                self.check(path);
                false
            }
        }
    }

    /// Drops our lock on version `vid`, after checking every name of it while still locked:
    /// a name that went during the lock is judged as flocked even if nobody looked before.
    fn unlock(&mut self, vid: usize) {
        if !self.locked.contains_key(&vid) {
            return;
        }
        for q in self.names_of(vid) {
            self.check(&q);
        }
        self.locked.remove(&vid);
    }

    /// The names the model knows for version `vid` (hard links share it).
    fn names_of(&self, vid: usize) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter(|(_, e)| e.vid == vid)
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn op_symlink(&mut self) {
        let outside = self.ws.join("outside");
        let targets: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| p.starts_with(&outside))
            .cloned()
            .collect();
        let Some(t) = self.rng.pick(&targets).cloned() else {
            return;
        };
        let dir = self.group_dir();
        let _ = fs::create_dir_all(&dir);
        self.counter += 1;
        let n = self.counter;
        let (link, over) = if self.rng.chance(400) {
            // a symlink renamed over an (old) chart's name
            match self.pick_managed(true) {
                Some(p) => (p, true),
                None => return,
            }
        } else if self.rng.chance(300) {
            // a symlinked directory
            (dir.join(format!("ld{n}")), false)
        } else {
            (dir.join(format!("s{n}.png")), false)
        };
        let target = if link.extension().is_none() {
            outside.clone()
        } else {
            t.clone()
        };
        let tmp = link.with_file_name(format!(".sym{n}.tmp"));
        if std::os::unix::fs::symlink(&target, &tmp).is_err() {
            return;
        }
        if over {
            self.check(&link);
        }
        if fs::rename(&tmp, &link).is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        self.forget_prior(&link);
        let m = fs::symlink_metadata(&link).unwrap();
        let vid = self.new_version(Version {
            ino: m.ino(),
            token: String::new(),
            mtime: mtime_of(&m),
            size: 0,
            target: Some(target),
            history: Vec::new(),
        });
        self.entries.insert(
            link,
            Entry {
                vid,
                kind: Kind::Symlink,
                last_ok: now_ns(),
                moved_out: None,
            },
        );
    }

    /// Renames a directory: entries under `from` move to `to`. Right after, everything moved is
    /// checked at its new place as it was (inside or outside) before the move.
    fn move_dir(&mut self, from: &Path, to: &Path) -> bool {
        if let Some(p) = to.parent() {
            let _ = fs::create_dir_all(p);
        }
        if fs::rename(from, to).is_err() {
            return false;
        }
        let t_renamed = now_ns();
        let moved: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in &moved {
            let e = self.entries.get(p).unwrap();
            let v = &self.versions[e.vid];
            let q = to.join(p.strip_prefix(from).unwrap());
            let found = relook(&q, v.ino, RELOOK_LONG);
            if found == Presence::PutBack {
                self.sum.put_back_seen += 1;
            }
            if found == Presence::Missing {
                // Gone: deleted just before the rename (at p) or just after it (at q). Judge it
                // where chartd may delete, if either is inside the root (in chartd's favour).
                if self.under_root(&q) {
                    let e = self.entries.remove(p).unwrap();
                    self.entries.insert(q.clone(), e);
                    self.judge(&q);
                } else {
                    self.judge(p);
                }
            }
        }
        let t = now_ns();
        for p in moved {
            if let Some(mut e) = self.entries.remove(&p) {
                e.last_ok = t;
                let q = to.join(p.strip_prefix(from).unwrap());
                if self.under_root(&p) && !self.under_root(&q) {
                    e.moved_out = Some((t_renamed, p.clone()));
                } else if self.under_root(&q) {
                    e.moved_out = None;
                }
                for w in self.writers.iter_mut().filter(|w| w.path == p) {
                    w.path = q.clone();
                }
                self.entries.insert(q, e);
            }
        }
        true
    }

    fn op_dir_move(&mut self) {
        self.counter += 1;
        let n = self.counter;
        match self.rng.below(3) {
            0 => {
                // within the root
                let g = self.rng.below(GROUPS as u64);
                let from = self.root.join(format!("G{g}/s{}", self.rng.below(3)));
                let to = self
                    .root
                    .join(format!("G{}/m{n}", self.rng.below(GROUPS as u64)));
                if from.is_dir() {
                    self.move_dir(&from, &to);
                }
            }
            1 => {
                // out of the root
                let g = self.rng.below(GROUPS as u64);
                let from = if self.rng.chance(500) {
                    self.root.join(format!("G{g}"))
                } else {
                    self.root.join(format!("G{g}/s{}", self.rng.below(3)))
                };
                let to = self.ws.join(format!("away/d{n}"));
                if from.is_dir() && self.move_dir(&from, &to) {
                    self.away.push(to);
                }
            }
            _ => {
                // back into the root
                if self.away.is_empty() {
                    return;
                }
                let i = self.rng.below(self.away.len() as u64) as usize;
                let from = self.away.swap_remove(i);
                let to = self
                    .root
                    .join(format!("G{}/back{n}", self.rng.below(GROUPS as u64)));
                if !self.move_dir(&from, &to) {
                    self.away.push(from);
                }
            }
        }
    }

    fn op_burst(&mut self) {
        self.counter += 1;
        let dir = self.root.join(format!(
            "G{}/b{}",
            self.rng.below(GROUPS as u64),
            self.counter
        ));
        let n = 100 + self.rng.below(200);
        let stop = self.prof.overflow && self.rng.chance(300);
        if stop {
            sig(self.d.pid(), 19);
        }
        for i in 0..n {
            let p = dir.join(format!("f{i}.png"));
            let size = 200 + self.rng.below(2000) as usize;
            self.write_at(&p, Kind::Managed, size, None);
        }
        if stop {
            sig(self.d.pid(), 18);
        }
    }

    fn op_sighup(&mut self) {
        self.max_size = *self.rng.pick(&SIZES).unwrap();
        self.max_age = Duration::from_secs(*self.rng.pick(&AGES).unwrap());
        self.d.rewrite_config(&policy(self.max_size, self.max_age));
        sig(self.d.pid(), 1);
    }

    fn op_purge(&mut self) {
        let g = self.rng.below(GROUPS as u64);
        let req = format!(r#"{{"cmd":"purge","group":"G{g}","dry_run":false}}"#);
        let _ = request_within(&self.d.socket, &req, Duration::from_secs(30));
    }

    fn op_cleanup(&mut self) {
        let _ = request_within(
            &self.d.socket,
            r#"{"cmd":"cleanup"}"#,
            Duration::from_secs(30),
        );
    }

    fn op_kill(&mut self) {
        sig(self.d.pid(), 9);
        let _ = self.d.wait_exit(Duration::from_secs(5));
        self.last_kill = now_ns();
        let guard = (self.prof.overflow && is_root()).then(|| Sysctl::set(QUEUE_SYSCTL, "64"));
        self.d.restart();
        drop(guard);
        self.sum.restarts += 1;
    }

    /// The root replaced: renamed away (its content is outside from then on) and a prepared
    /// directory (unmanaged H/*.csv, charts) renamed into its place; sometimes while a purge
    /// runs, sometimes while chartd is stopped.
    fn op_root_replace(&mut self) {
        self.counter += 1;
        let n = self.counter;
        let next = self.ws.join(format!("next{n}"));
        for i in 0..5 {
            self.write_at(
                &next.join(format!("H/h{i}.csv")),
                Kind::Unmanaged,
                300,
                Some(hours(4)),
            );
        }
        for i in 0..8 {
            let age = Some(Duration::from_secs(self.rng.below(30)));
            self.write_at(&next.join(format!("G0/n{i}.png")), Kind::Managed, 4000, age);
        }
        self.write_at(
            &next.join("G1/x_keep.png"),
            Kind::Protected,
            300,
            Some(hours(4)),
        );
        let stop = self.rng.chance(300);
        let purge = (!stop && self.prof.purge && self.rng.chance(600)).then(|| {
            let sock = self.d.socket.clone();
            let g = self.rng.below(GROUPS as u64);
            std::thread::spawn(move || {
                let req = format!(r#"{{"cmd":"purge","group":"G{g}","dry_run":false}}"#);
                request_within(&sock, &req, Duration::from_secs(30))
            })
        });
        if stop {
            sig(self.d.pid(), 19);
        }
        let away = self.ws.join(format!("away/root{n}"));
        let root = self.root.clone();
        let ok = self.move_dir(&root, &away);
        assert!(ok, "rename the root away");
        let ok = self.move_dir(&next, &root);
        assert!(ok, "rename the replacement in");
        if stop {
            sig(self.d.pid(), 18);
        }
        if let Some(h) = purge {
            let _ = h.join();
        }
        // Pieces of the old root come back in later.
        for g in 0..GROUPS {
            let p = away.join(format!("G{g}"));
            if p.is_dir() {
                self.away.push(p);
            }
        }
        self.sum.root_replacements += 1;
    }

    /// Regenerates a few charts exactly at their expiry (item 6): mtime set so they expire in
    /// 150-300 ms, then rewritten (O_TRUNC) or renamed over at that moment, +-2 ms.
    fn op_regen_at_expiry(&mut self) {
        let mut picks = Vec::new();
        for _ in 0..4 {
            if let Some(p) = self.pick_managed(true) {
                if !picks.contains(&p) {
                    picks.push(p);
                }
            }
        }
        let max_age = self.max_age.max(GRACE);
        let mut plan = Vec::new();
        for (i, p) in picks.iter().enumerate() {
            let lead = Duration::from_millis(150 + 40 * i as u64);
            let before = now_ns();
            let r = fs::File::options().write(true).open(p).and_then(|f| {
                f.set_modified(SystemTime::now() - max_age + lead)?;
                f.metadata()
            });
            match r {
                Ok(m)
                    if self
                        .entries
                        .get(p)
                        .is_some_and(|e| self.versions[e.vid].ino == m.ino()) =>
                {
                    let e = self.entries.get(p).unwrap().clone();
                    self.versions[e.vid].set_mtime_at(mtime_of(&m), before);
                    let expiry = UNIX_EPOCH
                        + Duration::from_nanos((mtime_of(&m) + max_age.as_nanos() as i128) as u64);
                    plan.push((p.clone(), expiry));
                }
                _ => self.check(p),
            }
        }
        for (i, (p, expiry)) in plan.into_iter().enumerate() {
            let jitter = self.rng.below(4000) as i64 - 2000;
            let at = if jitter >= 0 {
                expiry + Duration::from_micros(jitter as u64)
            } else {
                expiry - Duration::from_micros((-jitter) as u64)
            };
            if let Ok(wait) = at.duration_since(SystemTime::now()) {
                std::thread::sleep(wait);
            }
            if i % 2 == 0 {
                self.rewrite(&p);
            } else {
                self.rename_over(&p);
            }
        }
    }
}

/// kill(2) without panicking (the daemon may be dead: that is reported, not a crash here).
pub fn sig(pid: i32, s: i32) {
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe {
        libc::kill(pid, s);
    }
}

/// Managed files on disk: per group (files = names, bytes = once per inode), the totals, and
/// the oldest managed mtime that an age limit applies to (see `policy`'s rules).
#[derive(Debug, Default, PartialEq)]
struct DiskView {
    files: u64,
    bytes: u64,
    groups: BTreeMap<String, (u64, u64)>,
    /// Per group, the inodes that also have names in other groups (files, bytes): chartd
    /// counts such an inode in the group of the name it indexed first, which a walk cannot
    /// know, so a group's figures may include any of these.
    shared: BTreeMap<String, (u64, u64)>,
}

impl DiskView {
    /// Whether the index's per-group figures `idx` fit this walk: every inode whose names
    /// are all in one group counted there, each inode shared between groups in one of them,
    /// and the totals exact.
    fn groups_fit(&self, idx: &BTreeMap<String, (u64, u64)>) -> Vec<String> {
        let mut bad = Vec::new();
        let names: std::collections::BTreeSet<&String> = self
            .groups
            .keys()
            .chain(self.shared.keys())
            .chain(idx.keys())
            .collect();
        for g in names {
            let (ef, eb) = self.groups.get(g).copied().unwrap_or_default();
            let (sf, sb) = self.shared.get(g).copied().unwrap_or_default();
            let (f, b) = idx.get(g).copied().unwrap_or_default();
            if f < ef || f > ef + sf || b < eb || b > eb + sb {
                bad.push(format!(
                    "{g}: disk {:?} (+ up to {:?} shared with other groups) groups {:?}",
                    (ef, eb),
                    (sf, sb),
                    (f, b)
                ));
            }
        }
        let (tf, tb) = idx.values().fold((0, 0), |(a, b), (f, x)| (a + f, b + x));
        if (tf, tb) != (self.files, self.bytes) {
            bad.push(format!(
                "groups add up to {tf} files {tb} B, the disk holds {} files {} B",
                self.files, self.bytes
            ));
        }
        bad
    }
}

fn walk(root: &Path) -> (DiskView, Option<(i128, PathBuf)>) {
    let mut v = DiskView::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut inode_groups: HashMap<u64, (u64, std::collections::BTreeSet<String>)> = HashMap::new();
    let mut oldest: Option<(i128, PathBuf)> = None;
    let mut aging: Vec<(String, i128, PathBuf, bool, u64)> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if name.starts_with('.') || name.ends_with(".tmp") {
                continue;
            }
            if ft.is_dir() {
                stack.push(e.path());
                continue;
            }
            if !ft.is_file() || !name.ends_with(".png") {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let group = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            if rel.components().count() == 1 {
                continue; // files directly in the root belong to no group
            }
            // Hard links count once per inode, like `du` (and chartd).
            if seen.insert(m.ino()) {
                v.files += 1;
                v.bytes += m.len();
            }
            inode_groups
                .entry(m.ino())
                .or_insert_with(|| (m.len(), std::collections::BTreeSet::new()))
                .1
                .insert(group.clone());
            aging.push((
                group,
                mtime_of(&m),
                e.path(),
                name.ends_with("_keep.png"),
                m.ino(),
            ));
        }
    }
    let inode_groups_of: HashMap<u64, std::collections::BTreeSet<String>> = inode_groups
        .iter()
        .map(|(i, (_, g))| (*i, g.clone()))
        .collect();
    for (size, groups) in inode_groups.into_values() {
        let alone = groups.len() == 1;
        for g in groups {
            let e = if alone {
                v.groups.entry(g).or_default()
            } else {
                v.shared.entry(g).or_default()
            };
            e.0 += 1;
            e.1 += size;
        }
    }
    // The rules of `policy`: G3 has no age limit, and G1's two newest managed files (inodes:
    // hard links are one file) are kept whatever their age; protected files never age out.
    // A G1 name of an inode linked into other groups may count in either group (chartd
    // counts an inode under the name it indexed first), so its age is not judged here.
    aging.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut kept_g1: Vec<u64> = Vec::new();
    for (group, _, _, _, ino) in &aging {
        let linked_out = inode_groups_of.get(ino).is_some_and(|g| g.len() > 1);
        if group == "G1" && !linked_out && kept_g1.len() < 2 && !kept_g1.contains(ino) {
            kept_g1.push(*ino);
        }
    }
    for (group, t, path, protected, ino) in aging {
        if group == "G1"
            && (kept_g1.contains(&ino) || inode_groups_of.get(&ino).is_some_and(|g| g.len() > 1))
        {
            continue;
        }
        if protected || group == "G3" {
            continue;
        }
        if oldest.as_ref().is_none_or(|o| t < o.0) {
            oldest = Some((t, path));
        }
    }
    (v, oldest)
}

fn index_view(d: &Daemon) -> Option<(DiskView, Value)> {
    let st = request_within(&d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(3))?;
    let g = request_within(
        &d.socket,
        r#"{"cmd":"groups","sort":"name"}"#,
        Duration::from_secs(5),
    )?;
    let r = st["roots"][0].clone();
    let mut v = DiskView {
        files: r["total_files"].as_u64()?,
        bytes: r["total_bytes"].as_u64()?,
        groups: BTreeMap::new(),
        shared: BTreeMap::new(),
    };
    for x in g["groups"].as_array()? {
        let f = x["files"].as_u64()?;
        if f > 0 {
            v.groups
                .insert(x["name"].as_str()?.to_string(), (f, x["bytes"].as_u64()?));
        }
    }
    Some((v, st))
}

impl World {
    /// Stops the generator and checks the end state (see the module doc).
    fn quiesce(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        self.tick_writers(true);
        let vids: Vec<usize> = self.locked.keys().copied().collect();
        for vid in vids {
            self.unlock(vid);
        }
        self.check_all();
        // Everything leaves its grace period (a precondition of the limits, not a wait for
        // chartd: what follows polls with a deadline).
        std::thread::sleep(GRACE + Duration::from_millis(300));
        self.check_all();
        // chartd retries a file it found flocked (or changed at the head of the queue) 30 s
        // later: the deadline allows for that.
        let deadline = Duration::from_secs(45);
        let mut last = String::new();
        let mut stable = 0;
        let ok = wait_until(deadline, || {
            let (disk, oldest) = walk(&self.root);
            let Some((idx, st)) = index_view(&self.d) else {
                let st = request_within(
                    &self.d.socket,
                    r#"{"cmd":"status"}"#,
                    Duration::from_secs(3),
                );
                last = format!(
                    "status or groups did not answer (chartd alive: {}; status alone: {})",
                    alive(self.d.pid()),
                    if st.is_some() { "answers" } else { "no answer" }
                );
                stable = 0;
                return false;
            };
            let r = &st["roots"][0];
            let mut why = Vec::new();
            if idx.files != disk.files || idx.bytes != disk.bytes {
                why.push(format!(
                    "status {} files {} B, disk {} files {} B",
                    idx.files, idx.bytes, disk.files, disk.bytes
                ));
            }
            let diff = disk.groups_fit(&idx.groups);
            if !diff.is_empty() {
                why.push(format!("groups differ: {diff:?}"));
            }
            let blocked = &r["holding"]["blocked"];
            if disk.bytes > self.max_size && blocked.is_null() {
                why.push(format!(
                    "over max_size ({} B on disk > {} B) and status reports no blocker \
                     (roots[0].holding.blocked is {})",
                    disk.bytes, self.max_size, blocked
                ));
            }
            if let Some((t, p)) = &oldest {
                let age = now_ns() - t;
                let limit = (self.max_age.max(GRACE) + Duration::from_secs(1)).as_nanos() as i128;
                if age > limit && blocked.is_null() {
                    why.push(format!(
                        "{} is {:.1} s old (max_age {} s) and no blocker is reported",
                        p.display(),
                        secs(age),
                        self.max_age.as_secs()
                    ));
                }
            }
            if st.get("stale") == Some(&Value::Bool(true)) {
                why.push("status says stale: true".into());
            }
            if why.is_empty() {
                stable += 1;
                return stable >= 2;
            }
            stable = 0;
            last = why.join("; ");
            false
        });
        self.sum.quiescence = t0.elapsed();
        self.check_all();
        // Sacred files: by inode and by content.
        let sacred: Vec<(PathBuf, Entry)> = self
            .entries
            .iter()
            .filter(|(p, e)| self.sacred(p, e).is_some())
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        for (p, e) in sacred {
            let v = &self.versions[e.vid];
            self.sum.sacred_checked += 1;
            if let Some(t) = &v.target {
                if fs::read_link(&p).ok().as_ref() != Some(t) {
                    self.fail(format!("symlink {} changed", p.display()));
                }
            } else if !fs::read(&p).is_ok_and(|c| c.starts_with(v.token.as_bytes())) {
                self.fail(format!(
                    "{} lost its content (token {:?})",
                    p.display(),
                    v.token.trim()
                ));
            }
        }
        if !ok {
            return Err(format!(
                "no quiescence within {deadline:?} after the generator stopped: {last}"
            ));
        }
        Ok(())
    }
}

impl World {
    fn new(
        seed: u64,
        rng: Rng,
        prof: Profile,
        d: Daemon,
        max_size: u64,
        max_age: Duration,
    ) -> World {
        let ws = d.dir.path().to_path_buf();
        let root = d.root.clone();
        World {
            seed,
            rng,
            prof,
            d,
            ws,
            root,
            entries: BTreeMap::new(),
            versions: Vec::new(),
            locked: HashMap::new(),
            writers: Vec::new(),
            away: Vec::new(),
            log: LogIndex {
                offset: 0,
                by_path: HashMap::new(),
                beneath: HashMap::new(),
                count: 0,
            },
            counter: 0,
            max_size,
            max_age,
            last_kill: 0,
            sum: Summary {
                seed,
                ..Summary::default()
            },
            failures: Vec::new(),
            selftest: false,
        }
    }
}

fn plant_outside(w: &mut World) {
    let outside = w.ws.join("outside");
    for i in 0..12 {
        let p = outside.join(format!("o{i}.png"));
        w.write_at(&p, Kind::Managed, 2000, Some(hours(5)));
    }
    for i in 0..4 {
        w.write_at(
            &outside.join(format!("sub/o{i}.png")),
            Kind::Managed,
            2000,
            Some(hours(5)),
        );
    }
}

/// Runs one seed. `Err` names every violation (and the replay command is printed by the
/// caller).
pub fn run(seed: u64, prof: &Profile) -> (Summary, Result<(), String>) {
    eprintln!(
        "MODEL SEED={seed} start ({:?} of {}); replay: CHARTD_MODEL_SEED={seed} cargo test \
         --release --test model -- --nocapture",
        prof.secs,
        if prof.kill {
            "the full workload"
        } else {
            "writes/renames/links/truncations"
        }
    );
    let mut rng = Rng::new(seed);
    let max_size = *rng.pick(&SIZES).unwrap();
    let max_age = Duration::from_secs(*rng.pick(&AGES).unwrap());
    let guard = (prof.overflow && is_root()).then(|| Sysctl::set(QUEUE_SYSCTL, "64"));
    let d = Daemon::start(&policy(max_size, max_age), |root| {
        for g in 0..GROUPS {
            fs::create_dir_all(root.join(format!("G{g}"))).unwrap();
        }
    });
    drop(guard);
    let mut w = World::new(seed, rng, prof.clone(), d, max_size, max_age);
    plant_outside(&mut w);
    // Canaries in the root: protected and unmanaged, old.
    for g in 0..GROUPS {
        let p = w.root.join(format!("G{g}/canary{g}_keep.png"));
        w.write_at(&p, Kind::Protected, 500, Some(hours(6)));
        let p = w.root.join(format!("G{g}/data{g}.csv"));
        w.write_at(&p, Kind::Unmanaged, 500, Some(hours(6)));
    }
    let t0 = Instant::now();
    let mut step = 0u64;
    let weights: Vec<(&'static str, u64, bool)> = vec![
        ("new", 300, true),
        ("rename_over", 60, true),
        ("rewrite", 60, true),
        ("truncate", 30, true),
        ("link", 40, true),
        ("rename_file", 40, true),
        ("delete", 20, true),
        ("slow_writer", 15, prof.slow_writers),
        ("lock", 15, prof.locks),
        ("symlink", 10, prof.symlinks),
        ("dir_move", 12, prof.dir_moves),
        ("burst", 4, prof.bursts),
        ("sighup", 4, prof.sighup),
        ("purge", 4, prof.purge),
        ("cleanup", 3, prof.cleanup),
        ("kill", 1, prof.kill),
        ("root_replace", 1, prof.root_replace),
        ("regen_at_expiry", 12, prof.regen_at_expiry),
    ];
    let weights: Vec<(&'static str, u64)> = weights
        .into_iter()
        .filter(|x| x.2)
        .map(|x| (x.0, x.1))
        .collect();
    let total: u64 = weights.iter().map(|x| x.1).sum();
    while t0.elapsed() < prof.secs && w.failures.is_empty() {
        step += 1;
        let mut r = w.rng.below(total);
        let op = weights
            .iter()
            .find(|(_, wt)| {
                if r < *wt {
                    true
                } else {
                    r -= wt;
                    false
                }
            })
            .unwrap()
            .0;
        match op {
            "new" => w.op_new(),
            "rename_over" => {
                if let Some(p) = w.pick_managed(true) {
                    w.rename_over(&p)
                }
            }
            "rewrite" => {
                if let Some(p) = w.pick_managed(false) {
                    w.rewrite(&p)
                }
            }
            "truncate" => w.op_truncate(),
            "link" => w.op_link(),
            "rename_file" => w.op_rename_file(),
            "delete" => w.op_delete(),
            "slow_writer" => w.op_slow_writer(),
            "lock" => w.op_lock(),
            "symlink" => w.op_symlink(),
            "dir_move" => w.op_dir_move(),
            "burst" => w.op_burst(),
            "sighup" => w.op_sighup(),
            "purge" => w.op_purge(),
            "cleanup" => w.op_cleanup(),
            "kill" => w.op_kill(),
            "root_replace" => w.op_root_replace(),
            "regen_at_expiry" => w.op_regen_at_expiry(),
            _ => unreachable!(),
        }
        *w.sum.op_counts.entry(op).or_default() += 1;
        w.tick_writers(false);
        w.check_hot();
        if step % 25 == 0 {
            w.check_all();
            w.alive_and_fresh();
        }
        let pause = w.rng.below(15);
        std::thread::sleep(Duration::from_millis(pause));
    }
    w.sum.ops = step;
    let q = if w.failures.is_empty() {
        w.quiesce()
    } else {
        Ok(())
    };
    w.alive_and_fresh();
    w.log.update(&w.d.log);
    w.sum.chartd_deletions = w.log.count;
    w.sum.overflows = request_within(&w.d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(3))
        .and_then(|s| s["roots"][0]["overflows"].as_u64())
        .unwrap_or(0);
    eprintln!(
        "MODEL SEED={seed} {}: {} ops {:?}; {} deletions checked, chartd logged {} deletions; \
         {} restarts, {} root replacements, {} overflows (chartd's count since its last start); \
         {} sacred files checked by content; {} unlinks raced a rename out of the root \
         (checked beneath the root before the rename returned: accepted); {} names found empty for a moment and put back by chartd; \
         {} open files deleted after their writer stalled past the writer timeout (accepted); \
         {} names of an inode found gone when we locked it (went before the lock); \
         quiescence {:.1?}",
        if w.failures.is_empty() && q.is_ok() {
            "ok"
        } else {
            "FAILED"
        },
        w.sum.ops,
        w.sum.op_counts,
        w.sum.deletions_checked,
        w.sum.chartd_deletions,
        w.sum.restarts,
        w.sum.root_replacements,
        w.sum.overflows,
        w.sum.sacred_checked,
        w.sum.raced_renames,
        w.sum.put_back_seen,
        w.sum.writer_timeouts,
        w.sum.gone_before_lock,
        w.sum.quiescence
    );
    let mut errs = w.failures.clone();
    if let Err(e) = q {
        errs.push(e);
    }
    if errs.is_empty() && w.sum.chartd_deletions == 0 {
        errs.push("positive control: chartd deleted nothing during the run".into());
    }
    if errs.is_empty() {
        (w.sum.clone(), Ok(()))
    } else {
        let log = w.d.log_text();
        let keep = std::env::temp_dir().join(format!("chartd-model-seed{seed}.log"));
        let _ = fs::write(&keep, &log);
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let e = format!(
            "MODEL SEED={seed} FAILED ({} violations): {}\n  replay: CHARTD_MODEL_SEED={seed} \
             cargo test --release --test model -- --nocapture\n  chartd's log: {}; its tail:\n{}",
            errs.len(),
            errs.iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            keep.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        (w.sum.clone(), Err(e))
    }
}

/// The oracle's own check of how it judges `flock`s, deterministic. chartd runs but has nothing
/// to do (no size pressure, the files are far younger than max_age), so every removal here is
/// made by this function behind the model's back, standing in for chartd; `locked` means the
/// lock is ours, and the kernel guarantees chartd's `LOCK_EX | LOCK_NB` fails on that inode from
/// the moment our `flock` returns until we drop it.
///
/// - A: a hard link of an inode is removed, then a lock is taken through another name of that
///   inode: the removal happened before the lock existed (it deleted an old, unlocked file) and
///   must not be blamed as "flocked" when the oracle gets to look at the link.
/// - B: a link removed while the lock is held: a violation, caught.
/// - C: the same, but the lock is released before the oracle looks: still caught.
pub fn oracle_flock_selftest() -> Result<(), String> {
    let max_size = 1 << 30;
    let max_age = Duration::from_secs(3600);
    let d = Daemon::start(&policy(max_size, max_age), |root| {
        for g in 0..GROUPS {
            fs::create_dir_all(root.join(format!("G{g}"))).unwrap();
        }
    });
    let mut w = World::new(
        0,
        Rng::new(0),
        Profile::mix(Duration::ZERO),
        d,
        max_size,
        max_age,
    );
    w.selftest = true;
    let dir = w.root.join("G4");
    let age = Some(Duration::from_secs(600));
    let mut errs: Vec<String> = Vec::new();
    let pair = |w: &mut World, n: &str| {
        let (p, l) = (
            dir.join(format!("{n}.png")),
            dir.join(format!("{n}_link.png")),
        );
        w.write_at(&p, Kind::Managed, 4000, age);
        let e = w.entries[&p].clone();
        w.link_as(&p, &l, &e);
        assert!(w.entries.contains_key(&l), "link {}", l.display());
        (p, l, e.vid)
    };

    let (a, a_link, _) = pair(&mut w, "a");
    fs::remove_file(&a_link).unwrap();
    assert!(w.lock_path(&a), "lock {}", a.display());
    w.check_all();
    if !w.failures.is_empty() {
        errs.push(format!(
            "A (a link removed before the lock on another name was taken): the oracle blamed \
             chartd: {:?}",
            w.failures
        ));
    }
    w.failures.clear();

    let (b, b_link, _) = pair(&mut w, "b");
    assert!(w.lock_path(&b), "lock {}", b.display());
    fs::remove_file(&b_link).unwrap();
    w.check_all();
    let caught = |f: &[String], l: &Path| {
        f.len() == 1 && f[0].contains("flocked") && f[0].contains(&*l.to_string_lossy())
    };
    if !caught(&w.failures, &b_link) {
        errs.push(format!(
            "B (a link removed while the lock was held): not caught as exactly one flocked \
             violation: {:?}",
            w.failures
        ));
    }
    w.failures.clear();

    let (c, c_link, c_vid) = pair(&mut w, "c");
    assert!(w.lock_path(&c), "lock {}", c.display());
    fs::remove_file(&c_link).unwrap();
    w.unlock(c_vid);
    w.check_all();
    if !caught(&w.failures, &c_link) {
        errs.push(format!(
            "C (a link removed while the lock was held, the lock released before the oracle \
             looked): not caught as exactly one flocked violation: {:?}",
            w.failures
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}
