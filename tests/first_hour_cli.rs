//! Issue #14, "The first hour with chartd", item by item against the real binary, the
//! client's side: dry-run figures, the root lock against a second daemon, the client's handling
//! of paths and unreachable daemons, the README's migration snippet, and socket discovery as a
//! non-root user. The daemon's side is in `tests/first_hour.rs`.
//!
//! May touch: the temp dirs of the daemons it starts, the chartd processes it starts, and
//! (as root) a private mount namespace with a tmpfs on `/run` for the client run as uid 65534.

mod common;

use common::client_cmd::{chartd, cli, text, KIB};
use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tree(root: &std::path::Path) {
    three_groups(root);
}

/// Item 6: a dry run's figures are its own (`would_free_bytes`), not the 0 of `bytes_freed`.
#[test]
fn dry_run_figures_match_the_json() {
    let d = Daemon::start("grace: 0s", tree);
    let o = cli(&d, &["purge", "--all", "--yes", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["would_remove"], 9, "{v}");
    assert_eq!(v["would_free_bytes"], 900 * KIB, "{v}");
    let o = cli(&d, &["purge", "--all", "--yes", "--dry-run"]);
    let out = text(&o.stdout);
    assert!(
        out.contains("dry run: would remove 9 files, 900.0 KiB; nothing was deleted"),
        "{out}"
    );
    assert_eq!(walk_png(&d.root).0, 9, "a dry run deletes nothing");
}

/// Item 9: a second daemon on the same tree (another config, another socket) is refused,
/// and the refusal names the first one's socket.
#[test]
fn a_second_daemon_on_the_same_tree_is_refused() {
    let first = Daemon::start("max_size: 10MiB", tree);
    let socket = first.dir.path().join("second.sock");
    let config = first.dir.path().join("second.yaml");
    // The same tree, spelled differently.
    let spelled = first.root.join("AAPL_1d/..");
    fs::write(&config, config_text(&spelled, &socket, "max_size: 1MiB")).unwrap();
    let mut cmd = Command::new(BIN);
    for v in CHART_VARS {
        cmd.env_remove(v);
    }
    let mut second = cmd
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second daemon kept running on a governed tree");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is already governed by"), "{err}");
    assert!(err.contains(first.socket.to_str().unwrap()), "{err}");
    assert!(
        !socket.exists(),
        "the refused daemon never bound its socket"
    );
    // The first one is untouched.
    assert_eq!(first.status_root()["total_files"], 9);
    assert_eq!(walk_png(&first.root).0, 9);
}

/// Item 10: every documented key is in `status --json` (degraded_reason too), a relative
/// `--root` is resolved against the working directory, `--socket DIR` is named a directory,
/// and `--json` prints JSON when the daemon cannot be reached.
#[test]
fn the_client_in_the_first_hour() {
    let d = Daemon::start("max_size: 10MiB", tree);
    let o = cli(&d, &["status", "--json"]);
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let r = v["roots"][0].as_object().unwrap();
    for key in ["degraded_reason", "alert_reasons", "holding"] {
        assert!(r.contains_key(key), "{key} missing: {v}");
    }
    assert!(r["degraded_reason"].is_null());
    assert_eq!(v["stale"], false, "{v}");
    assert!(v["snapshot_age_seconds"].as_f64().is_some(), "{v}");
    // `root` relative to the working directory (the temp dir holding root/).
    let sock = d.socket.to_str().unwrap();
    let o = chartd(
        &["groups", "--root", "root", "--socket", sock],
        d.dir.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("AAPL_1d"), "{}", text(&o.stdout));
    let o = chartd(
        &["list", "MSFT_1h", "--root", "./root/", "--socket", sock],
        d.dir.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // A directory is not a socket.
    let o = chartd(&["status", "--socket", "/tmp"], d.dir.path(), &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("/tmp is a directory, not a socket"),
        "{}",
        text(&o.stderr)
    );
    // Unreachable, with --json: still JSON on stdout.
    let missing = d.dir.path().join("missing.sock");
    let o = chartd(
        &["status", "--json", "--socket", missing.to_str().unwrap()],
        d.dir.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("missing.sock"), "{v}");
}

/// The README's migration snippet works as written against the real daemon: stats, cleanup,
/// a group purge and a purge of everything, through the socket.
#[test]
fn the_readme_migration_snippet_works() {
    let d = Daemon::start("max_size: 10MiB\ngrace: 0s", |root| {
        tree(root);
        file(&root.join("AAPL_1d/c0.png"), 100 * KIB, hours(2));
        file(&root.join("AAPL_1d/result.json"), 100 * KIB, hours(2));
    });
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("## Migration")
        .expect("README has a migration section");
    let start = readme[at..].find("```python\n").expect("a python snippet") + at + 10;
    let code = &readme[start..start + readme[start..].find("```").unwrap()];
    let code = code.replace("/run/chartd/chartd.sock", d.socket.to_str().unwrap());
    let o = Command::new("python3")
        .arg("-c")
        .arg(&code)
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    // 9 charts (c0 rewritten with a JSON next to it), status then cleanup (nothing over the limits),
    // then AAPL_1d's 4 charts, then the other 5.
    assert_eq!(lines, ["9 0.88 ok", "0", "4", "5"], "{out}");
    assert_eq!(walk_png(&d.root).0, 0);
    assert!(
        d.root.join("AAPL_1d/result.json").exists(),
        "analysis data is never purged"
    );
}

/// The socket check still stands behind the root lock: another tree on a socket in use is
/// refused too (lifecycle.rs's same-config case now meets the root lock first).
#[test]
fn another_tree_on_a_socket_in_use_is_refused() {
    let first = Daemon::start("max_size: 10MiB", tree);
    let other = first.dir.path().join("other-root");
    fs::create_dir(&other).unwrap();
    let config = first.dir.path().join("other.yaml");
    fs::write(
        &config,
        config_text(&other, &first.socket, "max_size: 1MiB"),
    )
    .unwrap();
    let o = chartd(
        &["run", "--config", config.to_str().unwrap()],
        first.dir.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("already"), "{}", text(&o.stderr));
    assert!(
        !text(&o.stderr).contains("already governed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        first.status_root()["total_files"],
        9,
        "the first one still answers"
    );
}

/// The name of the group with gid 65534 (`nogroup`, `nobody`), if there is one.
fn group_65534() -> Option<String> {
    let o = Command::new("getent")
        .args(["group", "65534"])
        .output()
        .ok()?;
    let line = String::from_utf8(o.stdout).ok()?;
    let name = line.split(':').next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `chartd status ARGS` as uid/gid 65534 without a config file, with `XDG_RUNTIME_DIR` set (or
/// not), in a private mount namespace where `/run` is an empty tmpfs: the host's `/run/chartd`
/// is out of reach. With `system`, that directory is bind-mounted at `/run/chartd`, so the
/// packaged daemon's socket, `/run/chartd/chartd.sock`, is the one in it.
fn status_as_nobody(
    args: &[&str],
    home: &Path,
    xdg: Option<&Path>,
    system: Option<&Path>,
) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "set -e\n\
             mount -t tmpfs -o size=1m,mode=0755 chartd-test-run /run\n\
             if [ -n \"$SYSTEM\" ]; then mkdir -m 0755 /run/chartd; mount --bind \"$SYSTEM\" /run/chartd; fi\n\
             exec \"$@\"",
        )
        .arg("sh") // $0
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "NO_COLOR=1",
        ])
        .arg(format!("HOME={}", home.display()));
    if let Some(x) = xdg {
        cmd.arg(format!("XDG_RUNTIME_DIR={}", x.display()));
    }
    cmd.arg(BIN).arg("status").args(args);
    cmd.env("SYSTEM", system.map(|p| p.as_os_str()).unwrap_or_default());
    cmd.output().unwrap()
}

/// Item 10, socket discovery as a non-root user without `/etc/chartd/chartd.yaml`, against the
/// real binary: the per-user path (`$XDG_RUNTIME_DIR/chartd/chartd.sock`) when a daemon is
/// there, else the packaged daemon's `/run/chartd/chartd.sock`; with neither, the error names
/// both paths it tried. Runs the client as uid 65534 in a private mount namespace whose `/run`
/// is a fresh tmpfs, so the host's `/run/chartd` is never reached.
#[test]
fn a_non_root_client_finds_the_per_user_or_the_system_socket() {
    if !have_unshare() || Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIP: needs root, unshare --mount and setpriv to run the client as uid 65534");
        return;
    }
    if Path::new("/etc/chartd/chartd.yaml").exists() {
        println!("SKIP: /etc/chartd/chartd.yaml exists, the client would take its socket from it");
        return;
    }
    let Some(group) = group_65534() else {
        println!("SKIP: no group with gid 65534 to give the socket to");
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let (dir, root) = workspace();
    tree(&root);
    // uid 65534 reaches the socket: directories 0755, the socket 0660 in its group.
    let xdg = dir.path().join("xdg");
    let sockdir = xdg.join("chartd");
    fs::create_dir_all(&sockdir).unwrap();
    let empty_xdg = dir.path().join("xdg-empty");
    fs::create_dir(&empty_xdg).unwrap();
    for p in [dir.path(), &xdg, &sockdir, &empty_xdg] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = sockdir.join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &socket,
            &format!("max_size: 10MiB\n^control: {{ group: {group} }}"),
        ),
    )
    .unwrap();
    let d = Daemon::spawn(dir, root, socket, config, &[]);
    let home = d.dir.path();
    let answered = |o: &Output| -> Value {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        serde_json::from_str(&text(&o.stdout)).unwrap()
    };
    // 1. The per-user path: a daemon listens there, nothing in /run.
    let v = answered(&status_as_nobody(&["--json"], home, Some(&xdg), None));
    assert_eq!(v["roots"][0]["path"], d.root.to_str().unwrap(), "{v}");
    assert_eq!(v["roots"][0]["total_files"], 9, "{v}");
    // 2. Nothing at the per-user path: the packaged daemon's socket in /run/chartd.
    let v = answered(&status_as_nobody(
        &["--json"],
        home,
        Some(&empty_xdg),
        Some(&sockdir),
    ));
    assert_eq!(v["roots"][0]["path"], d.root.to_str().unwrap(), "{v}");
    // 3. Neither: exit 3, and the message names the paths it tried.
    let o = status_as_nobody(&[], home, Some(&empty_xdg), None);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}{err}", text(&o.stdout));
    let per_user = empty_xdg.join("chartd/chartd.sock");
    assert!(
        err.contains("cannot reach the chartd daemon at /run/chartd/chartd.sock")
            && err.contains(&format!("{} was tried too", per_user.display())),
        "{err}"
    );
    // Without XDG_RUNTIME_DIR the per-user path is /tmp/chartd-65534/chartd.sock (unless a
    // per-user daemon of uid 65534 runs on this host, which the test leaves alone).
    let tmp_user = Path::new("/tmp/chartd-65534/chartd.sock");
    if !tmp_user.exists() {
        let o = status_as_nobody(&[], home, None, None);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{}{err}", text(&o.stdout));
        assert!(
            err.contains("/run/chartd/chartd.sock")
                && err.contains("/tmp/chartd-65534/chartd.sock was tried too"),
            "{err}"
        );
    }
}
