//! Creating the control socket file: permissions, group, and the rules for an existing path
//! (replace a stale socket, refuse a live one, never touch anything that is not a socket).
//!
//! May touch: the socket path and its parent directory only (creates the directory, removes a stale
//! socket, binds, chmods, chowns, links) and `/etc/group`; never a path that is not a socket.

use super::accounts;
use crate::config::ControlConfig;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::Path;

/// Creates the control socket at `path`: mode 0660, group `control.group` if set, parent
/// directory created (0755) if missing.
///
/// An existing socket is replaced only if nothing accepts connections on it; a live one means
/// another chartd runs and is an error, and a path that is not a socket is never removed. The
/// socket is bound under a temporary name, given its mode and group, and only then linked into
/// place, so it is never reachable with the umask's permissions; the link fails instead of
/// clobbering a socket another process created meanwhile. (`local_addr()` therefore reports
/// the temporary name.)
///
/// Returns a non-blocking std listener, so this can run before the runtime starts; convert it
/// with `tokio::net::UnixListener::from_std` inside the runtime.
pub fn bind(
    path: &Path,
    control: &ControlConfig,
) -> Result<std::os::unix::net::UnixListener, String> {
    let shown = path.display();
    let gid = match &control.group {
        None => None,
        Some(name) => Some(
            accounts::group_by_name(&accounts::read(accounts::GROUP_FILE), name)
                .ok_or_else(|| {
                    format!(
                        "control.group {name:?} does not exist in {} (create it with `groupadd {name}`, or remove control.group)",
                        accounts::GROUP_FILE
                    )
                })?
                .gid,
        ),
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        format!(
            "socket path {shown} does not name a file; set socket: to e.g. /run/chartd/chartd.sock"
        )
    })?;
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| {
                format!(
                    "cannot create the socket's directory {}: {e}",
                    parent.display()
                )
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match probe(path) {
            Probe::Live => {
                return Err(format!(
                    "another chartd is already listening on {shown} (stop it, or set socket: to another path)"
                ))
            }
            Probe::Stale => std::fs::remove_file(path).map_err(|e| {
                format!("cannot remove the stale socket {shown}: {e} (remove it by hand, or set socket: to another path)")
            })?,
            Probe::Unknown(e) => {
                return Err(format!(
                    "cannot tell whether {shown} is in use ({e}); remove it if no chartd runs, or set socket: to another path"
                ))
            }
        },
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; refusing to replace it (move it away, or set socket: to another path)"
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {shown}: {e}")),
    }

    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = parent.join(tmp_name);
    if std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(&tmp); // left by an earlier process with our pid
    }
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(|e| {
        format!(
            "cannot create the control socket in {}: {e}",
            parent.display()
        )
    })?;
    let result = (|| {
        rustix::fs::chmod(&tmp, rustix::fs::Mode::from_raw_mode(0o660))
            .map_err(|e| format!("cannot set mode 0660 on the control socket: {e}"))?;
        if let (Some(gid), Some(group)) = (gid, &control.group) {
            rustix::fs::chown(&tmp, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| {
                format!(
                    "cannot give the control socket to group {group:?}: {e} (the daemon must run as root or as a member of {group:?})"
                )
            })?;
        }
        std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => format!(
                "{shown} appeared while chartd was starting; is another chartd starting? (stop it, or set socket: to another path)"
            ),
            _ => format!("cannot create the control socket {shown}: {e}"),
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the control socket non-blocking: {e}"))
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map(|()| listener)
}

enum Probe {
    Live,
    Stale,
    Unknown(io::Error),
}

/// Whether something accepts connections on the socket at `path`. A non-blocking connect, so
/// a live daemon with a full backlog reads as live instead of hanging the start.
fn probe(path: &Path) -> Probe {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let attempt = || -> Result<(), Errno> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)
    };
    match attempt() {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => Probe::Live,
        Err(Errno::CONNREFUSED) | Err(Errno::NOENT) => Probe::Stale,
        Err(e) => Probe::Unknown(e.into()),
    }
}
