//! Helpers of the trust regression tests (`tests/trust.rs`, `tests/trust_late.rs`): the
//! kernel's view of chartd's watches, chartd's deletion log lines, charts with a token, ages,
//! the stale check, configs with several roots, and chartd started as uid 65534.
//!
//! May touch: files under the temp dirs the tests hand it (and their owner: `chown -R` to
//! 65534), `/proc/PID/fdinfo` (read), the chartd processes it starts (as 65534, by setpriv).

#![allow(dead_code)]

use crate::common::{chown_to_nobody, config_text, Daemon};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const KIB: u64 = 1024;
pub const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

// ------------------------------------------------------------------------------- helpers

/// The number of watches the kernel lists for the process's inotify fd.
pub fn kernel_watches(pid: i32) -> usize {
    crate::common::inotify_watches(pid).1.len()
}

/// Lines `deleted PATH (` of the log.
pub fn deletions(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let i = l.find(" deleted ")?;
            let rest = &l[i + 9..];
            let end = rest.find(" (")?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// A chart with a unique token as its content.
pub fn chart(path: &Path, token: &str, size: usize) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let mut c = token.as_bytes().to_vec();
    c.resize(size.max(c.len()), b'.');
    fs::write(path, c).unwrap();
}

pub fn set_age(path: &Path, age: Duration) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

pub fn stale_check(st: &Value) -> Result<(), String> {
    if st.get("stale") == Some(&Value::Bool(true)) {
        return Err(format!("status says stale: true: {st}"));
    }
    Ok(())
}

/// A config of several roots, each with its own policy lines; `top` lines at the top level.
pub fn multi_config(socket: &Path, top: &str, roots: &[(&Path, &str)]) -> String {
    let mut s = format!(
        "socket: {}\nlog: {{ level: debug, format: text }}\n{top}roots:\n",
        socket.display()
    );
    for (p, pol) in roots {
        s.push_str(&format!("  - path: {}\n", p.display()));
        for l in pol.lines().filter(|l| !l.trim().is_empty()) {
            s.push_str(&format!("    {}\n", l.trim()));
        }
    }
    s
}

/// chartd run as uid/gid 65534 (`setpriv`; needs root) on `root` with `policy`: its config and
/// socket go in `dir`, which is handed to 65534 first (`chown -R`, with what the test made in
/// it so far).
pub fn start_as_nobody(dir: tempfile::TempDir, root: PathBuf, policy: &str) -> Daemon {
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(&config, config_text(&root, &socket, policy)).unwrap();
    chown_to_nobody(dir.path());
    Daemon::spawn_as_nobody(dir, root, socket, config)
}

// ------------------------------------------------------------------------------- item 1
