//! Merges file, environment variables, CLI flags, preset and defaults into a [`Config`].
//!
//! Precedence, highest first: CLI flag > environment variable > file > preset > default.
//! See `presets.rs` for exactly when a preset applies.
//!
//! May touch: nothing outside its arguments (pure).

use super::env::EnvOverrides;
use super::file::{Dur, FileConfig, FileRoot, Size};
use super::presets::preset;
use super::{
    AlertConfig, CliOverrides, Config, ControlConfig, Environment, LogConfig, LogFormat,
    RootConfig, RuleConfig,
};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The root watched by the built-in development defaults (no config file).
pub const BUILTIN_ROOT: &str = "./output/charts";
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60 * 60);
/// Grace only has to cover the moment between a writer's close and its consumer's open: a file
/// being written is held by its events (open for writing, or changed in the last 2 s), and a
/// file a reader has open survives its deletion. 10 s covers an analysis that renders its
/// charts one after the other and then hands them on. It is also what the size bound costs:
/// a root holds the larger of max_size and what was written within the last grace. Measured
/// with one analysis a second (4 charts, 0.59 MiB/s) under a 5 MiB limit: grace 60 s peaked at
/// 375 % and came back under the limit 51 s after writing stopped; 10 s peaked at 138 % and
/// was back 1 s after; 5 s held 100 %. See the README, "Grace and the size bound".
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_LOW_WATERMARK: f64 = 0.9;
/// Images only, like the packaged config: the replaced system promised to remove "only chart
/// files, not analysis data", and its analysis results are JSON (and HTML/PDF reports) next to
/// the charts. Other kinds must be asked for with `include:`.
pub const DEFAULT_INCLUDE: &[&str] = &["*.png", "*.jpg", "*.jpeg", "*.svg", "*.webp", "*.gif"];
/// Temporary files of writers in progress and hidden files are never charts.
pub const DEFAULT_EXCLUDE: &[&str] = &["*.tmp", "*.part", ".*"];

/// Which values came from environment variables rather than the file, so that validation
/// errors can name the variable the operator actually has to fix.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance {
    /// The variable that set `roots[0].path` (`CHART_OUTPUT_DIR` or `STORAGE_CHARTS_PATH`).
    pub output_dir_var: Option<&'static str>,
}

/// The built-in defaults used when there is no config file: one root, created if missing,
/// with the development preset selected (see `presets.rs`).
pub fn builtin_file() -> FileConfig {
    FileConfig {
        roots: vec![FileRoot {
            path: BUILTIN_ROOT.to_string(),
            create: Some(true),
            ..FileRoot::default()
        }],
        ..FileConfig::default()
    }
}

/// Makes `p` absolute against `cwd` and removes `.` and `..` lexically, so that duplicate and
/// nested roots are detected however they are spelled. (Lexical `..` can differ from the
/// kernel's view through symlinks; root paths with symlinked parents and `..` are unusual.)
pub fn absolutize(p: &Path, cwd: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // At `/` this is a no-op, as in the kernel.
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Trims each comma-separated directive of a log filter and drops empty ones
/// (` info , chartd=debug ` → `info,chartd=debug`). Besides tidying `check-config` output,
/// this is what keeps tracing-subscriber 0.3 from panicking: its directive parser walks the
/// trimmed directive but slices the untrimmed one, so ` bº[` (leading space, multi-byte
/// character) hits a non-char boundary. Found by the `config_yaml` fuzz target.
fn normalize_level(level: &str) -> String {
    level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Applies env overrides to the file values (they target the first root).
fn apply_env(file: &mut FileConfig, env: &EnvOverrides, prov: &mut Provenance) {
    if let Some(dir) = &env.output_dir {
        prov.output_dir_var = env.output_dir_var.or(Some("CHART_OUTPUT_DIR"));
        match file.roots.first_mut() {
            Some(r) => r.path = dir.clone(),
            None => file.roots.push(FileRoot {
                path: dir.clone(),
                ..FileRoot::default()
            }),
        }
    }
    if let Some(r) = file.roots.first_mut() {
        if let Some(d) = env.max_age {
            r.max_age = Some(Dur(d));
        }
        if let Some(b) = env.max_size {
            r.max_size = Some(Size(b));
        }
        if let Some(d) = env.grace {
            r.grace = Some(Dur(d));
        }
    }
    if let Some(d) = env.resync_interval {
        file.resync_interval = Some(Dur(d));
    }
    if let Some(b) = env.cleanup_enabled {
        file.cleanup_enabled = Some(b);
    }
}

/// Merges everything except validation. `builtin` says there is no config file, which
/// selects the development preset when nothing else selects one.
pub fn merge(
    mut file: FileConfig,
    builtin: bool,
    env: &EnvOverrides,
    cli: &CliOverrides,
    default_socket: PathBuf,
    cwd: &Path,
) -> (Config, Provenance) {
    let mut prov = Provenance::default();
    apply_env(&mut file, env, &mut prov);
    let selected = env
        .environment
        .or(file.environment.map(|e| e.0))
        .or(builtin.then_some(Environment::Development));
    let preset = selected.map(preset);

    let resync_interval = file
        .resync_interval
        .map(|d| d.0)
        .or(preset.map(|p| p.resync_interval))
        .unwrap_or(DEFAULT_RESYNC);
    let cleanup_enabled = !cli.dry_run && file.cleanup_enabled.unwrap_or(true);
    let socket = cli
        .socket
        .clone()
        .or(file.socket.map(PathBuf::from))
        .map(|s| {
            // Kept empty for validation to report, rather than resolving to the cwd.
            if s.as_os_str().is_empty() {
                s
            } else {
                absolutize(&s, cwd)
            }
        })
        .unwrap_or(default_socket);

    let log = file.log.unwrap_or_default();
    let control = file.control.unwrap_or_default();
    let alerts = file.alerts.unwrap_or_default();

    let roots = file
        .roots
        .into_iter()
        .map(|r| RootConfig {
            // An empty path stays empty so that validation can report it instead of
            // silently watching the working directory.
            path: if r.path.is_empty() {
                PathBuf::new()
            } else {
                absolutize(Path::new(&r.path), cwd)
            },
            create: r.create.unwrap_or(false),
            max_age: r
                .max_age
                .map(|d| d.0)
                .or(preset.map(|p| p.max_age))
                .filter(|d| !d.is_zero()),
            max_size: r
                .max_size
                .map(|s| s.0)
                .or(preset.map(|p| p.max_size))
                .filter(|&s| s != 0),
            low_watermark: r.low_watermark.map_or(DEFAULT_LOW_WATERMARK, |f| f.0),
            min_free: r.min_free.and_then(|m| m.0),
            grace: r.grace.map_or(DEFAULT_GRACE, |d| d.0),
            include: r.include.unwrap_or_else(|| strings(DEFAULT_INCLUDE)),
            exclude: r.exclude.unwrap_or_else(|| strings(DEFAULT_EXCLUDE)),
            protect: r.protect.unwrap_or_default(),
            prune_empty_dirs: r.prune_empty_dirs.unwrap_or(true),
            max_files: r.max_files.filter(|&n| n != 0),
            min_free_inodes: r.min_free_inodes.and_then(|m| m.0),
            keep_newest: r.keep_newest.unwrap_or(0),
            group_max_size: r.group_max_size.map(|s| s.0).filter(|&s| s != 0),
            group_max_files: r.group_max_files.filter(|&n| n != 0),
            rules: r
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|u| RuleConfig {
                    pattern: u.pattern,
                    max_age: u.max_age.map(|d| d.0),
                    grace: u.grace.map(|d| d.0),
                    keep_newest: u.keep_newest,
                    group_max_size: u.group_max_size.map(|s| s.0),
                    group_max_files: u.group_max_files,
                    protect: u.protect.unwrap_or(false),
                })
                .collect(),
        })
        .collect();

    let config = Config {
        source: None,
        warnings: env.warnings.clone(),
        environment: selected.unwrap_or(Environment::Development),
        cleanup_enabled,
        resync_interval,
        socket,
        log: LogConfig {
            level: log
                .level
                .map_or_else(|| "info".to_string(), |l| normalize_level(&l)),
            format: log.format.map_or(LogFormat::Auto, |f| f.0),
        },
        control: ControlConfig {
            group: control.group,
            admin_uids: control.admin_uids.unwrap_or_default(),
            admin_group: control.admin_group,
            max_connections: control.max_connections.unwrap_or(1024),
            idle_timeout: control
                .idle_timeout
                .map_or(Duration::from_secs(60), |d| d.0),
        },
        alerts: AlertConfig {
            warning_percent: alerts.warning.map_or(80.0, |p| p.0),
            critical_percent: alerts.critical.map_or(95.0, |p| p.0),
        },
        metrics: super::metrics::FileMetrics::effective(file.metrics.as_ref()),
        roots,
    };
    (config, prov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolutize_normalizes() {
        let cwd = Path::new("/home/u/app");
        assert_eq!(
            absolutize(Path::new("./output/charts"), cwd),
            Path::new("/home/u/app/output/charts")
        );
        assert_eq!(
            absolutize(Path::new("../x/./y/"), cwd),
            Path::new("/home/u/x/y")
        );
        assert_eq!(absolutize(Path::new("/a/b/../../.."), cwd), Path::new("/"));
        assert_eq!(
            absolutize(Path::new("/srv//charts/"), cwd),
            Path::new("/srv/charts")
        );
    }
}
