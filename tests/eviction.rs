//! Eviction against the real daemon: real directories, real inotify, real deletions.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

#[test]
fn size_limit_evicts_oldest_first_down_to_the_low_watermark() {
    // Ten 100 KiB files aged 10h..1h: exactly at max_size (1000 KiB), not over it.
    let d = Daemon::start("max_size: 1000KiB\ngrace: 0s", |root| {
        for i in 1..=10u64 {
            file(
                &root.join(format!("G{}/c{i}.png", i % 3)),
                100 * KIB,
                hours(11 - i),
            );
        }
    });
    assert_eq!(
        d.status_root()["total_files"],
        10,
        "nothing over the limit yet"
    );
    write_file(&d.root.join("G0/new.png"), 100 * KIB as usize);
    // 1100 KiB > 1000 KiB: evict down to 900 KiB: the two oldest (c1, c2) go.
    assert!(
        wait_until(Duration::from_secs(10), || !d
            .root
            .join("G1/c1.png")
            .exists()
            && !d.root.join("G2/c2.png").exists()),
        "{}",
        d.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    for i in 3..=10u64 {
        assert!(
            d.root.join(format!("G{}/c{i}.png", i % 3)).exists(),
            "c{i} must stay"
        );
    }
    assert!(d.root.join("G0/new.png").exists());
    let st = d.status_root();
    assert_eq!(st["total_files"], 9);
    assert_eq!(st["total_bytes"], 900 * KIB);
    assert_eq!(st["removed_by_reason"]["size"], 2);
    assert!(d.log_text().contains("reason size"));
}

#[test]
fn age_limit_fires_at_the_expiry_not_a_poll_later() {
    let d = Daemon::start("max_age: 3s\ngrace: 0s", |root| {
        file(&root.join("old/expired.png"), KIB, hours(2));
    });
    // Already expired at start: gone at once.
    assert!(wait_until(Duration::from_secs(5), || !d
        .root
        .join("old/expired.png")
        .exists()));
    let t0 = Instant::now();
    let p = d.root.join("AAPL_1d/chart.png");
    write_file(&p, 1000);
    // Expires 3 s after its mtime; no event will come: only the timer can delete it.
    std::thread::sleep(Duration::from_millis(2000));
    assert!(p.exists(), "deleted before its max_age");
    assert!(
        wait_until(Duration::from_secs(4), || !p.exists()),
        "not deleted after expiry"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "deleted early: {took:?}"
    );
    assert!(took < Duration::from_millis(4500), "deleted late: {took:?}");
    assert_eq!(d.status_root()["removed_by_reason"]["age"], 2);
}

#[test]
fn grace_protects_new_files_and_a_timer_rechecks_when_it_ends() {
    let d = Daemon::start("max_size: 100KiB\ngrace: 2s", |_| {});
    let a = d.root.join("S/a.png");
    let b = d.root.join("S/b.png");
    write_file(&a, 80 * KIB as usize);
    std::thread::sleep(Duration::from_millis(50));
    write_file(&b, 80 * KIB as usize);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(a.exists() && b.exists(), "deleted inside grace");
    // No further event: the grace timer must fire by itself.
    assert!(
        wait_until(Duration::from_secs(5), || !a.exists()),
        "{}",
        d.log_text()
    );
    assert!(b.exists());
}

#[test]
fn include_exclude_and_protect() {
    let d = Daemon::start(
        "max_age: 1h\ngrace: 0s\ninclude: [\"*.png\"]\nexclude: [\"*.tmp\", \".*\"]\nprotect: [\"keep/**\"]",
        |root| {
            for f in ["g/a.png", "g/b.tmp", "g/.hidden.png", "g/c.jpg", "keep/important.png", ".cache/x.png"] {
                file(&root.join(f), KIB, hours(5));
            }
        },
    );
    assert!(wait_until(Duration::from_secs(5), || !d
        .root
        .join("g/a.png")
        .exists()));
    for f in [
        "g/b.tmp",
        "g/.hidden.png",
        "g/c.jpg",
        "keep/important.png",
        ".cache/x.png",
    ] {
        assert!(d.root.join(f).exists(), "{f} must not be deleted");
    }
    let st = d.status_root();
    assert_eq!(st["unmanaged_files"], 4, "{st}");
    assert_eq!(st["total_files"], 1, "the protected file is counted");
}

#[test]
fn symlinks_to_the_outside_are_never_followed() {
    let (dir, root) = workspace();
    let outside = dir.path().join("outside");
    for i in 0..5 {
        file(&outside.join(format!("victim{i}.png")), KIB, hours(48));
    }
    std::os::unix::fs::symlink(&outside, root.join("linked_group")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim0.png"), root.join("evil.png")).unwrap();
    file(&root.join("real/old.png"), KIB, hours(48));
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(
        &config,
        config_text(&root, &socket, "max_age: 1h\ngrace: 0s\nmax_size: 1KiB"),
    )
    .unwrap();
    let d = Daemon::spawn(dir, root, socket, config, &[]);
    assert!(wait_until(Duration::from_secs(5), || !d
        .root
        .join("real/old.png")
        .exists()));
    // A symlink swapped in while running is not followed either.
    fs::create_dir(d.root.join("swap")).unwrap();
    fs::remove_dir(d.root.join("swap")).unwrap();
    std::os::unix::fs::symlink(d.dir.path().join("outside"), d.root.join("swap")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.request(r#"{"cmd":"cleanup"}"#);
    for i in 0..5 {
        assert!(
            d.dir.path().join(format!("outside/victim{i}.png")).exists(),
            "outside file deleted"
        );
    }
    assert!(
        fs::symlink_metadata(d.root.join("evil.png")).is_ok(),
        "the symlink itself is not managed"
    );
    assert_eq!(d.status_root()["unmanaged_files"], 3);
}

#[test]
fn directories_created_and_filled_at_once_are_indexed() {
    let d = Daemon::start("grace: 0s", |_| {});
    for s in 0..20 {
        let dir = d.root.join(format!("SESSION_{s}/a/b/c"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..5 {
            write_file(&dir.join(format!("chart_{i}.png")), 100);
        }
        write_file(&d.root.join(format!("SESSION_{s}/top.png")), 100);
    }
    let expected = walk_png(&d.root);
    assert_eq!(expected.0, 120);
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["total_files"]
            == expected.0),
        "index {} != disk {}",
        d.status_root()["total_files"],
        expected.0
    );
    assert_eq!(d.status_root()["total_bytes"], expected.1);
}

#[test]
fn renames_within_into_and_out_of_the_root() {
    let d = Daemon::start("grace: 0s", |root| {
        for i in 0..4 {
            file(&root.join(format!("AAPL_1d/c{i}.png")), KIB, hours(1));
        }
    });
    let outside = d.dir.path().join("staging");
    for i in 0..3 {
        file(
            &outside.join(format!("MSFT_1h/c{i}.png")),
            2 * KIB,
            hours(1),
        );
    }
    // Within: a group renamed.
    fs::rename(d.root.join("AAPL_1d"), d.root.join("AAPL_1w")).unwrap();
    // Into: a directory prepared elsewhere and moved in.
    fs::rename(outside.join("MSFT_1h"), d.root.join("MSFT_1h")).unwrap();
    // Out: a file moved away.
    fs::rename(
        d.root.join("AAPL_1w/c0.png"),
        d.dir.path().join("moved_out.png"),
    )
    .unwrap();
    // Atomic replace: a bigger file renamed over an indexed one.
    write_file(&d.dir.path().join("tmpfile"), 5000);
    fs::rename(d.dir.path().join("tmpfile"), d.root.join("AAPL_1w/c1.png")).unwrap();
    let expected = walk_png(&d.root);
    assert_eq!(expected.0, 6);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let st = d.status_root();
            st["total_files"] == expected.0 && st["total_bytes"] == expected.1
        }),
        "status {} vs disk {:?}",
        d.status_root(),
        expected
    );
    let g = d.request(r#"{"cmd":"groups","sort":"name"}"#);
    let names: Vec<&str> = g["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["AAPL_1w", "MSFT_1h"], "{g}");
    // Files in the renamed directory are still watched: a new one there is seen.
    write_file(&d.root.join("AAPL_1w/late.png"), 10);
    assert!(wait_until(Duration::from_secs(5), || d.status_root()
        ["total_files"]
        == 7));
}

#[test]
fn flocked_files_are_skipped_until_released() {
    let d = Daemon::start("max_age: 1h\ngrace: 0s", |_| {});
    let locked = d.root.join("g/locked.png");
    let free = d.root.join("g/free.png");
    file(&locked, KIB, Duration::ZERO);
    file(&free, KIB, Duration::ZERO);
    let fd = fs::File::open(&locked).unwrap();
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // Age them now (one event each), past max_age.
    for p in [&locked, &free] {
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - hours(3))
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || !free.exists()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(locked.exists(), "a flocked file was deleted");
    drop(fd);
    d.request(r#"{"cmd":"cleanup"}"#);
    assert!(wait_until(Duration::from_secs(5), || !locked.exists()));
}

#[test]
fn observe_only_deletes_nothing() {
    let d = Daemon::start(
        "^cleanup_enabled: false\nmax_age: 1h\nmax_size: 1KiB\ngrace: 0s",
        |root| {
            for i in 0..5 {
                file(&root.join(format!("g/c{i}.png")), 10 * KIB, hours(10));
            }
        },
    );
    write_file(&d.root.join("g/new.png"), 20_000);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(walk_png(&d.root).0, 6);
    let st = d.status_root();
    assert_eq!(st["total_files"], 6);
    assert_eq!(st["cleanup_enabled"], false);
    assert_eq!(st["files_removed"], 0);
}

#[test]
fn environment_variables_override_the_file() {
    let d = Daemon::start_with(
        "max_size: 100MiB\ngrace: 0s",
        &[("CHART_MAX_SIZE_MB", "1")],
        |root| {
            for i in 0..4 {
                file(&root.join(format!("g/c{i}.png")), 512 * KIB, hours(4 - i));
            }
        },
    );
    // 2 MiB > 1 MiB: down to 0.9 MiB, i.e. one 512 KiB file left (the newest).
    assert!(wait_until(Duration::from_secs(5), || walk_png(&d.root).0 == 1));
    assert!(d.root.join("g/c3.png").exists());
    assert_eq!(d.status_root()["max_size_mb"], 1.0);
}

#[test]
fn env_can_disable_cleanup() {
    let d = Daemon::start_with(
        "max_age: 1h\ngrace: 0s",
        &[("CHART_ENABLE_CLEANUP", "false")],
        |root| {
            file(&root.join("g/old.png"), KIB, hours(5));
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.root.join("g/old.png").exists());
    assert_eq!(d.status_root()["cleanup_enabled"], false);
}

#[test]
fn hard_links_are_counted_once() {
    let d = Daemon::start("grace: 0s", |root| {
        file(&root.join("a/x.png"), 10 * KIB, hours(1));
        fs::create_dir_all(root.join("b")).unwrap();
        fs::hard_link(root.join("a/x.png"), root.join("b/x.png")).unwrap();
    });
    let st = d.status_root();
    // One inode: one file and its bytes, like `du` (issue #7: at every level).
    assert_eq!(st["total_files"], 1);
    assert_eq!(st["total_bytes"], 10 * KIB);
    // A link made while chartd runs counts once too, and groups add up to the root.
    fs::hard_link(d.root.join("a/x.png"), d.root.join("a/y.png")).unwrap();
    fs::write(d.root.join("b/z.png"), vec![0u8; 1024]).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["total_files"]
            == 2),
        "{}",
        d.status_root()
    );
    let st = d.status_root();
    assert_eq!(st["total_bytes"], 11 * KIB, "{st}");
    let g = d.request(r#"{"cmd":"groups"}"#);
    let sum: u64 = g["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 11 * KIB, "{g}");
}

#[test]
fn a_file_being_written_is_never_deleted_while_open() {
    use std::io::Write;
    // Constant size pressure from other writers: between two writes of the slow writer, the
    // file it holds open is the oldest one, and only the "open for writing" rule saves it.
    let d = Daemon::start("max_size: 30KiB\ngrace: 0s", |_| {});
    let slow = d.root.join("g/slow.png");
    fs::create_dir_all(slow.parent().unwrap()).unwrap();
    let mut w = fs::File::create(&slow).unwrap();
    for i in 0..40 {
        if i % 3 == 0 {
            w.write_all(&[1u8; 1000]).unwrap();
        }
        write_file(&d.root.join(format!("g/other{i}.png")), 10 * 1024);
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            slow.exists(),
            "deleted while open for writing (iteration {i})"
        );
    }
    assert!(d.status_root()["files_removed"].as_u64().unwrap() > 20);
    drop(w);
    // Closed: now it is an ordinary (oldest) file and goes under the next pressure.
    for i in 0..3 {
        write_file(&d.root.join(format!("g/after{i}.png")), 10 * 1024);
    }
    assert!(
        wait_until(Duration::from_secs(5), || !slow.exists()),
        "{}",
        d.log_text()
    );
}

#[test]
fn clean_once_dry_run_then_for_real() {
    let (dir, root) = workspace();
    for i in 0..6 {
        file(
            &root.join(format!("g{}/c{i}.png", i % 2)),
            100 * KIB,
            hours(10 - i),
        );
    }
    let config = dir.path().join("c.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &dir.path().join("s.sock"),
            "max_size: 400KiB\ngrace: 0s",
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.arg("clean")
            .arg("--once")
            .arg("--config")
            .arg(&config)
            .args(extra);
        for v in CHART_VARS {
            c.env_remove(v);
        }
        c.output().unwrap()
    };
    let o = run(&["--dry-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("would remove "))
            .count(),
        3,
        "{out}"
    );
    assert_eq!(walk_png(&root).0, 6, "dry run deleted something");
    let o = run(&[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("removed ")).count(),
        3,
        "{out}"
    );
    assert_eq!(walk_png(&root), (3, 300 * KIB));
    for i in 0..3 {
        assert!(!root.join(format!("g{}/c{i}.png", i % 2)).exists());
    }
}
