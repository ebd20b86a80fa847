//! One daemon per tree: an exclusive `flock` on each root directory, held for the daemon's
//! lifetime, so that a second chartd on the same tree (through another config, socket or
//! path spelling) refuses to start instead of racing the first one's deletions.
//!
//! Why a lock on the directory itself rather than a lock file: it is keyed by the root's
//! device and inode whatever the path or the user, it writes nothing into the governed tree or
//! a runtime directory, and the kernel drops it when the process dies (no stale lock after a
//! `kill -9`). The refusal names the first daemon's pid and socket, found through
//! `/proc/locks` (who holds the lock) and `/proc/net/unix` (that pid's listening sockets).
//!
//! May touch: a `flock` on each root directory (held in a process-wide table) and `/proc/locks`,
//! `/proc/PID/fd`, `/proc/net/unix` (read, to name a rival); nothing below a root.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The locked roots: (device, inode) → (configured path, the open directory holding the lock).
type Held = HashMap<(u64, u64), (PathBuf, File)>;

/// The locks this process holds.
static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// Locks `root` for this process (idempotent). A root that does not exist yet is not locked
/// (`Ok(false)`); call again once it exists (the owner does when it reopens a root). Returns
/// `Err` with the message to print when another process governs the tree.
///
/// Integrator: call this for roots added by a reload (owner.rs) and once a missing root
/// appears; call [`release_except`] after a reload with the roots that remain.
pub fn lock_root(root: &Path) -> Result<bool, String> {
    let dir = match File::open(root) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(format!(
                "cannot open root {} to lock it: {e}",
                root.display()
            ))
        }
    };
    let meta = dir
        .metadata()
        .map_err(|e| format!("cannot stat root {}: {e}", root.display()))?;
    let key = (meta.dev(), meta.ino());
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let held = held.get_or_insert_with(HashMap::new);
    if held.contains_key(&key) {
        return Ok(true);
    }
    match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            held.insert(key, (root.to_path_buf(), dir));
            Ok(true)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Err(refusal(root, meta.dev(), meta.ino())),
        Err(e) => {
            // A filesystem without flock support must not stop chartd; say so and go on.
            tracing::warn!(
                "cannot lock root {} ({e}); a second chartd on this tree would not be refused",
                root.display()
            );
            Ok(false)
        }
    }
}

/// Drops the locks of roots that are no longer configured.
pub fn release_except(roots: &[PathBuf]) {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(held) = held.as_mut() {
        held.retain(|_, (path, _)| roots.contains(path));
    }
}

/// Locks every root at start; the first refusal is returned.
pub fn lock_all(roots: &[PathBuf]) -> Result<(), String> {
    for r in roots {
        lock_root(r)?;
    }
    Ok(())
}

fn refusal(root: &Path, dev: u64, ino: u64) -> String {
    let who = holder_pid(dev, ino);
    let socket = who.and_then(listening_socket);
    let by = match (who, socket) {
        (Some(pid), Some(sock)) => format!(
            "the chartd with pid {pid}, whose control socket is {} (see `chartd status --socket {}`)",
            sock.display(),
            sock.display()
        ),
        (Some(pid), None) => format!("process {pid} (another chartd?)"),
        (None, _) => "another process (a chartd of another user or namespace?)".to_string(),
    };
    format!(
        "root {} is already governed by {by}. Two daemons on one tree would race each other's deletions: stop the other one, or remove this root from one of the configs",
        root.display()
    )
}

/// The pid holding an exclusive flock on (dev, ino), from `/proc/locks`, whose lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF` (device as hex major:minor).
fn holder_pid(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let (maj, min) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let at = f.iter().position(|w| *w == "FLOCK")?;
        let pid: u32 = f.get(at + 3)?.parse().ok()?;
        let mut id = f.get(at + 4)?.split(':');
        let m = u32::from_str_radix(id.next()?, 16).ok()?;
        let n = u32::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (m == maj && n == min && i == ino).then_some(pid)
    })
}

/// A listening Unix socket with a path among `pid`'s descriptors.
fn listening_socket(pid: u32) -> Option<PathBuf> {
    let mut inodes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.push(n.to_string());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 = listening.
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        let (inode, path) = (f.get(6)?, f.get(7)?);
        (flags & 0x10000 != 0 && inodes.iter().any(|i| i == inode) && path.starts_with('/'))
            .then(|| published_name(Path::new(path), pid))
    })
}

/// The kernel keeps the name a socket was bound to; `control::socket` binds
/// `.NAME.PID.tmp` and then links it to `NAME`, so name what clients connect to.
fn published_name(bound: &Path, pid: u32) -> PathBuf {
    let name = bound.file_name().map(|n| n.to_string_lossy().into_owned());
    let suffix = format!(".{pid}.tmp");
    match name
        .as_deref()
        .and_then(|n| n.strip_prefix('.'))
        .and_then(|n| n.strip_suffix(suffix.as_str()))
    {
        Some(real) => bound.with_file_name(real),
        None => bound.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_root_is_not_locked_and_relocking_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_root(&dir.path().join("nope")), Ok(false));
        assert_eq!(lock_root(dir.path()), Ok(true));
        assert_eq!(lock_root(dir.path()), Ok(true));
        // Another open file description of the same directory is refused, naming this pid.
        let other = File::open(dir.path()).unwrap();
        assert!(
            rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_err()
        );
        let meta = other.metadata().unwrap();
        assert_eq!(holder_pid(meta.dev(), meta.ino()), Some(std::process::id()));
        release_except(&[]);
        assert_eq!(
            published_name(Path::new("/run/chartd/.chartd.sock.42.tmp"), 42),
            Path::new("/run/chartd/chartd.sock")
        );
        assert_eq!(
            published_name(Path::new("/run/x.sock"), 42),
            Path::new("/run/x.sock")
        );
        rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    }
}
