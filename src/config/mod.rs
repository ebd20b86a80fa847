//! Configuration: the YAML file, the environment variables of the system chartd replaces,
//! the environment presets, and the built-in defaults, merged into one validated [`Config`].
//!
//! Precedence (highest first): CLI flag > environment variable > file > preset > default.
//! Everything here is plain data; the only looks at the watched roots are read-only: `lint.rs`
//! checks that each root exists and is writable, and `check-config` lists each root's groups.
//!
//! May touch: the config file (read, at most 1 MiB), the process environment, and whether `/run` is
//! writable (the default socket path); `lint.rs` looks at each root path, read-only.

use std::path::PathBuf;
use std::time::Duration;

/// The effective, validated configuration of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    /// The selected preset's environment; `Development` when none is selected (then no preset
    /// was applied — see [`presets`] for the rule).
    pub environment: Environment,
    /// `false` = observe only: index and report, never delete.
    pub cleanup_enabled: bool,
    /// Safety-net consistency check of index vs disk (not the eviction mechanism).
    pub resync_interval: Duration,
    pub socket: PathBuf,
    pub log: LogConfig,
    pub control: ControlConfig,
    pub alerts: AlertConfig,
    /// `metrics:` (the HTTP scrape endpoint; see [`metrics`]).
    pub metrics: metrics::MetricsConfig,
    /// One or more; never empty after validation.
    pub roots: Vec<RootConfig>,
    /// Traps that are valid but probably not meant (see `lint.rs`), each with its fix:
    /// `check-config` prints them on stderr, the daemon logs them at start.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A tracing filter directive: error | warn | info | debug | trace (or a full EnvFilter string).
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when stderr is the journal (`JOURNAL_STREAM`), else text on stderr.
    Auto,
    Text,
    Journald,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// Group owning the socket (mode 0660); `None`: the daemon's primary group.
    pub group: Option<String>,
    /// Peers (SO_PEERCRED uid) allowed cleanup/purge/reload besides root and the daemon's uid.
    pub admin_uids: Vec<u32>,
    /// Members of this group are admins too.
    pub admin_group: Option<String>,
    /// Concurrent connections; further ones get a `busy` error.
    pub max_connections: usize,
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertConfig {
    /// Percent of max_size (or of the free-space floor) at which `alert` becomes `warning`.
    pub warning_percent: f64,
    /// ... and `critical`.
    pub critical_percent: f64,
}

/// One governed directory tree and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RootConfig {
    /// Absolute path (relative paths are resolved against the working directory at load).
    pub path: PathBuf,
    /// Create the root (and parents) if it is missing at start.
    pub create: bool,
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Bytes; `None`: no size limit.
    pub max_size: Option<u64>,
    /// Fraction in (0, 1]: once max_size is crossed, evict down to `low_watermark * max_size`.
    pub low_watermark: f64,
    /// Free-space floor of the root's filesystem; `None`: off.
    pub min_free: Option<MinFree>,
    /// Never delete a file modified less than this long ago.
    pub grace: Duration,
    /// Globs matched against the file name (or, if the glob has a `/`, the path relative to the root).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Globs relative to the root; matching files are never deleted.
    pub protect: Vec<String>,
    /// Remove group directories emptied by eviction (never the root).
    pub prune_empty_dirs: bool,
    /// Managed files (each inode once); `None`: no count limit. Evicts down to
    /// `low_watermark * max_files` once crossed, like `max_size`.
    pub max_files: Option<u64>,
    /// Free-inode floor of the root's filesystem; `None`: off.
    pub min_free_inodes: Option<InodeFloor>,
    /// Per group, its N newest managed files are never evicted by age, and go last under
    /// pressure (0 = off). A rule may override it.
    pub keep_newest: u32,
    /// Per-group quotas (bytes, files); `None`: none. A rule may override them.
    pub group_max_size: Option<u64>,
    pub group_max_files: Option<u64>,
    /// Per-group retention rules, first match wins (see `crate::rules`).
    pub rules: Vec<RuleConfig>,
}

/// One retention rule: the groups whose name matches `pattern` follow these values; a value
/// left out is the root's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleConfig {
    /// A glob matched against the group's name (the first directory under the root).
    pub pattern: String,
    /// `Some(ZERO)`: no age limit for these groups.
    pub max_age: Option<Duration>,
    pub grace: Option<Duration>,
    pub keep_newest: Option<u32>,
    /// `Some(0)`: no quota for these groups.
    pub group_max_size: Option<u64>,
    pub group_max_files: Option<u64>,
    /// Every file of these groups is protected (never deleted).
    pub protect: bool,
}

/// `min_free_inodes`: a percentage of the filesystem's inodes, or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InodeFloor {
    Percent(f64),
    Count(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    /// Percent of the filesystem size (0, 100).
    Percent(f64),
    Bytes(u64),
}

/// Overrides given on the command line (the highest precedence).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub dry_run: bool,
    pub socket: Option<PathBuf>,
}

mod env;
mod explain;
mod file;
mod lint;
mod merge;
pub mod metrics;
/// The default `grace` (why 10 s: see its definition).
pub use merge::DEFAULT_GRACE;
pub mod presets;
pub mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The config file read when no `--config` is given; if it does not exist, the built-in
/// development defaults are used instead, so that `chartd run` works out of a checkout.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chartd/chartd.yaml";

/// A config file larger than this is certainly not a config file (say `--config /dev/zero`);
/// refusing it avoids reading without bound.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why the configuration could not be loaded. The message is complete and meant for humans:
/// it names the file, the key path (or the environment variable), the line and column when
/// the YAML parser knows them, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: String) -> Self {
        ConfigError { message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Turns a serde_yaml error into `file: key: message at line L column C (hint)`. serde_yaml
/// already renders `key: message at line L column C`; value errors of `file.rs` carry their
/// hint after [`file::HINT_SEP`], which is moved behind the location here so the location
/// stays next to the offending value.
fn yaml_error(file: &Path, e: &serde_yaml::Error) -> ConfigError {
    let mut text = e.to_string();
    // serde_yaml omits the location when it is line 1 column 1; say it anyway.
    if let Some(loc) = e.location() {
        let at = format!(" at line {} column {}", loc.line(), loc.column());
        if !text.ends_with(&at) {
            text.push_str(&at);
        }
    }
    let text = match text.split_once(file::HINT_SEP) {
        Some((head, rest)) => {
            let (hint, location) = match rest.rfind(" at line ") {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            format!("{head}{location} {hint}")
        }
        None => text,
    };
    ConfigError::new(format!("{}: {text}", file.display()))
}

/// Reads at most [`MAX_FILE_BYTES`]; `Ok(None)` if the file does not exist and is optional.
fn read_file(path: &Path, required: bool) -> Result<Option<String>, std::io::Error> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} bytes", MAX_FILE_BYTES),
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// Parses file text. A file with nothing but comments is an empty config, not an error.
fn parse_file(path: &Path, text: &str) -> Result<file::FileConfig, ConfigError> {
    let meaningful = text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
    if !meaningful {
        return Ok(file::FileConfig::default());
    }
    serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))
}

/// Loads the configuration, reading the process environment. See [`load_with_env`].
pub fn load(path: Option<&Path>, cli: &CliOverrides) -> Result<Config, ConfigError> {
    load_with_env(path, cli, &|name| std::env::var(name).ok())
}

/// Loads, merges and validates the configuration.
///
/// `path`: the config file; `None` reads [`DEFAULT_CONFIG_PATH`] if it exists, else uses the
/// built-in development defaults (one root `./output/charts`, created if missing).
/// `env` looks up environment variables (injected so tests are independent of the process).
///
/// Precedence, highest first: CLI flag (`dry_run` → `cleanup_enabled: false`, `socket`) >
/// environment variable > file > preset > default; see [`presets`] for when a preset applies.
pub fn load_with_env(
    path: Option<&Path>,
    cli: &CliOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    match path {
        Some(p) => load_from(p, true, cli, env),
        None => load_from(Path::new(DEFAULT_CONFIG_PATH), false, cli, env),
    }
}

/// [`load_with_env`] with the file given explicitly; `required: false` falls back to the
/// built-in defaults when the file does not exist (tests use this to avoid `/etc`).
fn load_from(
    file_path: &Path,
    required: bool,
    cli: &CliOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let unreadable = |e: std::io::Error| {
        ConfigError::new(format!(
            "{}: cannot read config file: {e}",
            file_path.display()
        ))
    };
    match read_file(file_path, required).map_err(unreadable)? {
        Some(text) => load_from_str(&text, file_path, cli, env),
        None => {
            let mut config = finish(merge::builtin_file(), None, cli, env)?;
            config.warnings.extend(lint::lint(&config, None, None));
            Ok(config)
        }
    }
}

/// Parses, merges and validates config text as if it had been read from the file `origin`
/// (which only names the source in messages and in [`Config::source`]; it is not opened).
/// [`load_with_env`] reads the file and calls this; the `config_yaml` fuzz target calls it
/// directly on arbitrary text.
pub fn load_from_str(
    text: &str,
    origin: &Path,
    cli: &CliOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let parsed = parse_file(origin, text)?;
    let mut config = finish(parsed, Some(origin.to_path_buf()), cli, env)?;
    config
        .warnings
        .extend(lint::lint(&config, Some(text), Some(origin)));
    Ok(config)
}

/// Applies the environment and the CLI to the parsed file (or the built-in defaults when
/// `source` is `None`), merges and validates.
fn finish(
    parsed: file::FileConfig,
    source: Option<PathBuf>,
    cli: &CliOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let overrides = env::read(env)?;
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigError::new(format!(
            "cannot resolve relative paths: working directory unavailable: {e}"
        ))
    })?;
    let default_socket = if cli.socket.is_some() {
        PathBuf::new() // unused: the flag wins; avoids probing /run needlessly
    } else {
        default_socket_path_with(env)
    };
    let builtin = source.is_none();
    let (mut config, prov) = merge::merge(parsed, builtin, &overrides, cli, default_socket, &cwd);
    config.source = source;
    validate::validate(&config, &prov).map_err(|msg| match &config.source {
        Some(p) => ConfigError::new(format!("{}: {msg}", p.display())),
        None => ConfigError::new(format!("built-in defaults: {msg}")),
    })?;
    Ok(config)
}

/// The control socket used when neither the config nor `--socket` names one:
/// `/run/chartd/chartd.sock` (the systemd `RuntimeDirectory=`), unless we are not root and
/// cannot create it there — then `$XDG_RUNTIME_DIR/chartd/chartd.sock`, else
/// `/tmp/chartd-$UID/chartd.sock` — so that an unprivileged development run works unchanged.
pub fn default_socket_path() -> PathBuf {
    default_socket_path_with(&|name| std::env::var(name).ok())
}

fn default_socket_path_with(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    use rustix::fs::{access, Access};
    let system = PathBuf::from("/run/chartd/chartd.sock");
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return system;
    }
    let run_dir = Path::new("/run/chartd");
    let usable = if run_dir.exists() {
        access(run_dir, Access::WRITE_OK).is_ok()
    } else {
        access("/run", Access::WRITE_OK).is_ok()
    };
    if usable {
        return system;
    }
    match env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join("chartd").join("chartd.sock"),
        None => PathBuf::from(format!("/tmp/chartd-{}/chartd.sock", euid.as_raw())),
    }
}

impl Config {
    /// The effective configuration as YAML in the file schema, with human units and every
    /// value explicit (limits that are off are written as `0`), so that [`load`] reads it
    /// back to the same `Config` whatever preset or environment is in effect then.
    pub fn to_yaml(&self) -> String {
        match serde_yaml::to_string(&file::FileConfig::from_config(self)) {
            Ok(s) => s,
            // Only plain strings, numbers and lists are serialized; this cannot happen, but a
            // config printer must not panic either.
            Err(e) => format!("# cannot render the configuration as YAML: {e}\n"),
        }
    }
}

/// Each effective value with where it came from (`check-config --explain`).
pub fn explain_text(config: &Config) -> String {
    explain::explain(config, &|name| std::env::var(name).ok())
}
