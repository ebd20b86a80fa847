//! The YAML file schema: what `chartd.yaml` may contain, with every value still optional so
//! that the merge can tell "set in the file" from "absent" (presets only fill absent values).
//!
//! Unit-bearing values are wrapper types with hand-written serde impls, so that a bad value
//! is reported by serde with its key path and line, and so that `to_yaml` writes the same
//! human units (`6h`, `200MiB`, `90%`) that the parser reads.
//!
//! May touch: nothing outside its arguments (pure: the serde schema and its conversions).

use super::presets::parse_environment;
use super::units;
use super::{Environment, InodeFloor, LogFormat, MinFree};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Separates a value error's message from its hint inside a serde error message, so that
/// `ConfigError` can move the hint after serde's " at line L column C" suffix. The offending
/// value is always quoted with `{:?}`, which escapes control characters, so it cannot
/// contain this separator.
pub(crate) const HINT_SEP: char = '\u{1}';

/// Formats the message for an unparsable value: `invalid size "x"` + separator + hint.
fn invalid(what: &str, text: &str, reason: &str, expected: &str) -> String {
    // Long garbage (say, a pasted binary) would drown the message; the line number suffices.
    let shown: String = text.chars().take(64).collect();
    format!("invalid {what} {shown:?}{HINT_SEP}({reason}; expected {expected})")
}

/// Accepts any YAML scalar (string, integer, float) as text and parses it with `F`, because
/// `max_size: 200`, `max_size: 200MiB` and `low_watermark: 0.9` are all natural to write.
/// Parsing happens inside the visitor on purpose: serde_yaml attaches the key path and the
/// line/column only to errors raised while the scalar is being deserialized.
struct ParseScalar<F>(F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for ParseScalar<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Rust's shortest round-trip form never uses an exponent, which the parsers reject.
        self.visit_str(&v.to_string())
    }
}

fn parse_scalar<'de, D, T, F>(d: D, parse: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    d.deserialize_any(ParseScalar(parse))
}

const SIZE_HINT: &str = "e.g. 200MiB, 1.5GB or a plain number of bytes";
const DURATION_HINT: &str = "e.g. 60s, 6h, 1h 30m, or a plain number of seconds";
const PERCENT_HINT: &str = "e.g. 90% or a fraction such as 0.9";

/// A size in bytes (`200MiB`); see [`units::parse_size`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            units::parse_size(text)
                .map(Size)
                .map_err(|r| invalid("size", text, &r, SIZE_HINT))
        })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = units::format_size(self.0);
        // Plain bytes go out as a YAML integer rather than a quoted string.
        if text.bytes().all(|b| b.is_ascii_digit()) {
            s.serialize_u64(self.0)
        } else {
            s.serialize_str(&text)
        }
    }
}

/// A duration (`6h`); see [`units::parse_duration`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            units::parse_duration(text)
                .map(Dur)
                .map_err(|r| invalid("duration", text, &r, DURATION_HINT))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_zero() {
            s.serialize_u64(0)
        } else {
            s.serialize_str(&units::format_duration(self.0))
        }
    }
}

/// A share stored as a fraction (`low_watermark: 90%` → 0.9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            units::parse_percent(text)
                .map(Fraction)
                .map_err(|r| invalid("percentage", text, &r, PERCENT_HINT))
        })
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_fraction(self.0))
    }
}

/// A share stored as percentage points (`warning: 80%` → 80.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Points(pub f64);

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            units::parse_percent_points(text)
                .map(Points)
                .map_err(|r| invalid("percentage", text, &r, PERCENT_HINT))
        })
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::format_percent_points(self.0))
    }
}

/// `min_free`: a percentage of the filesystem (`5%`) or a size (`10GiB`). `0` / `0%` turn it
/// off, like every other explicit zero limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinFreeValue(pub Option<MinFree>);

impl<'de> Deserialize<'de> for MinFreeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            let hint = "e.g. 5% of the filesystem or a size such as 10GiB";
            let value = if text.trim_end().ends_with('%') {
                units::parse_percent_points(text).map(|p| (p != 0.0).then_some(MinFree::Percent(p)))
            } else {
                units::parse_size(text).map(|b| (b != 0).then_some(MinFree::Bytes(b)))
            };
            value
                .map(MinFreeValue)
                .map_err(|r| invalid("free-space floor", text, &r, hint))
        })
    }
}

impl Serialize for MinFreeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_u64(0),
            Some(MinFree::Percent(p)) => Points(p).serialize(s),
            Some(MinFree::Bytes(b)) => Size(b).serialize(s),
        }
    }
}

/// `environment:`; accepts the same aliases as the `ENVIRONMENT` variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvName(pub Environment);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            parse_environment(text).map(EnvName).ok_or_else(|| {
                invalid(
                    "environment",
                    text,
                    "unknown environment",
                    "development, staging or production",
                )
            })
        })
    }
}

impl Serialize for EnvName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self.0 {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        })
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormatName(pub LogFormat);

impl<'de> Deserialize<'de> for FormatName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(FormatName(LogFormat::Auto)),
            "text" => Ok(FormatName(LogFormat::Text)),
            "journald" => Ok(FormatName(LogFormat::Journald)),
            _ => Err(invalid(
                "log format",
                text,
                "unknown format",
                "auto, text or journald",
            )),
        })
    }
}

impl Serialize for FormatName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self.0 {
            LogFormat::Auto => "auto",
            LogFormat::Text => "text",
            LogFormat::Journald => "journald",
        })
    }
}

/// The whole file. Every field is optional: absent means "preset, else default".
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resync_interval: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<FileLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<FileControl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<FileAlerts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<super::metrics::FileMetrics>,
    #[serde(default)]
    pub roots: Vec<FileRoot>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatName>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileControl {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_uids: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<Points>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<Points>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoot {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_watermark: Option<Fraction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free: Option<MinFreeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_empty_dirs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free_inodes: Option<InodeFloorValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_newest: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_max_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_max_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<FileRule>>,
}

/// One entry of `rules:`. Unknown keys are refused with the rule's index and line
/// (`roots[0].rules[2]: unknown field ...`), like every other key.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_newest: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_max_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_max_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect: Option<bool>,
}

/// `min_free_inodes`: a percentage of the filesystem's inodes (`5%`) or a count (`10000`).
/// `0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InodeFloorValue(pub Option<InodeFloor>);

impl<'de> Deserialize<'de> for InodeFloorValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, |text| {
            let hint = "e.g. 5% of the filesystem's inodes or a count such as 10000";
            let value = if text.trim_end().ends_with('%') {
                units::parse_percent_points(text)
                    .map(|p| (p != 0.0).then_some(InodeFloor::Percent(p)))
            } else {
                text.trim()
                    .parse::<u64>()
                    .map(|n| (n != 0).then_some(InodeFloor::Count(n)))
                    .map_err(|_| "not a whole number of inodes".to_string())
            };
            value
                .map(InodeFloorValue)
                .map_err(|r| invalid("inode floor", text, &r, hint))
        })
    }
}

impl Serialize for InodeFloorValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_u64(0),
            Some(InodeFloor::Percent(p)) => Points(p).serialize(s),
            Some(InodeFloor::Count(n)) => s.serialize_u64(n),
        }
    }
}

impl FileConfig {
    /// The effective config in file form with every value explicit (so that a preset can
    /// never fill anything when it is loaded back). Paths that are not UTF-8 are written
    /// lossily: YAML text cannot carry them.
    pub fn from_config(c: &super::Config) -> FileConfig {
        FileConfig {
            environment: Some(EnvName(c.environment)),
            cleanup_enabled: Some(c.cleanup_enabled),
            resync_interval: Some(Dur(c.resync_interval)),
            socket: Some(c.socket.to_string_lossy().into_owned()),
            log: Some(FileLog {
                level: Some(c.log.level.clone()),
                format: Some(FormatName(c.log.format)),
            }),
            control: Some(FileControl {
                group: c.control.group.clone(),
                admin_uids: Some(c.control.admin_uids.clone()),
                admin_group: c.control.admin_group.clone(),
                max_connections: Some(c.control.max_connections),
                idle_timeout: Some(Dur(c.control.idle_timeout)),
            }),
            alerts: Some(FileAlerts {
                warning: Some(Points(c.alerts.warning_percent)),
                critical: Some(Points(c.alerts.critical_percent)),
            }),
            metrics: super::metrics::FileMetrics::from_config(&c.metrics),
            roots: c
                .roots
                .iter()
                .map(|r| FileRoot {
                    path: r.path.to_string_lossy().into_owned(),
                    create: Some(r.create),
                    max_age: Some(Dur(r.max_age.unwrap_or(Duration::ZERO))),
                    max_size: Some(Size(r.max_size.unwrap_or(0))),
                    low_watermark: Some(Fraction(r.low_watermark)),
                    min_free: r.min_free.map(|m| MinFreeValue(Some(m))),
                    grace: Some(Dur(r.grace)),
                    include: Some(r.include.clone()),
                    exclude: Some(r.exclude.clone()),
                    protect: Some(r.protect.clone()),
                    prune_empty_dirs: Some(r.prune_empty_dirs),
                    max_files: Some(r.max_files.unwrap_or(0)),
                    min_free_inodes: Some(InodeFloorValue(r.min_free_inodes)),
                    keep_newest: Some(r.keep_newest),
                    group_max_size: Some(Size(r.group_max_size.unwrap_or(0))),
                    group_max_files: Some(r.group_max_files.unwrap_or(0)),
                    rules: (!r.rules.is_empty()).then(|| {
                        r.rules
                            .iter()
                            .map(|u| FileRule {
                                pattern: u.pattern.clone(),
                                max_age: u.max_age.map(Dur),
                                grace: u.grace.map(Dur),
                                keep_newest: u.keep_newest,
                                group_max_size: u.group_max_size.map(Size),
                                group_max_files: u.group_max_files,
                                protect: u.protect.then_some(true),
                            })
                            .collect()
                    }),
                })
                .collect(),
        }
    }
}
