//! Retention rules (issue #11) against the real daemon: per-group ages, eviction order under
//! pressure, group quotas, keep_newest, max_files, an inode floor, rules applied on SIGHUP,
//! and what `groups` and `check-config` say about them. Every test asserts on the disk.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets, and a small tmpfs it mounts over its own temporary root and unmounts on drop
//! (root only; skips otherwise).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

fn gone(p: &Path) -> bool {
    !p.exists()
}

/// A file's expiry follows its group's rule: a 2 s rule deletes at 2 s after the mtime (not
/// before), the root's 1 h leaves its group alone, and a rule's `max_age: 0` means no age
/// limit at all, even for a file days old.
#[test]
fn each_group_ages_by_its_rule() {
    let d = Daemon::start(
        "max_age: 1h\ngrace: 0s\nrules: [{match: \"*_1min\", max_age: 2s}, {match: \"ARCHIVE\", max_age: 0}]",
        |root| {
            file(&root.join("ARCHIVE/old.png"), KIB, hours(24 * 5));
            file(&root.join("TCS_1d/old.png"), KIB, hours(2));
            file(&root.join("TCS_1d/young.png"), KIB, Duration::from_secs(60));
        },
    );
    let short = d.root.join("TCS_1min/c.png");
    write_file(&short, 1000);
    let written = Instant::now();
    // The 2 h old chart of a 1 h group goes at once; the 5-day archive stays.
    assert!(wait_until(Duration::from_secs(5), || gone(
        &d.root.join("TCS_1d/old.png")
    )));
    assert!(
        wait_until(Duration::from_secs(6), || gone(&short)),
        "the 2 s rule never expired the chart: {}",
        d.log_text()
    );
    let took = written.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "deleted early: {took:?}"
    );
    assert!(
        d.root.join("ARCHIVE/old.png").exists(),
        "max_age 0 = no limit"
    );
    assert!(d.root.join("TCS_1d/young.png").exists());
    let st = d.status_root();
    assert_eq!(st["removed_by_reason"]["age"], 2, "{st}");
}

/// Under size pressure files go soonest-expiry first: the old charts of a seven-day group
/// outlast newer charts of a one-hour group; files with no age limit go after every file that
/// has one.
#[test]
fn pressure_evicts_soonest_expiry_first() {
    let d = Daemon::start(
        "max_age: 6h\nmax_size: 1000KiB\nlow_watermark: 70%\ngrace: 0s\nrules: [{match: \"LONG_*\", max_age: 7d}, {match: \"SHORT_*\", max_age: 1h}, {match: \"KEEP\", max_age: 0}]",
        |root| {
            // Watched before the test writes into it (a file found by reading a new directory
            // counts as being written for 2 s, and would be held).
            fs::create_dir(root.join("PLAIN")).unwrap();
            // 10 × 100 KiB = exactly the limit.
            for i in 0..3u64 {
                file(&root.join(format!("LONG_1d/l{i}.png")), 100 * KIB, hours(5 - i));
                file(&root.join(format!("KEEP/k{i}.png")), 100 * KIB, hours(50 - i));
            }
            for i in 0..4u64 {
                // Expire within the next 50 minutes: sooner than anything else.
                let age = Duration::from_secs(600 + 60 * i);
                file(&root.join(format!("SHORT_1min/s{i}.png")), 100 * KIB, age);
            }
        },
    );
    assert_eq!(d.status_root()["total_files"], 10);
    // 100 KiB more: 1100 KiB > 1000 KiB, down to 700 KiB: four files go, the four SHORT ones.
    write_file(&d.root.join("PLAIN/new.png"), 100 * KIB as usize);
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["total_bytes"]
            == 700 * KIB),
        "{}",
        d.status_root()
    );
    for i in 0..4 {
        assert!(gone(&d.root.join(format!("SHORT_1min/s{i}.png"))));
    }
    for i in 0..3 {
        assert!(d.root.join(format!("LONG_1d/l{i}.png")).exists());
        assert!(d.root.join(format!("KEEP/k{i}.png")).exists());
    }
    // 400 KiB more crosses the limit again (1100 KiB), down to 700 KiB: the new PLAIN chart
    // (expires in 6 h) goes first, then the seven-day group's old charts; the no-age files
    // (days older) stay. A fifth chart then brings the total to 800 KiB, under the limit.
    for i in 0..5 {
        write_file(
            &d.root.join(format!("LONG_1d/n{i}.png")),
            100 * KIB as usize,
        );
        if i == 3 {
            assert!(
                wait_until(Duration::from_secs(10), || d.status_root()["total_bytes"]
                    == 700 * KIB),
                "{}",
                d.status_root()
            );
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["total_bytes"]
            == 800 * KIB),
        "{}",
        d.status_root()
    );
    // The oldest file is a no-age one, 50 h old (not the head of the queue).
    assert!(
        d.status_root()["oldest_file_age_hours"]
            .as_f64()
            .is_some_and(|h| (h - 50.0).abs() < 0.1),
        "{}",
        d.status_root()
    );
    assert!(gone(&d.root.join("PLAIN/new.png")));
    for i in 0..3 {
        assert!(gone(&d.root.join(format!("LONG_1d/l{i}.png"))), "l{i}");
        assert!(d.root.join(format!("KEEP/k{i}.png")).exists(), "k{i}");
    }
    assert_eq!(d.status_root()["removed_by_reason"]["size"], 8);
}

/// A group over its quota loses its own oldest files, down to the low watermark of the
/// quota, the moment it crosses it; other groups (older, bigger) are untouched.
#[test]
fn a_quota_trims_only_its_group() {
    let d = Daemon::start(
        "grace: 0s\nlow_watermark: 50%\nrules: [{match: \"sess-*\", group_max_files: 4}]",
        |root| {
            for i in 0..4u64 {
                file(&root.join(format!("sess-a/c{i}.png")), KIB, hours(10 - i));
                file(&root.join(format!("other/c{i}.png")), KIB, hours(20 - i));
            }
            for i in 0..6u64 {
                file(&root.join(format!("sess-b/c{i}.png")), KIB, hours(30 - i));
            }
        },
    );
    // sess-b was over at start (6 > 4): down to 2 (50 % of 4), its oldest first.
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["total_files"]
            == 10),
        "{}",
        d.status_root()
    );
    for i in 0..4 {
        assert!(
            gone(&d.root.join(format!("sess-b/c{i}.png"))),
            "sess-b/c{i}"
        );
    }
    // sess-a is at its quota: one more crosses it, and it goes down to 2.
    write_file(&d.root.join("sess-a/new.png"), KIB as usize);
    assert!(wait_until(Duration::from_secs(5), || gone(
        &d.root.join("sess-a/c2.png")
    )));
    assert!(gone(&d.root.join("sess-a/c0.png")) && gone(&d.root.join("sess-a/c1.png")));
    assert!(d.root.join("sess-a/c3.png").exists());
    assert!(d.root.join("sess-a/new.png").exists());
    for i in 0..4 {
        assert!(
            d.root.join(format!("other/c{i}.png")).exists(),
            "other/c{i}"
        );
    }
    let st = d.status_root();
    assert_eq!(st["removed_by_reason"]["quota"], 7, "{st}");
    // groups --json: the rule, the quota and its share in use.
    let g = d.request(r#"{"cmd":"groups","sort":"name"}"#);
    let rows = g["groups"].as_array().unwrap();
    let a = rows.iter().find(|r| r["name"] == "sess-a").unwrap();
    assert_eq!(a["rule"], "sess-*");
    assert_eq!(a["quota_files"], 4);
    assert_eq!(a["quota_percent"], 50.0);
    let o = rows.iter().find(|r| r["name"] == "other").unwrap();
    assert!(o["rule"].is_null() && o["quota_percent"].is_null(), "{o}");
}

/// keep_newest: the newest N charts of a group survive their age expiry, and go last under
/// pressure.
#[test]
fn keep_newest_survives_the_age_limit() {
    let d = Daemon::start("max_age: 1h\ngrace: 0s\nkeep_newest: 2", |root| {
        for i in 0..5u64 {
            file(&root.join(format!("AAPL_1d/c{i}.png")), KIB, hours(10 - i));
        }
        file(&root.join("MSFT_1d/only.png"), KIB, hours(30));
    });
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["total_files"]
            == 3),
        "{}",
        d.status_root()
    );
    for i in 0..3 {
        assert!(gone(&d.root.join(format!("AAPL_1d/c{i}.png"))), "c{i}");
    }
    assert!(d.root.join("AAPL_1d/c3.png").exists());
    assert!(d.root.join("AAPL_1d/c4.png").exists());
    assert!(
        d.root.join("MSFT_1d/only.png").exists(),
        "its group's newest"
    );
    // A new chart displaces the older kept one, which is then past its age: it goes.
    write_file(&d.root.join("AAPL_1d/new.png"), KIB as usize);
    assert!(wait_until(Duration::from_secs(5), || gone(
        &d.root.join("AAPL_1d/c3.png")
    )));
    assert!(d.root.join("AAPL_1d/c4.png").exists());
    assert!(d.root.join("AAPL_1d/new.png").exists());
}

/// max_files: once crossed, down to low_watermark × max_files, oldest first.
#[test]
fn max_files_evicts_down_to_the_watermark() {
    let d = Daemon::start("grace: 0s\nmax_files: 10\nlow_watermark: 60%", |root| {
        for i in 0..10u64 {
            file(&root.join(format!("G/c{i}.png")), KIB, hours(20 - i));
        }
    });
    assert_eq!(d.status_root()["total_files"], 10);
    write_file(&d.root.join("G/new.png"), KIB as usize);
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["total_files"]
            == 6),
        "{}",
        d.status_root()
    );
    for i in 0..5 {
        assert!(gone(&d.root.join(format!("G/c{i}.png"))), "c{i}");
    }
    assert!(d.root.join("G/new.png").exists());
    assert_eq!(d.status_root()["removed_by_reason"]["count"], 5);
}

/// min_free_inodes on a small tmpfs (`nr_inodes`): once free inodes fall under the floor,
/// charts go oldest first until the floor is restored with the low watermark's margin.
#[test]
fn an_inode_floor_on_a_small_tmpfs() {
    if !is_root() {
        eprintln!("SKIP: mounting a tmpfs needs root");
        return;
    }
    let (dir, root) = workspace();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m,nr_inodes=200", "chartd-test"])
        .arg(&root)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(root.clone());
    for i in 0..150u64 {
        file(&root.join(format!("G/c{i:03}.png")), 100, hours(200 - i));
    }
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &socket,
            "grace: 0s\nmin_free_inodes: 30\nlow_watermark: 50%",
        ),
    )
    .unwrap();
    let d = Daemon::spawn(dir, root.clone(), socket, config, &[]);
    // 200 inodes: the root, G and 150 files leave 48 free; writing 30 more leaves 18 < 30:
    // evict until 45 (30 × 1.5) are free.
    for i in 0..30 {
        write_file(&root.join(format!("G/new{i:02}.png")), 100);
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let st = d.status_root();
            st["removed_by_reason"]["inodes"].as_u64().unwrap_or(0) > 0
                && st["holding"]["blocked"].is_null()
        }),
        "{}",
        d.status_root()
    );
    let free = {
        let out = Command::new("df")
            .arg("--output=iavail")
            .arg(&root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    };
    assert!(free >= 30, "floor not restored: {free} inodes free");
    // Oldest first: the first files written at start went, the new ones stay.
    assert!(gone(&root.join("G/c000.png")));
    for i in 0..30 {
        assert!(root.join(format!("G/new{i:02}.png")).exists(), "new{i}");
    }
    drop(d);
}

/// SIGHUP applies new rules to the indexed files without a re-crawl: a group that gets a
/// 1 s rule loses its old charts at once, and the resync counter does not move.
#[test]
fn sighup_applies_new_rules_in_place() {
    let d = Daemon::start("max_age: 6h\ngrace: 0s", |root| {
        file(&root.join("TCS_1min/a.png"), KIB, hours(2));
        file(&root.join("TCS_1d/a.png"), KIB, hours(2));
    });
    let before = d.status_root();
    d.rewrite_config("max_age: 6h\ngrace: 0s\nrules: [{match: \"*_1min\", max_age: 1h}]");
    d.signal(1);
    assert!(
        wait_until(Duration::from_secs(5), || gone(
            &d.root.join("TCS_1min/a.png")
        )),
        "{}",
        d.log_text()
    );
    assert!(d.root.join("TCS_1d/a.png").exists());
    let after = d.status_root();
    assert_eq!(after["resyncs"], before["resyncs"], "no re-crawl: {after}");
    let g = d.request(r#"{"cmd":"groups","sort":"name"}"#);
    assert_eq!(g["groups"][0]["name"], "TCS_1d");
    assert!(g["groups"][0]["rule"].is_null());
}

/// A rule's `protect: true` protects its groups; rules are validated like every key.
#[test]
fn protect_rules_and_validation() {
    let d = Daemon::start(
        "max_age: 1h\ngrace: 0s\nrules: [{match: \"golden*\", protect: true}]",
        |root| {
            file(&root.join("golden_set/a.png"), KIB, hours(5));
            file(&root.join("plain/a.png"), KIB, hours(5));
        },
    );
    assert!(wait_until(Duration::from_secs(5), || gone(
        &d.root.join("plain/a.png")
    )));
    assert!(d.root.join("golden_set/a.png").exists());
    assert_eq!(d.status_root()["holding"]["protected_files"], 1);
    // check-config: which rule each existing group follows.
    let o = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("golden_set: rules[0] \"golden*\""), "{out}");
    assert!(out.contains("plain: (no rule"), "{out}");
    // An unknown key in a rule names the rule's index and the line.
    let bad = d.dir.path().join("bad.yaml");
    fs::write(
        &bad,
        format!(
            "roots:\n  - path: {}\n    rules:\n      - match: a\n      - match: b\n        max_agee: 1h\n",
            d.root.display()
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rules[1]") && err.contains("max_agee"),
        "{err}"
    );
    assert!(err.contains("line 6"), "{err}");
}
