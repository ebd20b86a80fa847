//! Phase `floor`: what the deletion protocols cost by themselves on this machine, in the same
//! run, with no daemon: the plain `unlink` older chartd builds used, and the airtight protocol
//! issue #7 prescribes (open the file, `flock` probe, `renameat2(RENAME_NOREPLACE)` to a
//! private name, `statx` what was taken, `unlink` it), each in a tight loop over the same
//! files, on the disk (where the reaction phase runs) and on the tmpfs (overshoot, throughput).
//! It is the floor any implementation of each protocol pays, so it says how much of chartd's
//! own comparison against an unlink-only build is the protocol itself. The reference reactors
//! of the reaction and overshoot phases delete with the same two functions.
//!
//! May touch: the scratch directories it is handed (its own files, created and removed).

use crate::tree::make_file;
use crate::util::{err, pct, Res};
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, RenameFlags, StatxFlags};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

/// How a reference deletes a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `unlinkat` of the name.
    Plain,
    /// open, `flock` probe, rename to a private name, `statx`, unlink (see the module comment).
    Airtight,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Plain => "plain unlink",
            Protocol::Airtight => "airtight",
        }
    }
}

/// Opens a directory for the `*at` calls below.
pub fn open_dir(p: &Path) -> Res<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open dir"))
}

/// Deletes `name` in `dir` by `proto`; `seq` makes the private name unique. The airtight
/// protocol is the issue's: the file opened (`O_NOFOLLOW | O_NONBLOCK`) and `fstat`ed, a
/// non-blocking `flock`, the name moved to `.chartd-evict.<pid>.<seq>=<name>` with
/// `RENAME_NOREPLACE`, the private name `statx`ed (the inode opened?), then unlinked; put back
/// if it is not the inode opened. chartd's own checks on top (its directory still beneath the
/// root, the root at its path) are chartd's cost, not the protocol's, and not done here.
pub fn delete(dir: &OwnedFd, name: &OsStr, proto: Protocol, seq: u64) -> std::io::Result<()> {
    match proto {
        Protocol::Plain => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
        Protocol::Airtight => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let held = rustix::fs::fstat(&fd)?;
            rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
            let mut private = format!(".chartd-evict.{}.{seq:x}=", std::process::id()).into_bytes();
            private.extend_from_slice(name.as_bytes());
            let private = OsStr::from_bytes(&private);
            rustix::fs::renameat_with(dir, name, dir, private, RenameFlags::NOREPLACE)?;
            let taken = rustix::fs::statx(
                dir,
                private,
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::BASIC_STATS,
            )?;
            if taken.stx_ino != held.st_ino {
                rustix::fs::renameat_with(dir, private, dir, name, RenameFlags::NOREPLACE)?;
                return Err(std::io::Error::other("another file was taken; put back"));
            }
            rustix::fs::unlinkat(dir, private, AtFlags::empty())?;
            Ok(())
        }
    }
}

/// Per-file cost (µs) of deleting `n` files by `proto` in `dir`, in one loop; the files are
/// made first (chart-sized, sparse, like the trees'), outside the timing.
fn one_loop(dir: &Path, n: usize, proto: Protocol) -> Res<f64> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(err("floor dir"))?;
    // Four files per directory, as in the trees: the directory's own size and cache state
    // then match what chartd deletes in.
    let group = |g: usize| dir.join(format!("g{g:05}"));
    for g in 0..n.div_ceil(4) {
        fs::create_dir(group(g)).map_err(err("floor dir"))?;
    }
    for k in 0..n {
        make_file(
            &group(k / 4).join(format!("c{}.png", k % 4)),
            500 * 1024,
            None,
        )?;
    }
    let dirs: Vec<OwnedFd> = (0..n.div_ceil(4))
        .map(|g| open_dir(&group(g)))
        .collect::<Res<_>>()?;
    let names: Vec<String> = (0..4).map(|c| format!("c{c}.png")).collect();
    let start = Instant::now();
    for k in 0..n {
        delete(&dirs[k / 4], OsStr::new(&names[k % 4]), proto, k as u64)
            .map_err(err("floor delete"))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    drop(dirs);
    let _ = fs::remove_dir_all(dir);
    Ok(us)
}

/// `reps` loops of each protocol, alternating which goes first, in `dir`: the median per-file
/// cost of each, their ratio, and the spread of the per-repetition ratios.
pub fn floor_on(dir: &Path, n: usize, reps: usize) -> Res<Value> {
    let (mut plain, mut airtight, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..reps {
        let order = if r % 2 == 0 {
            [Protocol::Plain, Protocol::Airtight]
        } else {
            [Protocol::Airtight, Protocol::Plain]
        };
        let mut got = [0.0; 2];
        for p in order {
            got[usize::from(p == Protocol::Airtight)] = one_loop(dir, n, p)?;
        }
        plain.push(got[0]);
        airtight.push(got[1]);
        ratios.push(got[1] / got[0]);
    }
    Ok(json!({
        "files": n,
        "reps": reps,
        "plain_us": pct(&plain, 50.0),
        "plain_us_reps": plain,
        "airtight_us": pct(&airtight, 50.0),
        "airtight_us_reps": airtight,
        "ratio": pct(&ratios, 50.0),
        "ratio_reps": ratios,
    }))
}
