//! The daemon's life: systemd notifications, signals, reloads, bad configs.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const KIB: u64 = 1024;

#[test]
fn notifies_systemd_ready_status_watchdog_and_stopping() {
    let (dir, root) = workspace();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    file(&root.join("g/a.png"), KIB, hours(1));
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(&config, config_text(&root, &socket, "max_size: 10MiB")).unwrap();
    let notify = notify_path.to_str().unwrap().to_owned();
    let mut d = Daemon::spawn(
        dir,
        root,
        socket,
        config,
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "200000")],
    );
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !(got.contains("READY=1") && got.contains("WATCHDOG=1") && got.contains("STATUS=")) {
        let n = sock.recv(&mut buf).expect("no notification from chartd");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        got.push('\n');
    }
    assert!(got.contains("STATUS=1 files"), "{got}");
    d.signal(15);
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start("max_age: 1h", |_| {});
    assert!(d.socket.exists());
    d.signal(15);
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        d.log_text()
    );
    assert!(!d.socket.exists());
    assert!(d.log_text().contains("stopped"));
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let d = Daemon::start("max_size: 10MiB\ngrace: 0s", |root| {
        for i in 0..8 {
            file(&root.join(format!("g/c{i}.png")), 256 * KIB, hours(8 - i));
        }
    });
    assert_eq!(d.status_root()["total_files"], 8);
    d.rewrite_config("max_size: 1MiB\ngrace: 0s");
    d.signal(1);
    // 2 MiB > 1 MiB: down to 0.9 MiB = three 256 KiB files.
    assert!(
        wait_until(Duration::from_secs(5), || walk_png(&d.root).0 == 3),
        "{}",
        d.log_text()
    );
    fs::write(&d.config, "roots:\n  - path: /tmp\n    max_size: lots\n").unwrap();
    d.signal(1);
    assert!(wait_until(Duration::from_secs(5), || d
        .log_text()
        .contains("config not reloaded")));
    assert!(d.log_text().contains("max_size"), "the error names the key");
    // Still running with the old config.
    let st = d.status_root();
    assert_eq!(st["max_size_mb"], 1.0);
    assert_eq!(st["path"], d.root.to_str().unwrap());
}

#[test]
fn a_bad_config_exits_1_and_names_the_key_and_line() {
    let (dir, root) = workspace();
    let config = dir.path().join("c.yaml");
    fs::write(
        &config,
        format!("roots:\n  - path: {}\n    max_age: soon\n", root.display()),
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("roots[0].max_age") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn a_second_chartd_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start("max_age: 1h", |_| {});
    let o = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already"), "{err}");
    // The first one still answers.
    assert_eq!(d.status_root()["ready"], true);
}

#[test]
fn a_missing_root_is_created_when_configured() {
    let (dir, root) = workspace();
    let target = root.join("nested/charts");
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    let text = config_text(&target, &socket, "create: true\nmax_age: 1h");
    fs::write(&config, text).unwrap();
    let d = Daemon::spawn(dir, target.clone(), socket, config, &[]);
    assert!(target.is_dir());
    assert_eq!(d.status_root()["degraded"], false);
}

#[test]
fn the_crawl_indexes_everything_under_a_low_open_files_limit() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIP the_crawl_indexes_everything_under_a_low_open_files_limit: no prlimit");
        return;
    }
    let (dir, root) = workspace();
    for g in 0..3000 {
        file(&root.join(format!("S{g:04}_1d/a.png")), 10, hours(1));
    }
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(&config, config_text(&root, &socket, "max_size: 10GiB")).unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=128:128", BIN, "run", "--config"])
        .arg(&config);
    let d = Daemon::spawn_cmd(dir, root, socket, config, &[], cmd);
    let st = d.status_root();
    assert_eq!(st["total_files"], 3000, "{st}");
    assert_eq!(st["watches"], 3001);
}

/// The crawl pins the owner and notify's thread to one CPU while it adds watches
/// (src/affinity.rs). Afterwards every thread must have the daemon's CPUs back, or chartd would
/// run pinned for good.
#[test]
fn after_the_crawl_every_thread_has_its_cpus_back() {
    let allowed = |status: &Path| {
        fs::read_to_string(status)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let own = allowed(Path::new("/proc/self/status"));
    if !own.contains([',', '-']) {
        eprintln!("SKIP after_the_crawl_every_thread_has_its_cpus_back: one CPU ({own})");
        return;
    }
    let d = Daemon::start("max_size: 10GiB", |root| {
        for g in 0..500 {
            file(&root.join(format!("S{g:04}_1d/a.png")), 10, hours(1));
        }
    });
    assert_eq!(d.status_root()["total_files"], 500);
    let mut took_part = 0;
    for t in fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap() {
        let t = t.unwrap().path();
        let comm = fs::read_to_string(t.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        assert_eq!(
            allowed(&t.join("status")),
            own,
            "thread {comm} is still pinned"
        );
        took_part += usize::from(comm == "chartd-index" || comm == "notify-rs inoti");
    }
    assert_eq!(took_part, 2, "the owner and notify's thread were not found");
}
