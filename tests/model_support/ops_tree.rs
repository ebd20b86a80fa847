//! The model test's operations on the tree and on the daemon: symlinks, directory moves in,
//! out of and back into the root, bursts, SIGHUP with new limits, purge, cleanup, kill -9
//! and restart, root replacement, charts regenerated at their expiry.
//!
//! May touch: the daemon's workspace and root (symlinks, directory renames, the root renamed away),
//! its config file, the chartd process it started (signals by PID), its control socket, and
//! `fs.inotify.max_queued_events` (root only, restored).

use super::model::{mtime_of, now_ns, relook, Entry, Kind, Presence, Version, RELOOK_LONG};
use super::{policy, World, AGES, GRACE, GROUPS, QUEUE_SYSCTL, SIZES};
use crate::common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl World {
    pub(super) fn op_symlink(&mut self) {
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
    pub(super) fn move_dir(&mut self, from: &Path, to: &Path) -> bool {
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
                // Gone: deleted just before the rename (at p) or just after it (at q). chartd
                // logs a deletion under the path its index had: p if it deleted before it saw
                // the move (the long run's seeds 1001 and 1014 judged such a deletion at q and
                // found no line). Else judge it where chartd may delete, if either is inside
                // the root (in chartd's favour).
                let since = e.last_ok - 5_000_000;
                let at_p = self.under_root(p) && self.deletion_logged_since(p, since);
                if self.under_root(&q) && !at_p {
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

    pub(super) fn op_dir_move(&mut self) {
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

    pub(super) fn op_burst(&mut self) {
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

    pub(super) fn op_sighup(&mut self) {
        self.max_size = *self.rng.pick(&SIZES).unwrap();
        self.max_age = Duration::from_secs(*self.rng.pick(&AGES).unwrap());
        self.d.rewrite_config(&policy(self.max_size, self.max_age));
        sig(self.d.pid(), 1);
    }

    pub(super) fn op_purge(&mut self) {
        let g = self.rng.below(GROUPS as u64);
        let req = format!(r#"{{"cmd":"purge","group":"G{g}","dry_run":false}}"#);
        let _ = request_within(&self.d.socket, &req, Duration::from_secs(30));
    }

    pub(super) fn op_cleanup(&mut self) {
        let _ = request_within(
            &self.d.socket,
            r#"{"cmd":"cleanup"}"#,
            Duration::from_secs(30),
        );
    }

    pub(super) fn op_kill(&mut self) {
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
    pub(super) fn op_root_replace(&mut self) {
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
    pub(super) fn op_regen_at_expiry(&mut self) {
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
