//! Small shared pieces of the benchmark: its error type, percentiles and the JSON summary of a
//! sample, the wall clock in ns, and pacing a writer to a rate.
//!
//! May touch: nothing (pure, apart from sleeping in `pace`).

use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors are messages: a failed phase is reported under the table and the run goes on.
pub type Res<T> = Result<T, String>;

pub fn err<E: std::fmt::Display>(ctx: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

/// Nearest-rank percentile of a sample (p in 0..=100). With fewer than 100 samples, p99 is the
/// maximum.
pub fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn stats(v: &[f64]) -> Value {
    json!({
        "n": v.len(),
        "median": pct(v, 50.0),
        "p99": pct(v, 99.0),
        "min": pct(v, 0.0),
        "max": pct(v, 100.0),
    })
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub fn pace(start: Instant, k: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(k as f64 / rate);
    let now = Instant::now();
    if due > now {
        thread::sleep(due - now);
    }
}
