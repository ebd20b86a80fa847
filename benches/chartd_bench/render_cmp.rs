//! The side-by-side tables printed under the main table: this build against the baseline
//! binary (`--baseline-bin`), per size and phase, and 20 retention rules against none (the
//! rules phase), and the throughput ladders of both binaries. Each row shows both figures
//! (with their min–max over the repetitions), the ratio and its spread, and the verdict against
//! the 10 % bound where there is one.
//!
//! May touch: nothing (pure: it renders the results JSON).

use crate::render::{fmt_bytes, fmt_ms, fmt_s, label};
use serde_json::Value;

fn fmt(unit: &str, v: Option<f64>) -> String {
    let Some(x) = v else { return "–".into() };
    match unit {
        "s" => fmt_s(Some(x)),
        "ms" => fmt_ms(Some(x)),
        "B" => fmt_bytes(Some(x)),
        "x" => format!("{x:.2}×"),
        "%" => format!("{x:.4} %"),
        "n" | "files/s" => format!("{x:.0}"),
        "µs" => format!("{x:.1} µs"),
        _ => format!("{x:.1}"),
    }
}

fn range(r: &Value, f: impl Fn(f64) -> String) -> String {
    match (r[0].as_f64(), r[1].as_f64()) {
        (Some(a), Some(b)) if a != b => format!(" ({}–{})", f(a), f(b)),
        _ => String::new(),
    }
}

/// One Markdown row of a comparison row (see `compare::row`).
fn md_row(size: &str, r: &Value) -> String {
    let unit = r["unit"].as_str().unwrap_or("");
    let cell = |v: &str, rg: &str| {
        format!(
            "{}{}",
            fmt(unit, r[v].as_f64()),
            range(&r[rg], |x| fmt(unit, Some(x)))
        )
    };
    let ratio = match (r["ratio"].as_f64(), r["ratio_paired"].as_f64()) {
        (Some(x), Some(p)) => format!(
            "{x:.2}×; paired {p:.2}×{}",
            range(&r["ratio_range"], |y| format!("{y:.2}"))
        ),
        (Some(x), None) => format!("{x:.2}×{}", range(&r["ratio_range"], |y| format!("{y:.2}"))),
        _ => "–".into(),
    };
    let bound = match (r["bound"].as_f64(), r["within_bound"].as_bool()) {
        (Some(b), Some(ok)) => {
            let op = if r["better"] == "higher" {
                "≥"
            } else {
                "≤"
            };
            let k = if r["better"] == "higher" { 1.0 / b } else { b };
            format!("{op} {k:.2}×: {}", if ok { "met" } else { "**missed**" })
        }
        _ => String::new(),
    };
    format!(
        "| {} | {size} | {} | {} | {ratio} | {bound} |\n",
        r["figure"].as_str().unwrap_or(""),
        cell("a", "a_range"),
        cell("b", "b_range"),
    )
}

fn header(title: &str, a: &str, b: &str) -> String {
    format!(
        "\n**{title}**\n\n| figure | N | {a} | {b} | ratio {a} ÷ {b}: overall; paired (median of the repetitions' ratios, the verdict's figure from 5 pairs on) (spread over repetitions) | bound |\n|---|---|---|---|---|---|\n"
    )
}

/// The comparison tables of a run (empty when it had neither a baseline nor the rules phase).
pub fn tables(results: &Value) -> String {
    let mut t = String::new();
    let sizes = results["sizes"].as_array().cloned().unwrap_or_default();
    let phases = ["observe", "status", "idle", "reaction", "overshoot"];
    let mut cmp = String::new();
    let mut labels = None;
    for s in &sizes {
        let l = label(s["n"].as_u64().unwrap_or(0) as usize);
        for p in phases {
            let b = &s["compare"][p];
            if labels.is_none() && b.is_object() {
                labels = Some((b["a_label"].clone(), b["b_label"].clone()));
            }
            for r in b["rows"].as_array().into_iter().flatten() {
                cmp.push_str(&md_row(&l, r));
            }
        }
    }
    if let Some((a, b)) = labels {
        let (a, b) = (a.as_str().unwrap_or(""), b.as_str().unwrap_or(""));
        t.push_str(&header(
            &format!("This build against the baseline `{b}`, side by side in this run (same trees, same policy, repetitions interleaved)"),
            a,
            b,
        ));
        t.push_str(&cmp);
    }
    let mut rules = String::new();
    let mut rl = None;
    for s in &sizes {
        let b = &s["rules"];
        if !b.is_object() {
            continue;
        }
        let l = label(s["n"].as_u64().unwrap_or(0) as usize);
        rl.get_or_insert_with(|| {
            format!(
                "Retention rules: {} rules (quotas on {} of {} groups at {l}) against none, same binary, interleaved",
                b["rules"], b["groups_with_quota"], b["groups"]
            )
        });
        for r in b["rows"].as_array().into_iter().flatten() {
            rules.push_str(&md_row(&l, r));
        }
    }
    if let Some(title) = rl {
        t.push_str(&header(&title, "20 rules", "no rules"));
        t.push_str(&rules);
    }
    if let Some(tc) = results["throughput_compare"].as_object() {
        let a = tc["a_label"].as_str().unwrap_or("");
        let b = tc["b_label"].as_str().unwrap_or("");
        t.push_str(&header(
            &format!("Event throughput, this build against `{b}` (each step: the writer alone, then both binaries, the order alternating)"),
            a,
            b,
        ));
        for r in tc["rows"].as_array().into_iter().flatten() {
            t.push_str(&md_row("–", r));
        }
    }
    t
}
