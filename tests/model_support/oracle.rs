//! The model test's oracle: judges every file found gone without the generator removing it
//! (sacred, in grace, moved out of the root, open for writing, put back), checks the names
//! it knows, and that chartd is alive and its figures fresh.
//!
//! May touch: file metadata (stat only), chartd's log (read), its control socket (status, groups).

use super::model::{
    now_ns, relook, secs, Entry, Kind, Presence, Version, RELOOK_LONG, RELOOK_SHORT,
};
use super::{World, GRACE, WRITER_QUIET};
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl World {
    /// Why a vanished entry may never have been deleted (None: a managed file inside the root).
    pub(super) fn sacred(&self, path: &Path, e: &Entry) -> Option<&'static str> {
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
    pub(super) fn writer_went_quiet(&self, path: &Path, e: &Entry) -> bool {
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
    pub(super) fn writer_story(&self, path: &Path, e: &Entry) -> String {
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
    pub(super) fn await_deletion_line(&mut self, path: &Path) {
        let key = path.display().to_string();
        for _ in 0..20 {
            self.log.update(&self.d.log);
            if self.log.by_path.contains_key(&key) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether chartd's log has a deletion of `path` at or after `since` (ns), waiting up to
    /// 200 ms for the line (it is written right after the unlink).
    pub(super) fn deletion_logged_since(&mut self, path: &Path, since: i128) -> bool {
        let key = path.display().to_string();
        for _ in 0..20 {
            self.log.update(&self.d.log);
            if self
                .log
                .by_path
                .get(&key)
                .is_some_and(|v| v.iter().any(|&t| t >= since))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub(super) fn new_version(&mut self, mut v: Version) -> usize {
        v.history.push((now_ns(), v.mtime));
        self.versions.push(v);
        self.versions.len() - 1
    }

    /// The entry at `path` vanished without us: judge it; drops it from the model.
    pub(super) fn judge(&mut self, path: &Path) {
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
    pub(super) fn came_back(&mut self, path: &Path, e: &Entry) -> bool {
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

    pub(super) fn fail(&mut self, msg: String) {
        if !self.selftest {
            eprintln!("MODEL SEED={} VIOLATION: {msg}", self.seed);
        }
        self.failures.push(msg);
    }

    /// Stat one entry: intact -> last_ok = now; gone or replaced -> judged.
    pub(super) fn check(&mut self, path: &Path) {
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

    pub(super) fn check_hot(&mut self) {
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

    pub(super) fn check_all(&mut self) {
        let all: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for p in all {
            self.check(&p);
        }
    }

    pub(super) fn alive_and_fresh(&mut self) {
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
}
