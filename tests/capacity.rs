//! The capacity figures (issue 13) against the real daemon, on scripted workloads whose true
//! answers are known: charts evicted by size pressure at a known age give the effective
//! retention; bytes written over a known time give the write rate; a chart written again at
//! the path chartd just evicted is a premature eviction.

mod common;

use common::*;
use std::time::Duration;

const KIB: u64 = 1024;

#[test]
fn retention_write_rate_and_premature_evictions_follow_a_scripted_workload() {
    // Ten 10 KiB charts, all exactly 2 h old: at the limit, not over it.
    let before_start = std::time::Instant::now();
    let d = Daemon::start("max_size: 100KiB\nlow_watermark: 100%\ngrace: 0s", |root| {
        for i in 0..10u64 {
            file(&root.join(format!("g/old{i}.png")), 10 * KIB, hours(2));
        }
    });
    let ready = std::time::Instant::now();
    let st = d.status_root();
    assert!(st["effective_retention_hours"].is_null(), "{st}");
    assert_eq!(st["premature_evictions"], 0, "{st}");
    assert_eq!(st["history"]["minutes"], 60, "{st}");
    // Three new charts push out three 2-hour-old ones.
    for i in 0..3 {
        write_file(&d.root.join(format!("g/new{i}.png")), 10 * KIB as usize);
    }
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()["files_removed"]
            == 3),
        "{}",
        d.status_root()
    );
    let st = d.status_root();
    let retention = st["effective_retention_hours"].as_f64().unwrap_or(0.0);
    assert!(
        (retention - 2.0).abs() < 0.02,
        "retention {retention}: {st}"
    );
    // 30 KiB written since the daemon started (the crawl is not writing): the rate is 30 KiB
    // over the time since start (whole seconds, at least one).
    let now = std::time::Instant::now();
    let span_hi = (now - before_start).as_secs_f64().ceil() + 1.0;
    let span_lo = ((now - ready).as_secs_f64().floor() - 1.0).max(1.0);
    let w = st["write_bytes_per_second"].as_f64().unwrap_or(0.0);
    let written = 30.0 * 1024.0;
    assert!(
        w >= written / span_hi - 0.01 && w <= written / span_lo + 0.01,
        "write rate {w}, expected 30 KiB over {span_lo}..{span_hi} s: {st}"
    );
    let e = st["evicted_bytes_per_second"].as_f64().unwrap_or(0.0);
    assert!(e > 0.0, "evicted rate {e}: {st}");
    // An evicted chart is written again at its path: one premature eviction. A chart at a
    // path chartd never evicted is not.
    let evicted: Vec<String> = (0..10)
        .map(|i| format!("g/old{i}.png"))
        .filter(|p| !d.root.join(p).exists())
        .collect();
    assert_eq!(evicted.len(), 3, "{evicted:?}");
    write_file(&d.root.join(&evicted[0]), KIB as usize);
    write_file(&d.root.join("g/never-evicted.png"), KIB as usize);
    assert!(
        wait_until(Duration::from_secs(5), || d.status_root()
            ["premature_evictions"]
            == 1),
        "{}",
        d.status_root()
    );
    // The same figures in the metrics.
    let m = d.request(r#"{"cmd":"metrics"}"#);
    let text = m["text"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("chartd_premature_evictions"), "{text}");
    assert!(text.contains("chartd_effective_retention_hours"), "{text}");
}
