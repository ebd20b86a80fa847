//! Test harness: starts the real `chartd` binary on a temporary root with its own socket, talks
//! to it over the real control socket, and stops it (by PID) when the test ends.

#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const BIN: &str = env!("CARGO_BIN_EXE_chartd");

/// Variables of the replaced system: cleared so the host cannot leak into tests.
pub const CHART_VARS: &[&str] = &[
    "CHART_OUTPUT_DIR",
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

/// The config text for a single root at `root`, with `policy` lines (indented under the root).
/// Lines of `policy` starting with `^` go to the top level instead (e.g. `^cleanup_enabled: false`).
pub fn config_text(root: &Path, socket: &Path, policy: &str) -> String {
    let mut s = format!(
        "socket: {}\nlog: {{ level: debug, format: text }}\n",
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
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg("--config").arg(&config);
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
        for v in CHART_VARS {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
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

    fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.try_request(r#"{"cmd":"status"}"#).is_some_and(|v| {
                v["roots"]
                    .as_array()
                    .is_some_and(|r| r.iter().all(|x| x["ready"] == true))
                    && !v["roots"].as_array().unwrap().is_empty()
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

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: kill(2) through the `kill` command on our own child's PID.
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
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn request_at(socket: &Path, line: &str) -> Option<Value> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(line.as_bytes()).ok()?;
    s.write_all(b"\n").ok()?;
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out).ok()?;
    serde_json::from_str(&out).ok()
}

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

/// Creates a file of `size` bytes (sparse) with its mtime `age` in the past.
pub fn file(path: &Path, size: u64, age: Duration) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

/// Writes a file the way an application does (write, close), with real data.
pub fn write_file(path: &Path, size: usize) {
    // chartd may prune the directory (emptied by eviction) between the mkdir and the write,
    // as it may for any application: retry as one would.
    for _ in 0..5 {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        match fs::write(path, vec![7u8; size]) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => return r.unwrap(),
        }
    }
    panic!("cannot write {}", path.display());
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// Managed files under `root` by a plain walk: (count, bytes) of files matching `*.png`.
pub fn walk_png(root: &Path) -> (u64, u64) {
    let files = disk_png(root);
    (files.len() as u64, files.values().sum())
}

pub fn is_root() -> bool {
    rustix_uid() == 0
}

fn rustix_uid() -> u32 {
    // `id -u` keeps this harness free of extra dependencies.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

// ---- Stress helpers (tests/stress_*.rs) ----

/// `CHARTD_STRESS=full` selects the long versions of the stress tests; anything else (CI)
/// the short ones.
pub fn full() -> bool {
    std::env::var("CHARTD_STRESS").is_ok_and(|v| v == "full")
}

/// `short` in CI, `long` with `CHARTD_STRESS=full`.
pub fn scale(short: usize, long: usize) -> usize {
    if full() {
        long
    } else {
        short
    }
}

/// utime + stime of a process, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields count from after the last ')'.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state is field 3, so utime (14) and stime (15) are at indices 11 and 12.
    get(11) + get(12)
}

/// CPU seconds the process used over `quiet`.
pub fn cpu_over(pid: i32, quiet: Duration) -> f64 {
    let a = cpu_ticks(pid);
    std::thread::sleep(quiet);
    (cpu_ticks(pid) - a) as f64 / 100.0
}

/// A `/proc/PID/status` field in KiB (e.g. `VmRSS`).
pub fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A file that must survive: checked by content and inode.
pub struct Canary {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub ino: u64,
}

impl Canary {
    /// Creates the canary (an old file, so any age or size rule would pick it first).
    pub fn plant(path: &Path, age: Duration) -> Canary {
        use std::os::unix::fs::MetadataExt;
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        let content = format!("canary {}\n", path.display()).into_bytes();
        fs::write(path, &content).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        let ino = fs::metadata(path).unwrap().ino();
        Canary {
            path: path.to_path_buf(),
            content,
            ino,
        }
    }

    /// `Err` with what is wrong, if the canary was deleted, replaced or changed.
    pub fn check(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        if m.ino() != self.ino || !m.is_file() {
            return Err(format!(
                "{}: replaced (inode {} != {})",
                self.path.display(),
                m.ino(),
                self.ino
            ));
        }
        let c = fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if c != self.content {
            return Err(format!("{}: content changed", self.path.display()));
        }
        Ok(())
    }
}

/// Asserts every canary is intact; returns how many were checked.
pub fn check_canaries(c: &[Canary]) -> usize {
    let bad: Vec<String> = c.iter().filter_map(|c| c.check().err()).collect();
    assert!(
        bad.is_empty(),
        "{} canaries lost: {:?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
    c.len()
}

/// Restores a sysctl (a `/proc/sys` file) when dropped, even if the test fails.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    pub fn set(path: &str, value: &str) -> Sysctl {
        let old = fs::read_to_string(path).unwrap().trim().to_string();
        fs::write(path, value).unwrap();
        Sysctl {
            path: path.into(),
            old,
        }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, &self.old);
    }
}

/// Managed (`*.png`) files on disk under `root`: relative path → size.
pub fn disk_png(root: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.path().extension().is_some_and(|x| x == "png") {
                if let Ok(m) = e.metadata() {
                    let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, m.len());
                }
            }
        }
    }
    out
}

impl Daemon {
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
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg("--config").arg(&self.config);
        for v in CHART_VARS {
            cmd.env_remove(v);
        }
        let log = fs::OpenOptions::new().append(true).open(&self.log).unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = cmd.spawn().unwrap();
        self.wait_ready();
    }
}

/// Whether private user and mount namespaces work here (root and `unshare`).
pub fn have_unshare() -> bool {
    is_root()
        && Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success())
}
