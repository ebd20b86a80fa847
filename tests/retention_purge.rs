//! Issue 11, "Also": `purge` by a glob of groups and `--include-young`, `STORAGE_CHARTS_PATH`,
//! and `average_file_age_hours`, against the real binary, asserting on the disk.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const KIB: u64 = 1024;

fn cli(d: &Daemon, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(&d.socket)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The managed (`*.png`) files on disk, relative to `root`, sorted.
fn pngs(root: &Path) -> Vec<String> {
    disk_png(root).into_keys().collect()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Old charts of several symbols, a near miss of the glob, analysis data, and one fresh chart.
fn symbols(root: &Path) {
    for (g, n) in [
        ("RELIANCE_1d", 3),
        ("RELIANCE_1h", 2),
        ("TCS_1d", 2),
        ("RELIANCE", 1),
        ("XRELIANCE_1d", 1),
    ] {
        for i in 0..n {
            file(&root.join(format!("{g}/c{i}.png")), 10 * KIB, hours(2 + i));
        }
    }
    file(&root.join("RELIANCE_1h/deep/er/d.png"), 10 * KIB, hours(3));
    file(&root.join("RELIANCE_1h/result.json"), KIB, hours(5));
    file(&root.join("top.png"), KIB, hours(9));
    // Inside grace (1h): stays unless --include-young.
    file(&root.join("RELIANCE_1d/fresh.png"), KIB, Duration::ZERO);
}

#[test]
fn purge_by_glob_removes_exactly_the_matching_groups_old_charts() {
    let d = Daemon::start("grace: 1h", symbols);
    // A dry run lists what the glob takes and deletes nothing.
    let dry = d.request(r#"{"cmd":"purge","group":"RELIANCE_*","dry_run":true}"#);
    assert_eq!(dry["ok"], true, "{dry}");
    assert_eq!(dry["would_remove"], 6, "{dry}");
    assert_eq!(dry["groups_matched"], 2, "{dry}");
    assert_eq!(pngs(&d.root).len(), 12);

    let p = d.request(r#"{"cmd":"purge","group":"RELIANCE_*"}"#);
    assert_eq!(p["ok"], true, "{p}");
    assert_eq!(p["files_removed"], 6, "{p}");
    assert_eq!(p["bytes_freed"], 60 * KIB, "{p}");
    assert_eq!(p["groups_matched"], 2, "{p}");
    assert_eq!(p["skipped"], 1, "the fresh chart: {p}");
    assert_eq!(p["skipped_in_grace"], 1, "{p}");
    assert_eq!(
        pngs(&d.root),
        sorted(&[
            "RELIANCE/c0.png",
            "RELIANCE_1d/fresh.png",
            "TCS_1d/c0.png",
            "TCS_1d/c1.png",
            "XRELIANCE_1d/c0.png",
            "top.png",
        ]),
        "{p}"
    );
    assert!(
        d.root.join("RELIANCE_1h/result.json").exists(),
        "unmanaged files stay"
    );
    assert!(
        !d.root.join("RELIANCE_1h/deep").exists(),
        "the emptied directories are pruned"
    );

    // The CLI says how many groups matched; a literal name is one group, as before.
    let o = cli(&d, &["purge", "TCS_*", "--dry-run"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains(
            "dry run: would remove 2 files, 20.0 KiB; nothing was deleted\n  1 group matched\n"
        ),
        "{out}"
    );
    let o = cli(&d, &["purge", "XRELIANCE_1d", "--json"]);
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(
        (v["files_removed"].as_u64(), v["groups_matched"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert!(!d.root.join("XRELIANCE_1d").exists());

    // No match: the "no group" error, exit 1, nothing touched.
    for pattern in ["NOPE_*", "NOPE"] {
        let o = cli(&d, &["purge", pattern]);
        assert_eq!(o.status.code(), Some(1), "{pattern}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("no group \"{pattern}\" (see `chartd groups`)")),
            "{err}"
        );
    }
    // An invalid glob names the problem.
    let bad = d.request(r#"{"cmd":"purge","group":"RELIANCE_[1"}"#);
    assert_eq!(bad["ok"], false, "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("invalid glob"),
        "{bad}"
    );
    assert_eq!(pngs(&d.root).len(), 5);
}

/// A group named exactly like a glob is that group, not what the glob matches.
#[test]
fn a_group_named_like_a_glob_is_purged_as_itself() {
    let d = Daemon::start("grace: 0s", |root| {
        file(&root.join("a[1]/c.png"), KIB, hours(2));
        file(&root.join("a1/c.png"), KIB, hours(2));
    });
    let p = d.request(r#"{"cmd":"purge","group":"a[1]"}"#);
    assert_eq!(
        (p["files_removed"].as_u64(), p["groups_matched"].as_u64()),
        (Some(1), Some(1)),
        "{p}"
    );
    assert_eq!(pngs(&d.root), sorted(&["a1/c.png"]));
    // Gone, the same text is a glob again, matching a1.
    let p = d.request(r#"{"cmd":"purge","group":"a[1]"}"#);
    assert_eq!(p["files_removed"], 1, "{p}");
    assert!(pngs(&d.root).is_empty());
}

/// `--include-young` also takes the files inside grace; a file open for writing, a flocked file
/// and a protected file still stay, and are counted as skipped.
///
/// The young files are written while chartd watches, as an application writes them: chartd
/// sees their writers close them. (Files a crawl finds modified within grace may still be open
/// for all chartd knows, so they count as being written until grace has passed.)
#[test]
fn include_young_takes_fresh_files_but_not_open_locked_or_protected_ones() {
    let d = Daemon::start("grace: 1h\nprotect: [\"keep-*.png\"]", |root| {
        file(&root.join("sess-1/old.png"), KIB, hours(2));
    });
    for name in [
        "sess-1/fresh1.png",
        "sess-1/fresh2.png",
        "sess-1/locked.png",
        "sess-1/keep-me.png",
        "sess-2/fresh.png",
    ] {
        write_file(&d.root.join(name), KIB as usize);
    }
    let locked = fs::File::open(d.root.join("sess-1/locked.png")).unwrap();
    rustix::fs::flock(&locked, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // A writer that has written and not closed yet. Once chartd has indexed its write, it has
    // seen the other writers close their files too (one inotify queue, in order).
    let mut writer = fs::File::create(d.root.join("sess-1/writing.png")).unwrap();
    writer.write_all(&[7u8; 3000]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            d.request(r#"{"cmd":"list","group":"sess-1"}"#)["files"]
                .as_array()
                .is_some_and(|f| {
                    f.iter().any(|f| {
                        f["path"]
                            .as_str()
                            .is_some_and(|p| p.ends_with("/writing.png"))
                            && f["bytes"] == 3000
                    })
                })
        }),
        "the write was not indexed; log:\n{}",
        d.log_text()
    );

    // Without --include-young: only the old chart; the young ones are skipped in grace.
    let o = cli(&d, &["purge", "sess-*", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let p: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(p["files_removed"], 1, "{p}");
    assert_eq!(p["groups_matched"], 2, "{p}");
    // fresh1, fresh2, locked, writing (in grace), keep-me (protected) and sess-2's fresh.
    assert_eq!(p["skipped"], 6, "{p}");
    assert_eq!(p["skipped_in_grace"], 5, "{p}");
    assert!(!d.root.join("sess-1/old.png").exists());
    assert!(d.root.join("sess-1/fresh1.png").exists());

    // With it: the young files go; open, locked and protected ones stay, counted.
    let o = cli(&d, &["purge", "sess-1", "--include-young"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains("removed 2 files, freed 2.0 KiB\n"), "{out}");
    assert!(out.contains("  1 group matched\n"), "{out}");
    assert!(
        out.contains("skipped 3 files (protected, in grace, being written or locked)"),
        "{out}"
    );
    assert_eq!(
        pngs(&d.root),
        sorted(&[
            "sess-1/keep-me.png",
            "sess-1/locked.png",
            "sess-1/writing.png",
            "sess-2/fresh.png",
        ]),
        "{out}"
    );
    let p = d.request(r#"{"cmd":"purge","group":"sess-1","include_young":true}"#);
    assert_eq!(
        (
            p["files_removed"].as_u64(),
            p["skipped"].as_u64(),
            p["skipped_in_grace"].as_u64()
        ),
        (Some(0), Some(3), Some(0)),
        "{p}"
    );
    // Closed by its writer, the file goes with the next purge. (The flocked one was found
    // locked and is left alone for a while, like any locked file; it is still locked here.)
    drop(writer);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let p = d.request(r#"{"cmd":"purge","group":"sess-1","include_young":true}"#);
            p["ok"] == true && !d.root.join("sess-1/writing.png").exists()
        }),
        "log:\n{}",
        d.log_text()
    );
    assert!(d.root.join("sess-1/locked.png").exists());
    assert!(
        d.root.join("sess-1/keep-me.png").exists(),
        "protected, always"
    );
    assert!(d.root.join("sess-2/fresh.png").exists());
    drop(locked);
}

/// A daemon whose config names `root/` of its workspace, with each variable set to another
/// directory of the workspace (`name` → `workspace/name`). `setup` gets the workspace; the
/// daemon's `root` is `workspace/governs`.
fn env_daemon(vars: &[(&str, &str)], governs: &str, setup: impl FnOnce(&Path)) -> Daemon {
    let (dir, root) = workspace();
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(&config, config_text(&root, &socket, "grace: 0s")).unwrap();
    setup(dir.path());
    let env: Vec<(&str, String)> = vars
        .iter()
        .map(|(k, name)| (*k, dir.path().join(name).display().to_string()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let governed = dir.path().join(governs);
    Daemon::spawn(dir, governed, socket, config, &env)
}

#[test]
fn storage_charts_path_selects_the_root_and_chart_output_dir_wins() {
    // STORAGE_CHARTS_PATH alone: it is the first root, not the config's.
    let d = env_daemon(&[("STORAGE_CHARTS_PATH", "storage")], "storage", |w| {
        file(&w.join("root/g/in-config-root.png"), KIB, hours(1));
        file(&w.join("storage/g/a.png"), KIB, hours(1));
        file(&w.join("storage/g/b.png"), KIB, hours(1));
    });
    let st = d.request(r#"{"cmd":"status"}"#);
    assert_eq!(st["roots"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["roots"][0]["path"], d.root.display().to_string(), "{st}");
    assert_eq!(st["roots"][0]["total_files"], 2, "{st}");
    let p = d.request(r#"{"cmd":"purge","group":"g"}"#);
    assert_eq!(p["files_removed"], 2, "{p}");
    assert!(pngs(&d.root).is_empty());
    assert!(d.dir.path().join("root/g/in-config-root.png").exists());
    drop(d);

    // Both set: CHART_OUTPUT_DIR wins, and the log says STORAGE_CHARTS_PATH was ignored.
    let d = env_daemon(
        &[
            ("STORAGE_CHARTS_PATH", "storage"),
            ("CHART_OUTPUT_DIR", "out"),
        ],
        "out",
        |w| {
            file(&w.join("storage/g/a.png"), KIB, hours(1));
            for p in ["out/g/a.png", "out/h/a.png", "out/h/b.png"] {
                file(&w.join(p), KIB, hours(1));
            }
        },
    );
    let st = d.status_root();
    assert_eq!(st["path"], d.root.display().to_string(), "{st}");
    assert_eq!(st["total_files"], 3, "{st}");
    let log = d.log_text();
    assert!(
        log.contains("STORAGE_CHARTS_PATH=")
            && log.contains("is ignored: CHART_OUTPUT_DIR is set too"),
        "{log}"
    );
}

fn check_config(file: &Path, env: &[(&str, &str)], explain: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").arg("--config").arg(file);
    if explain {
        cmd.arg("--explain");
    }
    scrub_env(&mut cmd);
    cmd.env_remove("CHART_GRACE_SECONDS");
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// Errors about the path name the variable that supplied it; `--explain` names it as the source.
#[test]
fn check_config_names_the_variable_that_set_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("chartd.yaml");
    fs::write(&cfg, "roots:\n  - path: /srv/from-file\n").unwrap();
    let storage = dir.path().join("storage");
    let out = dir.path().join("out");
    fs::create_dir_all(&storage).unwrap();
    fs::create_dir_all(&out).unwrap();
    let (s, o) = (storage.to_str().unwrap(), out.to_str().unwrap());

    let r = check_config(&cfg, &[("STORAGE_CHARTS_PATH", s)], true);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let want = format!("roots[0].path = {s}  (variable STORAGE_CHARTS_PATH)");
    assert!(text(&r.stdout).contains(&want), "{}", text(&r.stdout));

    let r = check_config(
        &cfg,
        &[("STORAGE_CHARTS_PATH", s), ("CHART_OUTPUT_DIR", o)],
        true,
    );
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let want = format!("roots[0].path = {o}  (variable CHART_OUTPUT_DIR)");
    assert!(text(&r.stdout).contains(&want), "{}", text(&r.stdout));
    assert!(
        text(&r.stderr).contains("STORAGE_CHARTS_PATH=") && text(&r.stderr).contains("is ignored"),
        "{}",
        text(&r.stderr)
    );

    let r = check_config(&cfg, &[("STORAGE_CHARTS_PATH", "/")], false);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr)
            .contains("STORAGE_CHARTS_PATH: the filesystem root / cannot be a managed root"),
        "{}",
        text(&r.stderr)
    );
    let r = check_config(
        &cfg,
        &[("STORAGE_CHARTS_PATH", s), ("CHART_OUTPUT_DIR", "/")],
        false,
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("CHART_OUTPUT_DIR: the filesystem root"),
        "{}",
        text(&r.stderr)
    );
}

fn average_hours(d: &Daemon) -> Option<f64> {
    d.status_root()["average_file_age_hours"].as_f64()
}

/// The mean age of the managed files, each counted once, kept as files come and go.
#[test]
fn average_file_age_hours_is_the_mean_age_of_the_managed_files() {
    let d = Daemon::start("grace: 0s", |root| {
        file(&root.join("g/a.png"), KIB, hours(1));
        file(&root.join("g/b.png"), KIB, hours(3));
        file(&root.join("h/c.png"), KIB, hours(8));
        // Not managed: not in the mean.
        file(&root.join("g/result.json"), KIB, hours(100));
    });
    // A second name of c.png: one file on disk, counted once.
    fs::hard_link(d.root.join("h/c.png"), d.root.join("g/c-link.png")).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || d
            .index_png()
            .contains_key("g/c-link.png")),
        "{}",
        d.log_text()
    );
    let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() <= 0.02);
    assert!(near(average_hours(&d), 4.0), "{}", d.status_root());

    // The CLI's JSON and the metrics carry it too.
    let o = cli(&d, &["status", "--json"]);
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert!(
        near(v["roots"][0]["average_file_age_hours"].as_f64(), 4.0),
        "{v}"
    );
    let m = d.request(r#"{"cmd":"metrics"}"#);
    let line = m["text"]
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("chartd_average_file_age_seconds{"))
        .map(str::to_string)
        .unwrap_or_default();
    let secs: f64 = line.rsplit(' ').next().unwrap_or("").parse().unwrap_or(0.0);
    assert!((secs - 4.0 * 3600.0).abs() < 60.0, "{line}");

    // Gone with its group (both names), the 8-hour file leaves the mean: (1 + 3) / 2.
    for name in ["h", "g/c-link.png"] {
        let path = d.root.join(name);
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || near(average_hours(&d), 2.0)),
        "{}",
        d.status_root()
    );
    // A new chart (age 0): (1 + 3 + 0) / 3.
    write_file(&d.root.join("g/new.png"), 100);
    assert!(
        wait_until(Duration::from_secs(10), || near(
            average_hours(&d),
            4.0 / 3.0
        )),
        "{}",
        d.status_root()
    );
    // No files: null.
    let p = d.request(r#"{"cmd":"purge","group":"g"}"#);
    assert_eq!(p["files_removed"], 3, "{p}");
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()
            ["average_file_age_hours"]
            .is_null()),
        "{}",
        d.status_root()
    );
}
