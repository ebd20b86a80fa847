//! Human output of the client: compact aligned tables an operator reads at a glance.
//!
//! Pure functions from the daemon's typed reply (`control::messages`) to text; a limit that
//! is not configured (`None`) prints as `-`. How each figure is written (counts, bytes, hours,
//! rates, bars) is `format.rs`.
//!
//! May touch: nothing outside its arguments (pure: typed replies in, text out).

use super::format::{ago, bar, bytes, count, duration, files, hours, hours_or_dash, rate};
use crate::control::messages::{
    AlertLevel, DeletionReply, GroupsReply, ListReply, ReloadReply, RootStatus, StatusReply,
};

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

fn alert_color(alert: AlertLevel) -> Option<&'static str> {
    Some(match alert {
        AlertLevel::Ok => GREEN,
        AlertLevel::Warning => YELLOW,
        AlertLevel::Critical => RED,
    })
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

pub fn status(answer: &StatusReply, style: &Style) -> String {
    let roots = &answer.roots;
    let mut out = format!(
        "chartd {}, up {}: {} root{}, {} files, {}\n",
        answer.version,
        duration(answer.uptime_seconds),
        roots.len(),
        if roots.len() == 1 { "" } else { "s" },
        count(answer.total_files),
        bytes(answer.total_bytes as f64),
    );
    if answer.stale {
        out += &style.paint(
            Some(YELLOW),
            &format!(
                "figures are {:.0}s old: the daemon is busy (crawl, large cleanup or a stuck filesystem call)\n",
                answer.snapshot_age_seconds
            ),
        );
    }
    out.push('\n');
    let mib = |v: Option<f64>| v.map(|mb| mb * 1024.0 * 1024.0);
    let rows = roots
        .iter()
        .map(|root| {
            let usage = match root.usage_percent {
                Some(p) => colored(bar(p), alert_color(root.alert)),
                None => l("no size limit"),
            };
            let max = mib(root.max_size_mb).map_or("-".to_string(), bytes);
            let floor = root
                .min_free_bytes
                .map_or("-".to_string(), |b| bytes(b as f64));
            let free = if root.root_missing() {
                "-".to_string()
            } else {
                bytes(root.fs_free_bytes as f64)
            };
            vec![
                l(root.path.clone()),
                usage,
                r(count(root.total_files)),
                r(format!("{} / {max}", bytes(root.total_bytes as f64))),
                r(format!(
                    "{} / {}",
                    hours_or_dash(root.oldest_file_age_hours),
                    hours_or_dash(root.max_age_hours)
                )),
                r(format!("{free} / {floor}")),
                colored(root.alert.as_str().to_uppercase(), alert_color(root.alert)),
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
            if root.root_missing() {
                state.push("ROOT MISSING");
            } else if root.degraded {
                state.push("DEGRADED");
            }
            if !root.ready {
                state.push("crawling");
            }
            if !root.cleanup_enabled {
                state.push("observe only");
            }
            if root.holding.blocked.is_some() {
                state.push("held");
            }
            let color = if root.degraded {
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
            vec![
                l(root.path.clone()),
                r(count(root.files_removed)),
                r(bytes(root.bytes_freed as f64)),
                Cell {
                    color: (root.errors > 0).then_some(YELLOW),
                    ..r(count(root.errors))
                },
                r(count(root.watches)),
                r(count(root.overflows)),
                r(count(root.resyncs)),
                r(ago(root.last_eviction.as_deref())),
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
    out.push('\n');
    out += &capacity(roots, style);
    for root in roots {
        out += &notes(root, style);
    }
    out
}

/// The capacity figures (issue 13): do the limits fit the load? One row per root; a figure
/// that does not exist yet is a word, never an invented number.
fn capacity(roots: &[RootStatus], style: &Style) -> String {
    let rows = roots
        .iter()
        .map(|root| {
            let retention = match root.effective_retention_hours {
                Some(h) => hours(h),
                None => "none".to_string(),
            };
            let full = match root.time_to_full_hours {
                // Status rounds to 0.01 h: "0m" would read as "full now".
                Some(h) if h * 60.0 < 1.0 => "<1m".to_string(),
                Some(h) => hours(h),
                // Growing, but no room is known (no size limit and no file system figures).
                None if root.write_bytes_per_second > root.evicted_bytes_per_second => {
                    "-".to_string()
                }
                None => "not growing".to_string(),
            };
            vec![
                l(root.path.clone()),
                r(format!(
                    "{retention} / {}",
                    hours_or_dash(root.max_age_hours)
                )),
                r(rate(root.write_bytes_per_second)),
                r(rate(root.evicted_bytes_per_second)),
                r(full),
                Cell {
                    color: (root.premature_evictions > 0).then_some(YELLOW),
                    ..r(count(root.premature_evictions))
                },
            ]
        })
        .collect();
    let premature = format!(
        "PREMATURE ({} MIN)",
        crate::capacity::PREMATURE_WINDOW.as_secs() / 60
    );
    table(
        &[
            "ROOT",
            "RETENTION / MAX AGE",
            "WRITE",
            "EVICT",
            "FULL IN",
            &premature,
        ],
        rows,
        style,
    )
}

/// What a root's alert, degradation and held files mean, in a sentence each.
fn notes(root: &RootStatus, style: &Style) -> String {
    let mut out = String::new();
    let path = &root.path;
    if !root.alert_reasons.is_empty() {
        out += &format!(
            "\n{} {path}: {}\n",
            style.paint(
                alert_color(root.alert),
                &format!("{}:", root.alert.as_str())
            ),
            root.alert_reasons.join(", ")
        );
    }
    if let Some(reason) = &root.degraded_reason {
        out += &format!("{} {path}: {reason}\n", style.paint(Some(RED), "degraded:"));
    }
    let h = &root.holding;
    if let Some(b) = &h.blocked {
        let next = match b.next_eligible_in_seconds {
            Some(s) => format!("; the next file becomes eligible in {s:.0}s"),
            None => String::new(),
        };
        out += &format!(
            "{} {path}: {} is crossed by {} and nothing may be deleted now (cause: {}, for {:.0}s); in grace: {}, {}{next}\n",
            style.paint(Some(YELLOW), "held:"),
            b.limit,
            if b.excess_files > 0 {
                files(b.excess_files)
            } else {
                bytes(b.excess_bytes as f64)
            },
            b.cause,
            b.blocked_seconds,
            files(b.grace_files),
            bytes(b.grace_bytes as f64),
        );
    }
    let held: Vec<String> = [
        ("being written", h.writing_files, h.writing_bytes),
        ("locked", h.locked_files, h.locked_bytes),
        ("failing to delete", h.failing_files, h.failing_bytes),
        ("protected", h.protected_files, h.protected_bytes),
    ]
    .iter()
    .filter(|(_, n, _)| *n > 0)
    .map(|(what, n, b)| format!("{} {what} ({})", files(*n), bytes(*b as f64)))
    .collect();
    if !held.is_empty() {
        out += &format!("  {path}: kept: {}\n", held.join(", "));
    }
    out
}

pub fn groups(answer: &GroupsReply, style: &Style) -> String {
    if answer.groups.is_empty() {
        return "no groups\n".to_string();
    }
    let roots: std::collections::BTreeSet<&str> =
        answer.groups.iter().map(|g| g.root.as_str()).collect();
    let with_root = roots.len() > 1;
    let with_rules = answer
        .groups
        .iter()
        .any(|g| g.rule.is_some() || g.quota_percent.is_some());
    let rows = answer
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![
                l(g.name.clone()),
                r(count(g.files)),
                r(bytes(g.bytes as f64)),
                r(hours_or_dash(g.oldest_file_age_hours)),
                r(hours_or_dash(g.newest_file_age_hours)),
            ];
            if with_rules {
                row.push(l(g.rule.clone().unwrap_or_else(|| "-".into())));
                row.push(r(hours_or_dash(g.max_age_hours)));
                let quota: Vec<String> = g
                    .quota_files
                    .map(|q| format!("{} files", count(q)))
                    .into_iter()
                    .chain(g.quota_bytes.map(|q| bytes(q as f64)))
                    .collect();
                row.push(l(match g.quota_percent {
                    Some(p) => format!("{p:.0}% of {}", quota.join(", ")),
                    None => "-".into(),
                }));
            }
            if with_root {
                row.push(l(g.root.clone()));
            }
            row
        })
        .collect();
    let mut head = vec!["GROUP", "FILES", "SIZE", "OLDEST", "NEWEST"];
    if with_rules {
        head.extend(["RULE", "MAX AGE", "QUOTA"]);
    }
    if with_root {
        head.push("ROOT");
    }
    let mut out = table(&head, rows, style);
    if (answer.groups.len() as u64) < answer.total_groups {
        out += &format!(
            "{} of {} groups\n",
            count(answer.groups.len() as u64),
            count(answer.total_groups)
        );
    }
    out
}

pub fn list(answer: &ListReply, style: &Style) -> String {
    if answer.files.is_empty() {
        return "no files\n".to_string();
    }
    let total: u64 = answer.files.iter().map(|f| f.bytes).sum();
    let rows = answer
        .files
        .iter()
        .map(|f| {
            vec![
                r(hours(f.age_hours)),
                r(bytes(f.bytes as f64)),
                l(f.mtime.clone()),
                l(if f.protected {
                    format!("{} (protected)", f.path)
                } else {
                    f.path.clone()
                }),
            ]
        })
        .collect();
    let mut out = table(&["AGE", "SIZE", "MTIME", "PATH"], rows, style);
    out += &format!(
        "{}, {}\n",
        files(answer.files.len() as u64),
        bytes(total as f64)
    );
    out
}

/// `cleanup` and `purge` answers: the files, then one summary line whose figures are the
/// dry run's own (`would_remove` / `would_free_bytes`) in a rehearsal.
pub fn deletion(answer: &DeletionReply) -> String {
    let mut out = String::new();
    for f in &answer.files {
        out += &format!("{}  {}  {}\n", f.path, bytes(f.bytes as f64), f.reason);
    }
    let (n, b) = (answer.count(), bytes(answer.bytes() as f64));
    out += &if answer.dry_run {
        format!(
            "dry run: would remove {}, {b}; nothing was deleted\n",
            files(n)
        )
    } else {
        format!("removed {}, freed {b}\n", files(n))
    };
    if (answer.files.len() as u64) < n {
        out += &format!(
            "  (the first {} are listed)\n",
            count(answer.files.len() as u64)
        );
    }
    if let Some(g) = answer.groups_matched {
        out += &format!(
            "  {} group{} matched\n",
            count(g),
            if g == 1 { "" } else { "s" }
        );
    }
    if answer.skipped > 0 {
        let grace = match answer.skipped_in_grace {
            Some(g) if g > 0 => format!(", {} of them modified within grace", count(g)),
            _ => String::new(),
        };
        out += &format!(
            "  skipped {} (protected, in grace, being written or locked{grace})\n",
            files(answer.skipped)
        );
    }
    out
}

pub fn reload(answer: &ReloadReply) -> String {
    format!("{}\n", answer.message)
}
