//! Environment variables of the system chartd replaces. They override the file, apply to the
//! first root (the replaced system had exactly one output directory), and are ignored when
//! empty so that `CHART_MAX_SIZE_MB=` in a unit file does not break start-up.
//!
//! May touch: nothing outside its arguments (pure: the variables come through the `env` closure it
//! is given).

use super::presets::parse_environment;
use super::units::MAX_DURATION;
use super::{ConfigError, Environment};
use std::time::Duration;

/// What the environment sets; `None` = not set (or empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvOverrides {
    /// `CHART_OUTPUT_DIR`, else `STORAGE_CHARTS_PATH` → `roots[0].path` (creates the root if
    /// the file has none).
    pub output_dir: Option<String>,
    /// The variable `output_dir` came from, for messages about the path.
    pub output_dir_var: Option<&'static str>,
    /// `CHART_MAX_AGE_HOURS` (float hours) → `roots[0].max_age`; zero = no limit.
    pub max_age: Option<Duration>,
    /// `CHART_MAX_SIZE_MB` (float MiB) → `roots[0].max_size`; zero = no limit.
    pub max_size: Option<u64>,
    /// `CHART_CLEANUP_INTERVAL_MINUTES` (float minutes) → `resync_interval`.
    pub resync_interval: Option<Duration>,
    /// `CHART_ENABLE_CLEANUP` → `cleanup_enabled`.
    pub cleanup_enabled: Option<bool>,
    /// `ENVIRONMENT` → preset selection.
    pub environment: Option<Environment>,
    /// `CHART_GRACE_SECONDS` (float seconds) → `roots[0].grace`.
    pub grace: Option<Duration>,
    /// Values that were not usable but not worth refusing to start over (printed by
    /// `check-config`, logged by the daemon).
    pub warnings: Vec<String>,
}

fn bad(var: &str, what: &str, value: &str, expected: &str) -> ConfigError {
    let shown: String = value.chars().take(64).collect();
    ConfigError::new(format!(
        "{var}: invalid {what} {shown:?} (expected {expected})"
    ))
}

/// A non-negative finite float; the replaced system parsed these with Python's `float()`.
fn number(var: &str, value: &str, expected: &str) -> Result<f64, ConfigError> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(var, "number", value, expected)),
    }
}

/// Converts a float count of `unit_secs` to a duration rounded to the millisecond, so that
/// `0.1` hours is exactly `6m` rather than 359.99999…s.
fn duration(
    var: &str,
    value: &str,
    unit_secs: f64,
    expected: &str,
) -> Result<Duration, ConfigError> {
    let ms = (number(var, value, expected)? * unit_secs * 1000.0).round();
    if ms > MAX_DURATION.as_millis() as f64 {
        return Err(ConfigError::new(format!(
            "{var}: {value:?} is too large (at most 100 years)"
        )));
    }
    // In range [0, MAX_DURATION] by the checks above, so the cast is exact enough and safe.
    Ok(Duration::from_millis(ms as u64))
}

/// Reads the variables through `env` (injected so tests need not touch the process env).
pub fn read(env: &dyn Fn(&str) -> Option<String>) -> Result<EnvOverrides, ConfigError> {
    let get = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut o = EnvOverrides::default();
    // STORAGE_CHARTS_PATH is the storage configuration's name for the same directory;
    // CHART_OUTPUT_DIR wins when both are set.
    match (get("CHART_OUTPUT_DIR"), get("STORAGE_CHARTS_PATH")) {
        (Some(dir), other) => {
            if let Some(other) = other.filter(|o| *o != dir) {
                let shown: String = other.chars().take(256).collect();
                o.warnings.push(format!(
                    "STORAGE_CHARTS_PATH={shown:?} is ignored: CHART_OUTPUT_DIR is set too and \
                     wins. Fix: unset one of them"
                ));
            }
            o.output_dir = Some(dir);
            o.output_dir_var = Some("CHART_OUTPUT_DIR");
        }
        (None, Some(dir)) => {
            o.output_dir = Some(dir);
            o.output_dir_var = Some("STORAGE_CHARTS_PATH");
        }
        (None, None) => {}
    }
    if let Some(v) = get("CHART_MAX_AGE_HOURS") {
        o.max_age = Some(duration(
            "CHART_MAX_AGE_HOURS",
            &v,
            3600.0,
            "a number of hours, e.g. 6 or 0.5; 0 = no limit",
        )?);
    }
    if let Some(v) = get("CHART_MAX_SIZE_MB") {
        let expected = "a number of MiB, e.g. 200 or 0.5; 0 = no limit";
        let bytes = (number("CHART_MAX_SIZE_MB", &v, expected)? * 1_048_576.0).round();
        // 2^64 is exactly representable; anything at or above it does not fit in u64.
        if bytes >= 18_446_744_073_709_551_616.0 {
            return Err(ConfigError::new(format!(
                "CHART_MAX_SIZE_MB: {v:?} is too large"
            )));
        }
        o.max_size = Some(bytes as u64);
    }
    if let Some(v) = get("CHART_CLEANUP_INTERVAL_MINUTES") {
        let var = "CHART_CLEANUP_INTERVAL_MINUTES";
        let d = duration(var, &v, 60.0, "a number of minutes, e.g. 15")?;
        if d < Duration::from_secs(1) {
            return Err(ConfigError::new(format!(
                "{var}: {v:?} is too short (the resync interval must be at least 1s)"
            )));
        }
        o.resync_interval = Some(d);
    }
    if let Some(v) = get("CHART_ENABLE_CLEANUP") {
        o.cleanup_enabled = Some(match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(bad(
                    "CHART_ENABLE_CLEANUP",
                    "boolean",
                    &v,
                    "true/false, 1/0, yes/no or on/off",
                ))
            }
        });
    }
    if let Some(v) = get("CHART_GRACE_SECONDS") {
        o.grace = Some(duration(
            "CHART_GRACE_SECONDS",
            &v,
            1.0,
            "a number of seconds, e.g. 30",
        )?);
    }
    if let Some(v) = get("ENVIRONMENT") {
        // ENVIRONMENT belongs to the application chartd sits next to (`test`, `ci`, `qa`...);
        // the replaced system fell back to its development settings, and so does chartd.
        // (`environment:` in a config file is chartd's own and stays an error.)
        o.environment = Some(parse_environment(&v).unwrap_or_else(|| {
            let shown: String = v.chars().take(64).collect();
            o.warnings.push(format!(
                "ENVIRONMENT: unknown environment {shown:?}; using the development preset (24h / 1000 MiB). \
                 The variable overrides environment: in the config file. Fix: run chartd without \
                 ENVIRONMENT (under systemd: UnsetEnvironment=ENVIRONMENT, which also drops one read \
                 by EnvironmentFile=) and set environment: in the config file, or give chartd \
                 ENVIRONMENT=development, staging or production"
            ));
            Environment::Development
        }));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<EnvOverrides, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read(&move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn unknown_environment_warns_and_selects_development() {
        let o = with(&[("ENVIRONMENT", "test")]).unwrap();
        assert_eq!(o.environment, Some(Environment::Development));
        assert_eq!(o.warnings.len(), 1);
        assert!(o.warnings[0].starts_with("ENVIRONMENT: unknown environment \"test\""));
        let o = with(&[("CHART_GRACE_SECONDS", "2.5")]).unwrap();
        assert_eq!(o.grace, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn nothing_set() {
        assert_eq!(with(&[]).unwrap(), EnvOverrides::default());
    }

    #[test]
    fn all_set() {
        let o = with(&[
            ("CHART_OUTPUT_DIR", "/srv/charts"),
            ("CHART_MAX_AGE_HOURS", "0.1"),
            ("CHART_MAX_SIZE_MB", "50"),
            ("CHART_CLEANUP_INTERVAL_MINUTES", "2.5"),
            ("CHART_ENABLE_CLEANUP", "Off"),
            ("ENVIRONMENT", "PROD"),
        ])
        .unwrap();
        assert_eq!(o.output_dir.as_deref(), Some("/srv/charts"));
        assert_eq!(o.output_dir_var, Some("CHART_OUTPUT_DIR"));
        assert_eq!(o.max_age, Some(Duration::from_secs(360)));
        assert_eq!(o.max_size, Some(52_428_800));
        assert_eq!(o.resync_interval, Some(Duration::from_secs(150)));
        assert_eq!(o.cleanup_enabled, Some(false));
        assert_eq!(o.environment, Some(Environment::Production));
    }

    #[test]
    fn storage_charts_path_sets_the_root_unless_chart_output_dir_does() {
        let o = with(&[("STORAGE_CHARTS_PATH", "/srv/storage")]).unwrap();
        assert_eq!(o.output_dir.as_deref(), Some("/srv/storage"));
        assert_eq!(o.output_dir_var, Some("STORAGE_CHARTS_PATH"));
        assert!(o.warnings.is_empty());
        let o = with(&[
            ("STORAGE_CHARTS_PATH", "/srv/storage"),
            ("CHART_OUTPUT_DIR", "/srv/charts"),
        ])
        .unwrap();
        assert_eq!(o.output_dir.as_deref(), Some("/srv/charts"));
        assert_eq!(o.output_dir_var, Some("CHART_OUTPUT_DIR"));
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        assert!(o.warnings[0].starts_with("STORAGE_CHARTS_PATH=\"/srv/storage\" is ignored"));
        // The same directory under both names is no conflict; an empty one is not set.
        for other in ["/srv/charts", ""] {
            let o = with(&[
                ("STORAGE_CHARTS_PATH", other),
                ("CHART_OUTPUT_DIR", "/srv/charts"),
            ])
            .unwrap();
            assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        }
        let o = with(&[("STORAGE_CHARTS_PATH", "/s"), ("CHART_OUTPUT_DIR", " ")]).unwrap();
        assert_eq!(o.output_dir_var, Some("STORAGE_CHARTS_PATH"));
    }

    #[test]
    fn empty_values_are_ignored() {
        let o = with(&[
            ("CHART_MAX_SIZE_MB", ""),
            ("ENVIRONMENT", "  "),
            ("CHART_OUTPUT_DIR", ""),
            ("STORAGE_CHARTS_PATH", " "),
        ])
        .unwrap();
        assert_eq!(o, EnvOverrides::default());
    }

    #[test]
    fn zero_means_no_limit_but_is_set() {
        let o = with(&[("CHART_MAX_AGE_HOURS", "0"), ("CHART_MAX_SIZE_MB", "0")]).unwrap();
        assert_eq!(o.max_age, Some(Duration::ZERO));
        assert_eq!(o.max_size, Some(0));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = with(&[("CHART_MAX_SIZE_MB", "abc")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("CHART_MAX_SIZE_MB: invalid number \"abc\""),
            "{e}"
        );
        for (var, value) in [
            ("CHART_MAX_SIZE_MB", "-1"),
            ("CHART_MAX_SIZE_MB", "1e300"),
            ("CHART_MAX_AGE_HOURS", "NaN"),
            ("CHART_MAX_AGE_HOURS", "inf"),
            ("CHART_MAX_AGE_HOURS", "1e12"),
            ("CHART_CLEANUP_INTERVAL_MINUTES", "0"),
            ("CHART_CLEANUP_INTERVAL_MINUTES", "x"),
            ("CHART_ENABLE_CLEANUP", "maybe"),
            ("CHART_GRACE_SECONDS", "-5"),
        ] {
            let e = with(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{var}: ")), "{e}");
        }
    }
}
