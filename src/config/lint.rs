//! Warnings about configs that are valid but probably not what the operator meant: each names
//! the key (and line, for the file) and says how to fix it. They never stop chartd; the
//! daemon logs them at start and `check-config` prints them on stderr.
//!
//! Why these: each is a trap a new user fell into (issue #14): a root that does not exist
//! and is not created; `max_age: 6` meaning six *seconds* to someone used to
//! `CHART_MAX_AGE_HOURS`; an age limit below grace (grace wins); `200MB` (10^6) next to
//! `CHART_MAX_SIZE_MB=200` (MiB).
//!
//! May touch: the metadata of each configured root path (exists, is a directory, writable),
//! read-only; nothing below it.

use super::Config;
use serde_yaml::Value;
use std::path::Path;

/// Keys holding durations, where a bare number means seconds.
const DURATION_KEYS: [&str; 2] = ["max_age", "grace"];
/// Keys holding sizes.
const SIZE_KEYS: [&str; 2] = ["max_size", "min_free"];

/// The warnings for `config`, loaded from `text` (the file, `None` for the built-in
/// defaults) at `origin`.
pub fn lint(config: &Config, text: Option<&str>, origin: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let file = origin.map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    for (i, root) in config.roots.iter().enumerate() {
        let key = format!("roots[{i}].path");
        match std::fs::metadata(&root.path) {
            Err(_) if !root.create => out.push(format!(
                "{file}: {key}: {} does not exist and create is false: chartd reports it missing (critical) until it appears. Fix: create it (mkdir -p {}) or set create: true",
                root.path.display(),
                root.path.display()
            )),
            Err(_) => {}
            Ok(m) if !m.is_dir() => out.push(format!(
                "{file}: {key}: {} is not a directory",
                root.path.display()
            )),
            Ok(_) => {
                if rustix::fs::access(&root.path, rustix::fs::Access::WRITE_OK).is_err() {
                    out.push(format!(
                        "{file}: {key}: {} is not writable for this user, so nothing in it could be deleted by a chartd running as this user. Fix: run chartd as a user with write access (the package's chartd user, see the README's Permissions), or give it access",
                        root.path.display()
                    ));
                }
            }
        }
        if let Some(max_age) = root.max_age {
            if max_age < root.grace {
                out.push(format!(
                    "{file}: roots[{i}]: max_age ({}) is below grace ({}): files younger than grace are never deleted, so they live at least {}. Fix: raise max_age or lower grace",
                    humantime::format_duration(max_age),
                    humantime::format_duration(root.grace),
                    humantime::format_duration(root.grace)
                ));
            }
        }
    }
    if let Some(text) = text {
        out.extend(lint_text(text, &file));
    }
    out
}

/// Warnings from the raw scalars of the file (what was written, not what it means).
fn lint_text(text: &str, file: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(doc) = serde_yaml::from_str::<Value>(text) else {
        return out;
    };
    let roots = doc
        .get("roots")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let mut from_line = 0;
    for (i, root) in roots.iter().enumerate() {
        for key in DURATION_KEYS {
            if let Some(secs) = root.get(key).and_then(bare_seconds) {
                if secs > 0.0 && secs < 60.0 {
                    let line = line_of(text, key, &mut from_line);
                    out.push(format!(
                        "{file}: roots[{i}].{key}: {secs} at line {line} is {secs} seconds (a bare number is seconds). Fix: write the unit, e.g. {secs}h for hours (CHART_MAX_AGE_HOURS counts hours) or {secs}s to keep seconds"
                    ));
                }
            }
        }
        for key in SIZE_KEYS {
            if let Some(raw) = root.get(key).and_then(Value::as_str) {
                if let Some(unit) = decimal_unit(raw) {
                    let line = line_of(text, key, &mut from_line);
                    out.push(format!(
                        "{file}: roots[{i}].{key}: {raw:?} at line {line} uses the decimal unit {unit} (10^n bytes), while CHART_MAX_SIZE_MB and the _mb figures of status are MiB (1,048,576 bytes). Fix: write {}iB if you meant binary units (or a plain number of bytes)",
                        raw.trim_end_matches(['B', 'b']).trim_end()
                    ));
                }
            }
        }
    }
    out
}

/// A duration written as a plain number (YAML integer or float, or a numeric string).
fn bare_seconds(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// `K`, `M`, `G`, `T` with or without `B` (1000-based in chartd), case-insensitively `kb`…
fn decimal_unit(raw: &str) -> Option<String> {
    let t = raw.trim();
    let unit: String = t
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let u = unit.to_ascii_uppercase();
    ["K", "M", "G", "T", "KB", "MB", "GB", "TB"]
        .contains(&u.as_str())
        .then_some(unit)
}

/// The 1-based line of the next `key:` at or after line `from` (advanced past it), so that
/// repeated keys of several roots are found in order; 0 when not found.
fn line_of(text: &str, key: &str, from: &mut usize) -> usize {
    let needle = format!("{key}:");
    for (n, line) in text.lines().enumerate().skip(*from) {
        let l = line.trim_start().trim_start_matches("- ").trim_start();
        if l.starts_with(&needle)
            || line.contains(&format!(" {needle}"))
            || line.contains(&format!("{{{needle}"))
        {
            *from = n + 1;
            return n + 1;
        }
    }
    0
}
