//! The server against a real Unix socket in a temporary directory, with a stand-in owner that
//! answers with fixed data and records what reached it.
//!
//! May touch: sockets in temporary directories it creates, served by servers it starts in-process.

use super::report::tests::{root, snapshot};
use super::{bind, serve, CommandMsg, Context, ReloadMsg, Request};
use crate::config::ControlConfig;
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

pub(crate) fn control(max_connections: usize, idle: Duration) -> ControlConfig {
    ControlConfig {
        group: None,
        admin_uids: vec![],
        admin_group: None,
        max_connections,
        idle_timeout: idle,
    }
}

pub(crate) struct Server {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ctx: Arc<Context>,
}

impl Server {
    pub(crate) async fn start(c: ControlConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/chartd.sock");
        let listener = bind(&path, &c).unwrap();
        let listener = tokio::net::UnixListener::from_std(listener).unwrap();
        let mut r = root("/srv/charts");
        r.total_files = 2;
        r.total_bytes = 2048;
        r.max_size = Some(4096);
        let (_snap_tx, snap_rx) = watch::channel(Arc::new(snapshot(vec![r])));
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(owner(cmd_rx, seen.clone()));
        tokio::spawn(supervisor(reload_rx));
        let ctx = Arc::new(Context::new(
            snap_rx,
            cmd_tx,
            reload_tx,
            c,
            Vec::new(),
            Arc::new(crate::root::Progress::default()),
        ));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, ctx.clone(), stop_rx));
        Server {
            _dir: dir,
            path,
            seen,
            stop,
            task,
            ctx,
        }
    }

    async fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.path).await.unwrap())
    }
}

/// Answers like the index owner would, with fixed figures, built from the typed replies
/// (as `commands.rs` is to build them).
async fn owner(mut rx: mpsc::Receiver<CommandMsg>, seen: Arc<Mutex<Vec<Request>>>) {
    use super::messages::*;
    while let Some(msg) = rx.recv().await {
        seen.lock().unwrap().push(msg.request.clone());
        let deletion = |dry_run: bool, n: u64, b: u64| DeletionReply {
            files_removed: (!dry_run).then_some(n),
            bytes_freed: (!dry_run).then_some(b),
            would_remove: dry_run.then_some(n),
            would_free_bytes: dry_run.then_some(b),
            skipped: 0,
            files: vec![RemovedFile {
                path: "/srv/charts/g/a.png".into(),
                bytes: b,
                age_hours: 2.0,
                reason: "age".into(),
            }],
            dry_run,
            skipped_in_grace: None,
            groups_matched: None,
        };
        let fields_of = match &msg.request {
            Request::Groups { .. } => fields(&GroupsReply {
                groups: vec![GroupRow {
                    name: "EURUSD_1h".into(),
                    root: "/srv/charts".into(),
                    files: 2,
                    bytes: 2048,
                    oldest_file_age_hours: Some(1.5),
                    newest_file_age_hours: Some(0.1),
                    rule: None,
                    max_age_hours: None,
                    quota_bytes: None,
                    quota_files: None,
                    quota_percent: None,
                }],
                total_groups: 1,
            }),
            Request::List { group, .. } if group == "missing" => {
                let _ = msg.reply.send(Err("no group \"missing\"".into()));
                continue;
            }
            Request::List { group, .. } => fields(&ListReply {
                root: "/srv/charts".into(),
                group: group.clone(),
                files: vec![ListedFile {
                    path: format!("{group}/a.png"),
                    bytes: 1024,
                    mtime: "2023-11-14T22:13:20Z".into(),
                    mtime_unix: 1_700_000_000.0,
                    age_hours: 1.5,
                    protected: false,
                }],
            }),
            Request::Cleanup { dry_run } => fields(&deletion(*dry_run, 1, 1024)),
            Request::Purge { dry_run, .. } => fields(&DeletionReply {
                skipped_in_grace: Some(0),
                ..deletion(*dry_run, 2, 2048)
            }),
        };
        let _ = msg.reply.send(Ok(fields_of));
    }
}

async fn supervisor(mut rx: mpsc::Receiver<ReloadMsg>) {
    while let Some(msg) = rx.recv().await {
        let _ = msg
            .reply
            .send(Ok("reloaded /etc/chartd/chartd.yaml".into()));
    }
}

struct Conn {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Conn {
    fn new(s: UnixStream) -> Conn {
        let (rd, wr) = s.into_split();
        Conn {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        timeout(LIMIT, self.rd.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Like [`Conn::ask`], for a server that may refuse the connection (busy) before or while
    /// we write: `None` when no answer line arrives.
    async fn try_ask(&mut self, req: &str) -> Option<Value> {
        let _ = self.wr.write_all(format!("{req}\n").as_bytes()).await;
        let mut line = String::new();
        match timeout(LIMIT, self.rd.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }

    async fn ask(&mut self, req: &str) -> Value {
        self.send(format!("{req}\n").as_bytes()).await;
        self.recv().await
    }

    /// Whether the server closed the connection within the limit: EOF, or a reset when it
    /// closed with our unread bytes still queued (the reply before it was still delivered).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match timeout(LIMIT, self.rd.read_to_end(&mut rest)).await {
            Ok(Ok(0)) => true,
            Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
            _ => false,
        }
    }
}

fn error(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_requests_per_connection() {
    let s = Server::start(control(8, LIMIT)).await;
    let mut c = s.connect().await;
    let st = c.ask(r#"{"cmd":"status"}"#).await;
    assert_eq!(st["ok"], true);
    assert_eq!(st["roots"][0]["usage_percent"], 50.0);
    assert_eq!(st["roots"][0]["path"], "/srv/charts");
    let g = c.ask(r#"{"cmd":"groups","top":3,"sort":"name"}"#).await;
    assert_eq!(g["groups"][0]["name"], "EURUSD_1h");
    let l = c.ask(r#"{"cmd":"list","group":"EURUSD_1h"}"#).await;
    assert_eq!(l["files"][0]["path"], "EURUSD_1h/a.png");
    let m = c.ask(r#"{"cmd":"metrics"}"#).await;
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("chartd_managed_files{root=\"/srv/charts\"} 2\n"));
    // The tests run as the daemon's uid, which is an admin.
    let cl = c.ask(r#"{"cmd":"cleanup","dry_run":true}"#).await;
    assert_eq!(cl["would_remove"], 1);
    assert_eq!(cl["would_free_bytes"], 1024);
    assert_eq!(cl["dry_run"], true);
    let r = c.ask(r#"{"cmd":"reload"}"#).await;
    assert_eq!(
        r,
        json!({"ok": true, "reloaded": true, "message": "reloaded /etc/chartd/chartd.yaml"})
    );
    let e = c.ask(r#"{"cmd":"list","group":"missing"}"#).await;
    assert_eq!(error(&e), "no group \"missing\"");
    // Pipelined: three requests in one write, three answers in order.
    c.send(b"{\"cmd\":\"status\"}\n{\"cmd\":\"nope\"}\n{\"cmd\":\"purge\",\"group\":\"g\"}\n")
        .await;
    assert_eq!(c.recv().await["ok"], true);
    assert!(error(&c.recv().await).starts_with("unknown cmd"));
    assert_eq!(c.recv().await["files_removed"], 2);
    let seen = s.seen.lock().unwrap().len();
    assert_eq!(seen, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_an_error_and_the_connection_survives() {
    let s = Server::start(control(8, LIMIT)).await;
    let mut c = s.connect().await;
    assert!(error(&c.ask("{not json").await).starts_with("invalid JSON"));
    assert_eq!(
        error(&c.ask(r#"{"cmd":"x"}"#).await),
        "unknown cmd \"x\"; valid: status, groups, list, cleanup, purge, reload, metrics"
    );
    assert!(error(&c.ask("").await).starts_with("empty request"));
    assert!(error(&c.ask(r#"{"cmd":"groups","top":"x"}"#).await).contains("\"top\""));
    assert!(error(&c.ask(r#"{"cmd":"list","group":"../etc"}"#).await).contains("group name"));
    assert!(error(&c.ask(r#"{"cmd":"purge","group":".."}"#).await).contains("group name"));
    assert!(error(&c.ask(r#"{"cmd":"purge","all":true}"#).await).contains("confirm"));
    assert_eq!(c.ask(r#"{"cmd":"status"}"#).await["ok"], true);
    assert!(
        s.seen.lock().unwrap().is_empty(),
        "nothing invalid reached the owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_line_is_refused_and_closed() {
    let s = Server::start(control(8, LIMIT)).await;
    let mut c = s.connect().await;
    let mut big = br#"{"cmd":"list","group":""#.to_vec();
    big.resize(200 * 1024, b'a');
    // The server may close while we are still writing; that is the point.
    let _ = c.wr.write_all(&big).await;
    assert!(error(&c.recv().await).contains("longer than 65536 bytes"));
    assert!(c.closed().await);
    // Exactly at the limit is fine (and gets an ordinary answer).
    let mut c = s.connect().await;
    let mut line = br#"{"cmd":"status"}"#.to_vec();
    line.resize(super::protocol::MAX_LINE, b' ');
    line.push(b'\n');
    c.send(&line).await;
    assert_eq!(c.recv().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_line_without_newline_is_answered() {
    let s = Server::start(control(8, LIMIT)).await;
    let mut c = s.connect().await;
    c.send(br#"{"cmd":"status"}"#).await;
    c.wr.shutdown().await.unwrap();
    assert_eq!(c.recv().await["ok"], true);
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_clients() {
    let s = Server::start(control(256, LIMIT)).await;
    let path = s.path.clone();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut c = Conn::new(UnixStream::connect(&path).await.unwrap());
                let a = c.ask(r#"{"cmd":"status"}"#).await;
                let b = c.ask(&format!(r#"{{"cmd":"list","group":"g{i}"}}"#)).await;
                assert_eq!(a["ok"], true);
                assert_eq!(b["files"][0]["path"], format!("g{i}/a.png"));
            })
        })
        .collect();
    for c in clients {
        timeout(LIMIT, c).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_client_times_out_while_others_are_served() {
    let s = Server::start(control(8, Duration::from_millis(400))).await;
    let mut slow = s.connect().await;
    slow.send(br#"{"cmd":"sta"#).await;
    let started = tokio::time::Instant::now();
    // Others are answered while the slow one dawdles, even by trickling bytes.
    for _ in 0..5 {
        let mut c = s.connect().await;
        assert_eq!(c.ask(r#"{"cmd":"status"}"#).await["ok"], true);
        let _ = slow.wr.write_all(b" ").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(error(&slow.recv().await).starts_with("idle timeout"));
    assert!(slow.closed().await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A silent client is closed too.
    let mut idle = s.connect().await;
    assert!(error(&idle.recv().await).starts_with("idle timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_then_busy() {
    let s = Server::start(control(2, LIMIT)).await;
    let mut a = s.connect().await;
    let mut b = s.connect().await;
    // Answered requests prove both are accepted and counted.
    assert_eq!(a.ask(r#"{"cmd":"status"}"#).await["ok"], true);
    assert_eq!(b.ask(r#"{"cmd":"status"}"#).await["ok"], true);
    let mut c = s.connect().await;
    assert!(error(&c.recv().await).starts_with("busy: 2 control connections are open"));
    assert!(c.closed().await);
    drop(a);
    // The slot is released when the server notices the close.
    let mut answered = false;
    for _ in 0..50 {
        let mut d = s.connect().await;
        if d.try_ask(r#"{"cmd":"status"}"#)
            .await
            .is_some_and(|v| v["ok"] == true)
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered);
    assert_eq!(b.ask(r#"{"cmd":"status"}"#).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server() {
    let s = Server::start(control(8, LIMIT)).await;
    let mut c = s.connect().await;
    assert_eq!(c.ask(r#"{"cmd":"status"}"#).await["ok"], true);
    s.stop.send(true).unwrap();
    timeout(LIMIT, s.task).await.unwrap().unwrap();
    assert!(c.closed().await);
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn bind_creates_the_directory_and_a_0660_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/chartd.sock");
    let _l = bind(&path, &control(8, LIMIT)).unwrap();
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(mode(&path), 0o660);
    assert_eq!(mode(path.parent().unwrap()), 0o755);
    // No temporary name is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1);
    std::os::unix::net::UnixStream::connect(&path).unwrap();
}

#[test]
fn stale_socket_is_replaced_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chartd.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // leaves a stale file
    let live = bind(&path, &control(8, LIMIT)).unwrap();
    let e = bind(&path, &control(8, LIMIT)).unwrap_err();
    assert_eq!(
        e,
        format!(
            "another chartd is already listening on {} (stop it, or set socket: to another path)",
            path.display()
        )
    );
    // The refused attempt left the live socket alone.
    std::os::unix::net::UnixStream::connect(&path).unwrap();
    drop(live);
}

#[test]
fn a_path_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chartd.sock");
    std::fs::write(&path, "precious").unwrap();
    let e = bind(&path, &control(8, LIMIT)).unwrap_err();
    assert!(e.contains("exists and is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(bind(&link, &control(8, LIMIT))
        .unwrap_err()
        .contains("not a socket"));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn unknown_socket_group_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = control(8, LIMIT);
    c.group = Some("no-such-group-chartd".into());
    let e = bind(&dir.path().join("s.sock"), &c).unwrap_err();
    assert!(
        e.contains("control.group \"no-such-group-chartd\" does not exist"),
        "{e}"
    );
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn socket_group_is_applied() {
    // The daemon's own primary group always works, as root or not.
    let gid = rustix::process::getegid().as_raw();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let Some(g) = super::accounts::group_by_gid(&groups, gid) else {
        return; // no /etc/group entry for our gid in this environment
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = control(8, LIMIT);
    c.group = Some(g.name);
    let path = dir.path().join("s.sock");
    let _l = bind(&path, &c).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&path).unwrap().gid(), gid);
}

/// The README's Python client, run as `nobody` (a peer that is neither root nor the daemon's
/// user): read-only commands work, admin commands are refused until its uid is listed in
/// `control.admin_uids`, which applies without restarting the server. Needs root, setpriv and
/// /usr/bin/python3; skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_read_but_do_not_delete() {
    let tools = ["/usr/bin/setpriv", "/usr/bin/python3"];
    if !rustix::process::geteuid().is_root() || tools.iter().any(|t| !Path::new(t).exists()) {
        eprintln!("skipped: needs root and {tools:?}");
        return;
    }
    let s = Server::start(control(8, LIMIT)).await;
    // Let `nobody` reach the socket (the daemon would use control.group for this).
    for p in [
        s.path.parent().unwrap().parent().unwrap(),
        s.path.parent().unwrap(),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile()
for cmd in ['{"cmd": "status"}', '{"cmd": "purge", "group": "g"}', '{"cmd": "reload"}']:
    s.sendall(cmd.encode() + b"\n")
    print(f.readline().strip())
"#;
    let run = |path: PathBuf| {
        tokio::task::spawn_blocking(move || {
            let o = std::process::Command::new("/usr/bin/setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "/usr/bin/python3",
                    "-c",
                    script,
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
    };
    let answers = run(s.path.clone()).await.unwrap();
    assert_eq!(answers[0]["roots"][0]["usage_percent"], 50.0);
    let denied = error(&answers[1]);
    assert!(
        denied.starts_with("permission denied: purge is for admins"),
        "{denied}"
    );
    assert!(
        denied.contains("add uid 65534 to control.admin_uids"),
        "{denied}"
    );
    assert!(error(&answers[2]).starts_with("permission denied: reload"));
    assert!(s.seen.lock().unwrap().is_empty());
    // A reload that lists the uid takes effect for the next request.
    s.ctx.control.write().unwrap().admin_uids = vec![65534];
    let answers = run(s.path.clone()).await.unwrap();
    assert_eq!(answers[1]["ok"], true, "{}", answers[1]);
    assert_eq!(answers[2]["reloaded"], true);
}
