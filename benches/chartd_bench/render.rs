//! The renderer: the Markdown results table printed at the end of a run (one column per tree
//! size, each figure with its reference, target and verdict), the throughput ladder under it,
//! and its block in BENCHMARKS.md.
//!
//! May touch: `BENCHMARKS.md`, only between its `<!-- BEGIN RESULTS -->` / `<!-- END RESULTS -->`
//! markers (and only with `write_md`; `--no-md` skips it).

use crate::meta::MANIFEST_DIR;
use crate::opts::Opts;
use crate::tree::MAX_SIZE;
use crate::util::{err, Res};
use serde_json::Value;
use std::fs;
use std::path::Path;

pub fn label(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn f(v: &Value, ptr: &str) -> Option<f64> {
    v.pointer(ptr).and_then(Value::as_f64)
}

pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x < 1.0 => format!("{:.0} µs", x * 1000.0),
        Some(x) if x.is_finite() => format!("{x:.2} ms"),
        _ => "–".into(),
    }
}

pub fn fmt_s(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x < 1.0 => format!("{:.0} ms", x * 1000.0),
        Some(x) if x.is_finite() => format!("{x:.2} s"),
        _ => "–".into(),
    }
}

fn fmt_pair(a: String, b: String) -> String {
    format!("{a} / {b}")
}

pub fn fmt_bytes(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 1024.0 * 1024.0 => {
            format!("{:.1} MiB", x / 1024.0 / 1024.0)
        }
        Some(x) if x.is_finite() && x >= 1024.0 => format!("{:.0} KiB", x / 1024.0),
        Some(x) if x.is_finite() => format!("{x:.0} B"),
        _ => "–".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "–",
    }
}

/// The results table (Markdown), one column per size.
pub fn table(results: &Value, o: &Opts) -> String {
    let sizes: Vec<(String, &Value)> = results["sizes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (label(s["n"].as_u64().unwrap_or(0) as usize), s))
                .collect()
        })
        .unwrap_or_default();
    let largest = sizes.last().map(|x| x.1);
    let mut rows: Vec<(String, Vec<String>, String, String)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&Value) -> String, target: &str, ok: Option<bool>| {
        rows.push((
            name.to_string(),
            sizes.iter().map(|(_, s)| cell(s)).collect(),
            target.to_string(),
            verdict(ok).to_string(),
        ));
    };
    let lg = |p: &str| largest.and_then(|s| f(s, p));
    row(
        "crawl: chartd start → READY=1 (median / p99)",
        &|s| {
            fmt_pair(
                fmt_s(f(s, "/crawl/chartd_s/median")),
                fmt_s(f(s, "/crawl/chartd_s/p99")),
            )
        },
        "",
        None,
    );
    row(
        "crawl reference: `find -printf '%s %T@'`, warm (median / p99)",
        &|s| {
            fmt_pair(
                fmt_s(f(s, "/crawl/find_s/median")),
                fmt_s(f(s, "/crawl/find_s/p99")),
            )
        },
        "",
        None,
    );
    row(
        "crawl: of which fixed start-up (empty root → READY=1, median)",
        &|s| fmt_s(f(s, "/crawl/empty_root_startup_s/median")),
        "",
        None,
    );
    row(
        "crawl ratio chartd / find (median / p99)",
        &|s| match (f(s, "/crawl/ratio/median"), f(s, "/crawl/ratio/p99")) {
            (Some(a), Some(b)) => format!("{a:.2}× / {b:.2}×"),
            _ => "–".into(),
        },
        "≤ 1.0×",
        lg("/crawl/ratio/median").map(|r| r <= 1.0),
    );
    if o.cold {
        row(
            "crawl cold: chartd / find (median)",
            &|s| {
                format!(
                    "{} / {} ({:.2}×)",
                    fmt_s(f(s, "/crawl_cold/chartd_s/median")),
                    fmt_s(f(s, "/crawl_cold/find_s/median")),
                    f(s, "/crawl_cold/ratio/median").unwrap_or(f64::NAN)
                )
            },
            "",
            None,
        );
    }
    row(
        "memory: (RSS − RSS of empty root) / N (median / p99)",
        &|s| {
            fmt_pair(
                fmt_bytes(f(s, "/memory/rss_bytes_per_file/median")),
                fmt_bytes(f(s, "/memory/rss_bytes_per_file/p99")),
            )
        },
        "≤ 120 B/file at 1M",
        lg("/memory/rss_bytes_per_file/median").map(|b| b <= 120.0),
    );
    row(
        "memory: peak RSS (VmHWM − empty) / N; index_bytes / N",
        &|s| {
            fmt_pair(
                fmt_bytes(f(s, "/memory/hwm_bytes_per_file/median")),
                fmt_bytes(f(s, "/memory/index_bytes_per_file/median")),
            )
        },
        "",
        None,
    );
    row(
        "notify alone: a bare `INotifyWatcher` watching the same directories: memory / N; time to add the watches (bare `inotify_add_watch` calls)",
        &|s| {
            format!(
                "{}; {} ({})",
                fmt_bytes(f(s, "/memory/notify_bytes_per_file")),
                fmt_s(f(s, "/memory/notify_watch_s")),
                fmt_s(f(s, "/memory/raw_inotify_watch_s"))
            )
        },
        "",
        None,
    );
    row(
        "kernel: inotify watches; slab Δ (estimate 100 B/watch)",
        &|s| {
            format!(
                "{}; {} ({})",
                s["memory"]["watches"]
                    .as_u64()
                    .map_or("–".into(), |w| w.to_string()),
                fmt_bytes(f(s, "/memory/kernel_inotify_slab_bytes/median")),
                fmt_bytes(f(s, "/memory/kernel_estimate_100b_per_watch"))
            )
        },
        "",
        None,
    );
    row(
        "reaction: writer close() → victim unlinked (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/close_to_gone_ms/median")),
                fmt_ms(f(s, "/reaction/close_to_gone_ms/p99")),
            )
        },
        "p99 ≤ 5 ms at 1M",
        lg("/reaction/close_to_gone_ms/p99").map(|x| x <= 5.0),
    );
    row(
        "reaction: of which until the victim is off its name (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/close_to_off_name_ms/median")),
                fmt_ms(f(s, "/reaction/close_to_off_name_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "reaction reference: minimal inotify reactor, plain unlink (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/reference_reactor_ms/median")),
                fmt_ms(f(s, "/reaction/reference_reactor_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "reaction reference: the same reactor deleting by the airtight protocol (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/reaction/reference_reactor_airtight_ms/median")),
                fmt_ms(f(s, "/reaction/reference_reactor_airtight_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "overshoot: max excess over max_size (victims counted at their unlink), burst at 10k files/s",
        &|s| {
            match f(s, "/overshoot/max_excess_bytes") {
            Some(b) => format!(
                "{} (~{:.0} files; p99 {:.1}, p50 {:.1} files; {:.0}/s achieved; caught up {:.1} s after)",
                fmt_bytes(Some(b)),
                f(s, "/overshoot/max_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/p99_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/p50_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/rate_achieved").unwrap_or(0.0),
                f(s, "/overshoot/catch_up_s").unwrap_or(0.0)
            ),
            None => "–".into(),
        }
        },
        "≤ one file (800 KiB) + grace",
        lg("/overshoot/max_excess_bytes").map(|b| b <= MAX_SIZE as f64),
    );
    row(
        "overshoot reference: minimal inotify deleter, same burst (max / p99 / p50)",
        &|s| match f(s, "/overshoot/reference_max_excess_files") {
            Some(m) => format!(
                "~{:.0} / {:.1} / {:.1} files",
                m,
                f(s, "/overshoot/reference_p99_excess_files").unwrap_or(0.0),
                f(s, "/overshoot/reference_p50_excess_files").unwrap_or(0.0),
            ),
            None => "–".into(),
        },
        "",
        None,
    );
    row(
        "status round trip (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/status/ms/median")),
                fmt_ms(f(s, "/status/ms/p99")),
            )
        },
        "p99 ≤ 1 ms at 1M",
        lg("/status/ms/p99").map(|x| x <= 1.0),
    );
    row(
        "status reference: empty-root daemon (p50 / p99)",
        &|s| {
            fmt_pair(
                fmt_ms(f(s, "/status/empty_root_ms/median")),
                fmt_ms(f(s, "/status/empty_root_ms/p99")),
            )
        },
        "",
        None,
    );
    row(
        "idle: CPU %, wakeups / window (observe-only)",
        &|s| match f(s, "/idle/cpu_percent") {
            Some(c) => format!(
                "{c:.4} %, {} / {:.0} s",
                s["idle"]["wakeups"].as_u64().unwrap_or(0),
                f(s, "/idle/window_s").unwrap_or(0.0)
            ),
            None => "–".into(),
        },
        "< 0.1 %, only watchdog + expiry timer",
        lg("/idle/cpu_percent").map(|c| c < 0.1),
    );
    row(
        "idle reference: empty-root daemon",
        &|s| match f(s, "/idle/empty_root/cpu_percent") {
            Some(c) => format!(
                "{c:.4} %, {}",
                s["idle"]["empty_root"]["wakeups"].as_u64().unwrap_or(0)
            ),
            None => "–".into(),
        },
        "",
        None,
    );
    let mut t = String::new();
    t.push_str("| figure |");
    for (l, _) in &sizes {
        t.push_str(&format!(" {l} |"));
    }
    t.push_str(" target | at largest N |\n|---|");
    for _ in &sizes {
        t.push_str("---|");
    }
    t.push_str("---|---|\n");
    for (name, cells, target, ok) in rows {
        t.push_str(&format!("| {name} |"));
        for c in cells {
            t.push_str(&format!(" {c} |"));
        }
        t.push_str(&format!(" {target} | {ok} |\n"));
    }
    for (l, s) in &sizes {
        for e in s["errors"].as_array().into_iter().flatten() {
            let msg = e["error"].as_str().unwrap_or("");
            let first = msg.lines().next().unwrap_or("");
            t.push_str(&format!(
                "\n**{l}: {} failed**: {}\n",
                e["phase"].as_str().unwrap_or(""),
                first.chars().take(300).collect::<String>()
            ));
        }
    }
    for key in ["throughput", "throughput_evict"] {
        if let Some(tp) = results.get(key).filter(|v| !v.is_null()) {
            t.push_str(&ladder(tp));
        }
    }
    t
}

/// One throughput ladder (observe-only, or with eviction under a size limit).
fn ladder(tp: &Value) -> String {
    let evict = tp["mode"] == "evict";
    let best = tp["max_sustained_files_per_s"].as_f64();
    let mut t = format!(
        "\n**Event throughput{}** ({}, on tmpfs, four files per directory in turn over {} directories, {} s per step, kernel \
         `max_queued_events` {}): highest sustained rate with no overflow and an exact \
         index: **{}**{} ({}); chartd CPU {} µs/file. Reference: the \
         writer alone, measured right before each step.\n\n| rate | achieved | writer alone \
         | overflows | index exact | catch-up | CPU µs/file |{} result |\n\
         |---|---|---|---|---|---|---|{}---|\n",
        if evict { ", with eviction" } else { "" },
        if evict {
            format!(
                "the root starts with {} old files exactly at `max_size`, `low_watermark: 100%`, `grace: 0s`: every file written costs a deletion",
                tp["prefill_files"]
            )
        } else {
            "observe-only".into()
        },
        tp["directories"],
        tp["seconds_per_step"],
        tp["kernel_max_queued_events"],
        best.map_or("none".into(), |b| format!("{b:.0} files/s")),
        if tp["writer_limited"] == true {
            " (writer-limited: the machine could not create files faster, so chartd's limit \
             is at least this)"
        } else {
            ""
        },
        if evict {
            "no target: the 50k files/s target is the event path's".into()
        } else {
            format!(
                "target ≥ 50k files/s: {}",
                verdict(Some(best.is_some_and(|b| b >= 50_000.0 * 0.95)))
            )
        },
        tp["cpu_us_per_file"].as_f64().map_or("–".into(), |c| format!("{c:.1}")),
        if evict { " deletions/s during the step |" } else { "" },
        if evict { "---|" } else { "" },
    );
    for s in tp["steps"].as_array().into_iter().flatten() {
        t.push_str(&format!(
            "| {} | {:.0} | {:.0} | {} | {} | {:.2} s | {:.1} |{} {} |\n",
            s["rate"],
            s["achieved"].as_f64().unwrap_or(0.0),
            s["writer_alone"].as_f64().unwrap_or(0.0),
            s["overflows"],
            s["index_exact"],
            s["catch_up_s"].as_f64().unwrap_or(0.0),
            s["cpu_us_per_file"].as_f64().unwrap_or(0.0),
            if evict {
                format!(
                    " {:.0} |",
                    s["deletions_per_s_during_step"].as_f64().unwrap_or(0.0)
                )
            } else {
                String::new()
            },
            match (s["pass"] == true, s["writer_limited"] == true) {
                (true, false) => "pass",
                (true, true) => "pass (writer-limited)",
                _ => "FAIL",
            }
        ));
    }
    t
}

pub fn write_md(results: &Value, table: &str) -> Res<()> {
    let path = Path::new(MANIFEST_DIR).join("BENCHMARKS.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->");
    let block = format!(
        "{begin}\n_Generated by `cargo bench --bench chartd_bench{}` on {} (commit `{}`{}); \
         machine: {}, {} CPUs ({}), kernel {}, {:.0} GiB RAM; trees on {}. Each figure's reference \
         was measured in the same run. Medians and p99 over {}; with fewer than 100 samples p99 \
         is the maximum._\n\n{table}\n{end}",
        match results["args"].as_str().unwrap_or("") {
            "" => String::new(),
            args => format!(" -- {args}"),
        },
        results["date"].as_str().unwrap_or(""),
        results["commit"].as_str().unwrap_or(""),
        if results["dirty"] == true {
            ", with uncommitted changes"
        } else {
            ""
        },
        results["machine"]["os"].as_str().unwrap_or(""),
        results["machine"]["cpus"],
        results["machine"]["cpu_model"].as_str().unwrap_or(""),
        results["machine"]["kernel"].as_str().unwrap_or(""),
        results["machine"]["mem_total_kb"].as_f64().unwrap_or(0.0) / 1024.0 / 1024.0,
        results["machine"]["bench_fs"].as_str().unwrap_or(""),
        results["repetitions"].as_str().unwrap_or(""),
    );
    let new = match (text.find(begin), text.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &text[..a], &text[b + end.len()..])
        }
        _ => format!("{text}\n## Latest results\n\n{block}\n"),
    };
    fs::write(&path, new).map_err(err("BENCHMARKS.md"))
}
