//! Issue #14, "The first hour with chartd", item by item against the real binary, the
//! daemon's side: safe defaults, an unknown ENVIRONMENT, alert levels and `status --check`,
//! what grace holds, and deletions that fail. The client's side (dry-run figures, the root
//! lock, paths, unreachable daemons, socket discovery) is in `tests/first_hour_cli.rs`.
//!
//! May touch: the temp dirs of the daemons it starts (files, modes), the chartd processes it
//! starts (some as uid 65534 with setpriv, when run as root).

mod common;

use common::client_cmd::{chartd, cli, text, KIB};
use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
