//! The inotify side: one `notify` watcher for all roots, one non-recursive watch per directory
//! (chartd adds them itself while it crawls, so it knows exactly which directories are watched
//! and can report and repair the rest), and a bounded channel into the index owner.
//!
//! notify calls our handler on its own thread. The handler drops the events chartd does not
//! need (opens, read-only closes) before they cost an allocation in the channel, and never
//! blocks: when the channel is full it sets the overflow flag, and the owner answers that with
//! a resync, exactly as it answers a kernel queue overflow. Backpressure therefore ends in a
//! rescan, never in unbounded memory.
//!
//! May touch: inotify watches (through notify), its bounded channel and overflow flag; never the
//! index. Its handler runs on notify's thread and asks `fsops` only whether a name is private.

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{Config, INotifyWatcher, RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An event, reduced to what the index needs. Every path is a hint: the owner confirms it with
/// a `statx` beneath the root before changing anything.
#[derive(Debug)]
pub enum Ev {
    /// Something changed at this path (created, moved, deleted, metadata): look again.
    Refresh(PathBuf),
    /// A name was moved away or removed (IN_MOVED_FROM, IN_MOVE_SELF, IN_DELETE): look again,
    /// and since notify drops the watch at this path and every watch below it, watch a
    /// directory found here again (moved back, or swapped with another) afresh.
    Gone(PathBuf),
    /// Data was written (IN_MODIFY): the file is open for writing.
    Writing(PathBuf),
    /// The writer closed it (IN_CLOSE_WRITE): complete, look again.
    Closed(PathBuf),
    /// The kernel queue overflowed: events were lost.
    Rescan,
    /// notify reported an error.
    Error(String),
}

/// How adding a watch went.
#[derive(Debug)]
pub enum WatchResult {
    Watched,
    /// `fs.inotify.max_user_watches` is exhausted.
    LimitReached,
    /// The directory vanished meanwhile, or watching is off (`clean --once`).
    Skipped,
    Failed(String),
}

/// The receiving half, owned by the index owner.
pub struct EventFeed {
    pub rx: mpsc::Receiver<Ev>,
    overflowed: Arc<AtomicBool>,
}

impl EventFeed {
    /// Whether events were dropped since the last call (channel full).
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::AcqRel)
    }
}

pub struct Watcher {
    inner: Option<INotifyWatcher>,
}

/// Creates the watcher and its feed. `capacity` bounds the events in flight.
pub fn new(capacity: usize) -> Result<(Watcher, EventFeed), String> {
    let (tx, rx) = mpsc::channel(capacity);
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let send = |ev: Ev| {
            if tx.try_send(ev).is_err() {
                flag.store(true, Ordering::Release);
            }
        };
        let event = match res {
            Ok(e) => e,
            Err(e) => return send(Ev::Error(e.to_string())),
        };
        if event.need_rescan() {
            return send(Ev::Rescan);
        }
        // chartd's own private names (a deletion in progress, see fsops/delete.rs): nothing
        // to look at, and not worth a trip through the channel.
        if event
            .paths
            .iter()
            .all(|p| p.file_name().is_some_and(crate::fsops::is_private_name))
            && !event.paths.is_empty()
        {
            return;
        }
        match event.kind {
            EventKind::Access(AccessKind::Open(_))
            | EventKind::Access(AccessKind::Close(AccessMode::Read))
            | EventKind::Access(AccessKind::Read)
            // notify also reports a paired rename as From and To separately.
            | EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {}
            EventKind::Modify(ModifyKind::Data(_)) => {
                for p in event.paths {
                    send(Ev::Writing(p));
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in event.paths {
                    send(Ev::Closed(p));
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in event.paths {
                    send(Ev::Gone(p));
                }
            }
            _ => {
                for p in event.paths {
                    send(Ev::Refresh(p));
                }
            }
        }
    };
    let inner = INotifyWatcher::new(handler, Config::default().with_follow_symlinks(false))
        .map_err(|e| format!("cannot start inotify: {e} (check fs.inotify.max_user_instances)"))?;
    Ok((Watcher { inner: Some(inner) }, EventFeed { rx, overflowed }))
}

impl Watcher {
    /// A watcher that watches nothing, for one-shot runs.
    pub fn disabled() -> Watcher {
        Watcher { inner: None }
    }

    pub fn watch(&mut self, path: &Path) -> WatchResult {
        let Some(w) = self.inner.as_mut() else {
            return WatchResult::Skipped;
        };
        match w.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => WatchResult::Watched,
            Err(e) => match e.kind {
                notify::ErrorKind::MaxFilesWatch => WatchResult::LimitReached,
                notify::ErrorKind::PathNotFound => WatchResult::Skipped,
                notify::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound => {
                    WatchResult::Skipped
                }
                _ => WatchResult::Failed(e.to_string()),
            },
        }
    }

    /// Drops the watch on `path` if there is one (notify already drops watches of deleted and
    /// moved-away directories itself; this is for directories found gone by a resync).
    pub fn unwatch(&mut self, path: &Path) {
        if let Some(w) = self.inner.as_mut() {
            let _ = w.unwatch(path);
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }
}
