//! The randomized model test (issue #10): a seeded workload drives the real daemon under size
//! pressure (new charts written directly, renamed over and by slow writers; in-place O_TRUNC
//! rewrites; truncate(2); hard links; renames of files and directories within, out of and back
//! into the root; root replacement, also while a purge runs or chartd is stopped; planted
//! symlinks; overflows (max_queued_events 64, as root); SIGHUPs with changed limits; purge;
//! cleanup; kill -9 and restart; charts regenerated exactly at their expiry) while an oracle
//! judges every file chartd removed by what it was at that moment. See
//! `tests/model_support/mod.rs` for the oracle (its judging: `tests/model_support/oracle.rs`).
//!
//! Short (CI, `cargo test`): 3 seeds x 20 s.
//! Replay one seed:   CHARTD_MODEL_SEED=<n> cargo test --release --test model -- --nocapture
//! Long (one hour):   CHARTD_MODEL_DURATION=3600 cargo test --release --test model -- --nocapture
//!   (seeds 1000, 1001, ... of CHARTD_MODEL_SECS (default 60) each until the hour is used;
//!   prints seeds, operations and deletions checked.)
//! Knobs: CHARTD_MODEL_SEEDS="1,2,3" or "100-140"; CHARTD_MODEL_SECS=<per seed>;
//!        CHARTD_MODEL_DURATION=<total seconds> (runs seeds from CHARTD_MODEL_FIRST, default
//!        1000, until the time is used).
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets (SIGSTOP/SIGCONT, SIGHUP, `kill -9`), and `fs.inotify.max_queued_events`,
//! lowered for its overflows and restored on drop.

mod common;
mod model_support;

use std::time::{Duration, Instant};

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.trim().parse().ok())
}

fn seeds_from_env() -> Option<Vec<u64>> {
    if let Some(s) = env_u64("CHARTD_MODEL_SEED") {
        return Some(vec![s]);
    }
    let v = std::env::var("CHARTD_MODEL_SEEDS").ok()?;
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    Some(out)
}

#[test]
fn model_random_workload_never_deletes_wrongly_and_converges() {
    let per_seed = Duration::from_secs(env_u64("CHARTD_MODEL_SECS").unwrap_or(
        if std::env::var("CHARTD_MODEL_DURATION").is_ok() {
            60
        } else {
            20
        },
    ));
    let total = env_u64("CHARTD_MODEL_DURATION").map(Duration::from_secs);
    let explicit = seeds_from_env();
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let (mut ops, mut checked, mut deleted, mut runs) = (0u64, 0u64, 0u64, 0u64);
    let mut next_seed = env_u64("CHARTD_MODEL_FIRST").unwrap_or(1000);
    let mut queue: Vec<u64> = explicit.clone().unwrap_or_else(|| vec![1, 2, 3]);
    queue.reverse();
    loop {
        let seed = if let (Some(total), None) = (total, &explicit) {
            if t0.elapsed() + per_seed > total {
                break;
            }
            next_seed += 1;
            next_seed - 1
        } else {
            match queue.pop() {
                Some(s) => s,
                None => break,
            }
        };
        runs += 1;
        let (s, r) = model_support::run(seed, &model_support::Profile::full(per_seed));
        ops += s.ops;
        checked += s.deletions_checked;
        deleted += s.chartd_deletions;
        if let Err(e) = r {
            eprintln!("{e}");
            failures.push(seed);
        }
    }
    eprintln!(
        "MODEL TOTAL: {runs} seeds in {:.0?}, {ops} operations, {checked} deletions checked, \
         {deleted} deletions logged by chartd; failing seeds: {failures:?}",
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "model: failing seeds {failures:?}; replay one with CHARTD_MODEL_SEED=<n> cargo test \
         --release --test model -- --nocapture"
    );
}

/// The oracle's flock judgement itself (deterministic, see `oracle_flock_selftest`): a name of
/// an inode that went before our lock on it was taken is not blamed on the lock; one that went
/// while the lock was held is caught, also when the lock is released before the oracle looks.
#[test]
fn oracle_judges_a_flock_from_when_it_is_taken_until_it_is_released() {
    if let Err(e) = model_support::oracle_flock_selftest() {
        panic!("{e}");
    }
}
