//! Unit tests of the CLI side without a daemon: argument checks, socket discovery and the
//! errors for an unreachable daemon, and how typed replies are rendered (tables, numbers).
//!
//! May touch: temporary directories it creates (config files, a socket path nothing listens on).

use super::format;
use super::render::{self, Style};
use super::*;
use crate::control::messages::*;
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
        include_young: false,
        root: None,
        json: false,
        target: Target::default(),
    }
}

#[test]
fn purge_all_needs_yes_unless_dry_run() {
    let wire = |c: &Command| serde_json::to_value(build(c).unwrap().request).unwrap();
    let e = build(&purge(None, true, false, false)).unwrap_err();
    assert!(e.contains("add --yes"), "{e}");
    assert_eq!(
        wire(&purge(None, true, true, false)),
        serde_json::json!({"cmd": "purge", "all": true, "confirm": true, "dry_run": false})
    );
    assert_eq!(wire(&purge(None, true, false, true))["dry_run"], true);
    assert_eq!(
        wire(&purge(Some("g"), false, false, false)),
        serde_json::json!({"cmd": "purge", "group": "g", "dry_run": false})
    );
    assert!(build(&purge(Some("../etc"), false, false, false)).is_err());
    // A glob of groups goes to the daemon as it is; --include-young only when asked for.
    let mut young = purge(Some("RELIANCE_*"), false, false, false);
    if let Command::Purge { include_young, .. } = &mut young {
        *include_young = true;
    }
    assert_eq!(
        wire(&young),
        serde_json::json!({"cmd": "purge", "group": "RELIANCE_*", "dry_run": false, "include_young": true})
    );
    assert!(build(&purge(Some("*/x"), false, false, false)).is_err());
}

#[test]
fn groups_and_list_flags_are_checked_locally() {
    let groups = |top: Option<usize>, sort: SortKey, root: &str| Command::Groups {
        top,
        sort,
        root: Some(PathBuf::from(root)),
        json: true,
        target: Target::default(),
    };
    let cmd = groups(Some(5), SortKey::Age, "/srv/charts");
    let plan = build(&cmd).unwrap();
    assert_eq!(
        serde_json::to_value(&plan.request).unwrap(),
        serde_json::json!({"cmd": "groups", "top": 5, "sort": "age", "root": "/srv/charts"})
    );
    assert_eq!(plan.format, Format::Json);
    assert!(build(&groups(Some(0), SortKey::Bytes, "/r")).is_err());
    // A relative --root is resolved against the working directory, as the daemon resolves
    // relative roots of its config.
    let cwd = std::env::current_dir().unwrap();
    match build(&groups(None, SortKey::Bytes, "output/charts/"))
        .unwrap()
        .request
    {
        ClientRequest::Groups { root, .. } => {
            assert_eq!(root, Some(cwd.join("output/charts").display().to_string()))
        }
        other => panic!("{other:?}"),
    }
    let list = |g: &str| Command::List {
        group: g.into(),
        root: None,
        json: false,
        target: Target::default(),
    };
    assert!(build(&list("..")).is_err());
    assert_eq!(
        serde_json::to_value(build(&list("EURUSD_1h")).unwrap().request).unwrap(),
        serde_json::json!({"cmd": "list", "group": "EURUSD_1h"})
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
        check: false,
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
            check: false,
            target: target(&path)
        }),
        EXIT_UNREACHABLE
    );
    let e = io::Error::from(io::ErrorKind::NotFound);
    let socket = Socket {
        path: path.clone(),
        origin: "--socket".into(),
        others: Vec::new(),
    };
    let msg = unreachable_message(&socket, &e);
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("systemctl status chartd"),
        "{msg}"
    );
    // A stale socket: nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = exchange(&path, &ClientRequest::Status, QUICK).unwrap_err();
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
            check: false,
            target: t()
        })
        .await
        .unwrap(),
        EXIT_OK
    );
    assert_eq!(
        run(Command::Status {
            json: true,
            check: true,
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
    let req = ClientRequest::Groups {
        root: None,
        top: None,
        sort: SortKey::Bytes,
    };
    let answer = tokio::task::spawn_blocking(move || exchange(&p, &req, QUICK))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.ends_with('\n'));
    let g: GroupsReply = decode_reply(&answer).unwrap();
    assert_eq!(g.groups[0].name, "EURUSD_1h");
    // Every reply the stand-in owner builds decodes into the client's types.
    for cmd in [
        Command::Groups {
            top: None,
            sort: SortKey::Name,
            root: None,
            json: false,
            target: t(),
        },
        Command::List {
            group: "g".into(),
            root: None,
            json: false,
            target: t(),
        },
        Command::Purge {
            group: Some("g".into()),
            all: false,
            yes: false,
            dry_run: true,
            include_young: false,
            root: None,
            json: false,
            target: t(),
        },
        Command::Reload {
            json: false,
            target: t(),
        },
    ] {
        assert_eq!(run(cmd).await.unwrap(), EXIT_OK);
    }
}

fn sample_status() -> StatusReply {
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
    a.capacity = crate::capacity::CapacityFigures {
        effective_retention_hours: Some(5.2),
        write_bytes_per_second: 1_258_291.2,   // 1.2 MiB/s
        evicted_bytes_per_second: 1_153_433.6, // 1.1 MiB/s
        time_to_full_hours: Some(3.4),
        premature_evictions: 2,
        ..Default::default()
    };
    let mut b = root("/srv/charts/sessions");
    b.total_files = 3;
    b.total_bytes = 1234;
    b.degraded = true;
    b.degraded_reason =
        Some("inotify watch limit reached; raise fs.inotify.max_user_watches".into());
    b.ready = false;
    b.errors = 2;
    serde_json::from_value(crate::control::report::tests::status_json(
        &snapshot(vec![a, b]),
        at(0),
    ))
    .unwrap()
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
    // 64 % of max_size, free space well above the floor: held as designed, ok.
    assert!(row.ends_with("OK"), "{row}");
    // Columns line up: the ALERT column starts at the same offset in the header and rows.
    let col = head.find("ALERT").unwrap();
    assert_eq!(&lines[3][col..], "OK");
    assert!(lines[4].contains("no size limit"));
    assert!(text.contains("5m ago"));
    assert!(text.contains("never"));
    assert!(text.contains("DEGRADED, crawling"));
    assert!(
        text.contains("warning: /srv/charts/sessions: degraded"),
        "{text}"
    );
    assert!(text.contains("degraded: /srv/charts/sessions: inotify watch limit reached"));
    // The capacity figures, one row per root; what does not exist yet is a word.
    let head = lines
        .iter()
        .position(|l| l.starts_with("ROOT") && l.contains("RETENTION / MAX AGE"))
        .unwrap_or_else(|| panic!("no capacity table:\n{text}"));
    assert!(
        lines[head].contains("WRITE") && lines[head].ends_with("FULL IN  PREMATURE (10 MIN)"),
        "{}",
        lines[head]
    );
    let a = lines[head + 1];
    assert!(a.starts_with("/srv/charts/output"), "{a}");
    assert!(a.contains("5.2h / 24.0h"), "{a}");
    assert!(a.contains("1.2 MiB/s") && a.contains("1.1 MiB/s"), "{a}");
    assert!(a.contains("3.4h") && a.ends_with('2'), "{a}");
    let b = lines[head + 2];
    assert!(b.starts_with("/srv/charts/sessions"), "{b}");
    assert!(b.contains("none / -"), "{b}");
    assert!(
        b.contains("0 B/s") && b.contains("not growing") && b.ends_with('0'),
        "{b}"
    );
    assert!(!text.contains('\x1b'));
    let colored = render::status(&sample_status(), &Style { color: true });
    assert!(colored.contains("\x1b[32mOK\x1b[0m"));
}

#[test]
fn other_renderings() {
    let plain = Style { color: false };
    let row = |name: &str, files, bytes, oldest, newest| GroupRow {
        name: name.into(),
        root: "/srv/charts".into(),
        files,
        bytes,
        oldest_file_age_hours: oldest,
        newest_file_age_hours: newest,
        rule: None,
        max_age_hours: None,
        quota_bytes: None,
        quota_files: None,
        quota_percent: None,
    };
    let g = render::groups(
        &GroupsReply {
            groups: vec![
                row("EURUSD_1h", 2001, 671_088_640, Some(20.1), Some(0.02)),
                row("s-1", 1, 10, Some(50.0), None),
            ],
            total_groups: 5,
        },
        &plain,
    );
    println!("{g}");
    assert!(
        g.contains("EURUSD_1h  2,001  640.0 MiB   20.1h      1m"),
        "{g}"
    );
    assert!(g.contains("10 B    2.1d       -"), "{g}");
    assert!(g.ends_with("2 of 5 groups\n"), "{g}");
    let none = GroupsReply {
        groups: vec![],
        total_groups: 0,
    };
    assert_eq!(render::groups(&none, &plain), "no groups\n");
    let l = render::list(
        &ListReply {
            root: "/srv/charts".into(),
            group: "g".into(),
            files: vec![ListedFile {
                path: "g/a.png".into(),
                bytes: 2048,
                mtime: "2023-11-14T22:13:20Z".into(),
                mtime_unix: 1.7e9,
                age_hours: 1.5,
                protected: false,
            }],
        },
        &plain,
    );
    assert!(
        l.contains("1.5h  2.0 KiB  2023-11-14T22:13:20Z  g/a.png"),
        "{l}"
    );
    assert!(l.ends_with("1 file, 2.0 KiB\n"));
    let real = DeletionReply {
        files_removed: Some(1200),
        bytes_freed: Some(1024),
        would_remove: None,
        would_free_bytes: None,
        skipped: 0,
        files: vec![],
        dry_run: false,
        skipped_in_grace: None,
        groups_matched: None,
    };
    assert!(render::deletion(&real).starts_with("removed 1,200 files, freed 1.0 KiB\n"));
    assert!(!render::deletion(&real).contains("matched"));
    // The dry run's own figures (issue #14, item 6: it said "0 B" while would_free_bytes
    // was 1085691).
    let dry = DeletionReply {
        files_removed: None,
        bytes_freed: None,
        would_remove: Some(3),
        would_free_bytes: Some(1_085_691),
        skipped: 2,
        files: vec![RemovedFile {
            path: "/r/g/a.png".into(),
            bytes: 361_897,
            age_hours: 3.0,
            reason: "purge".into(),
        }],
        dry_run: true,
        skipped_in_grace: Some(2),
        groups_matched: Some(3),
    };
    let text = render::deletion(&dry);
    assert!(
        text.contains("dry run: would remove 3 files, 1.0 MiB; nothing was deleted\n"),
        "{text}"
    );
    assert!(text.starts_with("/r/g/a.png  353.4 KiB  purge\n"), "{text}");
    assert!(text.contains("skipped 2 files"), "{text}");
    assert!(text.contains("2 of them modified within grace"), "{text}");
    assert!(
        text.contains("listed)\n  3 groups matched\n  skipped 2 files"),
        "{text}"
    );
    assert_eq!(
        render::reload(&ReloadReply {
            reloaded: true,
            message: "m".into()
        }),
        "m\n"
    );
}

#[test]
fn discovery_tries_the_system_socket_too() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user.sock");
    let system = dir.path().join("system.sock");
    // Nothing at the per-user path: the system socket first, the per-user one next.
    let s = discover(user.clone(), &system, "");
    assert_eq!(
        (s.path.clone(), s.others.clone()),
        (system.clone(), vec![user.clone()])
    );
    assert!(
        s.origin.contains(&user.display().to_string()),
        "{}",
        s.origin
    );
    // A per-user daemon is running: it comes first.
    drop(std::os::unix::net::UnixListener::bind(&user).unwrap());
    let s = discover(user.clone(), &system, "");
    assert_eq!((s.path, s.others), (user, vec![system.clone()]));
    // Root: one path.
    assert!(discover(system.clone(), &system, "").others.is_empty());
}

#[test]
fn a_directory_given_as_socket_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let socket = Socket {
        path: dir.path().to_path_buf(),
        origin: "--socket".into(),
        others: Vec::new(),
    };
    let err = exchange(dir.path(), &ClientRequest::Status, QUICK).unwrap_err();
    let msg = unreachable_message(&socket, &err);
    assert!(msg.contains("is a directory, not a socket"), "{msg}");
    assert!(!msg.contains("nothing listens"), "{msg}");
}

#[test]
fn number_formats() {
    assert_eq!(format::count(0), "0");
    assert_eq!(format::count(999), "999");
    assert_eq!(format::count(1000), "1,000");
    assert_eq!(format::count(1_234_567), "1,234,567");
    assert_eq!(format::bytes(0.0), "0 B");
    assert_eq!(format::bytes(1023.0), "1023 B");
    assert_eq!(format::bytes(1536.0), "1.5 KiB");
    assert_eq!(format::hours(0.5), "30m");
    assert_eq!(format::hours(47.9), "47.9h");
    assert_eq!(format::hours(72.0), "3.0d");
}
