//! Runs the real binary: `chartd check-config --config FILE`.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets; it runs `chartd check-config` on its own files.

use std::io::Write;
use std::process::{Command, Output};

/// Environment variables of the replaced system, cleared so the host cannot leak into tests.
const VARS: &[&str] = &[
    "CHART_OUTPUT_DIR",
    "STORAGE_CHARTS_PATH",
    "CHART_MAX_AGE_HOURS",
    "CHART_MAX_SIZE_MB",
    "CHART_CLEANUP_INTERVAL_MINUTES",
    "CHART_ENABLE_CLEANUP",
    "CHART_GRACE_SECONDS",
    "ENVIRONMENT",
];

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn check_config(text: &str, vars: &[(&str, &str)]) -> (Output, tempfile::NamedTempFile) {
    let f = config_file(text);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartd"));
    cmd.arg("check-config").arg("--config").arg(f.path());
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied());
    (cmd.output().unwrap(), f)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const VALID: &str = "\
roots:
  - path: /srv/charts
    max_age: 6h
    max_size: 200MiB
";

#[test]
fn valid_config_prints_effective_yaml() {
    let (o, _f) = check_config(VALID, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "- path: /srv/charts",
        "max_age: 6h",
        "max_size: 200MiB",
        "low_watermark: 90%",
        "resync_interval: 1h",
        "cleanup_enabled: true",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // /srv/charts does not exist on a test host: the only remark is that warning.
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("chartd: warning: ") && err.contains("does not exist and create is false"),
        "{err}"
    );
}

/// Issue #14, item 8: traps are accepted (exit 0) but each gets a warning on stderr that
/// names the key (and line) and says how to fix it; stdout stays the effective YAML.
#[test]
fn check_config_warns_about_traps_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("charts");
    std::fs::create_dir(&present).unwrap();
    let missing = dir.path().join("missing");
    let text = format!(
        "roots:\n  - path: {}\n    max_age: 6\n    max_size: 200MB\n  - path: {}\n    max_age: 30s\n    grace: 2m\n",
        present.display(),
        missing.display()
    );
    let (o, f) = check_config(&text, &[("CHART_MAX_SIZE_MB", "")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let file = f.path().display().to_string();
    for want in [
        "roots[0].max_age: 6 at line 3 is 6 seconds (a bare number is seconds). Fix: write the unit, e.g. 6h",
        "roots[0].max_size: \"200MB\" at line 4 uses the decimal unit MB",
        "Fix: write 200MiB",
        "roots[1].path: ",
        "does not exist and create is false",
        "Fix: create it (mkdir -p ",
        "roots[1]: max_age (30s) is below grace (2m)",
        // max_age: 6 is below the default grace of 60 s too.
        "roots[0]: max_age (6s) is below grace (10s)",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    for line in err.lines() {
        assert!(
            line.starts_with(&format!("chartd: warning: {file}: ")),
            "{line}"
        );
    }
    assert!(stdout(&o).contains("max_size: 200MB") || stdout(&o).contains("max_size: 200000000"));
    // A clean config has no warnings.
    let clean = format!(
        "roots:\n  - path: {}\n    max_age: 6h\n    max_size: 200MiB\n",
        present.display()
    );
    let (o, _f) = check_config(&clean, &[]);
    assert_eq!(stderr(&o), "");
}

/// Issue #14, item 8: `--explain` says where each effective value came from.
#[test]
fn explain_names_the_source_of_each_value() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("charts");
    std::fs::create_dir(&root).unwrap();
    let f = config_file(&format!(
        "environment: production\nroots:\n  - path: {}\n    max_age: 2h\n",
        root.display()
    ));
    let o = Command::new(env!("CARGO_BIN_EXE_chartd"))
        .args(["check-config", "--explain", "--config"])
        .arg(f.path())
        .env_remove("ENVIRONMENT")
        .env_remove("CHART_MAX_AGE_HOURS")
        .env_remove("CHART_OUTPUT_DIR")
        .env("CHART_MAX_SIZE_MB", "50")
        .env("CHART_GRACE_SECONDS", "5")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let file = format!("(file {})", f.path().display());
    for want in [
        format!("environment = production  {file}"),
        format!("roots[0].max_age = 2h  {file}"),
        "roots[0].max_size = 50MiB  (variable CHART_MAX_SIZE_MB)".to_string(),
        "roots[0].grace = 5s  (variable CHART_GRACE_SECONDS)".to_string(),
        "resync_interval = 15m  (preset production)".to_string(),
        "roots[0].low_watermark = 90%  (default)".to_string(),
        "roots[0].include = *.png, *.jpg, *.jpeg, *.svg, *.webp, *.gif  (default)".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
}

#[test]
fn printed_yaml_is_accepted_back_unchanged() {
    let (o, _f) = check_config(VALID, &[("ENVIRONMENT", "staging")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = stdout(&o);
    let (o, _f) = check_config(&first, &[("ENVIRONMENT", "staging")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), first);
}

#[test]
fn bad_value_names_key_and_line() {
    let (o, f) = check_config(
        "roots:\n  - path: /srv/charts\n    max_size: 20 0MiB\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("chartd: "), "{err}");
    assert!(err.contains(&f.path().display().to_string()), "{err}");
    assert!(err.contains("roots[0].max_size"), "{err}");
    assert!(err.contains("line 3 column 15"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn unknown_key_is_rejected() {
    let (o, _f) = check_config("roots:\n  - path: /srv/charts\n    max_sise: 1\n", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("unknown field `max_sise`") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn env_override_is_visible() {
    let (o, _f) = check_config(VALID, &[("CHART_MAX_SIZE_MB", "50")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("max_size: 50MiB"), "{}", stdout(&o));
}

#[test]
fn bad_env_value_names_the_variable() {
    let (o, _f) = check_config(VALID, &[("CHART_MAX_SIZE_MB", "abc")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("CHART_MAX_SIZE_MB: invalid number \"abc\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn production_preset_fills_max_age() {
    let (o, _f) = check_config(
        "roots:\n  - path: /srv/charts\n",
        &[("ENVIRONMENT", "production")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("environment: production"), "{out}");
    assert!(out.contains("max_age: 6h"), "{out}");
    assert!(out.contains("max_size: 200MiB"), "{out}");
    assert!(out.contains("resync_interval: 15m"), "{out}");
}

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_chartd"))
        .arg("check-config")
        .arg("--config")
        .arg(dir.path().join("nope.yaml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read config file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn client_subcommands_are_wired() {
    // `status` is the control client (src/client, issue 3): with no daemon it exits 3, not 2.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_chartd"))
        .arg("status")
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
}
