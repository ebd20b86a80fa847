//! `chartd check-config --explain`: every effective value with where it came from (variable,
//! file, preset, default), because "why is max_size 200 MiB?" is the first question after a
//! surprise, and the answer is spread over a file, the environment and a preset table.
//!
//! May touch: the config file the `Config` came from (read again, for its keys) and the environment
//! through the closure it is given; writes nothing.

use super::units::{format_duration, format_size};
use super::{Config, Environment};
use serde_yaml::Value;

fn env_name(e: Environment) -> &'static str {
    match e {
        Environment::Development => "development",
        Environment::Staging => "staging",
        Environment::Production => "production",
    }
}

/// The text `--explain` prints: one `key = value  (source)` line per setting.
pub fn explain(c: &Config, env: &dyn Fn(&str) -> Option<String>) -> String {
    let set = |name: &str| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|_| name.to_string())
    };
    let doc: Value = c
        .source
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let file = c
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| {
            format!("file {}", p.display())
        });
    let in_file = |path: &[&str]| {
        let mut v = &doc;
        for k in path {
            match k.parse::<usize>() {
                Ok(i) => v = v.get(i).unwrap_or(&Value::Null),
                Err(_) => v = v.get(*k).unwrap_or(&Value::Null),
            }
        }
        !v.is_null()
    };
    let env_selected = set("ENVIRONMENT");
    let preset_on = env_selected.is_some() || in_file(&["environment"]) || c.source.is_none();
    let preset = format!("preset {}", env_name(c.environment));
    let source = |var: Option<String>, path: &[&str], preset_key: bool| -> String {
        if let Some(v) = var {
            format!("variable {v}")
        } else if in_file(path) {
            file.clone()
        } else if preset_key && preset_on {
            preset.clone()
        } else {
            "default".to_string()
        }
    };
    let mut out = String::new();
    let mut line = |key: String, value: String, src: String| {
        out += &format!("{key} = {value}  ({src})\n");
    };
    line(
        "environment".into(),
        if preset_on {
            env_name(c.environment).to_string()
        } else {
            "none (no preset applied)".to_string()
        },
        source(env_selected.clone(), &["environment"], false),
    );
    line(
        "cleanup_enabled".into(),
        c.cleanup_enabled.to_string(),
        source(set("CHART_ENABLE_CLEANUP"), &["cleanup_enabled"], false),
    );
    line(
        "resync_interval".into(),
        format_duration(c.resync_interval),
        source(
            set("CHART_CLEANUP_INTERVAL_MINUTES"),
            &["resync_interval"],
            true,
        ),
    );
    line(
        "socket".into(),
        c.socket.display().to_string(),
        source(None, &["socket"], false),
    );
    for (i, r) in c.roots.iter().enumerate() {
        let first = |var: &str| if i == 0 { set(var) } else { None };
        let idx = i.to_string();
        let k = |name: &str| format!("roots[{i}].{name}");
        line(
            k("path"),
            r.path.display().to_string(),
            source(
                first("CHART_OUTPUT_DIR").or_else(|| first("STORAGE_CHARTS_PATH")),
                &["roots", &idx, "path"],
                false,
            ),
        );
        line(
            k("max_age"),
            r.max_age.map_or("0 (no limit)".into(), format_duration),
            source(
                first("CHART_MAX_AGE_HOURS"),
                &["roots", &idx, "max_age"],
                true,
            ),
        );
        line(
            k("max_size"),
            r.max_size.map_or("0 (no limit)".into(), format_size),
            source(
                first("CHART_MAX_SIZE_MB"),
                &["roots", &idx, "max_size"],
                true,
            ),
        );
        line(
            k("grace"),
            format_duration(r.grace),
            source(
                first("CHART_GRACE_SECONDS"),
                &["roots", &idx, "grace"],
                false,
            ),
        );
        line(
            k("low_watermark"),
            format!("{}%", r.low_watermark * 100.0),
            source(None, &["roots", &idx, "low_watermark"], false),
        );
        line(
            k("min_free"),
            match r.min_free {
                None => "none".into(),
                Some(super::MinFree::Percent(p)) => format!("{p}%"),
                Some(super::MinFree::Bytes(b)) => format_size(b),
            },
            source(None, &["roots", &idx, "min_free"], false),
        );
        line(
            k("max_files"),
            r.max_files.map_or("0 (no limit)".into(), |n| n.to_string()),
            source(None, &["roots", &idx, "max_files"], false),
        );
        line(
            k("min_free_inodes"),
            match r.min_free_inodes {
                None => "none".into(),
                Some(super::InodeFloor::Percent(p)) => format!("{p}%"),
                Some(super::InodeFloor::Count(n)) => n.to_string(),
            },
            source(None, &["roots", &idx, "min_free_inodes"], false),
        );
        line(
            k("keep_newest"),
            r.keep_newest.to_string(),
            source(None, &["roots", &idx, "keep_newest"], false),
        );
        line(
            k("group_max_size"),
            r.group_max_size.map_or("0 (none)".into(), format_size),
            source(None, &["roots", &idx, "group_max_size"], false),
        );
        line(
            k("group_max_files"),
            r.group_max_files
                .map_or("0 (none)".into(), |n| n.to_string()),
            source(None, &["roots", &idx, "group_max_files"], false),
        );
        line(
            k("rules"),
            if r.rules.is_empty() {
                "none".into()
            } else {
                r.rules
                    .iter()
                    .map(|u| format!("{:?}", u.pattern))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            source(None, &["roots", &idx, "rules"], false),
        );
        line(
            k("include"),
            r.include.join(", "),
            source(None, &["roots", &idx, "include"], false),
        );
        line(
            k("exclude"),
            r.exclude.join(", "),
            source(None, &["roots", &idx, "exclude"], false),
        );
    }
    out
}
