//! The capacity figures (issue 13) against the real daemon, on scripted workloads whose true
//! answers are known: charts evicted by size pressure at a known age give the effective
//! retention; bytes written over a known time give the write rate and, with no eviction yet,
//! the time until `max_size` is reached; a chart written again at the path chartd just evicted
//! is a premature eviction. Plain `chartd status` shows the same figures.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

/// Plain `chartd status` (the human tables), without colour.
fn plain_status(d: &Daemon) -> String {
    let out = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(&d.socket)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("chartd status: {e}"));
    assert!(out.status.success(), "chartd status: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of the root's row in the capacity table of plain `chartd status`: root,
/// retention / max age, write, evict, full in, premature (cells are two blanks apart).
fn capacity_row(text: &str, root: &std::path::Path) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("ROOT") && l.contains("RETENTION / MAX AGE"))
        .unwrap_or_else(|| panic!("no capacity table in chartd status:\n{text}"));
    assert!(
        lines[head].contains("WRITE")
            && lines[head].contains("EVICT")
            && lines[head].contains("FULL IN")
            && lines[head].contains("PREMATURE (10 MIN)"),
        "{text}"
    );
    let root = root.display().to_string();
    let row = lines[head + 1..]
        .iter()
        .find(|l| l.starts_with(&root))
        .unwrap_or_else(|| panic!("no capacity row for {root}:\n{text}"));
    let cells: Vec<String> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(cells.len(), 6, "{row}\n{text}");
    cells
}

#[test]
fn retention_write_rate_and_premature_evictions_follow_a_scripted_workload() {
    // Ten 10 KiB charts, all exactly 2 h old: at the limit, not over it.
    let before_start = std::time::Instant::now();
    let d = Daemon::start(
        "max_size: 100KiB\nlow_watermark: 100%\ngrace: 0s\nmax_age: 3h",
        |root| {
            for i in 0..10u64 {
                file(&root.join(format!("g/old{i}.png")), 10 * KIB, hours(2));
            }
        },
    );
    let ready = std::time::Instant::now();
    let st = d.status_root();
    assert!(st["effective_retention_hours"].is_null(), "{st}");
    // Plain status before any eviction: no retention figure yet, nothing growing.
    let text = plain_status(&d);
    let row = capacity_row(&text, &d.root);
    assert_eq!(row[1], "none / 3.0h", "{text}");
    assert_eq!(
        (row[2].as_str(), row[3].as_str()),
        ("0 B/s", "0 B/s"),
        "{text}"
    );
    assert_eq!(row[4], "not growing", "{text}");
    assert_eq!(row[5], "0", "{text}");
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
    // And in plain `chartd status`: retention next to max_age, both rates, no growth once
    // chartd holds the limit, one premature eviction.
    let text = plain_status(&d);
    let row = capacity_row(&text, &d.root);
    assert_eq!(row[1], "2.0h / 3.0h", "{text}");
    assert!(
        row[2].ends_with("B/s")
            && row[2] != "0 B/s"
            && row[3].ends_with("B/s")
            && row[3] != "0 B/s",
        "{text}"
    );
    assert_eq!(row[4], "not growing", "{text}");
    assert_eq!(row[5], "1", "{text}");
}

/// A known write rate into a root with `max_size` and no eviction yet: `time_to_full_hours`
/// is the room left to `max_size` divided by that rate.
///
/// The daemon's rate is the bytes written over the time since it started (the window is
/// 5 minutes, and the test is far shorter), counted in whole seconds. The test cannot know the
/// daemon's start and the moment of its snapshot exactly, so it brackets them: the daemon
/// started after `before_start` and before it was ready, and its last snapshot was taken after
/// the last write began and before the status answer came. The true answer lies between the
/// two bounds these give (one second of rounding either way); on a loaded machine the bracket
/// only widens, it never moves past the figure.
#[test]
fn time_to_full_follows_a_known_write_rate() {
    const MAX: u64 = 1 << 30; // 1 GiB: hours to fill at ~128 KiB/s, so 0.01 h rounding is small
    const CHUNK: usize = 32 * KIB as usize;
    const WRITES: usize = 40; // one every 250 ms: 10 s, 1.25 MiB
    let before_start = Instant::now();
    let d = Daemon::start("max_size: 1GiB\ngrace: 0s", |_| {});
    let ready = Instant::now();
    let mut last_write = ready;
    for i in 0..WRITES {
        let due = ready + Duration::from_millis(250 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        last_write = Instant::now();
        write_file(&d.root.join(format!("AAPL_1day/c{i:02}.png")), CHUNK);
    }
    let written = (WRITES * CHUNK) as u64;
    // The snapshot has seen every write once its history holds them all.
    let written_seen = |st: &serde_json::Value| -> u64 {
        st["history"]["written_bytes"]
            .as_array()
            .map_or(0, |a| a.iter().filter_map(|v| v.as_u64()).sum())
    };
    assert!(
        wait_until(Duration::from_secs(15), || written_seen(&d.status_root())
            == written),
        "{}",
        d.status_root()
    );
    let st = d.status_root();
    let answered = Instant::now();
    assert_eq!(st["files_removed"], 0, "{st}");
    assert_eq!(st["total_bytes"], written, "{st}");
    assert_eq!(st["evicted_bytes_per_second"], 0.0, "{st}");
    // Room left: to max_size, or to the file system's free space if that is nearer.
    let to_max = (MAX - written) as f64;
    let fs_free = st["fs_free_bytes"].as_f64().unwrap_or(0.0);
    let room = to_max.min(fs_free);
    // The span the daemon divides by, bracketed (whole seconds: one more either way).
    let span_lo = ((last_write - ready).as_secs_f64() - 1.0).max(1.0);
    let span_hi = (answered - before_start).as_secs_f64() + 1.0;
    let (rate_lo, rate_hi) = (written as f64 / span_hi, written as f64 / span_lo);
    let rate = st["write_bytes_per_second"].as_f64().unwrap_or(0.0);
    assert!(
        rate >= rate_lo - 0.01 && rate <= rate_hi + 0.01,
        "write rate {rate} B/s, expected {rate_lo:.1}..{rate_hi:.1}: {st}"
    );
    let (full_lo, full_hi) = (room / rate_hi / 3600.0, room / rate_lo / 3600.0);
    let full = st["time_to_full_hours"]
        .as_f64()
        .unwrap_or_else(|| panic!("no time_to_full_hours while growing: {st}"));
    // 0.01: status rounds hours to two decimals.
    assert!(
        full >= full_lo - 0.01 && full <= full_hi + 0.01,
        "time_to_full_hours {full}, expected {full_lo:.3}..{full_hi:.3} (room {room} B at \
         {rate_lo:.1}..{rate_hi:.1} B/s): {st}"
    );
    // It agrees with the daemon's own rate: room / rate.
    let own = room / rate / 3600.0;
    assert!(
        (full - own).abs() <= 0.01 + own * 0.01,
        "time_to_full_hours {full}, room / write rate = {own}: {st}"
    );
    // Plain status shows it in hours (the snapshot is the same while the daemon is idle, but
    // allow a refresh in between: one tenth of an hour of slack).
    let text = plain_status(&d);
    let row = capacity_row(&text, &d.root);
    let shown: f64 = row[4]
        .strip_suffix('h')
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("FULL IN is not in hours: {:?}\n{text}", row[4]));
    assert!((shown - full).abs() <= 0.1, "{shown} vs {full}\n{text}");
    assert_eq!(row[3], "0 B/s", "{text}");
    assert_eq!(row[5], "0", "{text}");
}
