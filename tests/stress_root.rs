//! Root trouble: the root missing at start, deleted while running, replaced by a symlink,
//! remounted (read-only, then a fresh filesystem), and the filesystem full. In every case chartd
//! keeps answering, deletes nothing outside the root, and does not spin (its CPU time over a
//! quiet interval is measured from /proc/PID/stat).
//!
//! The mount cases run chartd in a private mount namespace (`unshare --mount`) with a small tmpfs
//! on its root, so nothing is mounted on the host; the test reaches that tmpfs through
//! `/proc/PID/root`, and `nsenter` remounts it. They need root and skip otherwise.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets, and tmpfs mounts inside a private mount namespace (`unshare --mount`), which
//! vanish with it.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const KIB: u64 = 1024;
/// CPU seconds chartd may use over a 3 s quiet interval while blocked (a spinning loop uses 3).
const QUIET_CPU: f64 = 0.15;

fn spawn_at(target: &Path, policy: &str) -> Daemon {
    let (dir, _root) = workspace();
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    // The harness's `root` lives in the temp dir; `target` may be below it or missing.
    let target = dir.path().join(target);
    fs::write(&config, config_text(&target, &socket, policy)).unwrap();
    Daemon::spawn(dir, target, socket, config, &[])
}

fn assert_quiet(d: &Daemon, what: &str) -> f64 {
    let cpu = cpu_over(d.pid(), Duration::from_secs(3));
    eprintln!("{what}: chartd used {cpu:.2} s CPU over 3 s");
    assert!(
        cpu <= QUIET_CPU,
        "{what}: chartd spins ({cpu} s CPU in 3 s)\n{}",
        d.log_text()
    );
    cpu
}

#[test]
fn root_missing_at_start_is_waited_for() {
    root_missing_at_start(false);
}

#[test]
fn root_missing_at_start_is_seen_at_once_when_its_parent_exists() {
    root_missing_at_start(true);
}

fn root_missing_at_start(parent_exists: bool) {
    let d = if parent_exists {
        spawn_at(Path::new("root/charts"), "max_size: 100KiB\ngrace: 0s")
    } else {
        spawn_at(Path::new("late/charts"), "max_size: 100KiB\ngrace: 0s")
    };
    let st = d.status_root();
    assert_eq!(st["degraded"], true, "{st}");
    assert!(
        st["degraded_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{st}"
    );
    assert_quiet(&d, "root missing at start");
    // It appears, over its limit: indexed and enforced without a restart. By the time it
    // appears the retry backoff is at 4 s; with the parent watched, the creation is an event.
    if parent_exists {
        // Past the retry at 3.5 s: the next one is at 7.5 s.
        std::thread::sleep(Duration::from_millis(700));
    }
    let t0 = std::time::Instant::now();
    fs::create_dir_all(&d.root).unwrap();
    if parent_exists {
        assert!(
            wait_until(Duration::from_millis(1500), || d.status_root()["degraded"]
                == false),
            "creation not seen at once: {}",
            d.log_text()
        );
        eprintln!("root created: indexed after {:?}", t0.elapsed());
    }
    for i in 0..10 {
        file(&d.root.join(format!("g/c{i}.png")), 20 * KIB, hours(10 - i));
    }
    assert!(
        wait_until(Duration::from_secs(40), || d.status_root()["degraded"]
            == false
            && walk_png(&d.root).1 <= 100 * KIB),
        "{}\n{}",
        d.status_root(),
        d.log_text()
    );
    d.converge(Duration::from_secs(5)).unwrap();
    assert!(d.root.join("g/c9.png").exists(), "the newest file stays");
}

#[test]
fn root_deleted_while_running_then_recreated() {
    let d = Daemon::start("max_size: 100KiB\ngrace: 0s", |root| {
        for i in 0..4 {
            file(&root.join(format!("g/c{i}.png")), 10 * KIB, hours(5));
        }
    });
    assert_eq!(d.status_root()["total_files"], 4);
    fs::remove_dir_all(&d.root).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["degraded"]
            == true),
        "{}\n{}",
        d.status_root(),
        d.log_text()
    );
    assert_eq!(
        d.status_root()["total_files"],
        0,
        "the old index is dropped"
    );
    assert_quiet(&d, "root deleted");
    for i in 0..10 {
        file(&d.root.join(format!("h/c{i}.png")), 20 * KIB, hours(10 - i));
    }
    assert!(
        wait_until(Duration::from_secs(40), || d.status_root()["degraded"]
            == false),
        "{}",
        d.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || walk_png(&d.root).1 <= 100 * KIB));
    d.converge(Duration::from_secs(5)).unwrap();
}

#[test]
fn root_replaced_by_a_symlink_is_refused_not_followed() {
    let d = Daemon::start("max_age: 1h\nmax_size: 10KiB\ngrace: 0s", |root| {
        file(&root.join("g/fresh.png"), KIB, Duration::ZERO);
    });
    let outside = d.dir.path().join("outside");
    let mut canaries = Vec::new();
    for i in 0..20 {
        canaries.push(Canary::plant(
            &outside.join(format!("g/victim{i}.png")),
            hours(48),
        ));
    }
    let moved = d.dir.path().join("root.old");
    fs::rename(&d.root, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &d.root).unwrap();
    // The root watch saw the move; give the retries (0.5 s, 1 s, 2 s, ...) time to look.
    std::thread::sleep(Duration::from_secs(4));
    d.request(r#"{"cmd":"cleanup"}"#);
    std::thread::sleep(Duration::from_millis(500));
    check_canaries(&canaries);
    let st = d.status_root();
    assert_eq!(st["degraded"], true, "a symlinked root is refused: {st}");
    assert_eq!(st["files_removed"], 0, "{st}");
    assert_quiet(&d, "root replaced by a symlink");
    // The real directory back in place: served again.
    fs::remove_file(&d.root).unwrap();
    fs::rename(&moved, &d.root).unwrap();
    assert!(
        wait_until(Duration::from_secs(40), || d.status_root()["degraded"]
            == false),
        "{}",
        d.log_text()
    );
    d.converge(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    check_canaries(&canaries);
}

/// chartd in its own mount namespace with a tmpfs of `size` on its root; `setup` fills the
/// tmpfs before chartd starts (`$R` is the root in the script).
fn on_tmpfs(size: &str, policy: &str, setup: &str) -> (Daemon, PathBuf) {
    let (dir, root) = workspace();
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(&config, config_text(&root, &socket, policy)).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "set -e; mount -t tmpfs -o size={size} chartd-test \"$R\"; {setup}; exec \"$0\" run --config \"$1\""
        ))
        .arg(BIN)
        .arg(&config)
        .env("R", &root);
    let d = Daemon::spawn_cmd(dir, root.clone(), socket, config, &[], cmd);
    // The tmpfs as the test sees it: through chartd's own mount namespace.
    let seen = PathBuf::from(format!("/proc/{}/root{}", d.pid(), root.display()));
    (d, seen)
}

fn nsenter(d: &Daemon, script: &str) {
    let st = Command::new("nsenter")
        .args(["-m", "-t", &d.pid().to_string(), "sh", "-c", script])
        .env("R", &d.root)
        .status()
        .unwrap();
    assert!(st.success(), "nsenter {script}");
}

#[test]
fn remounted_read_only_then_replaced_by_a_fresh_filesystem() {
    if !have_unshare() {
        eprintln!("SKIP remounted_read_only_then_replaced_by_a_fresh_filesystem: needs root and unshare --mount");
        return;
    }
    let (d, seen) = on_tmpfs("16m", "max_size: 100KiB\ngrace: 2s", "mkdir \"$R/g\"");
    // Over the limit, but still in grace; the filesystem goes read-only before grace ends.
    for i in 0..10 {
        write_file(&seen.join(format!("g/c{i}.png")), 20 * KIB as usize);
    }
    nsenter(&d, "mount -o remount,ro \"$R\"");
    std::thread::sleep(Duration::from_secs(3));
    let st = d.status_root();
    assert!(st["errors"].as_u64().unwrap() >= 1, "EROFS counted: {st}");
    assert_eq!(walk_png(&seen).0, 10);
    assert_quiet(&d, "read-only root over its limit");
    assert!(
        d.log_text().contains("read-only"),
        "the hint names the cause"
    );
    nsenter(&d, "mount -o remount,rw \"$R\"");
    // Held files are retried with a backoff (1 s, 2 s, ...), or at once by `cleanup`.
    d.request(r#"{"cmd":"cleanup"}"#);
    assert!(
        wait_until(Duration::from_secs(20), || walk_png(&seen).1 <= 100 * KIB),
        "{}",
        d.log_text()
    );
    // A fresh filesystem over the old one: the old index goes, the new tree is indexed.
    nsenter(
        &d,
        "umount -l \"$R\"; mount -t tmpfs -o size=16m chartd-test2 \"$R\"; mkdir \"$R/new\"",
    );
    for i in 0..3 {
        write_file(&seen.join(format!("new/n{i}.png")), KIB as usize);
    }
    // Without events from the new mount, the periodic resync is the safety net; `cleanup`
    // resyncs at once.
    d.request(r#"{"cmd":"cleanup"}"#);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let st = d.status_root();
            st["total_files"] == 3 && st["total_bytes"] == 3 * KIB
        }),
        "{}\n{}",
        d.status_root(),
        d.log_text()
    );
}

#[test]
fn filesystem_full_chartd_frees_space_and_keeps_running() {
    if !have_unshare() {
        eprintln!("SKIP filesystem_full_chartd_frees_space_and_keeps_running: needs root and unshare --mount");
        return;
    }
    let (d, seen) = on_tmpfs("8m", "min_free: 25%\ngrace: 0s", "mkdir \"$R/g\"");
    // Twice the filesystem's size in charts: writes that hit ENOSPC are retried.
    let mut enospc = 0;
    for i in 0..64 {
        let p = seen.join(format!("g/c{i:02}.png"));
        let mut ok = false;
        for _ in 0..100 {
            match fs::write(&p, vec![1u8; 256 * KIB as usize]) {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(28) => {
                    enospc += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(ok, "chartd never freed space for c{i}");
    }
    let floor = 8 * 1024 * KIB / 4;
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["fs_free_bytes"]
            .as_u64()
            .unwrap_or(0)
            >= floor),
        "{}",
        d.status_root()
    );
    eprintln!("filesystem full: 64 x 256 KiB written to an 8 MiB tmpfs, {enospc} ENOSPC retries");
    assert!(seen.join("g/c63.png").exists(), "the newest chart stays");
    // Now fill it with files chartd may not delete: it frees what it may, then waits quietly.
    let mut n = 0;
    while fs::write(
        seen.join(format!("g/fill{n}.tmp")),
        vec![2u8; 64 * KIB as usize],
    )
    .is_ok()
    {
        n += 1;
        assert!(n < 1000);
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = d.status_root();
    assert_eq!(st["ready"], true);
    assert_quiet(&d, "filesystem full of unmanaged files");
    for i in 0..n {
        assert!(
            seen.join(format!("g/fill{i}.tmp")).exists(),
            "unmanaged file deleted"
        );
    }
}
