//! Human output of the client: compact aligned tables an operator reads at a glance.
//!
//! Pure functions from the daemon's JSON answer to text, tolerant of missing fields (an older
//! or newer daemon may send fewer or more): what is absent prints as `-`, never a panic.

use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

const BAR_WIDTH: usize = 20;

/// Whether to colour: only on a terminal, and only when `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect() -> Style {
        let tty = rustix::termios::isatty(std::io::stdout());
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: tty && !no_color,
        }
    }

    fn paint(&self, code: Option<&str>, s: &str) -> String {
        match code {
            Some(code) if self.color => format!("\x1b[{code}m{s}\x1b[0m"),
            _ => s.to_string(),
        }
    }
}

const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "1;31";
const BOLD: &str = "1";

fn alert_color(alert: &str) -> Option<&'static str> {
    match alert {
        "ok" => Some(GREEN),
        "warning" => Some(YELLOW),
        "critical" => Some(RED),
        _ => None,
    }
}

/// One table cell: text, optional colour, alignment.
struct Cell {
    text: String,
    color: Option<&'static str>,
    right: bool,
}

fn l(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        color: None,
        right: false,
    }
}

fn r(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        color: None,
        right: true,
    }
}

fn colored(text: impl Into<String>, color: Option<&'static str>) -> Cell {
    Cell {
        text: text.into(),
        color,
        right: false,
    }
}

/// Aligns columns by character count, padding before colouring so escapes do not skew widths.
fn table(head: &[&str], rows: Vec<Vec<Cell>>, style: &Style) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let last = head.len().saturating_sub(1);
    let line = |cells: Vec<Cell>, out: &mut String| {
        let mut text = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.text.chars().count());
            let padded = if c.right {
                format!("{}{}", " ".repeat(pad), c.text)
            } else if i == last {
                c.text.clone() // no trailing blanks
            } else {
                format!("{}{}", c.text, " ".repeat(pad))
            };
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(&style.paint(c.color, &padded));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    // Headers align like their column (numbers right).
    let right = |i: usize| rows.first().and_then(|r| r.get(i)).is_some_and(|c| c.right);
    let header = head
        .iter()
        .enumerate()
        .map(|(i, h)| Cell {
            text: h.to_string(),
            color: Some(BOLD),
            right: right(i),
        })
        .collect();
    line(header, &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out
}

fn get_u64(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}

fn get_f64(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64)
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn get_bool(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

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
fn files(n: u64) -> String {
    format!("{} file{}", count(n), if n == 1 { "" } else { "s" })
}

fn count_or_dash(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), count)
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

fn hours_or_dash(h: Option<f64>) -> String {
    h.map_or_else(|| "-".to_string(), hours)
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn bar(percent: f64) -> String {
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

/// "5m ago" for an RFC 3339 time, "never" for null.
fn ago(v: Option<&Value>) -> String {
    match v.and_then(Value::as_str) {
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

fn roots(answer: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    answer
        .get("roots")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

pub fn status(answer: &Map<String, Value>, style: &Style) -> String {
    let roots = roots(answer);
    let mut out = format!(
        "chartd {}, up {}: {} root{}, {} files, {}\n\n",
        get_str(answer, "version").unwrap_or("?"),
        duration(get_u64(answer, "uptime_seconds").unwrap_or(0)),
        roots.len(),
        if roots.len() == 1 { "" } else { "s" },
        count_or_dash(get_u64(answer, "total_files")),
        bytes(get_u64(answer, "total_bytes").unwrap_or(0) as f64),
    );
    let mib = |v: Option<f64>| v.map(|mb| mb * 1024.0 * 1024.0);
    let rows = roots
        .iter()
        .map(|root| {
            let alert = get_str(root, "alert").unwrap_or("?");
            let usage = match get_f64(root, "usage_percent") {
                Some(p) => colored(bar(p), alert_color(alert)),
                None => l("no size limit"),
            };
            let max = mib(get_f64(root, "max_size_mb")).map_or("-".to_string(), bytes);
            let floor =
                get_u64(root, "min_free_bytes").map_or("-".to_string(), |b| bytes(b as f64));
            vec![
                l(get_str(root, "path").unwrap_or("?")),
                usage,
                r(count_or_dash(get_u64(root, "total_files"))),
                r(format!(
                    "{} / {max}",
                    bytes(get_u64(root, "total_bytes").unwrap_or(0) as f64)
                )),
                r(format!(
                    "{} / {}",
                    hours_or_dash(get_f64(root, "oldest_file_age_hours")),
                    hours_or_dash(get_f64(root, "max_age_hours"))
                )),
                r(format!(
                    "{} / {floor}",
                    bytes(get_u64(root, "fs_free_bytes").unwrap_or(0) as f64)
                )),
                colored(alert.to_uppercase(), alert_color(alert)),
            ]
        })
        .collect();
    out += &table(
        &[
            "ROOT",
            "USAGE",
            "FILES",
            "SIZE / MAX",
            "OLDEST / MAX AGE",
            "FREE / FLOOR",
            "ALERT",
        ],
        rows,
        style,
    );
    out.push('\n');
    let rows = roots
        .iter()
        .map(|root| {
            let mut state = Vec::new();
            if get_bool(root, "degraded") {
                state.push("DEGRADED");
            }
            if !get_bool(root, "ready") {
                state.push("crawling");
            }
            if root.get("cleanup_enabled") == Some(&Value::Bool(false)) {
                state.push("observe only");
            }
            let color = if get_bool(root, "degraded") {
                Some(RED)
            } else if state.is_empty() {
                Some(GREEN)
            } else {
                Some(YELLOW)
            };
            let state = if state.is_empty() {
                "ok".to_string()
            } else {
                state.join(", ")
            };
            let errors = get_u64(root, "errors");
            vec![
                l(get_str(root, "path").unwrap_or("?")),
                r(count_or_dash(get_u64(root, "files_removed"))),
                r(bytes(get_u64(root, "bytes_freed").unwrap_or(0) as f64)),
                Cell {
                    color: (errors.unwrap_or(0) > 0).then_some(YELLOW),
                    ..r(count_or_dash(errors))
                },
                r(count_or_dash(get_u64(root, "watches"))),
                r(count_or_dash(get_u64(root, "overflows"))),
                r(count_or_dash(get_u64(root, "resyncs"))),
                r(ago(root.get("last_eviction"))),
                colored(state, color),
            ]
        })
        .collect();
    out += &table(
        &[
            "ROOT",
            "REMOVED",
            "FREED",
            "ERRORS",
            "WATCHES",
            "OVERFLOWS",
            "RESYNCS",
            "LAST EVICTION",
            "STATE",
        ],
        rows,
        style,
    );
    for root in &roots {
        if let Some(reason) = get_str(root, "degraded_reason") {
            let path = get_str(root, "path").unwrap_or("?");
            out += &format!(
                "\n{} {path}: {reason}\n",
                style.paint(Some(RED), "degraded:")
            );
        }
    }
    out
}

pub fn groups(answer: &Map<String, Value>, style: &Style) -> String {
    let groups: Vec<&Map<String, Value>> = answer
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if groups.is_empty() {
        return "no groups\n".to_string();
    }
    let with_root = groups.iter().any(|g| g.contains_key("root"));
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = vec![
                l(get_str(g, "name").unwrap_or("?")),
                r(count_or_dash(get_u64(g, "files"))),
                r(bytes(get_u64(g, "bytes").unwrap_or(0) as f64)),
                r(hours_or_dash(get_f64(g, "oldest_file_age_hours"))),
                r(hours_or_dash(get_f64(g, "newest_file_age_hours"))),
            ];
            if with_root {
                row.push(l(get_str(g, "root").unwrap_or("")));
            }
            row
        })
        .collect();
    let mut head = vec!["GROUP", "FILES", "SIZE", "OLDEST", "NEWEST"];
    if with_root {
        head.push("ROOT");
    }
    table(&head, rows, style)
}

pub fn list(answer: &Map<String, Value>, style: &Style) -> String {
    let files_list: Vec<&Map<String, Value>> = answer
        .get("files")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if files_list.is_empty() {
        return "no files\n".to_string();
    }
    let total: u64 = files_list.iter().filter_map(|f| get_u64(f, "bytes")).sum();
    let rows = files_list
        .iter()
        .map(|f| {
            let mtime = match f.get("mtime") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .map(|s| {
                        humantime::format_rfc3339_seconds(
                            SystemTime::UNIX_EPOCH + Duration::from_secs(s),
                        )
                        .to_string()
                    })
                    .unwrap_or_else(|| n.to_string()),
                _ => "-".to_string(),
            };
            vec![
                r(hours_or_dash(get_f64(f, "age_hours"))),
                r(bytes(get_u64(f, "bytes").unwrap_or(0) as f64)),
                l(mtime),
                l(get_str(f, "path").unwrap_or("?")),
            ]
        })
        .collect();
    let mut out = table(&["AGE", "SIZE", "MTIME", "PATH"], rows, style);
    out += &format!(
        "{}, {}\n",
        files(files_list.len() as u64),
        bytes(total as f64)
    );
    out
}

/// `cleanup` and `purge` answers.
pub fn deletion(answer: &Map<String, Value>) -> String {
    let freed = bytes(get_u64(answer, "bytes_freed").unwrap_or(0) as f64);
    let mut out = match answer.get("would_remove") {
        Some(Value::Array(items)) => {
            let mut s = String::new();
            for item in items {
                match item {
                    Value::String(p) => s += &format!("{p}\n"),
                    Value::Object(o) => s += &format!("{}\n", get_str(o, "path").unwrap_or("?")),
                    other => s += &format!("{other}\n"),
                }
            }
            s + &format!(
                "dry run: would remove {}, {freed}\n",
                files(items.len() as u64)
            )
        }
        Some(v) => match v.as_u64() {
            Some(n) => format!("dry run: would remove {}, {freed}\n", files(n)),
            None => format!("dry run: would remove {v}, {freed}\n"),
        },
        None => format!(
            "removed {}, freed {freed}\n",
            get_u64(answer, "files_removed").map_or_else(|| "- files".to_string(), files)
        ),
    };
    // Whatever else the owner reports (per-root figures, skipped protected files, ...).
    for (k, v) in answer {
        if ["ok", "would_remove", "files_removed", "bytes_freed"].contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::String(s) => out += &format!("  {k}: {s}\n"),
            Value::Number(_) | Value::Bool(_) => out += &format!("  {k}: {v}\n"),
            _ => {}
        }
    }
    out
}

pub fn reload(answer: &Map<String, Value>) -> String {
    format!(
        "{}\n",
        get_str(answer, "message").unwrap_or("config reloaded")
    )
}
