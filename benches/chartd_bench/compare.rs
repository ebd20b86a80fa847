//! Side-by-side figures: the variants one measurement runs (this build and a baseline build of
//! another commit, or the same build with and without retention rules), the order they take
//! turns in, and the comparison rows (each variant's figure, the ratio, and the ratio's spread
//! over the repetitions) that the JSON results and `render_cmp.rs` show.
//!
//! May touch: nothing (pure).

use crate::opts::{Bin, Opts};
use crate::util::pct;
use serde_json::{json, Value};
use std::path::PathBuf;

/// One way of running chartd in a measurement.
#[derive(Debug, Clone)]
pub struct Variant {
    pub label: String,
    pub bin: PathBuf,
    /// Extra config lines under the root (the rules), on top of the phase's own.
    pub lines: String,
}

impl Variant {
    pub fn of(b: &Bin) -> Variant {
        Variant {
            label: b.label.clone(),
            bin: b.path.clone(),
            lines: String::new(),
        }
    }
}

/// This build, then the baseline build if one was given.
pub fn bin_variants(o: &Opts) -> Vec<Variant> {
    o.bins().iter().map(Variant::of).collect()
}

/// The order the variants take in repetition `rep`: rotated by one each repetition, so that
/// neither always runs first (on the other's warm-up, or first after a reference).
pub fn turn_order(rep: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| (k + rep) % n.max(1)).collect()
}

/// Which way a figure is better.
#[derive(Clone, Copy)]
pub enum Better {
    Lower,
    Higher,
}

/// One comparison row: `a` (the variant measured, e.g. this build) against `b` (its
/// reference, e.g. the baseline). `a.0` / `b.0` are the figures (a median over the repetitions,
/// or a percentile over all samples pooled); `a.1` / `b.1` the same figure per repetition,
/// paired by index (the same repetition of both), whose ratios give the spread. `bound`: the
/// largest acceptable worsening (1.10 = 10 %), when an issue sets one.
pub fn row(
    figure: &str,
    unit: &str,
    better: Better,
    bound: Option<f64>,
    a: (f64, &[f64]),
    b: (f64, &[f64]),
) -> Value {
    let ratios: Vec<f64> =
        a.1.iter()
            .zip(b.1)
            .filter(|(_, &y)| y != 0.0)
            .map(|(&x, &y)| x / y)
            .filter(|r| r.is_finite())
            .collect();
    let ratio = if b.0 != 0.0 { a.0 / b.0 } else { f64::NAN };
    // The median of the paired ratios: each repetition (block) of `a` ran next to the same
    // repetition of `b`, on the same files, so its ratio cancels what drifts between blocks
    // (the machine's other load, where the scheduler put the threads of that daemon), and the
    // median ignores one block that something outside disturbed. An A/A run (the same binary
    // on both sides) showed single blocks from 0.80 to 1.32 and pooled percentiles 13 % apart
    // at 6 blocks; the verdict takes this figure once there are at least 5 pairs.
    let paired = (ratios.len() >= 5).then(|| pct(&ratios, 50.0));
    let verdict = paired.unwrap_or(ratio);
    let min_max = |v: &[f64]| {
        if v.is_empty() {
            json!(null)
        } else {
            json!([pct(v, 0.0), pct(v, 100.0)])
        }
    };
    let ok = bound.filter(|_| verdict.is_finite()).map(|k| match better {
        Better::Lower => verdict <= k,
        Better::Higher => verdict >= 1.0 / k,
    });
    json!({
        "figure": figure,
        "unit": unit,
        "better": match better { Better::Lower => "lower", Better::Higher => "higher" },
        "a": finite(a.0),
        "a_reps": a.1,
        "a_range": min_max(a.1),
        "b": finite(b.0),
        "b_reps": b.1,
        "b_range": min_max(b.1),
        "ratio": finite(ratio),
        "ratio_paired": paired.map_or(json!(null), finite),
        "ratio_reps": ratios,
        "ratio_range": min_max(&ratios),
        "bound": bound,
        "within_bound": ok,
    })
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(null)
    }
}

/// Rows for the median of per-repetition values.
pub fn row_reps(
    figure: &str,
    unit: &str,
    better: Better,
    bound: Option<f64>,
    a: &[f64],
    b: &[f64],
) -> Value {
    row(
        figure,
        unit,
        better,
        bound,
        (pct(a, 50.0), a),
        (pct(b, 50.0), b),
    )
}

/// Rows for a latency percentile `p`: pooled over every sample, and per block for the spread.
pub fn row_pct(figure: &str, p: f64, bound: Option<f64>, a: &[Vec<f64>], b: &[Vec<f64>]) -> Value {
    let pooled = |v: &[Vec<f64>]| pct(&v.concat(), p);
    let per = |v: &[Vec<f64>]| -> Vec<f64> {
        v.iter()
            .filter(|s| !s.is_empty())
            .map(|s| pct(s, p))
            .collect()
    };
    let (pa, pb) = (per(a), per(b));
    row(
        figure,
        "ms",
        Better::Lower,
        bound,
        (pooled(a), &pa),
        (pooled(b), &pb),
    )
}

/// The comparison block of one phase: which variant is `a`, which is `b`, and the rows.
pub fn block(a: &str, b: &str, rows: Vec<Value>) -> Value {
    json!({ "a_label": a, "b_label": b, "rows": rows })
}
