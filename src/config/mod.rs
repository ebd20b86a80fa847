//! Configuration: the YAML file, the environment variables of the system chartd replaces,
//! the environment presets, and the built-in defaults, merged into one validated [`Config`].
//!
//! Precedence (highest first): CLI flag > environment variable > file > preset > default.
//! Everything here is plain data; nothing in this module touches the watched roots.

use std::path::PathBuf;
use std::time::Duration;

/// The effective, validated configuration of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    pub environment: Environment,
    /// `false` = observe only: index and report, never delete.
    pub cleanup_enabled: bool,
    /// Safety-net consistency check of index vs disk (not the eviction mechanism).
    pub resync_interval: Duration,
    pub socket: PathBuf,
    pub log: LogConfig,
    pub control: ControlConfig,
    pub alerts: AlertConfig,
    /// One or more; never empty after validation.
    pub roots: Vec<RootConfig>,
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
