//! The model test's operations on files: new charts, renames over a name, rewrites in place,
//! truncations, hard links, renames, deletions, slow writers and `flock`s; each keeps the
//! model in step and checks the names it touches.
//!
//! May touch: files under the daemon's workspace and root (create, write, truncate, link, rename,
//! unlink, flock).

use super::model::{
    mtime_of, now_ns, relook, Entry, Kind, Presence, Version, Writer, RELOOK_SHORT,
};
use super::{World, GROUPS};
use crate::common::*;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

impl World {
    pub(super) fn managed_in_root(&self, nlink1: bool) -> Vec<PathBuf> {
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

    pub(super) fn pick_managed(&mut self, nlink1: bool) -> Option<PathBuf> {
        let v = self.managed_in_root(nlink1);
        self.rng.pick(&v).cloned()
    }

    pub(super) fn group_dir(&mut self) -> PathBuf {
        let g = self.rng.below(GROUPS as u64);
        let mut p = self.root.join(format!("G{g}"));
        if self.rng.chance(400) {
            p = p.join(format!("s{}", self.rng.below(3)));
        }
        p
    }

    /// Writes a new file (create, write, close), retrying when chartd pruned the directory.
    pub(super) fn write_at(&mut self, path: &Path, kind: Kind, size: usize, age: Option<Duration>) {
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
                    self.track(path, &m, token, kind);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("write {}: {e}", path.display()),
            }
        }
    }

    /// Something at `path` is being replaced by us: the old entry (if it was still there) is
    /// removed by the generator. If it had vanished already, judge that.
    pub(super) fn forget_prior(&mut self, path: &Path) {
        self.entries.remove(path);
    }

    pub(super) fn op_new(&mut self) {
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
    pub(super) fn rename_over(&mut self, target: &Path) {
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
    pub(super) fn rewrite(&mut self, path: &Path) {
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
            self.track(path, &m, token, e.kind);
        }
    }

    /// Starts tracking the file just written at `path` as a new version of kind `kind`.
    fn track(&mut self, path: &Path, m: &fs::Metadata, token: String, kind: Kind) {
        let vid = self.new_version(Version {
            ino: m.ino(),
            token,
            mtime: mtime_of(m),
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
    }

    pub(super) fn op_truncate(&mut self) {
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

    pub(super) fn op_link(&mut self) {
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
    pub(super) fn link_as(&mut self, p: &Path, q: &Path, e: &Entry) {
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

    pub(super) fn op_rename_file(&mut self) {
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

    pub(super) fn op_delete(&mut self) {
        let Some(p) = self.pick_managed(false) else {
            return;
        };
        self.check(&p);
        if self.entries.contains_key(&p) && fs::remove_file(&p).is_ok() {
            self.entries.remove(&p);
        }
    }

    pub(super) fn op_slow_writer(&mut self) {
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

    pub(super) fn tick_writers(&mut self, all: bool) {
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

    pub(super) fn op_lock(&mut self) {
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
    pub(super) fn lock_path(&mut self, path: &Path) -> bool {
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
    pub(super) fn unlock(&mut self, vid: usize) {
        if !self.locked.contains_key(&vid) {
            return;
        }
        for q in self.names_of(vid) {
            self.check(&q);
        }
        self.locked.remove(&vid);
    }

    /// The names the model knows for version `vid` (hard links share it).
    pub(super) fn names_of(&self, vid: usize) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter(|(_, e)| e.vid == vid)
            .map(|(p, _)| p.clone())
            .collect()
    }
}
