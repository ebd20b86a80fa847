//! The listener and its connections: connection limits, timeouts, peer credentials, and
//! dispatch of decoded requests. (Creating the socket file is [`super::socket`].)
//!
//! Every connection is its own task with a bounded line buffer ([`MAX_LINE`]) and a deadline
//! (`control.idle_timeout`) for each complete request line and each reply, so a client that
//! stalls, floods, or never reads costs one task and ~72 KiB until it is dropped, and never
//! delays other clients. `control` is re-read for every connection and every request, so a
//! reload changes limits and admin lists without restarting the listener.
//!
//! May touch: its connections, the `Context` (snapshot, alert tracker, configs), `/etc/group` and
//! `/etc/passwd` (admin checks), the owner's command and the supervisor's reload channels; besides
//! the snapshot it reads the owner's live `Progress::idle` flag.

use super::messages::{fields, MetricsReply, ReloadReply};
use super::protocol::{self, Incoming, MAX_LINE};
use super::{accounts, report, CommandMsg, ReloadMsg, Request};
use crate::config::{ControlConfig, RootConfig};
use crate::health::Tracker;
use crate::root::Progress;
use crate::stats::Snapshot;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// How long a read-only owner request (`groups`, `list`) may wait for the owner. Deletions are
/// not timed out: giving up on a purge would report failure while the files are still deleted.
const OWNER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connections get to finish their current request at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server needs from the rest of the daemon.
pub struct Context {
    /// The owner's latest figures; `status` and `metrics` read only this.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// To the index owner (groups, list, cleanup, purge).
    pub commands: mpsc::Sender<CommandMsg>,
    /// To the supervisor (reload).
    pub reload: mpsc::Sender<ReloadMsg>,
    /// The `control:` section; the supervisor replaces it on reload.
    pub control: RwLock<ControlConfig>,
    /// The configured roots (grace, for the alert rule); the supervisor replaces them on reload.
    pub roots: RwLock<Vec<RootConfig>>,
    /// The owner's liveness: a busy owner with an old snapshot makes `status` say `stale`.
    pub progress: Arc<Progress>,
    /// Alert state across snapshots, fed by the index owner with every snapshot it publishes
    /// (see [`Context::tracker`]).
    pub health: crate::health::SharedTracker,
}

impl Context {
    /// A context with an empty alert history.
    pub fn new(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        commands: mpsc::Sender<CommandMsg>,
        reload: mpsc::Sender<ReloadMsg>,
        control: ControlConfig,
        roots: Vec<RootConfig>,
        progress: Arc<Progress>,
    ) -> Context {
        Context {
            snapshot,
            commands,
            reload,
            control: RwLock::new(control),
            roots: RwLock::new(roots),
            progress,
            health: Arc::new(Mutex::new(Tracker::default())),
        }
    }

    /// The alert tracker, for the index owner to feed: it observes each snapshot as it
    /// publishes it, at the time of publication. Why not a task here watching the snapshot
    /// channel: that woke this runtime's thread for every snapshot (one per batch of events,
    /// thousands a second under a busy writer), and the wake-ups cost more CPU per file than
    /// indexing it.
    pub fn tracker(&self) -> crate::health::SharedTracker {
        self.health.clone()
    }

    /// Runs `f` on the latest snapshot and what the answers need beside it.
    fn with_view<T>(&self, f: impl FnOnce(&Snapshot, &report::View) -> T) -> T {
        let snap = self.snapshot.borrow().clone();
        let roots = self.roots.read().unwrap_or_else(|p| p.into_inner());
        let tracker = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let view = report::View {
            tracker: &tracker,
            roots: &roots,
            busy: !self.progress.idle.load(Ordering::Acquire),
        };
        f(&snap, &view)
    }

    /// The `status` reply from the latest snapshot.
    fn status(&self) -> super::messages::StatusReply {
        self.with_view(|snap, view| report::status(snap, view, SystemTime::now()))
    }

    /// The Prometheus text (also what the HTTP endpoint serves).
    pub fn metrics_text(&self) -> String {
        self.with_view(|snap, view| report::metrics(snap, view, SystemTime::now()))
    }

    /// A copy of the current control settings (a poisoned lock still holds valid data: the
    /// writer only assigns a whole value).
    fn control(&self) -> ControlConfig {
        self.control
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The credentials of the peer process, from SO_PEERCRED at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
}

/// Serves connections until `shutdown` turns true (or its sender is dropped), then gives open
/// connections `DRAIN_TIMEOUT` (2 s) to finish the request they are on.
pub async fn serve(listener: UnixListener, ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let max = ctx.control().max_connections;
                    if active.load(Ordering::Acquire) >= max {
                        // A fresh socket's send buffer is empty: this cannot block or be partial.
                        let _ = stream.try_write(&protocol::encode_error(&format!(
                            "busy: {max} control connections are open (control.max_connections); try again in a moment"
                        )));
                        tracing::warn!(max, "control socket: connection refused, control.max_connections reached");
                        continue;
                    }
                    let slot = Slot::take(&active);
                    tasks.spawn(connection(stream, ctx.clone(), shutdown.clone(), slot));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays up.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = stopped(&mut shutdown) => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("control connection task failed: {e}");
                }
            }
        }
    }
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tasks.abort_all();
    }
}

/// Resolves when shutdown is requested or nobody can request it any more.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// One counted connection; the count drops with the task, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        active.fetch_add(1, Ordering::AcqRel);
        Slot(active.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Line {
    /// A request line is in the buffer (a last line without newline counts).
    Complete,
    TooLong,
    Eof,
}

async fn connection(
    stream: UnixStream,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    _slot: Slot,
) {
    let peer = match stream.peer_cred() {
        Ok(c) => Some(Peer {
            uid: c.uid(),
            gid: c.gid(),
        }),
        Err(e) => {
            tracing::warn!(
                "control socket: no peer credentials ({e}); admin commands will be refused"
            );
            None
        }
    };
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(8 * 1024, rd);
    let mut line = Vec::new();
    loop {
        let idle = ctx.control().idle_timeout;
        let read = tokio::select! {
            r = timeout(idle, read_line(&mut reader, &mut line)) => r,
            () = stopped(&mut shutdown) => return,
        };
        let (reply, last) = match read {
            Err(_) => (
                protocol::encode_error(&format!(
                    "idle timeout: no complete request in {}s; closing the connection",
                    idle.as_secs_f64()
                )),
                true,
            ),
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(Line::TooLong)) => (protocol::encode_error(&protocol::too_long()), true),
            Ok(Ok(Line::Complete)) => (handle(&line, &ctx, peer).await, false),
        };
        if !matches!(timeout(idle, wr.write_all(&reply)).await, Ok(Ok(()))) || last {
            return;
        }
        if line.capacity() > 2 * 1024 {
            line = Vec::new(); // do not keep a large buffer around for a long-lived connection
        }
    }
}

/// Reads one line into `line` (without the newline), keeping at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            if line.len() + i > MAX_LINE {
                return Ok(Line::TooLong);
            }
            line.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(Line::Complete);
        }
        let n = buf.len();
        if line.len() + n > MAX_LINE {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(buf);
        r.consume(n);
    }
}

/// Answers one request line.
async fn handle(line: &[u8], ctx: &Context, peer: Option<Peer>) -> Vec<u8> {
    let incoming = match protocol::decode(line) {
        Ok(i) => i,
        Err(e) => return protocol::encode_error(&e),
    };
    if incoming.needs_admin() {
        let control = ctx.control();
        let daemon_uid = rustix::process::geteuid().as_raw();
        let groups = accounts::read(accounts::GROUP_FILE);
        let passwd = accounts::read(accounts::PASSWD_FILE);
        if let Err(e) = authorize(
            peer,
            daemon_uid,
            &control,
            &groups,
            &passwd,
            incoming.name(),
        ) {
            tracing::warn!(
                cmd = incoming.name(),
                uid = peer.map(|p| p.uid),
                "control socket: {e}"
            );
            return protocol::encode_error(&e);
        }
        tracing::info!(
            cmd = incoming.name(),
            uid = peer.map(|p| p.uid),
            "control socket: {incoming:?}"
        );
    }
    match incoming {
        Incoming::Status => protocol::encode_reply(&ctx.status()),
        Incoming::Metrics => protocol::encode_ok(fields(&MetricsReply {
            text: ctx.metrics_text(),
        })),
        Incoming::Reload => {
            let (reply, rx) = oneshot::channel();
            if ctx.reload.send(ReloadMsg { reply }).await.is_err() {
                return protocol::encode_error("config not reloaded: the daemon is shutting down");
            }
            match rx.await {
                Ok(Ok(message)) => protocol::encode_ok(fields(&ReloadReply {
                    reloaded: true,
                    message,
                })),
                Ok(Err(why)) => protocol::encode_error(&format!("config not reloaded: {why}")),
                Err(_) => protocol::encode_error(
                    "config not reloaded: the supervisor dropped the request (see the daemon's log)",
                ),
            }
        }
        Incoming::Owner(request) => {
            let deletes = matches!(request, Request::Cleanup { .. } | Request::Purge { .. });
            let ask = ask_owner(&ctx.commands, request);
            let reply = if deletes {
                ask.await
            } else {
                timeout(OWNER_TIMEOUT, ask).await.unwrap_or_else(|_| {
                    Err(format!(
                        "the index owner did not answer within {}s (initial crawl or a large cleanup in progress?); try again later",
                        OWNER_TIMEOUT.as_secs()
                    ))
                })
            };
            match reply {
                Ok(fields) => protocol::encode_ok(fields),
                Err(e) => protocol::encode_error(&e),
            }
        }
    }
}

async fn ask_owner(commands: &mpsc::Sender<CommandMsg>, request: Request) -> super::Reply {
    let (reply, rx) = oneshot::channel();
    commands
        .send(CommandMsg { request, reply })
        .await
        .map_err(|_| {
            "the index owner is not running (is the daemon shutting down?); try again in a moment"
                .to_string()
        })?;
    rx.await
        .map_err(|_| "the index owner dropped the request (see the daemon's log)".to_string())?
}

/// Whether `peer` may run a command that deletes files or changes the daemon: root, the
/// daemon's own user, `control.admin_uids`, or a member of `control.admin_group` (by primary gid
/// or as a listed member in `/etc/group`, read at every check so membership changes apply
/// without a reload).
pub fn authorize(
    peer: Option<Peer>,
    daemon_uid: u32,
    control: &ControlConfig,
    group_file: &str,
    passwd_file: &str,
    cmd: &str,
) -> Result<(), String> {
    let Some(peer) = peer else {
        return Err(format!(
            "permission denied: {cmd} needs the caller's credentials, which the socket did not provide"
        ));
    };
    if peer.uid == 0 || peer.uid == daemon_uid || control.admin_uids.contains(&peer.uid) {
        return Ok(());
    }
    let via_group = match &control.admin_group {
        Some(name) => match accounts::group_by_name(group_file, name) {
            Some(g) if accounts::is_member(&g, peer.uid, peer.gid, passwd_file) => return Ok(()),
            Some(_) => format!(
                ", add uid {} to group {name:?} (control.admin_group)",
                peer.uid
            ),
            None => format!(
                ", or fix control.admin_group: group {name:?} is not in {}",
                accounts::GROUP_FILE
            ),
        },
        None => format!(
            ", or set control.admin_group to a group uid {} belongs to",
            peer.uid
        ),
    };
    Err(format!(
        "permission denied: {cmd} is for admins; run it as root or as the daemon's user (uid {daemon_uid}), add uid {} to control.admin_uids{via_group}",
        peer.uid
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "root:x:0:\ncharts-admin:x:990:bob\n";
    const PASSWD: &str = "bob:x:1001:1001::/:/bin/sh\neve:x:1002:1002::/:/bin/sh\n";

    fn control(admin_uids: Vec<u32>, admin_group: Option<&str>) -> ControlConfig {
        ControlConfig {
            group: None,
            admin_uids,
            admin_group: admin_group.map(str::to_string),
            max_connections: 8,
            idle_timeout: Duration::from_secs(5),
        }
    }

    fn check(uid: u32, gid: u32, c: &ControlConfig) -> Result<(), String> {
        authorize(Some(Peer { uid, gid }), 500, c, GROUP, PASSWD, "purge")
    }

    #[test]
    fn admins() {
        let c = control(vec![1003], Some("charts-admin"));
        assert!(check(0, 0, &c).is_ok(), "root");
        assert!(check(500, 500, &c).is_ok(), "the daemon's user");
        assert!(check(1003, 1003, &c).is_ok(), "admin_uids");
        assert!(
            check(1001, 1001, &c).is_ok(),
            "listed member of admin_group"
        );
        assert!(check(4000, 990, &c).is_ok(), "primary group is admin_group");
        let e = check(1002, 1002, &c).unwrap_err();
        assert!(
            e.starts_with("permission denied: purge is for admins"),
            "{e}"
        );
        assert!(e.contains("add uid 1002 to control.admin_uids"), "{e}");
        assert!(e.contains("add uid 1002 to group \"charts-admin\""), "{e}");
    }

    #[test]
    fn non_admins_are_told_what_would_allow_them() {
        let e = check(1002, 1002, &control(vec![], None)).unwrap_err();
        assert!(
            e.contains("uid 500") && e.contains("control.admin_group"),
            "{e}"
        );
        let e = check(1002, 1002, &control(vec![], Some("nope"))).unwrap_err();
        assert!(e.contains("group \"nope\" is not in /etc/group"), "{e}");
        let e = authorize(None, 500, &control(vec![], None), GROUP, PASSWD, "reload").unwrap_err();
        assert!(e.starts_with("permission denied: reload"), "{e}");
    }
}
