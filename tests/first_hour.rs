//! Issue #14, "The first hour with chartd", item by item against the real binary: safe
//! defaults, an unknown ENVIRONMENT, alert levels and `status --check`, dry-run figures, the
//! root lock, and the client's handling of paths and unreachable daemons.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

/// Runs the binary with the replaced system's variables cleared, in `cwd`.
fn chartd(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    for v in CHART_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("CHART_GRACE_SECONDS");
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cli(d: &Daemon, args: &[&str]) -> Output {
    let mut a: Vec<&str> = args.to_vec();
    let sock = d.socket.to_str().unwrap().to_string();
    a.extend(["--socket", &sock]);
    chartd(&a, d.dir.path(), &[])
}

fn tree(root: &Path) {
    for (g, n) in [("AAPL_1d", 4), ("MSFT_1h", 3), ("sess-42", 2)] {
        for i in 0..n {
            file(&root.join(format!("{g}/c{i}.png")), 100 * KIB, hours(1 + i));
        }
    }
}

/// Item 3: without a config file the defaults manage images only; the analysis results
/// (JSON) next to the charts are never candidates, even in a dry run.
#[test]
fn builtin_defaults_manage_images_only() {
    if Path::new("/etc/chartd/chartd.yaml").exists() {
        // The built-in defaults apply only without the system config; this host has one.
        println!("SKIP: /etc/chartd/chartd.yaml exists, the built-in defaults are not in use");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let charts = cwd.path().join("output/charts/AAPL_1d");
    for name in ["chart.png", "result.json", "report.html", "report.pdf"] {
        file(&charts.join(name), 4096, hours(48)); // older than the preset's 24h
    }
    let o = chartd(&["clean", "--once", "--dry-run"], cwd.path(), &[]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("would remove") && out.contains("chart.png"),
        "{out}"
    );
    for data in ["result.json", "report.html", "report.pdf"] {
        assert!(!out.contains(data), "{data} is analysis data:\n{out}");
    }
    // Item 6: what would go is not said to "remain".
    assert!(
        out.contains(
            "would remove 1 files, 4096 bytes; 0 files (0 bytes) would remain; nothing was deleted"
        ),
        "{out}"
    );
    assert!(charts.join("chart.png").exists() && charts.join("result.json").exists());
}

/// Item 4: `ENVIRONMENT` belongs to the application; an unknown value warns and selects the
/// development preset. In the config file `environment:` is chartd's own and stays an error.
#[test]
fn unknown_environment_variable_warns_and_selects_development() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("charts");
    fs::create_dir(&root).unwrap();
    let cfg = dir.path().join("c.yaml");
    fs::write(&cfg, format!("roots:\n  - path: {}\n", root.display())).unwrap();
    let c = cfg.to_str().unwrap();
    let o = chartd(
        &["check-config", "--config", c],
        dir.path(),
        &[("ENVIRONMENT", "test")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("ENVIRONMENT: unknown environment \"test\"; using the development preset"),
        "{err}"
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("max_age: 1d") || out.contains("max_age: 24h"),
        "{out}"
    );
    assert!(out.contains("max_size: 1000MiB"), "{out}");
    fs::write(
        &cfg,
        format!("environment: test\nroots:\n  - path: {}\n", root.display()),
    )
    .unwrap();
    let o = chartd(&["check-config", "--config", c], dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("environment"),
        "{}",
        text(&o.stderr)
    );
    // The daemon starts on it too, and says so in its log.
    let d = Daemon::start_with("", &[("ENVIRONMENT", "test")], |_| {});
    assert_eq!(d.status_root()["max_age_hours"], 24.0);
    assert!(
        d.log_text().contains("unknown environment \"test\""),
        "{}",
        d.log_text()
    );
}

/// Item 4, the fix the warning gives: the variable overrides `environment:` in the file even
/// when chartd does not know its value, so the hint may not send people to the file alone. It
/// says so, and following it (chartd without ENVIRONMENT) lets the file's environment apply.
#[test]
fn unknown_environment_hint_is_one_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("charts");
    fs::create_dir(&root).unwrap();
    let cfg = dir.path().join("c.yaml");
    fs::write(
        &cfg,
        format!(
            "environment: production\nroots:\n  - path: {}\n",
            root.display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = chartd(
        &["check-config", "--explain", "--config", c],
        dir.path(),
        &[("ENVIRONMENT", "test")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        out.contains("environment = development  (variable ENVIRONMENT)"),
        "{out}"
    );
    assert!(
        err.contains("The variable overrides environment: in the config file")
            && err.contains("run chartd without ENVIRONMENT")
            && err.contains("UnsetEnvironment=ENVIRONMENT"),
        "{err}"
    );
    assert!(!err.contains("wins over nothing"), "{err}");
    // Following the hint: the same file, chartd without the variable.
    let o = chartd(
        &["check-config", "--explain", "--config", c],
        dir.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!("environment = production  (file {c})")),
        "{out}"
    );
    assert!(
        out.contains("roots[0].max_size = 200MiB  (preset production)"),
        "{out}"
    );
    assert!(
        !text(&o.stderr).contains("ENVIRONMENT"),
        "{}",
        text(&o.stderr)
    );
    // The other way the hint gives: a value chartd knows, which the variable then selects.
    let o = chartd(
        &["check-config", "--explain", "--config", c],
        dir.path(),
        &[("ENVIRONMENT", "staging")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("environment = staging  (variable ENVIRONMENT)"),
        "{}",
        text(&o.stdout)
    );
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

/// Item 5: a missing root is critical (not OK with FREE 0 B), and `status --check` exits 2.
#[test]
fn a_missing_root_is_critical_and_check_exits_2() {
    let (dir, root) = workspace();
    let missing = root.join("not-yet");
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(&config, config_text(&missing, &socket, "max_size: 1MiB")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(&config);
    let mut child = {
        for v in CHART_VARS {
            cmd.env_remove(v);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let up = wait_until(Duration::from_secs(20), || {
        request_at(&socket, r#"{"cmd":"status"}"#).is_some()
    });
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--socket", socket.to_str().unwrap()]);
        chartd(&a, dir.path(), &[])
    };
    let o = run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap_or_default();
    let r = &v["roots"][0];
    let o2 = run(&["status", "--check"]);
    let human = text(&o2.stdout);
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "chartd did not answer with a missing root");
    assert_eq!(r["alert"], "critical", "{v}");
    assert_eq!(
        r["alert_reasons"],
        serde_json::json!(["root_missing"]),
        "{v}"
    );
    assert_eq!(o2.status.code(), Some(2), "{human}");
    assert!(human.contains("ROOT MISSING"), "{human}");
    // Not "FREE 0 B": the free space of a missing root is unknown.
    assert!(!human.contains("0 B / -"), "{human}");
}

/// Item 5: a root held at its limit, as designed, is ok; a limit that does not hold for
/// longer than grace (here: protected files over max_size) is a warning, and `--check`
/// exits 1.
#[test]
fn alerts_mean_a_limit_is_not_holding() {
    let d = Daemon::start(
        "max_size: 500KiB\ngrace: 1s\nprotect: [\"keep/*\"]",
        |root| {
            for i in 0..4 {
                file(&root.join(format!("g/c{i}.png")), 100 * KIB, hours(1));
            }
        },
    );
    // 400 KiB of 500: held as designed.
    let o = cli(&d, &["status", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let r = d.status_root();
    assert_eq!(r["alert"], "ok", "{r}");
    assert_eq!(r["usage_percent"], 80.0, "{r}");
    // Protected files that chartd may never delete push the root over its limit.
    for i in 0..8 {
        write_file(&d.root.join(format!("keep/k{i}.png")), 100 * 1024);
    }
    assert!(wait_until(Duration::from_secs(10), || d.status_root()
        ["total_bytes"]
        .as_u64()
        > Some(500 * KIB)));
    // Within grace + slack it is still the designed bound...
    let r = d.status_root();
    assert_eq!(r["alert"], "ok", "{r}");
    // ... beyond it, a human must act.
    let ok = wait_until(Duration::from_secs(40), || {
        d.status_root()["alert_reasons"] == serde_json::json!(["limit_not_holding"])
    });
    assert!(ok, "{}", d.status_root());
    assert_eq!(d.status_root()["alert"], "warning");
    let o = cli(&d, &["status", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("limit_not_holding"));
    let m = d.request(r#"{"cmd":"metrics"}"#);
    let m = m["text"].as_str().unwrap();
    let label = format!("root=\"{}\"", d.root.display());
    assert!(
        m.contains(&format!("chartd_root_alert_level{{{label}}} 1\n")),
        "{m}"
    );
    assert!(m.contains(&format!(
        "chartd_root_alert_reason{{{label},reason=\"limit_not_holding\"}} 1\n"
    )));
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

/// Item 1 and 2 of the first hour: what grace holds is shown (files and bytes inside grace,
/// the excess, when the next becomes eligible), and once files leave grace eviction goes down
/// to the low watermark, not just under the limit.
///
/// The files inside grace are counted (a scan of the index) at most once a second. The count
/// that covers the last writes of a burst must still reach `status` although no event follows
/// them: the second burst below lands within a second of the first count, on purpose.
#[test]
fn grace_holding_is_shown_and_the_watermark_is_reached_after_the_block() {
    // Grace is long enough that a loaded CI machine still sees the files inside it: the
    // assertions up to the eviction observe a state that lasts exactly `grace`.
    let d = Daemon::start("max_size: 100KiB\nlow_watermark: 50%\ngrace: 12s", |_| {});
    let grace_files = || d.status_root()["holding"]["blocked"]["grace_files"].clone();
    // 110 KiB of fresh charts: over the limit, all inside grace. The limit is blocked, and the
    // files inside grace are counted, once the last of them is indexed.
    for i in 0..11 {
        write_file(&d.root.join(format!("g/c{i:02}.png")), 10 * KIB as usize);
    }
    assert!(
        wait_until(Duration::from_secs(8), || grace_files() == 11),
        "{}",
        d.status_root()
    );
    // At once (well within the second after that count): 40 KiB more, and then nothing.
    for i in 11..15 {
        write_file(&d.root.join(format!("g/c{i:02}.png")), 10 * KIB as usize);
    }
    let written = Instant::now();
    // Published within about a second of the last change, although no event comes after the
    // last writes (a stale count used to stay until the files left grace).
    assert!(
        wait_until(Duration::from_secs(6), || grace_files() == 15),
        "the count stayed at {} after the last writes: {}",
        grace_files(),
        d.status_root()
    );
    println!(
        "grace_files reached 15 {:?} after the last write",
        written.elapsed()
    );
    let st = d.status_root();
    let b = &st["holding"]["blocked"];
    assert_eq!(b["limit"], "max_size", "{st}");
    assert_eq!(b["cause"], "grace", "{st}");
    assert_eq!(b["excess_bytes"], 50 * KIB, "{st}");
    assert_eq!(b["grace_files"], 15, "{st}");
    assert_eq!(b["grace_bytes"], 150 * KIB, "{st}");
    assert!(
        b["next_eligible_in_seconds"]
            .as_f64()
            .is_some_and(|s| s <= 12.0),
        "{st}"
    );
    assert_eq!(st["files_removed"], 0, "nothing may go inside grace: {st}");
    // Once they leave grace: down to the low watermark (50 KiB), not to just under 100 KiB.
    assert!(
        wait_until(Duration::from_secs(30), || d.status_root()["total_bytes"]
            == 50 * KIB),
        "{}",
        d.status_root()
    );
    let st = d.status_root();
    assert!(st["holding"]["blocked"].is_null(), "{st}");
    assert_eq!(st["files_removed"], 10, "{st}");
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

/// Item 7: with deletions failing with EACCES, the log blamed "every remaining file is in
/// grace" for two-hour-old files. chartd runs as uid 65534 (setpriv) on a root whose group
/// directory belongs to root, so that its deletions really fail with EACCES: the blocked limit
/// names the cause `failing`, nothing is counted inside grace, and the log says that deleting
/// fails, not grace. Once the directory is writable, the same files go.
#[test]
fn failing_deletions_are_blamed_on_the_failure_not_on_grace() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIP: needs root and setpriv to run chartd as uid 65534");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (dir, root) = workspace();
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &socket,
            "max_size: 100KiB\nlow_watermark: 50%\ngrace: 60s",
        ),
    )
    .unwrap();
    chown_to_nobody(dir.path());
    // Created after the chown: `g/` and its charts (two hours old, long out of grace) belong
    // to root, mode 0755, so uid 65534 may read them but not remove a name from `g/`.
    for i in 0..15 {
        file(&root.join(format!("g/c{i:02}.png")), 10 * KIB, hours(2));
    }
    fs::set_permissions(root.join("g"), fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::spawn_as_nobody(dir, root, socket, config);
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["holding"]
            ["blocked"]["cause"]
            == "failing"),
        "{}\n{}",
        d.status_root(),
        d.log_text()
    );
    let st = d.status_root();
    let h = &st["holding"];
    assert_eq!(h["blocked"]["limit"], "max_size", "{st}");
    assert_eq!(h["blocked"]["excess_bytes"], 50 * KIB, "{st}");
    assert_eq!(
        h["blocked"]["grace_files"], 0,
        "nothing is inside grace: {st}"
    );
    assert_eq!(h["failing_files"], 15, "{st}");
    assert_eq!(h["failing_bytes"], 150 * KIB, "{st}");
    assert!(st["errors"].as_u64().is_some_and(|e| e >= 1), "{st}");
    assert_eq!(st["files_removed"], 0, "{st}");
    let reasons = st["alert_reasons"].to_string();
    assert!(reasons.contains("deletions_failing"), "{st}");
    let log = d.log_text();
    assert!(
        log.contains("nothing more may be deleted now: deleting the remaining files fails"),
        "{log}"
    );
    assert!(
        log.contains("cannot delete") && log.contains("Permission denied"),
        "{log}"
    );
    assert!(
        !log.contains("grace period"),
        "grace is not to blame:\n{log}"
    );
    assert_eq!(walk_png(&d.root).0, 15, "every file is still there");
    // Positive control: the same files go once uid 65534 may remove them (`cleanup` retries
    // the held files at once), down to the low watermark.
    Command::new("chown")
        .args(["65534:65534"])
        .arg(d.root.join("g"))
        .status()
        .unwrap();
    d.request(r#"{"cmd":"cleanup"}"#);
    assert!(
        wait_until(Duration::from_secs(10), || d.status_root()["total_bytes"]
            == 50 * KIB),
        "{}\n{}",
        d.status_root(),
        d.log_text()
    );
    assert!(d.status_root()["holding"]["blocked"].is_null());
    assert_eq!(walk_png(&d.root).0, 5);
}
