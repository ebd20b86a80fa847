//! Notifications to the service manager (`READY=1`, `STATUS=`, `WATCHDOG=1`, ...) that never
//! block the supervisor.
//!
//! systemd reads its notify socket when it gets to it; its queue holds
//! `net.unix.max_dgram_qlen` datagrams (10 by default), and a blocking `send` on a full queue
//! would stop the supervisor's loop, and with it the control socket (issue #7, item 7). So the
//! socket is non-blocking: a `STATUS=` that does not fit is dropped (the next one replaces it
//! anyway), while `READY=1`, `WATCHDOG=1`, `RELOADING=1` and `STOPPING=1` are kept and sent
//! again on the next retry. The messages are formatted by the `sd-notify` crate's
//! `NotifyState`; only the sending is chartd's own.
//!
//! May touch: `NOTIFY_SOCKET` only (a non-blocking datagram socket to the service manager).

use sd_notify::NotifyState;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;

/// How often undelivered notifications are tried again.
pub const RETRY: std::time::Duration = std::time::Duration::from_millis(100);

pub struct Notifier {
    sock: Option<UnixDatagram>,
    /// Messages that must reach the service manager, oldest first.
    pending: Vec<String>,
}

fn connect() -> io::Result<Option<UnixDatagram>> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(None);
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.connect_addr(&addr)?;
    } else {
        sock.connect(&path)?;
    }
    Ok(Some(sock))
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` (nothing to do without it).
    pub fn from_env() -> Notifier {
        let sock = match connect() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot connect to the service manager's notify socket: {e}");
                None
            }
        };
        Notifier {
            sock,
            pending: Vec::new(),
        }
    }

    fn format(states: &[NotifyState]) -> String {
        let mut msg = String::new();
        for s in states {
            let _ = writeln!(msg, "{s}");
        }
        msg
    }

    /// Sends at once or never: for `STATUS=`.
    pub fn status(&mut self, states: &[NotifyState]) {
        let msg = Self::format(states);
        let _ = self.try_send(&msg);
    }

    /// Sends now, or keeps it for [`Notifier::retry`]: for the messages that must arrive.
    pub fn must(&mut self, states: &[NotifyState]) {
        let msg = Self::format(states);
        // Keep the order: nothing overtakes an older message that is still waiting.
        if self.pending.is_empty() && self.try_send(&msg) {
            return;
        }
        // A watchdog ping still waiting stands for this one too.
        if msg == "WATCHDOG=1\n" && self.pending.iter().any(|m| m == &msg) {
            return;
        }
        self.pending.push(msg);
    }

    /// Tries the waiting messages again; true while some are still waiting.
    pub fn retry(&mut self) -> bool {
        while let Some(msg) = self.pending.first().cloned() {
            if !self.try_send(&msg) {
                break;
            }
            self.pending.remove(0);
        }
        !self.pending.is_empty()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// One non-blocking send; false when the socket's queue is full (or it failed).
    fn try_send(&mut self, msg: &str) -> bool {
        let Some(sock) = &self.sock else {
            return true;
        };
        match sock.send(msg.as_bytes()) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                tracing::debug!("notify socket: {e}");
                true
            }
        }
    }
}
