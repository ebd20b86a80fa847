use super::render::{self, Style};
use super::*;
use crate::control::report::tests::{at, root, snapshot};
use crate::control::tests::{control, Server};
use std::time::SystemTime;

fn target(socket: &Path) -> Target {
    Target {
        socket: Some(socket.to_path_buf()),
        config: None,
    }
}

fn purge(group: Option<&str>, all: bool, yes: bool, dry_run: bool) -> Command {
    Command::Purge {
        group: group.map(str::to_string),
        all,
        yes,
        dry_run,
        root: None,
        json: false,
        target: Target::default(),
    }
}

#[test]
fn purge_all_needs_yes_unless_dry_run() {
    let e = build(&purge(None, true, false, false)).unwrap_err();
    assert!(e.contains("add --yes"), "{e}");
    let (req, ..) = build(&purge(None, true, true, false)).unwrap();
    assert_eq!(
        req,
        json!({"cmd": "purge", "all": true, "confirm": true, "dry_run": false})
    );
    let (req, ..) = build(&purge(None, true, false, true)).unwrap();
    assert_eq!(req["dry_run"], true);
    let (req, ..) = build(&purge(Some("g"), false, false, false)).unwrap();
    assert_eq!(req, json!({"cmd": "purge", "group": "g", "dry_run": false}));
    assert!(build(&purge(Some("../etc"), false, false, false)).is_err());
}

#[test]
fn groups_and_list_flags_are_checked_locally() {
    let groups = |top: Option<usize>, sort: &str| Command::Groups {
        top,
        sort: sort.to_string(),
        root: Some(PathBuf::from("/srv/charts")),
        json: true,
        target: Target::default(),
    };
    let (req, _, format, _) = build(&groups(Some(5), "age")).unwrap();
    assert_eq!(
        req,
        json!({"cmd": "groups", "top": 5, "sort": "age", "root": "/srv/charts"})
    );
    assert_eq!(format, Format::Json);
    assert!(build(&groups(None, "size"))
        .unwrap_err()
        .contains("valid: bytes, files, age, name"));
    assert!(build(&groups(Some(0), "bytes")).is_err());
    let list = |g: &str| Command::List {
        group: g.into(),
        root: None,
        json: false,
        target: Target::default(),
    };
    assert!(build(&list("..")).is_err());
    assert_eq!(
        build(&list("EURUSD_1h")).unwrap().0,
        json!({"cmd": "list", "group": "EURUSD_1h"})
    );
}

#[test]
fn socket_flag_wins_and_a_bad_config_is_a_usage_error() {
    let s = resolve_socket(&Target {
        socket: Some("/x.sock".into()),
        config: Some("/nonexistent.yaml".into()),
    })
    .unwrap();
    assert_eq!(s.path, PathBuf::from("/x.sock"));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let t = Target {
        socket: None,
        config: Some(missing.clone()),
    };
    assert!(resolve_socket(&t).unwrap_err().contains("missing.yaml"));
    let cmd = Command::Status {
        json: false,
        target: t,
    };
    assert_eq!(main(&cmd), EXIT_USAGE);
}

#[test]
fn socket_from_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("charts");
    std::fs::create_dir(&root_dir).unwrap();
    let file = dir.path().join("chartd.yaml");
    let sock = dir.path().join("c.sock");
    std::fs::write(
        &file,
        format!(
            "socket: {}\nroots:\n  - path: {}\n",
            sock.display(),
            root_dir.display()
        ),
    )
    .unwrap();
    let s = resolve_socket(&Target {
        socket: None,
        config: Some(file.clone()),
    });
    match s {
        Ok(s) => assert_eq!(s.path, sock),
        // The config schema belongs to the config branch; report rather than guess.
        Err(e) => panic!("config {file:?} not accepted: {e}"),
    }
}

#[test]
fn unreachable_daemon_is_exit_3_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    assert_eq!(
        main(&Command::Status {
            json: false,
            target: target(&path)
        }),
        EXIT_UNREACHABLE
    );
    let e = io::Error::from(io::ErrorKind::NotFound);
    let socket = Socket {
        path: path.clone(),
        origin: "--socket".into(),
    };
    let msg = unreachable_message(&socket, &e);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("systemctl status chartd"),
        "{msg}"
    );
    // A stale socket: nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = exchange(&path, &json!({"cmd": "status"}), QUICK).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(unreachable_message(&socket, &err).contains("nothing listens"));
    let denied = unreachable_message(&socket, &io::Error::from(io::ErrorKind::PermissionDenied));
    assert!(denied.contains("usermod -aG"), "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_real_socket() {
    let s = Server::start(control(8, Duration::from_secs(10))).await;
    let path = s.path.clone();
    let run = |cmd: Command| tokio::task::spawn_blocking(move || main(&cmd));
    let t = || target(&path);
    assert_eq!(
        run(Command::Status {
            json: false,
            target: t()
        })
        .await
        .unwrap(),
        EXIT_OK
    );
    assert_eq!(
        run(Command::Status {
            json: true,
            target: t()
        })
        .await
        .unwrap(),
        EXIT_OK
    );
    assert_eq!(
        run(Command::Metrics { target: t() }).await.unwrap(),
        EXIT_OK
    );
    assert_eq!(
        run(Command::List {
            group: "missing".into(),
            root: None,
            json: false,
            target: t()
        })
        .await
        .unwrap(),
        EXIT_DAEMON_ERROR
    );
    assert_eq!(
        run(Command::Cleanup {
            dry_run: true,
            json: false,
            target: t()
        })
        .await
        .unwrap(),
        EXIT_OK
    );
    let p = path.clone();
    let answer =
        tokio::task::spawn_blocking(move || exchange(&p, &json!({"cmd": "groups"}), QUICK))
            .await
            .unwrap()
            .unwrap();
    assert!(answer.ends_with('\n'));
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["groups"][0]["name"], "EURUSD_1h");
}

fn sample_status() -> Map<String, Value> {
    let mut a = root("/srv/charts/output");
    a.total_files = 12_001;
    a.total_bytes = 671_088_640; // 640 MiB
    a.max_size = Some(1_048_576_000); // 1000 MiB
    a.max_age = Some(Duration::from_secs(24 * 3600));
    a.oldest_mtime = Some(at(72_360)); // 20.1 h
    a.newest_mtime = Some(at(60));
    a.fs_total_bytes = 100 << 30;
    a.fs_free_bytes = 40 << 30;
    a.min_free_bytes = Some(10 << 30);
    a.files_removed = 1_234;
    a.bytes_freed = 2_469_606_195;
    a.watches = 512;
    a.resyncs = 3;
    a.last_eviction = Some(SystemTime::now() - Duration::from_secs(300));
    let mut b = root("/srv/charts/sessions");
    b.total_files = 3;
    b.total_bytes = 1234;
    b.degraded = true;
    b.degraded_reason =
        Some("inotify watch limit reached; raise fs.inotify.max_user_watches".into());
    b.ready = false;
    b.errors = 2;
    crate::control::report::status(&snapshot(vec![a, b]), at(0))
}

#[test]
fn status_table() {
    let text = render::status(&sample_status(), &Style { color: false });
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("chartd 0.1.0, up 1h 2m: 2 roots, 12,004 files, 640.0 MiB"),
        "{}",
        lines[0]
    );
    let head = lines[2];
    let row = lines[3];
    assert!(head.starts_with("ROOT"));
    assert!(row.contains("[#############.......]  64.0%"), "{row}");
    assert!(
        row.contains("12,001") && row.contains("640.0 MiB / 1000.0 MiB"),
        "{row}"
    );
    assert!(
        row.contains("20.1h / 24.0h") && row.contains("40.0 GiB / 10.0 GiB"),
        "{row}"
    );
    assert!(row.ends_with("OK"), "{row}");
    // Columns line up: the ALERT column starts at the same offset in the header and rows.
    let col = head.find("ALERT").unwrap();
    assert_eq!(&lines[3][col..], "OK");
    assert!(lines[4].contains("no size limit"));
    assert!(text.contains("5m ago"));
    assert!(text.contains("never"));
    assert!(text.contains("DEGRADED, crawling"));
    assert!(text.contains("degraded: /srv/charts/sessions: inotify watch limit reached"));
    assert!(!text.contains('\x1b'));
    let colored = render::status(&sample_status(), &Style { color: true });
    assert!(colored.contains("\x1b[32mOK\x1b[0m"));
}

#[test]
fn other_renderings() {
    let answer = |v: Value| match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let plain = Style { color: false };
    let g = render::groups(
        &answer(json!({"ok": true, "groups": [
            {"name": "EURUSD_1h", "files": 2001, "bytes": 671_088_640u64, "oldest_file_age_hours": 20.1, "newest_file_age_hours": 0.02},
            {"name": "s-1", "files": 1, "bytes": 10, "oldest_file_age_hours": 50.0, "newest_file_age_hours": null}]})),
        &plain,
    );
    println!("{g}");
    assert!(
        g.contains("EURUSD_1h  2,001  640.0 MiB   20.1h      1m"),
        "{g}"
    );
    assert!(g.contains("10 B    2.1d       -"), "{g}");
    assert_eq!(
        render::groups(&answer(json!({"ok": true, "groups": []})), &plain),
        "no groups\n"
    );
    let l = render::list(
        &answer(
            json!({"ok": true, "files": [{"path": "g/a.png", "bytes": 2048, "mtime": 1_700_000_000, "age_hours": 1.5}]}),
        ),
        &plain,
    );
    assert!(
        l.contains("1.5h  2.0 KiB  2023-11-14T22:13:20Z  g/a.png"),
        "{l}"
    );
    assert!(l.ends_with("1 file, 2.0 KiB\n"));
    assert_eq!(
        render::deletion(&answer(
            json!({"ok": true, "files_removed": 1200, "bytes_freed": 1024})
        )),
        "removed 1,200 files, freed 1.0 KiB\n"
    );
    assert_eq!(
        render::deletion(&answer(
            json!({"ok": true, "would_remove": ["a", {"path": "b"}], "bytes_freed": 0})
        )),
        "a\nb\ndry run: would remove 2 files, 0 B\n"
    );
    assert_eq!(
        render::reload(&answer(
            json!({"ok": true, "reloaded": true, "message": "m"})
        )),
        "m\n"
    );
    // Missing fields never panic.
    let empty = answer(json!({"ok": true, "roots": [{}]}));
    assert!(render::status(&empty, &plain).contains("?"));
}

#[test]
fn number_formats() {
    assert_eq!(render::count(0), "0");
    assert_eq!(render::count(999), "999");
    assert_eq!(render::count(1000), "1,000");
    assert_eq!(render::count(1_234_567), "1,234,567");
    assert_eq!(render::bytes(0.0), "0 B");
    assert_eq!(render::bytes(1023.0), "1023 B");
    assert_eq!(render::bytes(1536.0), "1.5 KiB");
    assert_eq!(render::hours(0.5), "30m");
    assert_eq!(render::hours(47.9), "47.9h");
    assert_eq!(render::hours(72.0), "3.0d");
}
