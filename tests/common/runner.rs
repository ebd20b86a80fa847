//! Running one chartd: its config text, the command line with a clean environment, spawning it
//! with its log, waiting for it to be ready, sending it requests and stopping it.
//!
//! May touch: the config, log and socket paths it is given, and the processes it spawns (which
//! it signals by PID). Everything here returns `Result` or `Option` instead of panicking:
//! the benchmark reports a failed phase and goes on, and the tests' [`Daemon`](super::Daemon)
//! turns the errors into panics carrying the daemon's log.

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The `chartd` Cargo built for this target. Cargo defines `CARGO_BIN_EXE_<name>` for
/// integration tests and benchmarks alike; in a bench it is the release (bench-profile) binary.
/// The functions below take the binary as a parameter anyway, so that another build (e.g. one
/// from an older commit, for a side-by-side run) can be passed instead.
pub const BIN: &str = env!("CARGO_BIN_EXE_chartd");

/// Variables of the replaced system: cleared so the host cannot leak into tests.
pub const CHART_VARS: &[&str] = &[
    "CHART_OUTPUT_DIR",
    "STORAGE_CHARTS_PATH",
    "CHART_MAX_AGE_HOURS",
    "CHART_MAX_SIZE_MB",
    "CHART_CLEANUP_INTERVAL_MINUTES",
    "CHART_ENABLE_CLEANUP",
    "ENVIRONMENT",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
];

/// The config text for a single root at `root`, with `policy` lines (indented under the root).
/// Lines of `policy` starting with `^` go to the top level instead (e.g. `^cleanup_enabled: false`).
pub fn config_text(root: &Path, socket: &Path, policy: &str) -> String {
    config_text_at(root, socket, "debug", policy)
}

/// [`config_text`] with another log level: the tests log at `debug` (their assertions read the
/// log), the benchmark at `warn` (so that logging is not part of what it measures).
pub fn config_text_at(root: &Path, socket: &Path, log_level: &str, policy: &str) -> String {
    let mut s = format!(
        "socket: {}\nlog: {{ level: {log_level}, format: text }}\n",
        socket.display(),
    );
    for line in policy.lines().filter_map(|l| l.trim().strip_prefix('^')) {
        s.push_str(line.trim());
        s.push('\n');
    }
    s.push_str(&format!("roots:\n  - path: {}\n", root.display()));
    let policy: String = policy
        .lines()
        .filter(|l| !l.trim().starts_with('^'))
        .map(|l| format!("{l}\n"))
        .collect();
    for line in policy.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line.trim());
        s.push('\n');
    }
    s
}

/// Clears [`CHART_VARS`] from `cmd`'s environment.
pub fn scrub_env(cmd: &mut Command) {
    for v in CHART_VARS {
        cmd.env_remove(v);
    }
}

/// `bin run --config config`, with [`CHART_VARS`] cleared.
pub fn run_command(bin: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run").arg("--config").arg(config);
    scrub_env(&mut cmd);
    cmd
}

/// Opens chartd's log file: truncated, or appended to (a restart keeps the earlier log). Apart
/// from [`spawn_logged`] so that a caller timing the start can open it before the clock starts.
pub fn open_log(log: &Path, append: bool) -> Result<fs::File, String> {
    let file = if append {
        fs::OpenOptions::new().append(true).create(true).open(log)
    } else {
        fs::File::create(log)
    };
    file.map_err(|e| format!("{}: {e}", log.display()))
}

/// Spawns `cmd` with stdout discarded and stderr (chartd's log) going to `log`.
pub fn spawn_logged(cmd: &mut Command, log: fs::File) -> Result<Child, String> {
    cmd.stdout(Stdio::null()).stderr(log);
    cmd.spawn().map_err(|e| format!("spawn chartd: {e}"))
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub fn log_tail(log: &Path, n: usize) -> String {
    tail(&fs::read_to_string(log).unwrap_or_default(), n)
}

/// The `$NOTIFY_SOCKET` end of sd_notify(3): chartd sends `READY=1` there once every root is
/// crawled, which is the instant the benchmark times a crawl by (a status poll would add its
/// own period to every figure).
pub struct ReadyNotify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl ReadyNotify {
    /// Binds the datagram socket at `path` (which must not exist).
    pub fn bind(path: &Path) -> Result<ReadyNotify, String> {
        let sock = UnixDatagram::bind(path).map_err(|e| format!("notify socket: {e}"))?;
        // Short, so that the wait notices an exited child or the deadline promptly.
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| format!("notify socket: {e}"))?;
        Ok(ReadyNotify {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// Where the daemon must send (its `NOTIFY_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for `READY=1` from `child`, spawned at `t0`; returns the time from `t0` to it. An
    /// exited child is an error quoting the end of `log`; so is the deadline, after which the
    /// child is killed (a daemon left crawling would load every later measurement).
    pub fn wait_ready(
        &self,
        child: &mut Child,
        t0: Instant,
        timeout: Duration,
        log: &Path,
    ) -> Result<Duration, String> {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]);
                    if msg.lines().any(|l| l == "READY=1") {
                        return Ok(t0.elapsed());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("notify socket: {e}")),
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!(
                    "chartd exited ({st}) before READY=1; log:\n{}",
                    log_tail(log, 30)
                ));
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("chartd not ready after {timeout:?}"));
            }
        }
    }
}

/// One request line to the control socket and its parsed one-line answer, with what failed.
pub fn try_request_at(socket: &Path, line: &str) -> Result<Value, String> {
    let (v, out) = exchange(socket, line, Duration::from_secs(30))?;
    check_typed(line, &v, &out);
    Ok(v)
}

/// Sends one request line and reads one answer line within `timeout` each way: the answer
/// parsed, and as it came.
fn exchange(socket: &Path, line: &str, timeout: Duration) -> Result<(Value, String), String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket: {e}"))?;
    s.write_all(line.as_bytes())
        .and_then(|()| s.write_all(b"\n"))
        .map_err(|e| format!("write: {e}"))?;
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out).map_err(|e| format!("read: {e}"))?;
    let v: Value =
        serde_json::from_str(&out).map_err(|e| format!("answer is not JSON ({e}): {out:?}"))?;
    Ok((v, out))
}

/// Whether answers are checked against the typed replies (see [`check_typed`]). The bench
/// turns it off when it measures an older binary (`--baseline-bin`), whose replies predate
/// today's types.
pub static CHECK_TYPED: AtomicBool = AtomicBool::new(true);

/// Every successful answer must decode into its typed reply (`chartd::control::messages`),
/// the types the daemon serializes and the CLI decodes: the tests read answers by key, and
/// this makes a field renamed or dropped on either side fail every test that asks, not only
/// the ones that read that key. A test that sends deliberately bad requests gets errors, which
/// are not checked here.
fn check_typed(request: &str, answer: &Value, raw: &str) {
    use chartd::control::messages as m;
    if answer.get("ok") != Some(&Value::Bool(true)) || !CHECK_TYPED.load(Ordering::Relaxed) {
        return;
    }
    let Ok(req) = serde_json::from_str::<Value>(request) else {
        return;
    };
    let r = match req.get("cmd").and_then(Value::as_str) {
        Some("status") => m::decode_reply::<m::StatusReply>(raw).map(drop),
        Some("groups") => m::decode_reply::<m::GroupsReply>(raw).map(drop),
        Some("list") => m::decode_reply::<m::ListReply>(raw).map(drop),
        Some("cleanup") | Some("purge") => m::decode_reply::<m::DeletionReply>(raw).map(drop),
        Some("reload") => m::decode_reply::<m::ReloadReply>(raw).map(drop),
        Some("metrics") => m::decode_reply::<m::MetricsReply>(raw).map(drop),
        _ => Ok(()),
    };
    if let Err(e) = r {
        panic!("the answer to {request} does not decode into its typed reply: {e:?}\n{raw}");
    }
}

/// One request with a hard deadline on the answer (`None`: no answer in time), for tests
/// that must tell a daemon that answers slowly from one that does not answer.
pub fn request_within(socket: &Path, line: &str, timeout: Duration) -> Option<Value> {
    exchange(socket, line, timeout).ok().map(|(v, _)| v)
}

/// The last `n` lines of `s` (for log excerpts in failure messages).
pub fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// [`try_request_at`] without the reason.
pub fn request_at(socket: &Path, line: &str) -> Option<Value> {
    try_request_at(socket, line).ok()
}

/// Stops a daemon the way systemd does: SIGTERM, then up to `grace` (polled every 20 ms) for
/// it to exit, then SIGKILL. Returns whether it exited by itself.
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    if let Some(p) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    let t = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if t.elapsed() > grace {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 25 ms until it holds (true) or `timeout` passes (false): the tests wait for
/// what the daemon does asynchronously instead of sleeping a guessed time.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
