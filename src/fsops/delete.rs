//! Deleting one file so that only the file the decision was about can go, after cachefilesd's
//! graveyard: the victim is first taken off its name, then checked, then unlinked.
//!
//! Why not "check the name, then unlink the name": between the two a writer can put a fresh
//! file at that name (matplotlib's `savefig` truncates and rewrites a fixed name in place;
//! atomic writers rename a new file over it), and `unlinkat` deletes whatever the name refers
//! to by then. The review behind issue #7 deleted 1,027 of 3,000 charts regenerated right at
//! their expiry that way. Here the name is only ever *moved* (`renameat2(RENAME_NOREPLACE)` to a
//! private name in the same directory), and what was moved is checked before anything is
//! deleted:
//!
//! 1. open the name (`O_NOFOLLOW | O_NONBLOCK`) and check, through that fd, the inode, size
//!    and mtime the decision was made on; a writer's BSD `flock` makes chartd skip it;
//! 2. move the name to a private name (`.chartd-evict.PID.N=NAME`);
//! 3. `statx` the private name: the same inode as the fd, still the same size and mtime, and
//!    its directory still beneath the root (it may have been renamed out since it was
//!    opened) → unlink it. Otherwise put it back with `RENAME_NOREPLACE`. If the name was taken again
//!    meanwhile, the file in hand is one that its writer has already replaced by a second
//!    rename: removing it is what that rename did (reported as such).
//!
//! Why no ctime in the check: chartd's own rename in step 2 updates the inode's ctime, so a
//! ctime taken after it can never equal one taken before; and the index keeps no ctime to
//! compare with (it decides on inode, size and mtime). What the ctime would add, a change
//! that keeps size and mtime, is covered by the inode compared through the fd chartd opened
//! and locked before the rename: the file in hand is that inode, unchanged in size and mtime.
//!
//! A file chartd cannot open is held and reported, never deleted blind. Private names are
//! never managed and their events are dropped. A private name carries the file's own name
//! (`.chartd-evict.PID.N=chart.png`), because a crash between 2 and the unlink or put-back
//! leaves a file whose check may have failed (a fresh chart): when a walk finds such a
//! leftover, it goes back under its name if that is free, and is removed only if the name
//! holds another (newer) file by then. Names too long to carry (over 213 bytes) get the short
//! form, and such a leftover is removed.
//!
//! May touch: the one file it is handed and its directory, fd-relative (open, `flock` probe, rename
//! to a private name and back, unlink), and chartd's leftover private names (put back or
//! unlinked); no chartd state.

use super::{stat_at, stat_fd, Kind, Meta, RootDir};
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of chartd's private names.
const PRIVATE: &[u8] = b".chartd-evict.";

static NEXT_PRIVATE: AtomicU64 = AtomicU64::new(0);

/// The longest name a private name can carry (`NAME_MAX` less the longest prefix,
/// `.chartd-evict.` + 10-digit pid + `.` + 16 hex digits + `=`). Longer names get the short form.
const CARRY_MAX: usize = 255 - (PRIVATE.len() + 10 + 1 + 16 + 1);

/// Whether `name` is one of chartd's private names (never managed, its events ignored, put back
/// or removed as a leftover when a walk finds it): exactly what `private_name` makes,
/// `.chartd-evict.PID.N=NAME` (or `.chartd-evict.PID.N` for a name too long to carry) with PID
/// in decimal, N in lowercase hex and NAME the file's own name. Only that form: a file of
/// someone else's that merely starts with `.chartd-evict.` (`.chartd-evict.notes.txt`) is not
/// chartd's, and touching it as a leftover would act on a file outside the policy.
pub fn is_private_name(name: &OsStr) -> bool {
    parse_private(name).is_some()
}

/// The file's own name that a private name carries (`None`: the short form, or not private).
pub fn carried_name(name: &OsStr) -> Option<&OsStr> {
    parse_private(name).flatten()
}

/// `Some(carried)` for a private name (`carried` is `None` in the short form), `None` for any
/// other name.
fn parse_private(name: &OsStr) -> Option<Option<&OsStr>> {
    let rest = name.as_bytes().strip_prefix(PRIVATE)?;
    let dot = rest.iter().position(|&c| c == b'.')?;
    let (pid, rest) = (&rest[..dot], &rest[dot + 1..]);
    let (n, carried) = match rest.iter().position(|&c| c == b'=') {
        Some(eq) => (&rest[..eq], Some(&rest[eq + 1..])),
        None => (rest, None),
    };
    let ok = (1..=10).contains(&pid.len())
        && pid.iter().all(u8::is_ascii_digit)
        && (1..=16).contains(&n.len())
        && n.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && carried.is_none_or(|c| !c.is_empty() && c.len() <= CARRY_MAX && c != b"." && c != b"..");
    ok.then(|| carried.map(OsStr::from_bytes))
}

/// A fresh private name for taking `name` off its name; it carries `name` when it fits, so that
/// a leftover of a crash can be put back where it was rather than removed.
pub(super) fn private_name(name: &OsStr) -> OsString {
    use std::io::Write;
    // The pid once: `std::process::id()` is a syscall, and this runs once per deletion.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let n = NEXT_PRIVATE.fetch_add(1, Ordering::Relaxed);
    let mut p = Vec::with_capacity(PRIVATE.len() + 28 + name.len());
    p.extend_from_slice(PRIVATE);
    // Writing into a Vec cannot fail.
    let _ = write!(p, "{pid}.{n:x}");
    if name.len() <= CARRY_MAX {
        p.push(b'=');
        p.extend_from_slice(name.as_bytes());
    }
    OsString::from_vec(p)
}

/// The identity the index recorded for a file; deletion goes ahead only if what is taken off
/// the name is still exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

/// What happened when chartd tried to delete a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Unlinked. `freed` estimates the bytes returned to the filesystem (0 for another hard link).
    /// `beneath_at_ns`: the wall-clock time (ns since 1970) at which the file's directory was
    /// last seen beneath the root, right before the unlink: a directory renamed out of the root
    /// after that moment races this one syscall, and the log says so precisely.
    Deleted { freed: u64, beneath_at_ns: i64 },
    /// The file taken off the name was not the expected one, and the name had been taken
    /// again by the time chartd went to put it back: the writer's second rename replaced it,
    /// so it was unlinked (what that rename did to it).
    Superseded { freed: u64 },
    /// The name no longer exists.
    Gone,
    /// Its directory left the root (or the root its path) while it was being deleted: put
    /// back under its name, not deleted; no longer chartd's.
    LeftRoot,
    /// The name refers to something else now (another inode, size or mtime, or not a regular
    /// file): re-index it from this metadata instead of deleting.
    Changed(Meta),
    /// A writer holds a BSD lock on it: skipped, try later.
    Locked,
    /// chartd may not open it (EACCES/EPERM), so it cannot check its identity or lock: kept.
    Unreadable,
}

fn freed(m: &Meta) -> u64 {
    if m.nlink <= 1 {
        m.blocks.saturating_mul(512)
    } else {
        0
    }
}

fn matches(m: &Meta, e: &Expect) -> bool {
    m.kind == Kind::File && m.ino == e.ino && m.size == e.size && m.mtime_ns == e.mtime_ns
}

/// Deletes `name` in the already-opened directory `dir` if, and only if, the file taken off
/// that name is the regular file described by `expect`, on the root's mount, and not
/// `flock`ed by anyone. See the module comment for the protocol.
pub fn delete_file(
    root: &RootDir,
    dir: &OwnedFd,
    name: &OsStr,
    expect: Expect,
    still_beneath: impl Fn() -> bool,
) -> io::Result<DeleteOutcome> {
    // 1. Open it: O_NOFOLLOW refuses a symlink, O_NONBLOCK a fifo.
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(DeleteOutcome::Gone),
        Err(Errno::ACCESS) | Err(Errno::PERM) => return Ok(DeleteOutcome::Unreadable),
        Err(Errno::LOOP) | Err(Errno::NXIO) => {
            return match stat_at(dir, name) {
                Ok(m) => Ok(DeleteOutcome::Changed(m)),
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    Ok(DeleteOutcome::Gone)
                }
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let held = stat_fd(&fd)?;
    if !matches(&held, &expect) || !root.same_mount(&held) {
        return Ok(DeleteOutcome::Changed(held));
    }
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(DeleteOutcome::Locked),
        Err(e) => return Err(e.into()),
    }
    // 2. Take it off its name. From here on a writer creating or renaming a file at `name`
    //    makes a new file there, which this call never touches. (A writer whose `open` had
    //    already resolved `name` to this file before the rename writes into it wherever it is:
    //    if its truncate comes after the check below, it writes into the unlinked file; see
    //    the README, "what no cleaner can close".)
    let private = private_name(name);
    match rename_noreplace(dir, name, &private) {
        Ok(()) => {}
        Err(Errno::NOENT) => return Ok(DeleteOutcome::Gone),
        Err(e) => return Err(e.into()),
    }
    // 3. Check what was taken: the inode we opened and locked, unchanged since the decision.
    let taken = match stat_at(dir, &private) {
        Ok(m) => m,
        Err(e) => {
            // Cannot look at it: put it back rather than delete something unchecked.
            let _ = put_back(dir, &private, name);
            return Err(e);
        }
    };
    if taken.ino == held.ino && matches(&taken, &expect) {
        // The directory fd follows its directory wherever it is renamed: if it was moved out
        // of the root since it was opened, the file in hand is no longer under the root.
        // Checked last, right before the unlink, so the window is that of one syscall.
        if !still_beneath() {
            return match put_back(dir, &private, name) {
                Ok(()) => Ok(DeleteOutcome::LeftRoot),
                Err(e) => {
                    // Outside the root now, so not chartd's to remove: kept under the private
                    // name, which the log gives.
                    tracing::warn!(
                        name = %name.to_string_lossy(),
                        private = %private.to_string_lossy(),
                        "a file whose directory left the root during its deletion cannot be \
                         put back under its name: {e}; it is kept under the private name"
                    );
                    Ok(DeleteOutcome::LeftRoot)
                }
            };
        }
        let beneath_at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        rustix::fs::unlinkat(dir, &private, AtFlags::empty())?;
        drop(fd);
        return Ok(DeleteOutcome::Deleted {
            freed: freed(&taken),
            beneath_at_ns,
        });
    }
    match put_back(dir, &private, name) {
        Ok(()) => Ok(DeleteOutcome::Changed(taken)),
        Err(Errno::EXIST) if replaced_by_newer(dir, name, &taken) && still_beneath() => {
            // The name was taken again by a newer regular file: the file in hand was replaced
            // by its writer's next rename. Removing it is what that rename did.
            rustix::fs::unlinkat(dir, &private, AtFlags::empty())?;
            Ok(DeleteOutcome::Superseded {
                freed: freed(&taken),
            })
        }
        Err(Errno::EXIST) => {
            // Taken by something only the emptied name let in (a directory, a symlink, an
            // older file), or the directory left the root: the file in hand may be the only
            // copy of a chart. Kept under the private name, which a walk settles later.
            tracing::warn!(
                name = %name.to_string_lossy(),
                private = %private.to_string_lossy(),
                "a file taken off its name could not be put back (the name is held by something \
                 else now); it is kept under the private name"
            );
            Ok(DeleteOutcome::Changed(taken))
        }
        Err(e) => {
            tracing::error!(
                name = %name.to_string_lossy(),
                private = %private.to_string_lossy(),
                "cannot put a file back under its name after an aborted deletion: {e}; it is \
                 kept under the private name"
            );
            Err(e.into())
        }
    }
}

/// `renameat2(RENAME_NOREPLACE)` within one directory. Where the filesystem lacks the flag
/// (EINVAL), a plain rename is used: the target is a fresh private name nobody else uses.
fn rename_noreplace(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) | Err(Errno::NOSYS) => rustix::fs::renameat(dir, from, dir, to),
        r => r,
    }
}

/// Puts a file back under `name`, never replacing what a writer may have put there meanwhile
/// (EEXIST then). Without `RENAME_NOREPLACE`, `linkat` (which never replaces) and an unlink of
/// the private name do the same.
fn put_back(dir: &OwnedFd, private: &OsStr, name: &OsStr) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, private, dir, name, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            rustix::fs::linkat(dir, private, dir, name, AtFlags::empty())?;
            rustix::fs::unlinkat(dir, private, AtFlags::empty())
        }
        r => r,
    }
}

/// What became of a leftover private name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Not a leftover of chartd's (another name, another inode, not a regular file, another
    /// mount): untouched.
    NotOurs,
    /// Put back under the name it carries: chartd was stopped while the file was off its name,
    /// before the check that would have deleted it or put it back. The index takes it up again
    /// and the policy judges it afresh.
    PutBack(OsString),
    /// Removed: the name it carries holds a regular file at least as new by now (its writer's
    /// newer one: removing the old one is what that write did).
    Removed,
    /// Kept under its private name, and why: its name is held by something that only the
    /// emptied name let in (a directory, a symlink, an older file), or it carries no name
    /// (the short form), or the caller may not remove it (outside the policy). Removing it
    /// could lose the only copy of a chart; it is reported instead.
    Kept(&'static str),
}

/// Settles a leftover private name (chartd stopped between taking a file off its name and
/// unlinking it or putting it back), if it is still the regular file `ino` on the root's mount:
/// put back under the name it carries when that name is free; removed only when that name
/// holds a regular file at least as new and `may_remove` (the carried path is managed and not
/// protected); kept otherwise. Nothing is deleted on the strength of a decision that may not
/// have been checked: a file whose name is free goes back and is judged again.
pub fn settle_leftover(
    root: &RootDir,
    dir: &OwnedFd,
    name: &OsStr,
    ino: u64,
    may_remove: bool,
) -> io::Result<Leftover> {
    let Some(carried) = parse_private(name) else {
        return Ok(Leftover::NotOurs);
    };
    let m = stat_at(dir, name)?;
    if m.kind != Kind::File || m.ino != ino || !root.same_mount(&m) {
        return Ok(Leftover::NotOurs);
    }
    let Some(orig) = carried else {
        return Ok(Leftover::Kept("it carries no name (a name over 213 bytes)"));
    };
    match put_back(dir, name, orig) {
        Ok(()) => return Ok(Leftover::PutBack(orig.to_owned())),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    if !replaced_by_newer(dir, orig, &m) {
        return Ok(Leftover::Kept(
            "its name holds something that is not a newer regular file",
        ));
    }
    if !may_remove {
        return Ok(Leftover::Kept("its name is outside the policy"));
    }
    rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    Ok(Leftover::Removed)
}

/// Whether `name` in `dir` holds a regular file at least as new as `old` (on the same mount):
/// what a writer's rename over the name or its rewrite leaves. A directory, a symlink or an
/// older file there is something only the emptied name let in, and no proof that `old` was
/// replaced.
fn replaced_by_newer(dir: &OwnedFd, name: &OsStr, old: &Meta) -> bool {
    stat_at(dir, name).is_ok_and(|n| {
        n.kind == Kind::File && n.ino != old.ino && n.dev == old.dev && n.mtime_ns >= old.mtime_ns
    })
}
