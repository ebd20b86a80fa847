//! Every filesystem operation chartd performs under a root, fd-relative and without following
//! symlinks, the way systemd-tmpfiles works: resolve beneath the root's directory fd, `statx`
//! names with `AT_SYMLINK_NOFOLLOW`, never enter another mount. Deleting a file is in
//! `delete.rs` (take it off its name first, check, then unlink).
//!
//! Nothing here takes a path string to `unlink`: a path is only ever a list of names resolved
//! from the root fd, one component at a time or with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, so a directory swapped for a symlink mid-way makes
//! the operation fail instead of escaping the root.
//!
//! May touch: the filesystem under a root, fd-relative, never following symlinks or leaving the
//! root's mount (and `statvfs` of that filesystem); no chartd state.

mod delete;

pub use delete::{
    carried_name, delete_file, is_private_name, settle_leftover, DeleteOutcome, Expect, Leftover,
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What the index needs to know about a directory entry, from one `statx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Apparent size (`st_size`), what `ls -l` and the replaced system count.
    pub size: u64,
    /// 512-byte blocks actually allocated (what deleting frees, for sparse files less than size).
    pub blocks: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub nlink: u32,
    /// Device and mount id: an entry on another mount than the root's is never entered or touched.
    pub dev: (u32, u32),
    pub mnt_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Symlinks, sockets, fifos, devices: indexed as unmanaged, never touched.
    Other,
}

impl Meta {
    fn from_statx(st: &Statx) -> Meta {
        let ft = FileType::from_raw_mode(st.stx_mode as u32);
        let kind = match ft {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            _ => Kind::Other,
        };
        Meta {
            kind,
            size: st.stx_size,
            blocks: st.stx_blocks,
            mtime_ns: st
                .stx_mtime
                .tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(st.stx_mtime.tv_nsec as i64),
            ino: st.stx_ino,
            nlink: st.stx_nlink,
            dev: (st.stx_dev_major, st.stx_dev_minor),
            mnt_id: st.stx_mnt_id,
        }
    }
}

/// An open root directory: the anchor of every operation under it.
#[derive(Debug)]
pub struct RootDir {
    pub fd: OwnedFd,
    pub meta: Meta,
}

impl RootDir {
    /// Opens the root itself from its canonical path (symlinks in the configured path are
    /// resolved once, by the caller, at start). The last component is not followed: a root
    /// replaced by a symlink while chartd runs is refused, not followed elsewhere.
    ///
    /// `path` is canonical, so any symlink on it (in the last component or above) was swapped
    /// in since it was resolved: with `openat2` the whole path is opened with
    /// `RESOLVE_NO_SYMLINKS`, and only the last component is checked where `openat2` is missing.
    pub fn open_nofollow(path: &Path) -> io::Result<RootDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            flags,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => rustix::fs::open(path, flags, Mode::empty())?,
            r => r?,
        };
        let meta = Meta::from_statx(&rustix::fs::statx(
            &fd,
            c"",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
        )?);
        Ok(RootDir { fd, meta })
    }

    /// Whether `m` lives on the root's own mount (so it may be entered or deleted).
    pub fn same_mount(&self, m: &Meta) -> bool {
        m.dev == self.meta.dev
            && (m.mnt_id == 0 || self.meta.mnt_id == 0 || m.mnt_id == self.meta.mnt_id)
    }

    /// Opens the directory at `components` (names relative to the root) without following
    /// symlinks and without leaving the root's mount, for reading. An empty list is the root
    /// itself.
    pub fn open_dir<S: AsRef<OsStr>>(&self, components: &[S]) -> io::Result<OwnedFd> {
        self.open_beneath(components, OFlags::RDONLY)
    }

    /// Like [`RootDir::open_dir`], but an `O_PATH` handle: good as the `dirfd` of `statx`,
    /// `openat` and `unlinkat`, not for listing. Why it matters: opening a directory for
    /// reading queues an `IN_OPEN` on its watch and its parent's (notify asks the kernel for
    /// them), and every one of those wakes notify's thread to be thrown away. A `O_PATH` open
    /// queues nothing, so refreshing and deleting do not feed chartd's own event queue.
    pub fn open_dir_path<S: AsRef<OsStr>>(&self, components: &[S]) -> io::Result<OwnedFd> {
        self.open_beneath(components, OFlags::PATH)
    }

    fn open_beneath<S: AsRef<OsStr>>(&self, components: &[S], mode: OFlags) -> io::Result<OwnedFd> {
        let flags = mode | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if components.is_empty() {
            // A fresh open file, not a dup: a dup would share the directory read offset.
            return Ok(rustix::fs::openat(&self.fd, c".", flags, Mode::empty())?);
        }
        if OPENAT2_WORKS.load(Ordering::Relaxed) {
            let mut rel = PathBuf::new();
            for c in components {
                rel.push(c.as_ref());
            }
            match rustix::fs::openat2(
                &self.fd,
                &rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH
                    | ResolveFlags::NO_SYMLINKS
                    | ResolveFlags::NO_XDEV
                    | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOSYS) | Err(Errno::PERM) => {
                    // Old kernel or a seccomp filter without openat2: walk by hand from now on.
                    OPENAT2_WORKS.store(false, Ordering::Relaxed);
                }
                // EAGAIN: the kernel saw a concurrent rename and refuses to guess; EXDEV: a mount
                // point; ELOOP: a symlink. The caller treats all of them as "not there".
                Err(e) => return Err(e.into()),
            }
        }
        self.walk_beneath(components, mode)
    }

    /// Where `openat2` is missing: one component at a time, `O_PATH` all the way (no events),
    /// never following a symlink and checking each step's mount.
    fn walk_beneath<S: AsRef<OsStr>>(&self, components: &[S], mode: OFlags) -> io::Result<OwnedFd> {
        let flags = mode | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut fd = rustix::fs::openat(&self.fd, c".", step, Mode::empty())?;
        for c in components {
            // Only plain names: `..` would climb out of the root, which openat2's
            // RESOLVE_BENEATH refuses and this walk must refuse too.
            let name = c.as_ref().as_bytes();
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(Errno::INVAL.into());
            }
            let next = rustix::fs::openat(&fd, c.as_ref(), step, Mode::empty())?;
            let m = stat_fd(&next)?;
            if !self.same_mount(&m) {
                return Err(Errno::XDEV.into());
            }
            fd = next;
        }
        if mode != OFlags::PATH {
            // Reopen the last step for reading through its own fd, symlinks impossible there.
            fd = rustix::fs::openat(&fd, c".", flags, Mode::empty())?;
        }
        Ok(fd)
    }
}

static OPENAT2_WORKS: AtomicBool = AtomicBool::new(true);

/// Opens `name` in `dir` as a directory, refusing symlinks.
pub fn open_subdir(dir: &impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_at(dir: &impl AsFd, name: &OsStr) -> io::Result<Meta> {
    let st = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )?;
    Ok(Meta::from_statx(&st))
}

/// `statx(path, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_path(path: &Path) -> io::Result<Meta> {
    stat_at(&rustix::fs::CWD, path.as_os_str())
}

/// Whether the directory open at `fd` is, right now, `depth` levels beneath the root: its
/// `depth`-th ancestor (`statx(fd, "../..")`, one syscall whose walk follows each directory's
/// parent as it is now) is the root's inode on the root's mount. Directories have one parent
/// (no hard links), so a directory moved out of the root reaches another ancestor, and one moved
/// elsewhere within the root an ancestor at another depth. `false` is not proof of the
/// opposite (moved within the root, an error): callers fall back to a walk from the root then.
/// It says nothing about the root's own place: the root renamed away carries its tree along,
/// which `root_unchanged`-style checks of the root's path see.
///
/// Why not the kernel's path of the fd (`readlink /proc/self/fd/N`): that costs a procfs walk,
/// a ptrace access check and a path rendering; measured in the deletion profile at ~30 µs a
/// call on the 2-core test machine, half of what the airtight deletion added to reaction.
pub fn beneath_at_depth(root: &RootDir, fd: &impl AsFd, depth: usize) -> bool {
    const MAX_DEPTH: usize = 1024; // "../" × 1024 stays within PATH_MAX (4096)
    if depth > MAX_DEPTH {
        return false;
    }
    let m = if depth == 0 {
        stat_fd(fd)
    } else {
        let mut up = Vec::with_capacity(depth * 3);
        for i in 0..depth {
            if i > 0 {
                up.push(b'/');
            }
            up.extend_from_slice(b"..");
        }
        stat_at(fd, OsStr::from_bytes(&up))
    };
    m.is_ok_and(|m| m.kind == Kind::Dir && m.ino == root.meta.ino && root.same_mount(&m))
}

/// `statx` of an open fd.
pub fn stat_fd(fd: &impl AsFd) -> io::Result<Meta> {
    let st = rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )?;
    Ok(Meta::from_statx(&st))
}

/// Free and total bytes of the filesystem holding `fd` (what an unprivileged writer can use).
pub fn fs_space(fd: BorrowedFd<'_>) -> io::Result<Space> {
    let v = rustix::fs::fstatvfs(fd)?;
    let unit = if v.f_frsize > 0 {
        v.f_frsize
    } else {
        v.f_bsize
    };
    Ok(Space {
        free_bytes: v.f_bavail.saturating_mul(unit),
        total_bytes: v.f_blocks.saturating_mul(unit),
        free_inodes: v.f_favail,
        total_inodes: v.f_files,
    })
}

/// A filesystem's free and total space and inodes (what an unprivileged writer may use); all
/// zero until first measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Space {
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub free_inodes: u64,
    pub total_inodes: u64,
}

/// Removes the empty directory `name` in `parent`, if it is still the directory we expect and
/// on the root's mount. Non-empty, gone or changed are all fine: nothing to do.
pub fn remove_empty_dir(
    root: &RootDir,
    parent: &OwnedFd,
    name: &OsStr,
    ino: u64,
) -> io::Result<bool> {
    let m = match stat_at(parent, name) {
        Ok(m) => m,
        Err(_) => return Ok(false),
    };
    if m.kind != Kind::Dir || m.ino != ino || !root.same_mount(&m) {
        return Ok(false);
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOTEMPTY) | Err(Errno::EXIST) | Err(Errno::NOENT) | Err(Errno::BUSY) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// A short, operator-oriented explanation for an errno seen while deleting.
pub fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(c) if c == Errno::ACCESS.raw_os_error() || c == Errno::PERM.raw_os_error() => {
            "chartd may not delete here: make the directory writable by chartd's group \
             (the writing application should join group `chartd`; see README, Permissions)"
        }
        Some(c) if c == Errno::ROFS.raw_os_error() => {
            "the filesystem is read-only (or ProtectSystem= hides it: add the root to ReadWritePaths=)"
        }
        Some(c) if c == Errno::BUSY.raw_os_error() => "the file is in use by the system (a mount point?)",
        _ => "",
    }
}

/// True for the errors that mean "this name is not (or no longer) a directory beneath the
/// root we can enter": gone, replaced by a symlink or a file, or on another mount.
pub fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::NOENT)
            | Some(Errno::NOTDIR)
            | Some(Errno::LOOP)
            | Some(Errno::XDEV)
            | Some(Errno::AGAIN)
    )
}

#[cfg(test)]
mod tests;
