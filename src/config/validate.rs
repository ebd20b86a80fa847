//! Checks on the merged config. Every message starts with the key (or the environment
//! variable) to fix, because the operator reads it in `journalctl` without the file at hand.
//!
//! May touch: nothing outside its arguments (pure); globs go through `policy::compile`, the
//! compiler the policy uses (a reach into `policy`, which consumes the config).

use super::merge::Provenance;
use super::{Config, MinFree};
use std::path::Path;
use std::time::Duration;

/// Log levels accepted as a bare word; anything else must be a `target=level` directive.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

fn root_path_key(i: usize, prov: &Provenance) -> String {
    match prov.output_dir_var {
        Some(var) if i == 0 => var.to_string(),
        _ => format!("roots[{i}].path"),
    }
}

/// A bare word that is not a level (say `inf`) would be read by EnvFilter as a *target* name
/// and silently log everything of that target only, so it is rejected here.
fn check_level(level: &str) -> Result<(), String> {
    let expected =
        "expected error, warn, info, debug, trace or a directive such as info,chartd=debug";
    let trimmed = level.trim();
    let ok_shape = LEVELS.contains(&trimmed.to_ascii_lowercase().as_str()) || trimmed.contains('=');
    if !ok_shape {
        return Err(format!("log.level: invalid level {level:?} ({expected})"));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(trimmed)
        .map(|_| ())
        .map_err(|e| format!("log.level: invalid filter {level:?} ({e}; {expected})"))
}

/// With the policy's own compiler (`policy::compile`), so that validation and matching never
/// disagree about a glob.
fn check_globs(key: &str, globs: &[String]) -> Result<(), String> {
    for g in globs {
        crate::policy::compile(key, g)?;
    }
    Ok(())
}

/// Validates `c`; the error is the message without the file name.
pub fn validate(c: &Config, prov: &Provenance) -> Result<(), String> {
    if c.roots.is_empty() {
        return Err("roots: at least one root is required (or set CHART_OUTPUT_DIR)".to_string());
    }
    for (i, r) in c.roots.iter().enumerate() {
        let key = |field: &str| format!("roots[{i}].{field}");
        let pkey = root_path_key(i, prov);
        if r.path.as_os_str().is_empty() {
            return Err(format!("{pkey}: must not be empty"));
        }
        if !r.path.is_absolute() {
            return Err(format!(
                "{pkey}: {} is not an absolute path",
                r.path.display()
            ));
        }
        if r.path == Path::new("/") {
            return Err(format!(
                "{pkey}: the filesystem root / cannot be a managed root"
            ));
        }
        for (j, other) in c.roots.iter().enumerate().take(i) {
            let okey = root_path_key(j, prov);
            if r.path == other.path {
                return Err(format!(
                    "{pkey}: {} is the same directory as {okey}",
                    r.path.display()
                ));
            }
            if r.path.starts_with(&other.path) || other.path.starts_with(&r.path) {
                return Err(format!(
                    "{pkey}: {} and {okey} {} are nested; roots must not contain each other",
                    r.path.display(),
                    other.path.display()
                ));
            }
        }
        if !(r.low_watermark > 0.0 && r.low_watermark <= 1.0) {
            return Err(format!(
                "{}: must be in (0%, 100%], e.g. 90%",
                key("low_watermark")
            ));
        }
        if let Some(MinFree::Percent(p)) = r.min_free {
            if !(p > 0.0 && p < 100.0) {
                return Err(format!(
                    "{}: a percentage must be in (0%, 100%), e.g. 5%",
                    key("min_free")
                ));
            }
        }
        check_globs(&key("include"), &r.include)?;
        check_globs(&key("exclude"), &r.exclude)?;
        check_globs(&key("protect"), &r.protect)?;
        if let Some(crate::config::InodeFloor::Percent(p)) = r.min_free_inodes {
            if !(p > 0.0 && p < 100.0) {
                return Err(format!(
                    "{}: a percentage must be in (0%, 100%), e.g. 5%",
                    key("min_free_inodes")
                ));
            }
        }
        for (j, rule) in r.rules.iter().enumerate() {
            let rkey = format!("roots[{i}].rules[{j}]");
            if rule.pattern.contains('/') {
                return Err(format!(
                    "{rkey}.match: {:?} contains '/': a rule matches a group's name (the first \
                     directory under the root), not a path",
                    rule.pattern
                ));
            }
            crate::policy::compile(&format!("{rkey}.match"), &rule.pattern)?;
        }
    }
    let (w, cr) = (c.alerts.warning_percent, c.alerts.critical_percent);
    if !(w > 0.0 && w <= 100.0) {
        return Err(format!("alerts.warning: must be in (0%, 100%] (got {w}%)"));
    }
    if !(cr >= w && cr <= 100.0) {
        return Err(format!(
            "alerts.critical: must be at least alerts.warning ({w}%) and at most 100% (got {cr}%)"
        ));
    }
    if c.control.max_connections < 1 {
        return Err("control.max_connections: must be at least 1".to_string());
    }
    // A zero idle timeout would close every connection before its first request.
    if c.control.idle_timeout < Duration::from_secs(1) {
        return Err("control.idle_timeout: must be at least 1s".to_string());
    }
    if c.resync_interval < Duration::from_secs(1) {
        return Err("resync_interval: must be at least 1s (it is a periodic safety net; it cannot be turned off)".to_string());
    }
    if c.socket.as_os_str().is_empty() {
        return Err("socket: must not be empty".to_string());
    }
    check_level(&c.log.level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        for ok in [
            "info",
            "DEBUG",
            "warn",
            "chartd=debug",
            "info,chartd=trace",
            "off",
        ] {
            assert!(check_level(ok).is_ok(), "{ok}");
        }
        for bad in ["inf", "", "verbose", "chartd=loud"] {
            assert!(check_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(check_globs("k", &["*.png".to_string(), "sub/**/x".to_string()]).is_ok());
        let e = check_globs("roots[0].include", &["[a".to_string()]).unwrap_err();
        assert!(
            e.starts_with("roots[0].include: invalid glob \"[a\""),
            "{e}"
        );
    }
}
