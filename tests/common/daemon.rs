//! The tests' daemon: chartd on a fresh temporary root with its own socket, config and log,
//! ready when `status` says every root is; killed (by PID) when the test drops it.
//!
//! May touch: its temporary directory (root, config, socket, log) and its own child process.
//! Failures panic with chartd's log, which is what a failing test should show.

use super::files::disk_png;
use super::runner::{
    config_text, open_log, request_at, run_command, scrub_env, spawn_logged, wait_until, BIN,
};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// A temp dir holding `root/` (the governed tree), the config, the socket and the log.
pub fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("chartd-test")
        .tempdir()
        .unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    (dir, root)
}

impl Daemon {
    /// Starts chartd on a fresh root, prepared by `setup` before the daemon starts.
    pub fn start(policy: &str, setup: impl FnOnce(&Path)) -> Daemon {
        Self::start_with(policy, &[], setup)
    }

    pub fn start_with(policy: &str, env: &[(&str, &str)], setup: impl FnOnce(&Path)) -> Daemon {
        let (dir, root) = workspace();
        setup(&root);
        let socket = dir.path().join("chartd.sock");
        let config = dir.path().join("chartd.yaml");
        fs::write(&config, config_text(&root, &socket, policy)).unwrap();
        Self::spawn(dir, root, socket, config, env)
    }

    pub fn spawn(
        dir: tempfile::TempDir,
        root: PathBuf,
        socket: PathBuf,
        config: PathBuf,
        env: &[(&str, &str)],
    ) -> Daemon {
        let cmd = run_command(Path::new(BIN), &config);
        Self::spawn_cmd(dir, root, socket, config, env, cmd)
    }

    /// Like `spawn`, with a caller-built command (e.g. chartd wrapped in `unshare`).
    pub fn spawn_cmd(
        dir: tempfile::TempDir,
        root: PathBuf,
        socket: PathBuf,
        config: PathBuf,
        env: &[(&str, &str)],
        mut cmd: Command,
    ) -> Daemon {
        let log = dir.path().join("chartd.log");
        scrub_env(&mut cmd);
        cmd.envs(env.iter().copied());
        let child = spawn_logged(&mut cmd, open_log(&log, false).unwrap()).unwrap();
        let d = Daemon {
            child,
            dir,
            root,
            socket,
            config,
            log,
        };
        d.wait_ready();
        d
    }

    /// Like `spawn`, with chartd run as uid/gid 65534 and no supplementary groups (`setpriv`;
    /// needs root). Its directory must be theirs: see [`chown_to_nobody`](super::chown_to_nobody).
    pub fn spawn_as_nobody(
        dir: tempfile::TempDir,
        root: PathBuf,
        socket: PathBuf,
        config: PathBuf,
    ) -> Daemon {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "run",
            "--config",
        ])
        .arg(&config);
        Self::spawn_cmd(dir, root, socket, config, &[], cmd)
    }

    fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.try_request(r#"{"cmd":"status"}"#).is_some_and(|v| {
                v["roots"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && r.iter().all(|x| x["ready"] == true))
            })
        });
        assert!(ok, "chartd did not become ready; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_request(&self, line: &str) -> Option<Value> {
        request_at(&self.socket, line)
    }

    pub fn request(&self, line: &str) -> Value {
        match self.try_request(line) {
            Some(v) => v,
            None => panic!("no answer to {line}; log:\n{}", self.log_text()),
        }
    }

    pub fn status_root(&self) -> Value {
        self.request(r#"{"cmd":"status"}"#)["roots"][0].clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A positive control: an expired chart (`rel` under the root, 5 hours old) is deleted
    /// within 5 s, so chartd is alive and enforcing. `what` says what it proves if it fails.
    pub fn expect_expired_deleted(&self, rel: &str, what: impl std::fmt::Display) {
        let p = self.root.join(rel);
        super::files::file(&p, 100, super::files::hours(5));
        assert!(wait_until(Duration::from_secs(5), || !p.exists()), "{what}");
    }

    /// For tests that need chartd to watch its directories: fails with the cause when the
    /// machine's inotify watches (`fs.inotify.max_user_watches`, per user, shared with every
    /// other process of that user) are used up by someone else, rather than with a puzzling
    /// later assertion.
    pub fn assert_watching(&self) {
        let st = self.status_root();
        let why = st["degraded_reason"].as_str().unwrap_or_default();
        assert!(
            !why.contains("watch limit"),
            "chartd cannot watch its directories: the user's inotify watches are exhausted \
             (fs.inotify.max_user_watches = {}, in use by other processes); this test needs a \
             few. status: {st}",
            fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .unwrap_or_default()
                .trim()
        );
    }

    pub fn signal(&self, sig: i32) {
        // kill(2) through the `kill` command on our own child's PID.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Rewrites the config (same socket and root), atomically (a reload never reads half a file).
    pub fn rewrite_config(&self, policy: &str) {
        let tmp = self.config.with_extension("yaml.new");
        fs::write(&tmp, config_text(&self.root, &self.socket, policy)).unwrap();
        fs::rename(&tmp, &self.config).unwrap();
    }

    /// The index as `groups` + `list` report it: relative path → size (files in groups only).
    pub fn index_png(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        let g = self.request(r#"{"cmd":"groups","sort":"name"}"#);
        for grp in g["groups"].as_array().cloned().unwrap_or_default() {
            let name = grp["name"].as_str().unwrap_or_default().to_string();
            let req = serde_json::json!({"cmd": "list", "group": name}).to_string();
            let l = self.request(&req);
            for f in l["files"].as_array().cloned().unwrap_or_default() {
                let p = f["path"].as_str().unwrap_or_default();
                let rel = Path::new(p)
                    .strip_prefix(&self.root)
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| p.to_string());
                out.insert(rel, f["bytes"].as_u64().unwrap_or(0));
            }
        }
        out
    }

    /// Waits until the index (list, and status totals) equals a walk of the disk; on failure
    /// returns the differences.
    pub fn converge(&self, timeout: Duration) -> Result<usize, String> {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            let disk = disk_png(&self.root);
            let idx = self.index_png();
            let st = self.status_root();
            let bytes: u64 = disk.values().sum();
            if disk == idx && st["total_files"] == disk.len() as u64 && st["total_bytes"] == bytes {
                return true;
            }
            let only_disk: Vec<_> = disk
                .keys()
                .filter(|k| !idx.contains_key(*k))
                .take(5)
                .collect();
            let only_idx: Vec<_> = idx
                .keys()
                .filter(|k| !disk.contains_key(*k))
                .take(5)
                .collect();
            last = format!(
                "disk {} files {bytes} B, index {} files, status {}/{}; only on disk {only_disk:?}, only in index {only_idx:?}",
                disk.len(),
                idx.len(),
                st["total_files"],
                st["total_bytes"]
            );
            false
        });
        if ok {
            Ok(disk_png(&self.root).len())
        } else {
            Err(last)
        }
    }

    /// Starts the same config again (after a crash or stop), waiting until it is ready.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut cmd = run_command(Path::new(BIN), &self.config);
        self.child = spawn_logged(&mut cmd, open_log(&self.log, true).unwrap()).unwrap();
        self.wait_ready();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
