//! Runs the real binary: `chartd check-config --config FILE`.

use std::io::Write;
use std::process::{Command, Output};

/// Environment variables of the replaced system, cleared so the host cannot leak into tests.
const VARS: &[&str] = &[
    "CHART_OUTPUT_DIR",
    "CHART_MAX_AGE_HOURS",
    "CHART_MAX_SIZE_MB",
    "CHART_CLEANUP_INTERVAL_MINUTES",
    "CHART_ENABLE_CLEANUP",
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
    assert!(stderr(&o).is_empty());
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
