//! Capacity figures per root (issue 13): how fast a root fills and empties, how long charts
//! actually live under pressure, when it will be full, and how often chartd evicts a chart that
//! is then written again. Fixed memory per root, O(1) per event; pure (time is passed in).
//!
//! # What the core calls (one [`CapacityTracker`] per root, owned by the index owner)
//!
//! ```ignore
//! t.set_usage(total_bytes, now);                 // after the initial crawl and each resync
//! t.on_write(new_size as i64 - old_size as i64, now); // a writer created/grew/shrank a file
//! t.on_create(path_hash, now);                   // a managed file appeared at a path
//! t.on_evict(age, bytes, reason, path_hash, now); // chartd deleted a file (age = now - mtime)
//! let f = t.figures(now, &Room { .. });           // for status / --json / metrics / top
//! ```
//!
//! `path_hash` is any stable 64-bit hash of the path relative to the root.
//!
//! # Definitions (the numbers the tests check)
//!
//! - Time is cut into minutes (Unix time / 60); the last [`HISTORY_MINUTES`] minutes are kept,
//!   one slot each: bytes written (positive deltas of `on_write`), bytes evicted, usage at the
//!   end of the minute, pressure evictions (count, sum of ages) and premature evictions.
//! - `write_bytes_per_second` / `evicted_bytes_per_second`: bytes in the last
//!   [`RATE_MINUTES`] slots (the current one included) divided by the time they span up to now
//!   (from the tracker's start if that is later).
//! - `effective_retention_hours`: the mean age of the files evicted by pressure (`size`,
//!   `free_space`) in the last hour; `None` when none was.
//! - `time_to_full_hours`: room left ([`Room`]: to `max_size` and to the free-space floor,
//!   whichever is nearer) divided by the net growth rate (write − evict, rate window above);
//!   `None` when the root is not growing or no room is known.
//! - `premature_evictions`: creates at a path that chartd evicted less than
//!   [`PREMATURE_WINDOW`] before (each eviction counts at most once). The last
//!   [`RECENT_SLOTS`] evictions are remembered (a set of path hashes, open addressing, probe
//!   length [`PROBE`]); under a heavier eviction rate the oldest are forgotten, so this is a
//!   lower bound then.
//!
//! May touch: nothing outside its own tracker and its arguments (pure; time is passed in). It uses
//! `stats::Reason` while `stats` embeds `CapacityFigures` (a type cycle).

use crate::stats::Reason;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

pub const HISTORY_MINUTES: usize = 60;
pub const RATE_MINUTES: u64 = 5;
pub const PREMATURE_WINDOW: Duration = Duration::from_secs(10 * 60);
pub const RECENT_SLOTS: usize = 4096;
pub const PROBE: usize = 8;

/// One minute of history.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Minute {
    /// Minute number (Unix seconds / 60) this slot holds; stale slots are skipped.
    pub minute: u64,
    pub written_bytes: u64,
    pub evicted_bytes: u64,
    /// Usage (bytes) at the end of the minute (the last value seen).
    pub usage_bytes: u64,
    pub pressure_evictions: u64,
    pub pressure_age_seconds: f64,
    pub premature: u64,
}

/// How much room the root has left, from the snapshot: `None` where a limit is off/unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Room {
    /// `max_size - total_bytes` (0 when over).
    pub to_max_size: Option<u64>,
    /// `fs_free - min_free` (0 when below the floor).
    pub to_floor: Option<u64>,
}

impl Room {
    /// From the figures of a snapshot root.
    pub fn new(
        total_bytes: u64,
        max_size: Option<u64>,
        fs_free: u64,
        fs_total: u64,
        min_free: Option<u64>,
    ) -> Room {
        Room {
            to_max_size: max_size.map(|m| m.saturating_sub(total_bytes)),
            to_floor: (fs_total > 0).then(|| fs_free.saturating_sub(min_free.unwrap_or(0))),
        }
    }

    fn nearest(&self) -> Option<u64> {
        match (self.to_max_size, self.to_floor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What [`CapacityTracker::figures`] reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityFigures {
    pub effective_retention_hours: Option<f64>,
    pub write_bytes_per_second: f64,
    pub evicted_bytes_per_second: f64,
    pub time_to_full_hours: Option<f64>,
    /// Since the tracker started (a counter).
    pub premature_evictions: u64,
    /// In the last hour.
    pub premature_evictions_last_hour: u64,
    /// The last [`HISTORY_MINUTES`] minutes, oldest first, the current minute last; minutes
    /// without events carry the usage forward and zero rates.
    pub history: Vec<Minute>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    hash: u64,
    /// Unix seconds of the eviction + 1 (0: empty).
    at: u64,
}

/// The per-root tracker. About 4 KiB of history plus 64 KiB of recent evictions.
pub struct CapacityTracker {
    started: u64,
    slots: [Minute; HISTORY_MINUTES],
    current: u64,
    usage: u64,
    premature_total: u64,
    recent: Box<[Recent]>,
    /// Whether any eviction was ever remembered: until then no create can be premature, and
    /// the caller skips hashing the path (the initial crawl of a root creates every file).
    remembered: bool,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mix(h: u64) -> u64 {
    // splitmix64 finalizer: callers' hashes may be weak in the low bits.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl CapacityTracker {
    pub fn new(now: SystemTime) -> CapacityTracker {
        let s = secs(now);
        let mut t = CapacityTracker {
            started: s,
            slots: [Minute::default(); HISTORY_MINUTES],
            current: s / 60,
            usage: 0,
            premature_total: 0,
            recent: vec![Recent::default(); RECENT_SLOTS].into_boxed_slice(),
            remembered: false,
        };
        let cur = t.current;
        t.slots[(cur % HISTORY_MINUTES as u64) as usize].minute = cur;
        t
    }

    /// Moves the ring to `now`'s minute (a clock that went back stays on the current minute)
    /// and returns the current slot. At most [`HISTORY_MINUTES`] slots are touched.
    fn slot(&mut self, now: SystemTime) -> &mut Minute {
        let m = (secs(now) / 60).max(self.current);
        if m != self.current {
            let first = (self.current + 1).max(m.saturating_sub(HISTORY_MINUTES as u64 - 1));
            for minute in first..=m {
                self.slots[(minute % HISTORY_MINUTES as u64) as usize] = Minute {
                    minute,
                    usage_bytes: self.usage,
                    ..Minute::default()
                };
            }
            self.current = m;
        }
        &mut self.slots[(m % HISTORY_MINUTES as u64) as usize]
    }

    /// The root's total size as measured (after a crawl or resync).
    pub fn set_usage(&mut self, total_bytes: u64, now: SystemTime) {
        self.usage = total_bytes;
        self.slot(now).usage_bytes = total_bytes;
    }

    /// A writer changed the root's size by `bytes_delta` (new file, grown, shrunk, replaced).
    pub fn on_write(&mut self, bytes_delta: i64, now: SystemTime) {
        self.usage = self.usage.saturating_add_signed(bytes_delta);
        let usage = self.usage;
        let s = self.slot(now);
        if bytes_delta > 0 {
            s.written_bytes += bytes_delta as u64;
        }
        s.usage_bytes = usage;
    }

    /// chartd deleted a file of `bytes`, `age` old, for `reason`.
    pub fn on_evict(
        &mut self,
        age: Duration,
        bytes: u64,
        reason: Reason,
        path_hash: u64,
        now: SystemTime,
    ) {
        self.usage = self.usage.saturating_sub(bytes);
        let usage = self.usage;
        let s = self.slot(now);
        s.evicted_bytes += bytes;
        s.usage_bytes = usage;
        if reason.is_pressure() {
            s.pressure_evictions += 1;
            s.pressure_age_seconds += age.as_secs_f64();
        }
        if reason != Reason::Purge {
            self.remember(path_hash, secs(now));
        }
    }

    /// A managed file appeared at a path; counts a premature eviction when chartd evicted that
    /// path less than [`PREMATURE_WINDOW`] ago.
    pub fn on_create(&mut self, path_hash: u64, now: SystemTime) {
        let t = secs(now);
        let base = mix(path_hash) as usize;
        for i in 0..PROBE {
            let e = &mut self.recent[(base + i) % RECENT_SLOTS];
            if e.at != 0 && e.hash == path_hash {
                let evicted = e.at - 1;
                *e = Recent::default();
                if t.saturating_sub(evicted) < PREMATURE_WINDOW.as_secs() {
                    self.premature_total += 1;
                    self.slot(now).premature += 1;
                }
                return;
            }
        }
    }

    /// Whether [`Self::on_create`] can count anything: false until the first eviction is
    /// remembered, so that a caller may skip computing the path's hash.
    pub fn remembers_evictions(&self) -> bool {
        self.remembered
    }

    fn remember(&mut self, hash: u64, t: u64) {
        self.remembered = true;
        let base = mix(hash) as usize;
        let mut victim = base % RECENT_SLOTS;
        let mut oldest = u64::MAX;
        for i in 0..PROBE {
            let idx = (base + i) % RECENT_SLOTS;
            let e = self.recent[idx];
            if e.at == 0 || e.hash == hash {
                victim = idx;
                break;
            }
            if e.at < oldest {
                oldest = e.at;
                victim = idx;
            }
        }
        self.recent[victim] = Recent { hash, at: t + 1 };
    }

    /// The figures at `now` (see the module doc for the definitions).
    pub fn figures(&mut self, now: SystemTime, room: &Room) -> CapacityFigures {
        let t = secs(now);
        let cur = self.slot(now).minute;
        let live = |s: &Minute, span: u64| s.minute + span > cur && s.minute <= cur;
        let (mut w, mut e) = (0u64, 0u64);
        let (mut pn, mut pa, mut prem) = (0u64, 0f64, 0u64);
        for s in &self.slots {
            if live(s, RATE_MINUTES) {
                w += s.written_bytes;
                e += s.evicted_bytes;
            }
            if live(s, HISTORY_MINUTES as u64) {
                pn += s.pressure_evictions;
                pa += s.pressure_age_seconds;
                prem += s.premature;
            }
        }
        let window_start = ((cur + 1).saturating_sub(RATE_MINUTES) * 60).max(self.started);
        let span = t.saturating_sub(window_start).max(1) as f64;
        let write = w as f64 / span;
        let evict = e as f64 / span;
        let net = write - evict;
        let time_to_full_hours = match room.nearest() {
            Some(r) if net > 0.0 => Some(r as f64 / net / 3600.0),
            _ => None,
        };
        let history = (0..HISTORY_MINUTES as u64)
            .map(|i| {
                let minute = (cur + 1 + i).saturating_sub(HISTORY_MINUTES as u64);
                let s = self.slots[(minute % HISTORY_MINUTES as u64) as usize];
                if s.minute == minute {
                    s
                } else {
                    Minute {
                        minute,
                        ..Minute::default()
                    }
                }
            })
            .collect();
        CapacityFigures {
            effective_retention_hours: (pn > 0).then(|| pa / pn as f64 / 3600.0),
            write_bytes_per_second: write,
            evicted_bytes_per_second: evict,
            time_to_full_hours,
            premature_evictions: self.premature_total,
            premature_evictions_last_hour: prem,
            history,
        }
    }
}

/// Prometheus families for the figures of every root (`root` label values already escaped),
/// in the format of `control::report::metrics`, to be appended to it.
pub fn metrics(roots: &[(String, &CapacityFigures)]) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, v: &dyn Fn(&CapacityFigures) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (root, f) in roots {
                if let Some(x) = v(f) {
                    let _ = writeln!(out, "{name}{{root=\"{root}\"}} {x}");
                }
            }
        };
    family(
        "chartd_effective_retention_hours",
        "gauge",
        "Mean age of the files evicted by size or free-space pressure in the last hour (absent: none).",
        &|f| f.effective_retention_hours,
    );
    family(
        "chartd_write_bytes_per_second",
        "gauge",
        "Bytes written into the root per second over the last 5 minutes.",
        &|f| Some(f.write_bytes_per_second),
    );
    family(
        "chartd_evicted_bytes_per_second",
        "gauge",
        "Bytes evicted from the root per second over the last 5 minutes.",
        &|f| Some(f.evicted_bytes_per_second),
    );
    family(
        "chartd_time_to_full_hours",
        "gauge",
        "Hours until the size limit or free-space floor at the current net growth (absent: not growing).",
        &|f| f.time_to_full_hours,
    );
    family(
        "chartd_premature_evictions_total",
        "counter",
        "Charts written again at the same path within 10 minutes of chartd evicting them.",
        &|f| Some(f.premature_evictions as f64),
    );
    out
}

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
