//! inotify watch exhaustion: chartd stays up, says `degraded` with the fix, keeps enforcing
//! limits in the unwatched directories by rescanning them, and recovers full watching when the
//! limit is raised. The limit is lowered only inside a private user namespace
//! (`/proc/sys/user/max_inotify_watches` is per namespace), so nothing else on the machine is
//! affected. Needs root and `unshare`; skips otherwise.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets, and the inotify watch limit inside a private user namespace only.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

fn have_userns() -> bool {
    is_root()
        && Command::new("unshare")
            .args(["--user", "--map-root-user", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn watch_exhaustion_degrades_keeps_limits_and_recovers() {
    if !have_userns() {
        eprintln!("SKIP watch_exhaustion_degrades_keeps_limits_and_recovers: needs root and unshare --user");
        return;
    }
    let (dir, root) = workspace();
    for g in 0..20 {
        file(&root.join(format!("G{g:02}/seed.png")), 1024, hours(1));
    }
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &socket,
            "^resync_interval: 2s\nmax_size: 100KiB\ngrace: 0s",
        ),
    )
    .unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 5 > /proc/sys/user/max_inotify_watches && exec \"$0\" run --config \"$1\"")
        .arg(BIN)
        .arg(&config);
    let d = Daemon::spawn_cmd(dir, root, socket, config, &[], cmd);
    let st = d.status_root();
    assert_eq!(st["degraded"], true, "{st}");
    assert_eq!(st["watches"], 5, "{st}");
    let why = st["degraded_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("max_user_watches"),
        "the reason names the fix: {why}"
    );
    assert!(d.log_text().contains("fs.inotify.max_user_watches"));
    // Over the limit in every group, watched or not: the rescans must catch the unwatched ones.
    for g in 0..20 {
        write_file(&d.root.join(format!("G{g:02}/big.png")), 20 * 1024);
    }
    assert!(
        wait_until(Duration::from_secs(15), || walk_png(&d.root).1
            <= 100 * 1024),
        "limit not enforced in unwatched directories: disk {:?}, status {}",
        walk_png(&d.root),
        d.status_root()
    );
    assert_eq!(d.status_root()["ready"], true, "still serving");
    // Raise the limit inside chartd's namespace, then reload: full watching comes back.
    let pid = d.pid().to_string();
    let ok = Command::new("nsenter")
        .args([
            "-U",
            "-t",
            &pid,
            "sh",
            "-c",
            "echo 100000 > /proc/sys/user/max_inotify_watches",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    d.signal(1);
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["degraded"]
            == false),
        "{}",
        d.status_root()
    );
    let dirs = fs::read_dir(&d.root).unwrap().count() as u64 + 1;
    assert_eq!(d.status_root()["watches"], dirs);
}
