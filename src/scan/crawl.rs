//! The full crawl of a root, pipelined over both cores.
//!
//! Adding an inotify watch through `notify` is a synchronous round trip to its thread (the
//! benchmark measures 17 s for 250k watches, against 1 s of bare `inotify_add_watch` calls),
//! one per directory: that alone takes longer than `find` takes to walk the whole tree. So the work is split: the owner thread adds each directory's watch and
//! then hands the open directory to a reader thread, which lists it and `statx`es its entries
//! while the owner adds the next watches and files the previous listings into the index.
//! "Watch first, then read" still holds for every directory: a reader only ever gets a
//! directory whose watch is already in place.
//!
//! May touch: the root's index and counters (through `RootState` and `Index` methods), its watches
//! through the `Watcher` it is given, the disk read-only through `fsops` (fd-relative, no symlinks,
//! one mount), and thread CPU affinity through `affinity`.

use crate::fsops::{self, Kind, Meta};
use crate::index::{DirId, ROOT};
use crate::root::RootState;
use crate::watcher::Watcher;
use rustix::fs::FileType;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Reader threads. Two cores: the owner and notify's thread mostly wait on each other, so two
/// readers keep both cores busy.
const READERS: usize = 2;
/// Directory fds opened ahead by the readers at most; beyond that a directory is opened again
/// from the root when its turn comes.
const MAX_OPEN_AHEAD: usize = 2048;
/// Directories handed to the readers and not yet listed (each holds an open fd): the owner
/// adds watches faster than the readers list, so without a bound it would run out of fds.
const MAX_IN_FLIGHT: usize = 256;

/// One entry a reader found.
enum Found {
    File(OsString, Meta),
    Dir(OsString, Option<OwnedFd>, u64),
    /// A name that could not be looked at (not "gone"): whatever the index has there stays.
    Unknown(OsString),
    /// A leftover of an interrupted deletion (see `fsops/delete.rs`), with its inode.
    Private(OsString, u64),
}

/// A quarter of the open-files limit (less a reserve for sockets and the rest), so that the
/// crawl's open directories never exhaust it, whatever limit the service runs with.
fn fd_budget() -> usize {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let cur = l.current.unwrap_or(u64::MAX).min(1 << 20) as usize;
    (cur.saturating_sub(64) / 4).clamp(1, MAX_OPEN_AHEAD)
}

struct Listing {
    dir: DirId,
    entries: Vec<Found>,
    /// Why the listing stopped short, if it did (EACCES, EIO, EMFILE...): what it did not
    /// reach is not known to be gone.
    error: Option<std::io::Error>,
}

/// Lists one directory: regular entries are `statx`ed, subdirectories opened (no symlinks
/// followed, nothing on another mount).
fn list(
    dir: DirId,
    fd: OwnedFd,
    root_dev: (u32, u32),
    open_ahead: &AtomicUsize,
    budget: usize,
) -> Listing {
    let mut entries = Vec::new();
    let failed = |entries, e: std::io::Error| Listing {
        dir,
        entries,
        error: Some(e),
    };
    let mut it = match rustix::fs::Dir::new(fd) {
        Ok(it) => it,
        Err(e) => return failed(entries, e.into()),
    };
    let dfd = match it
        .fd()
        .map_err(std::io::Error::from)
        .and_then(|f| f.try_clone_to_owned())
    {
        Ok(f) => f,
        Err(e) => return failed(entries, e),
    };
    while let Some(entry) = it.read() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return failed(entries, e.into()),
        };
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => matches!(fsops::stat_at(&dfd, name), Ok(m) if m.kind == Kind::Dir),
            _ => false,
        };
        // A private name is a leftover only if it is not a directory (chartd takes only files
        // off their names): a directory named like one is walked like any other.
        if !is_dir && fsops::is_private_name(name) {
            entries.push(Found::Private(name.to_owned(), entry.ino()));
            continue;
        }
        if is_dir {
            let fd = if open_ahead.load(Ordering::Relaxed) < budget {
                fsops::open_subdir(&dfd, name)
                    .ok()
                    .and_then(|fd| match fsops::stat_fd(&fd) {
                        Ok(m) if m.dev == root_dev => {
                            open_ahead.fetch_add(1, Ordering::Relaxed);
                            Some(fd)
                        }
                        _ => None,
                    })
            } else {
                None
            };
            entries.push(Found::Dir(name.to_owned(), fd, entry.ino()));
        } else {
            match fsops::stat_at(&dfd, name) {
                Ok(m) if m.kind != Kind::Dir => entries.push(Found::File(name.to_owned(), m)),
                Ok(_) => {}
                Err(e) if fsops::is_gone(&e) => {}
                Err(_) => entries.push(Found::Unknown(name.to_owned())),
            }
        }
    }
    Listing {
        dir,
        entries,
        error: None,
    }
}

impl RootState {
    /// The one walker of chartd (the first crawl, every resync, a new directory found by an
    /// event): every directory from `start` down is watched, then read; everything found is
    /// indexed and marked seen (the caller sweeps what was not). `shallow`: only `start`'s own
    /// entries, and the directories new to the index. The full walk of a root is pipelined
    /// over reader threads; a partial one (a few directories) runs on the owner alone, where
    /// starting threads would cost more than the reading.
    pub fn crawl(&mut self, start: DirId, shallow: bool, w: &mut Watcher) {
        let Some(root) = &self.dir else { return };
        let parallel = start == ROOT && !shallow;
        // The owner and notify's thread on one CPU while watches are added (see affinity.rs);
        // restored when `pinned` drops at the end of the crawl.
        let pinned = if parallel {
            crate::affinity::pin_with_notify()
        } else {
            None
        };
        let reader_cpus = pinned.as_ref().map(|p| p.all);
        let root_dev = root.meta.dev;
        let open_ahead = AtomicUsize::new(0);
        let budget = fd_budget();
        let now = crate::root::now_ns();
        std::thread::scope(|scope| {
            let (res_tx, res_rx) = mpsc::channel::<Listing>();
            let mut jobs = Vec::new();
            for i in 0..if parallel { READERS } else { 0 } {
                let (tx, rx) = mpsc::channel::<(DirId, OwnedFd)>();
                let res_tx = res_tx.clone();
                let open_ahead = &open_ahead;
                let spawned = std::thread::Builder::new()
                    .name(format!("chartd-crawl{i}"))
                    .spawn_scoped(scope, move || {
                        // Started by the pinned owner: readers use every CPU.
                        if let Some(all) = &reader_cpus {
                            let _ = rustix::thread::sched_setaffinity(None, all);
                        }
                        for (d, fd) in rx {
                            if res_tx
                                .send(list(d, fd, root_dev, open_ahead, budget))
                                .is_err()
                            {
                                break;
                            }
                        }
                    });
                if spawned.is_ok() {
                    jobs.push(tx);
                }
            }
            drop(res_tx);
            let mut queue: VecDeque<(DirId, Option<OwnedFd>)> = VecDeque::from([(start, None)]);
            let mut first = true;
            let mut in_flight = 0usize;
            let mut next = 0usize;
            loop {
                while in_flight < MAX_IN_FLIGHT.min(budget) {
                    let Some((d, pre)) = queue.pop_front() else {
                        break;
                    };
                    if pre.is_some() {
                        open_ahead.fetch_sub(1, Ordering::Relaxed);
                    }
                    if self.progress.cancelled() {
                        queue.clear();
                        break;
                    }
                    self.progress.tick();
                    let Some(fd) = self.open_for_crawl(d, pre) else {
                        continue;
                    };
                    // Below the start of a shallow walk only new directories are entered,
                    // and those wholly.
                    let shallow_here = shallow && std::mem::take(&mut first);
                    let comps = self.index.dir_path(d);
                    self.ensure_watched(d, &comps, w);
                    let job = (d, fd);
                    let sent = match jobs.get(next % jobs.len().max(1)) {
                        Some(tx) => tx.send(job).map_err(|e| e.0),
                        None => Err(job),
                    };
                    next += 1;
                    match sent {
                        Ok(()) => in_flight += 1,
                        // No reader thread: list it here.
                        Err((d, fd)) => {
                            let l = list(d, fd, root_dev, &open_ahead, budget);
                            self.file_listing(l, &mut queue, now, shallow_here, &open_ahead);
                        }
                    }
                    while let Ok(l) = res_rx.try_recv() {
                        in_flight -= 1;
                        self.file_listing(l, &mut queue, now, false, &open_ahead);
                    }
                }
                if in_flight == 0 {
                    if queue.is_empty() {
                        break;
                    }
                    continue;
                }
                match res_rx.recv() {
                    Ok(l) => {
                        in_flight -= 1;
                        self.file_listing(l, &mut queue, now, false, &open_ahead);
                    }
                    Err(_) => break,
                }
            }
            drop(jobs);
        });
    }

    /// The directory's fd (opened by a reader, or now from the root); checks it is still on
    /// the root's mount and records its inode. `None`: gone, replaced, or another mount.
    fn open_for_crawl(&mut self, d: DirId, pre: Option<OwnedFd>) -> Option<OwnedFd> {
        let root = self.dir.as_ref()?;
        let fd = match pre {
            Some(fd) => fd,
            None => match root.open_dir(&self.index.dir_path(d)) {
                Ok(fd) => fd,
                Err(e) => {
                    if !fsops::is_gone(&e) {
                        // Cannot be read now: keep what the index knows of it.
                        self.keep_unreadable(d, &e);
                    }
                    return None;
                }
            },
        };
        let m = fsops::stat_fd(&fd).ok()?;
        if d != ROOT && !root.same_mount(&m) {
            return None;
        }
        self.index
            .set_dir_read(d, m.ino, m.mtime_ns, crate::root::now_ns());
        self.index.mark_dir_seen(d);
        Some(fd)
    }

    /// Files one listing into the index; its subdirectories join the queue (with `shallow`,
    /// only those new to the index; the others are marked seen as they are).
    fn file_listing(
        &mut self,
        l: Listing,
        queue: &mut VecDeque<(DirId, Option<OwnedFd>)>,
        now: i64,
        shallow: bool,
        open_ahead: &AtomicUsize,
    ) {
        if !self.index.is_live_dir(l.dir) {
            return;
        }
        let comps = self.index.dir_path(l.dir);
        let dir_comps: Vec<&OsStr> = comps.iter().map(|c| c.as_os_str()).collect();
        if let Some(e) = &l.error {
            self.keep_unreadable(l.dir, e);
        }
        for found in l.entries {
            match found {
                Found::Unknown(name) => {
                    if let Some(f) = self.index.find_file(l.dir, &name) {
                        self.index.mark_file_seen(f);
                    }
                    if let Some(x) = self.index.find_dir(l.dir, &name) {
                        for sub in self.index.subtree(x) {
                            self.index.mark_dir_seen(sub);
                            for f in self.index.files_in(sub) {
                                self.index.mark_file_seen(f);
                            }
                        }
                    }
                }
                Found::Private(name, ino) => self.leftovers.push((l.dir, name, ino)),
                Found::File(name, m) => {
                    let f = self.upsert_entry(l.dir, &dir_comps, &name, &m);
                    self.presume_writing(f, m.mtime_ns, now);
                }
                Found::Dir(name, fd, ino) => {
                    if let Some(f) = self.index.find_file(l.dir, &name) {
                        self.index.remove_file(f);
                    }
                    let known = self.index.find_dir(l.dir, &name).is_some();
                    let child = self.index.add_dir(l.dir, &name, ino);
                    if shallow && known {
                        self.index.mark_dir_seen(child);
                        if fd.is_some() {
                            open_ahead.fetch_sub(1, Ordering::Relaxed);
                        }
                    } else {
                        queue.push_back((child, fd));
                    }
                }
            }
        }
    }
}
