//! The environment presets inherited from the system chartd replaces, where `ENVIRONMENT`
//! chose the retention limits.
//!
//! **Rule.** A preset fills a root's `max_age` / `max_size` and the global `resync_interval`
//! only where neither the file nor an environment variable sets them, and only when an
//! environment is selected — by `environment:` in the file or by the `ENVIRONMENT` variable
//! (the variable wins). With no environment selected anywhere, an absent `max_age` /
//! `max_size` means "no limit" and `resync_interval` falls back to its default (60m). With no
//! config file at all, the built-in defaults select the development preset (unless
//! `ENVIRONMENT` selects another). An explicit `0` always means "no limit"; a preset never
//! overrides it.
//!
//! May touch: nothing outside its arguments (pure).

use super::Environment;
use std::time::Duration;

/// The limits a preset supplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub max_age: Duration,
    pub max_size: u64,
    pub resync_interval: Duration,
}

const HOUR: u64 = 3600;
const MIB: u64 = 1 << 20;

/// development 24h / 1000 MiB / 60 min, staging 12h / 500 MiB / 30 min,
/// production 6h / 200 MiB / 15 min — the replaced system's values, so that switching to
/// chartd keeps the retention operators are used to.
pub fn preset(env: Environment) -> Preset {
    let (hours, mib, minutes) = match env {
        Environment::Development => (24, 1000, 60),
        Environment::Staging => (12, 500, 30),
        Environment::Production => (6, 200, 15),
    };
    Preset {
        max_age: Duration::from_secs(hours * HOUR),
        max_size: mib * MIB,
        resync_interval: Duration::from_secs(minutes * 60),
    }
}

/// Parses an environment name, case-insensitively, with the short aliases the replaced
/// system's deployments used (`dev`, `prod`).
pub fn parse_environment(s: &str) -> Option<Environment> {
    match s.trim().to_ascii_lowercase().as_str() {
        "development" | "dev" => Some(Environment::Development),
        "staging" => Some(Environment::Staging),
        "production" | "prod" => Some(Environment::Production),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_values() {
        let p = preset(Environment::Production);
        assert_eq!(p.max_age, Duration::from_secs(6 * 3600));
        assert_eq!(p.max_size, 200 * MIB);
        assert_eq!(p.resync_interval, Duration::from_secs(15 * 60));
        let s = preset(Environment::Staging);
        assert_eq!(
            (s.max_age.as_secs(), s.max_size, s.resync_interval.as_secs()),
            (12 * 3600, 500 * MIB, 1800)
        );
        let d = preset(Environment::Development);
        assert_eq!(
            (d.max_age.as_secs(), d.max_size, d.resync_interval.as_secs()),
            (24 * 3600, 1000 * MIB, 3600)
        );
    }

    #[test]
    fn environment_names() {
        assert_eq!(parse_environment("PROD"), Some(Environment::Production));
        assert_eq!(parse_environment(" Dev "), Some(Environment::Development));
        assert_eq!(parse_environment("staging"), Some(Environment::Staging));
        assert_eq!(parse_environment("test"), None);
        assert_eq!(parse_environment(""), None);
    }
}
