//! Tests of the whole pipeline: file + environment + CLI + presets + validation.
//!
//! May touch: temporary config files it creates.

use super::*;
use std::io::Write;

const MIB: u64 = 1 << 20;
const HOUR: Duration = Duration::from_secs(3600);

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load_text(text: &str, vars: &[(&str, &str)], cli: &CliOverrides) -> Result<Config, ConfigError> {
    let f = write(text);
    load_with_env(Some(f.path()), cli, &env_of(vars))
}

fn ok(text: &str, vars: &[(&str, &str)]) -> Config {
    load_text(text, vars, &CliOverrides::default()).unwrap()
}

fn err(text: &str, vars: &[(&str, &str)]) -> String {
    load_text(text, vars, &CliOverrides::default())
        .unwrap_err()
        .to_string()
}

/// Loads with no config file present at all.
fn builtin(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.yaml");
    load_from(&missing, false, &CliOverrides::default(), &env_of(vars))
}

const ONE_ROOT: &str = "roots:\n  - path: /srv/charts\n";

#[test]
fn defaults_without_environment_mean_no_limits() {
    let c = ok(ONE_ROOT, &[]);
    let r = &c.roots[0];
    assert_eq!(r.max_age, None);
    assert_eq!(r.max_size, None);
    assert_eq!(c.resync_interval, Duration::from_secs(3600));
    assert!(c.cleanup_enabled);
    assert_eq!(
        c.log,
        LogConfig {
            level: "info".into(),
            format: LogFormat::Auto
        }
    );
    assert_eq!(c.control.group, None);
    assert_eq!(c.control.max_connections, 1024);
    assert_eq!(c.control.idle_timeout, Duration::from_secs(60));
    assert_eq!(
        (c.alerts.warning_percent, c.alerts.critical_percent),
        (80.0, 95.0)
    );
    assert!(!r.create);
    assert_eq!(r.low_watermark, 0.9);
    assert_eq!(r.min_free, None);
    assert_eq!(r.grace, Duration::from_secs(10));
    // Images only (issue #14, item 3): analysis data (JSON, HTML, PDF) is never managed by
    // default.
    assert_eq!(
        r.include,
        vec!["*.png", "*.jpg", "*.jpeg", "*.svg", "*.webp", "*.gif"]
    );
    assert_eq!(r.exclude, vec!["*.tmp", "*.part", ".*"]);
    assert!(r.protect.is_empty());
    assert!(r.prune_empty_dirs);
    assert!(c.source.is_some());
}

#[test]
fn builtin_defaults_use_development_preset() {
    let c = builtin(&[]).unwrap();
    assert_eq!(c.source, None);
    assert_eq!(c.environment, Environment::Development);
    assert_eq!(c.roots.len(), 1);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.roots[0].path, cwd.join("output/charts"));
    assert!(c.roots[0].create);
    assert_eq!(c.roots[0].max_age, Some(24 * HOUR));
    assert_eq!(c.roots[0].max_size, Some(1000 * MIB));
    assert_eq!(c.resync_interval, 60 * Duration::from_secs(60));
    // ENVIRONMENT picks another preset even for the built-in defaults.
    let c = builtin(&[("ENVIRONMENT", "production")]).unwrap();
    assert_eq!(c.roots[0].max_age, Some(6 * HOUR));
}

#[test]
fn preset_from_file_fills_only_absent_values() {
    let c = ok(
        "environment: staging\nroots:\n  - path: /a\n  - path: /b\n    max_age: 1h\n    max_size: 0\n",
        &[],
    );
    assert_eq!(c.environment, Environment::Staging);
    assert_eq!(c.roots[0].max_age, Some(12 * HOUR));
    assert_eq!(c.roots[0].max_size, Some(500 * MIB));
    assert_eq!(c.roots[1].max_age, Some(HOUR));
    assert_eq!(
        c.roots[1].max_size, None,
        "explicit 0 = no limit, never the preset"
    );
    assert_eq!(c.resync_interval, Duration::from_secs(30 * 60));
}

#[test]
fn environment_variable_selects_and_overrides_preset() {
    let c = ok(
        "environment: development\nresync_interval: 5m\nroots: [{path: /a}]\n",
        &[("ENVIRONMENT", "Prod")],
    );
    assert_eq!(c.environment, Environment::Production);
    assert_eq!(c.roots[0].max_age, Some(6 * HOUR));
    assert_eq!(c.roots[0].max_size, Some(200 * MIB));
    assert_eq!(
        c.resync_interval,
        Duration::from_secs(300),
        "file beats preset"
    );
}

#[test]
fn env_overrides_beat_file_and_target_first_root() {
    let text = "cleanup_enabled: true\nresync_interval: 1h\nroots:\n  - path: /a\n    max_age: 1h\n    max_size: 1GiB\n  - path: /b\n    max_age: 2h\n";
    let c = ok(
        text,
        &[
            ("CHART_OUTPUT_DIR", "/data/charts"),
            ("CHART_MAX_AGE_HOURS", "3"),
            ("CHART_MAX_SIZE_MB", "50"),
            ("CHART_CLEANUP_INTERVAL_MINUTES", "10"),
            ("CHART_ENABLE_CLEANUP", "no"),
        ],
    );
    assert_eq!(c.roots[0].path, Path::new("/data/charts"));
    assert_eq!(c.roots[0].max_age, Some(3 * HOUR));
    assert_eq!(c.roots[0].max_size, Some(50 * MIB));
    assert_eq!(c.roots[1].path, Path::new("/b"));
    assert_eq!(c.roots[1].max_age, Some(2 * HOUR));
    assert_eq!(c.resync_interval, Duration::from_secs(600));
    assert!(!c.cleanup_enabled);
}

#[test]
fn env_output_dir_creates_a_root_when_file_has_none() {
    let c = ok(
        "environment: production\n",
        &[("CHART_OUTPUT_DIR", "/data/charts")],
    );
    assert_eq!(c.roots.len(), 1);
    assert_eq!(c.roots[0].path, Path::new("/data/charts"));
    assert_eq!(c.roots[0].max_size, Some(200 * MIB));
    let e = err("environment: production\n", &[]);
    assert!(e.contains("roots: at least one root"), "{e}");
}

#[test]
fn env_zero_disables_the_preset_limit() {
    let c = ok(
        "environment: production\nroots: [{path: /a}]\n",
        &[("CHART_MAX_AGE_HOURS", "0")],
    );
    assert_eq!(c.roots[0].max_age, None);
    assert_eq!(c.roots[0].max_size, Some(200 * MIB));
}

#[test]
fn cli_beats_env() {
    let cli = CliOverrides {
        dry_run: true,
        socket: Some(PathBuf::from("/tmp/x.sock")),
    };
    let c = load_text(
        "cleanup_enabled: true\nsocket: /run/other.sock\nroots: [{path: /a}]\n",
        &[("CHART_ENABLE_CLEANUP", "yes")],
        &cli,
    )
    .unwrap();
    assert!(!c.cleanup_enabled);
    assert_eq!(c.socket, Path::new("/tmp/x.sock"));
    let c = ok("socket: /run/other.sock\nroots: [{path: /a}]\n", &[]);
    assert_eq!(c.socket, Path::new("/run/other.sock"));
}

#[test]
fn unknown_keys_are_rejected_with_key_line_and_valid_keys() {
    let e = err("roots:\n  - path: /a\n    max_sise: 1\n", &[]);
    assert!(e.contains("max_sise"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("max_size"), "{e}");
    let e = err("roots: [{path: /a}]\nlogging: {}\n", &[]);
    assert!(
        e.contains("`logging`") && e.contains("line 2") && e.contains("`log`"),
        "{e}"
    );
    let e = err(
        "log: {level: info, colour: true}\nroots: [{path: /a}]\n",
        &[],
    );
    assert!(e.contains("colour") && e.contains("line 1"), "{e}");
}

#[test]
fn value_errors_name_file_key_line_and_expectation() {
    let f = write("environment: production\nroots:\n  - path: /x\n\n\n\n    max_size: 20 0MiB\n");
    let e = load_with_env(Some(f.path()), &CliOverrides::default(), &env_of(&[]))
        .unwrap_err()
        .to_string();
    let want = format!(
        "{}: roots[0].max_size: invalid size \"20 0MiB\" at line 7 column 15 (",
        f.path().display()
    );
    assert!(e.starts_with(&want), "{e}");
    assert!(
        e.ends_with("expected e.g. 200MiB, 1.5GB or a plain number of bytes)"),
        "{e}"
    );
    for (text, key) in [
        (
            "resync_interval: soon\nroots: [{path: /a}]\n",
            "resync_interval: invalid duration",
        ),
        (
            "alerts: {warning: 80}\nroots: [{path: /a}]\n",
            "alerts.warning: invalid percentage",
        ),
        (
            "roots: [{path: /a, min_free: lots}]\n",
            "roots[0].min_free: invalid free-space floor",
        ),
        (
            "roots: [{path: /a, grace: -1s}]\n",
            "roots[0].grace: invalid duration",
        ),
        (
            "log: {format: xml}\nroots: [{path: /a}]\n",
            "log.format: invalid log format",
        ),
        (
            "control: {max_connections: -1}\nroots: [{path: /a}]\n",
            "control.max_connections: invalid type",
        ),
        (
            "roots: [{path: /a, create: maybe}]\n",
            "roots[0].create: invalid type",
        ),
    ] {
        let e = err(text, &[]);
        assert!(e.contains(key) && e.contains(" at line "), "{text:?}: {e}");
    }
}

#[test]
fn validation_errors_name_the_key() {
    for (text, want) in [
        ("roots: []\n", "roots: at least one root"),
        ("roots: [{path: /}]\n", "roots[0].path: the filesystem root"),
        (
            "roots: [{path: /a/..}]\n",
            "roots[0].path: the filesystem root",
        ),
        ("roots: [{path: ''}]\n", "roots[0].path: must not be empty"),
        (
            "roots: [{path: /a}, {path: /a/}]\n",
            "roots[1].path: /a is the same directory as roots[0].path",
        ),
        (
            "roots: [{path: /a}, {path: /a/b}]\n",
            "roots[1].path: /a/b and roots[0].path /a are nested",
        ),
        (
            "roots: [{path: /a/b}, {path: /a}]\n",
            "roots[1].path: /a and roots[0].path /a/b are nested",
        ),
        (
            "roots: [{path: /a, low_watermark: 0%}]\n",
            "roots[0].low_watermark: must be in",
        ),
        (
            "roots: [{path: /a, min_free: 100%}]\n",
            "roots[0].min_free: a percentage must be in",
        ),
        (
            "roots: [{path: /a, include: ['*.png', '[a']}]\n",
            "roots[0].include: invalid glob \"[a\"",
        ),
        (
            "roots: [{path: /a, protect: ['{a']}]\n",
            "roots[0].protect: invalid glob \"{a\"",
        ),
        (
            "alerts: {warning: 0%}\nroots: [{path: /a}]\n",
            "alerts.warning: must be in",
        ),
        (
            "alerts: {warning: 90%, critical: 85%}\nroots: [{path: /a}]\n",
            "alerts.critical: must be at least",
        ),
        (
            "control: {max_connections: 0}\nroots: [{path: /a}]\n",
            "control.max_connections: must be at least 1",
        ),
        (
            "control: {idle_timeout: 0}\nroots: [{path: /a}]\n",
            "control.idle_timeout: must be at least 1s",
        ),
        (
            "resync_interval: 0\nroots: [{path: /a}]\n",
            "resync_interval: must be at least 1s",
        ),
        (
            "resync_interval: 500ms\nroots: [{path: /a}]\n",
            "resync_interval: must be at least 1s",
        ),
        (
            "log: {level: inf}\nroots: [{path: /a}]\n",
            "log.level: invalid level \"inf\"",
        ),
        (
            "socket: ''\nroots: [{path: /a}]\n",
            "socket: must not be empty",
        ),
    ] {
        let e = err(text, &[]);
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = err("roots: [{path: /a}]\n", &[("CHART_OUTPUT_DIR", "/")]);
    assert!(e.contains("CHART_OUTPUT_DIR: the filesystem root"), "{e}");
}

/// `STORAGE_CHARTS_PATH` sets the first root like `CHART_OUTPUT_DIR`, which wins when both are
/// set; errors about the path name the variable that supplied it.
#[test]
fn storage_charts_path_sets_the_first_root_and_errors_name_it() {
    let c = ok(
        "roots: [{path: /a}, {path: /b}]\n",
        &[("STORAGE_CHARTS_PATH", "/srv/storage")],
    );
    assert_eq!(c.roots[0].path, Path::new("/srv/storage"));
    assert_eq!(c.roots[1].path, Path::new("/b"));
    let c = ok(
        "",
        &[
            ("STORAGE_CHARTS_PATH", "/srv/storage"),
            ("CHART_OUTPUT_DIR", "/srv/charts"),
        ],
    );
    assert_eq!(c.roots.len(), 1);
    assert_eq!(c.roots[0].path, Path::new("/srv/charts"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("STORAGE_CHARTS_PATH=\"/srv/storage\" is ignored")),
        "{:?}",
        c.warnings
    );
    let e = err("roots: [{path: /a}]\n", &[("STORAGE_CHARTS_PATH", "/")]);
    assert!(
        e.contains("STORAGE_CHARTS_PATH: the filesystem root"),
        "{e}"
    );
    let e = err(
        "roots: [{path: /a}, {path: /srv/c/x}]\n",
        &[("STORAGE_CHARTS_PATH", "/srv/c")],
    );
    assert!(
        e.contains("roots[1].path: /srv/c/x and STORAGE_CHARTS_PATH /srv/c are nested"),
        "{e}"
    );
    // The winner is the one named.
    let e = err(
        "",
        &[("STORAGE_CHARTS_PATH", "/srv/c"), ("CHART_OUTPUT_DIR", "/")],
    );
    assert!(e.contains("CHART_OUTPUT_DIR: the filesystem root"), "{e}");
    assert!(!e.contains("STORAGE_CHARTS_PATH"), "{e}");
}

#[test]
fn zero_min_free_is_off_and_relative_paths_resolve() {
    let c = ok("socket: run/x.sock\nroots: [{path: charts/./a, min_free: 0%}, {path: /b, min_free: 10GiB}]\n", &[]);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.roots[0].path, cwd.join("charts/a"));
    assert_eq!(c.socket, cwd.join("run/x.sock"));
    assert_eq!(c.roots[0].min_free, None);
    assert_eq!(c.roots[1].min_free, Some(MinFree::Bytes(10 << 30)));
}

#[test]
fn empty_and_comment_only_files_are_empty_configs() {
    for text in ["", "\n", "# nothing\n---\n"] {
        let e = err(text, &[]);
        assert!(e.contains("roots: at least one root"), "{text:?}: {e}");
        let c = ok(text, &[("CHART_OUTPUT_DIR", "/srv/c")]);
        assert_eq!(c.roots[0].path, Path::new("/srv/c"));
    }
}

#[test]
fn bad_env_values_name_the_variable() {
    let e = err(ONE_ROOT, &[("CHART_MAX_SIZE_MB", "abc")]);
    assert!(
        e.starts_with("CHART_MAX_SIZE_MB: invalid number \"abc\""),
        "{e}"
    );
}

#[test]
fn unreadable_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = load_with_env(Some(&missing), &CliOverrides::default(), &env_of(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.yaml: cannot read config file: No such file"),
        "{e}"
    );
    let e = load_with_env(Some(dir.path()), &CliOverrides::default(), &env_of(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read config file"), "{e}");
}

fn round_trip(c: &Config, vars: &[(&str, &str)]) {
    let yaml = c.to_yaml();
    let f = write(&yaml);
    let mut back = load_with_env(Some(f.path()), &CliOverrides::default(), &env_of(vars))
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    back.source = c.source.clone();
    // Warnings name the file they came from.
    back.warnings = c.warnings.clone();
    if vars.iter().any(|(k, _)| *k == "ENVIRONMENT") {
        // The variable beats `environment:` in the file by design; every limit is explicit
        // in the YAML, so nothing else may change.
        back.environment = c.environment;
    }
    assert_eq!(&back, c, "\n{yaml}");
    assert_eq!(back.to_yaml(), yaml);
}

#[test]
fn to_yaml_round_trips() {
    let full = "
environment: production
cleanup_enabled: false
resync_interval: 1h 30m
socket: /run/chartd/test.sock
log: { level: 'info,chartd=debug', format: journald }
control: { group: chartd, admin_uids: [0, 1000], admin_group: wheel, max_connections: 8, idle_timeout: 1500ms }
alerts: { warning: 70.5%, critical: 0.95 }
roots:
  - path: /var/lib/chartd/charts
    create: true
    max_age: 0
    max_size: 1.5GiB
    low_watermark: 0.85
    min_free: 5%
    grace: 90
    include: ['*.png']
    exclude: []
    protect: ['keep/**']
    prune_empty_dirs: false
  - path: /var/cache/x
    max_size: 1000003
    min_free: 2GB
";
    let c = ok(full, &[]);
    assert_eq!(c.roots[0].max_age, None);
    assert_eq!(c.roots[0].max_size, Some(3 << 29));
    round_trip(&c, &[]);
    // Explicit values mean another environment at reload changes nothing.
    round_trip(&c, &[("ENVIRONMENT", "development")]);
    round_trip(&ok(ONE_ROOT, &[]), &[("ENVIRONMENT", "production")]);
    round_trip(&builtin(&[]).unwrap(), &[]);
    let yaml = ok("environment: production\nroots: [{path: /a}]\n", &[]).to_yaml();
    for line in [
        "max_age: 6h",
        "max_size: 200MiB",
        "resync_interval: 15m",
        "low_watermark: 90%",
        "warning: 80%",
    ] {
        assert!(yaml.contains(line), "{line}\n{yaml}");
    }
}

#[test]
fn default_socket_path_rule() {
    let with_xdg = default_socket_path_with(&env_of(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
    let without = default_socket_path_with(&env_of(&[]));
    let system = PathBuf::from("/run/chartd/chartd.sock");
    if rustix::process::geteuid().is_root() {
        assert_eq!(with_xdg, system);
        assert_eq!(without, system);
    } else if with_xdg != system {
        // /run/chartd is not usable by us: fall back per the rule.
        assert_eq!(with_xdg, Path::new("/run/user/1000/chartd/chartd.sock"));
        let uid = rustix::process::geteuid().as_raw();
        assert_eq!(
            without,
            PathBuf::from(format!("/tmp/chartd-{uid}/chartd.sock"))
        );
    }
    // With no socket anywhere, the default is used.
    assert_eq!(ok(ONE_ROOT, &[]).socket, default_socket_path());
}

#[test]
fn load_from_str_is_load_without_the_file() {
    let text = "environment: staging\nroots: [{path: /srv/charts, max_size: 1GiB}]\n";
    let f = write(text);
    let from_file = load_with_env(Some(f.path()), &CliOverrides::default(), &env_of(&[])).unwrap();
    // `origin` only names the source; it is never opened.
    let origin = Path::new("/nonexistent/chartd.yaml");
    let c = load_from_str(text, origin, &CliOverrides::default(), &env_of(&[])).unwrap();
    assert_eq!(c.source.as_deref(), Some(origin));
    assert_eq!(
        Config {
            source: from_file.source.clone(),
            warnings: from_file.warnings.clone(),
            ..c
        },
        from_file
    );
    let e = load_from_str("roots: 7\n", origin, &CliOverrides::default(), &env_of(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/chartd.yaml: roots: "), "{e}");
}

/// Found by the `config_yaml` fuzz target: tracing-subscriber 0.3 parses a filter directive
/// by iterating over its trimmed text but slicing the untrimmed one, so a directive with
/// leading whitespace and a multi-byte character (` bº[`) panicked inside validation — and
/// so a `chartd reload` with such a file would have taken the daemon down.
#[test]
fn log_level_directives_are_trimmed() {
    let c = load_text(
        "log: {level: \"a=info, b\u{ba}[\"}\nroots: [{path: /a}]\n",
        &[],
        &CliOverrides::default(),
    );
    let e = c.unwrap_err().to_string();
    assert!(
        e.contains("log.level: invalid filter \"a=info,b\u{ba}[\""),
        "{e}"
    );
    let c = ok(
        "log: {level: ' info , chartd=debug ,, '}\nroots: [{path: /a}]\n",
        &[],
    );
    assert_eq!(c.log.level, "info,chartd=debug");
}
