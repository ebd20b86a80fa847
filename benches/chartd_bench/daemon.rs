//! The benchmark's chartd: one daemon per measurement, of the binary asked for (this build or
//! a baseline build), started through the shared dev harness (`tests/common/runner.rs`: config
//! text, clean environment, `READY=1`, requests, SIGTERM), with what the benchmark adds: a run
//! directory under the bench dir, the time from spawn to `READY=1`, and registration for the
//! signal cleanup.
//!
//! May touch: its run directory (`$CHARTD_BENCH_DIR/run/<pid>-<seq>`: config, sockets, log,
//! removed at stop) and the daemon it started (by PID).

use crate::common::{
    config_text_at, log_tail, open_log, proc_status_kib, run_command, spawn_logged, terminate,
    try_request_at, ReadyNotify,
};
use crate::system::{forget_child, register_child};
use crate::util::{err, Res};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub pid: i32,
    pub run: PathBuf,
    pub socket: PathBuf,
    /// Spawn → READY=1.
    pub ready_after: Duration,
}

static RUN_SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct DaemonCfg<'a> {
    /// The chartd binary: this build, or a baseline build of another commit.
    pub bin: &'a Path,
    pub root: &'a Path,
    pub cleanup: bool,
    /// Extra lines under the root.
    pub root_lines: &'a str,
}

impl Daemon {
    /// Starts chartd on `c` and waits (up to `timeout`) for `READY=1`, which chartd sends once
    /// the crawl is done: `ready_after` is the crawl figure.
    pub fn start(base: &Path, c: &DaemonCfg, timeout: Duration) -> Res<Daemon> {
        let seq = RUN_SEQ.fetch_add(1, Ordering::Relaxed);
        let run = base
            .join("run")
            .join(format!("{}-{seq}", std::process::id()));
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).map_err(err("run dir"))?;
        let socket = run.join("chartd.sock");
        let notify = ReadyNotify::bind(&run.join("notify.sock"))?;
        // Logging at warn: what is measured is the daemon, not its debug log. No periodic
        // resync inside a measurement window.
        let policy = format!(
            "^cleanup_enabled: {}\n^resync_interval: 24h\n{}",
            c.cleanup, c.root_lines
        );
        let cfg_path = run.join("chartd.yaml");
        fs::write(&cfg_path, config_text_at(c.root, &socket, "warn", &policy))
            .map_err(err("config"))?;
        let log_path = run.join("chartd.log");
        let log = open_log(&log_path, false)?;
        let mut cmd = run_command(c.bin, &cfg_path);
        cmd.env_remove("RUST_LOG")
            .env("NOTIFY_SOCKET", notify.path())
            .stdin(Stdio::null());
        let t0 = Instant::now();
        let mut child = spawn_logged(&mut cmd, log)?;
        let pid = child.id() as i32;
        register_child(pid);
        match notify.wait_ready(&mut child, t0, timeout, &log_path) {
            Ok(ready_after) => Ok(Daemon {
                child,
                pid,
                run,
                socket,
                ready_after,
            }),
            Err(e) => {
                // Exited or killed by `wait_ready`: its PID may be reused, so forget it.
                forget_child(pid);
                Err(e)
            }
        }
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.run.join("chartd.log"), 30)
    }

    /// The first root's status object.
    pub fn status(&self) -> Res<Value> {
        let v = try_request_at(&self.socket, r#"{"cmd":"status"}"#)?;
        Ok(v["roots"][0].clone())
    }

    pub fn rss_kb(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// SIGTERM, up to 60 s to exit (a 1M-file index takes a moment to free), then SIGKILL.
    pub fn stop(mut self) -> Res<()> {
        terminate(&mut self.child, Duration::from_secs(60));
        forget_child(self.pid);
        let _ = fs::remove_dir_all(&self.run);
        Ok(())
    }
}

/// Waits until the daemon's status satisfies `f`, polling every 100 ms: slow enough that the
/// polling is not part of the load being measured (the tests' `wait_until` polls at 25 ms).
pub fn wait_status(d: &Daemon, timeout: Duration, mut f: impl FnMut(&Value) -> bool) -> Res<Value> {
    let t = Instant::now();
    loop {
        let s = d.status()?;
        if f(&s) {
            return Ok(s);
        }
        if t.elapsed() > timeout {
            return Err(format!("timed out waiting for chartd; last status: {s}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// How long a crawl of `n` files may take before the run gives up on it.
pub fn crawl_timeout(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64 / 1000)
}
