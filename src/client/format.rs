//! How the client writes a figure: counts with thousands separators, binary byte units,
//! hours (minutes and days at the ends), durations, rates, usage bars, and "ago" for a time.
//! Used by the tables of `render.rs` and by `chartd top`.
//!
//! May touch: nothing outside its arguments but the clock (read, for "ago").

use std::time::{Duration, SystemTime};

const BAR_WIDTH: usize = 20;

/// `1,234,567`
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 file`, `2,001 files`
pub(super) fn files(n: u64) -> String {
    format!("{} file{}", count(n), if n == 1 { "" } else { "s" })
}

/// `1.5 MiB` (binary units, like the `_mb` fields of the daemon).
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `45m`, `20.1h`, `3.2d`
pub fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{:.0}m", h * 60.0)
    } else if h < 48.0 {
        format!("{h:.1}h")
    } else {
        format!("{:.1}d", h / 24.0)
    }
}

pub(super) fn hours_or_dash(h: Option<f64>) -> String {
    h.map_or_else(|| "-".to_string(), hours)
}

pub(super) fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub(super) fn bar(percent: f64) -> String {
    let filled = ((percent / 100.0) * BAR_WIDTH as f64)
        .round()
        .clamp(0.0, BAR_WIDTH as f64) as usize;
    format!(
        "[{}{}] {:>5.1}%",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        percent
    )
}

/// "5m ago" for an RFC 3339 time, "never" for none.
pub(super) fn ago(v: Option<&str>) -> String {
    match v {
        None => "never".to_string(),
        Some(s) => match humantime::parse_rfc3339(s) {
            Ok(t) => {
                let secs = SystemTime::now()
                    .duration_since(t)
                    .unwrap_or(Duration::ZERO)
                    .as_secs();
                format!("{} ago", duration(secs))
            }
            Err(_) => s.to_string(),
        },
    }
}

/// `1.2 MiB/s`
pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", bytes(bytes_per_second))
}
