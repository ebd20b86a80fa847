//! The model test's run loop: one seed from start to verdict (daemon, planted files, weighted
//! operations, quiescence, the summary line and the error with the log's tail), and the
//! oracle's deterministic self-test of how it judges `flock`s.
//!
//! May touch: the daemon's temp dirs, the chartd process it starts, its control socket and log, a
//! copy of the log in the temp dir on failure, and `fs.inotify.max_queued_events` (root only,
//! restored).

use super::model::Kind;
use super::{policy, Profile, Rng, Summary, World, AGES, GROUPS, QUEUE_SYSCTL, SIZES};
use crate::common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn plant_outside(w: &mut World) {
    let outside = w.ws.join("outside");
    for i in 0..12 {
        let p = outside.join(format!("o{i}.png"));
        w.write_at(&p, Kind::Managed, 2000, Some(hours(5)));
    }
    for i in 0..4 {
        w.write_at(
            &outside.join(format!("sub/o{i}.png")),
            Kind::Managed,
            2000,
            Some(hours(5)),
        );
    }
}

/// Runs one seed. `Err` names every violation (and the replay command is printed by the
/// caller).
pub fn run(seed: u64, prof: &Profile) -> (Summary, Result<(), String>) {
    eprintln!(
        "MODEL SEED={seed} start ({:?} of {}); replay: CHARTD_MODEL_SEED={seed} cargo test \
         --release --test model -- --nocapture",
        prof.secs,
        if prof.kill {
            "the full workload"
        } else {
            "writes/renames/links/truncations"
        }
    );
    let mut rng = Rng::new(seed);
    let max_size = *rng.pick(&SIZES).unwrap();
    let max_age = Duration::from_secs(*rng.pick(&AGES).unwrap());
    let guard = (prof.overflow && is_root()).then(|| Sysctl::set(QUEUE_SYSCTL, "64"));
    let d = Daemon::start(&policy(max_size, max_age), |root| {
        for g in 0..GROUPS {
            fs::create_dir_all(root.join(format!("G{g}"))).unwrap();
        }
    });
    drop(guard);
    let mut w = World::new(seed, rng, prof.clone(), d, max_size, max_age);
    plant_outside(&mut w);
    // Canaries in the root: protected and unmanaged, old.
    for g in 0..GROUPS {
        let p = w.root.join(format!("G{g}/canary{g}_keep.png"));
        w.write_at(&p, Kind::Protected, 500, Some(hours(6)));
        let p = w.root.join(format!("G{g}/data{g}.csv"));
        w.write_at(&p, Kind::Unmanaged, 500, Some(hours(6)));
    }
    let t0 = Instant::now();
    let mut step = 0u64;
    let weights: Vec<(&'static str, u64, bool)> = vec![
        ("new", 300, true),
        ("rename_over", 60, true),
        ("rewrite", 60, true),
        ("truncate", 30, true),
        ("link", 40, true),
        ("rename_file", 40, true),
        ("delete", 20, true),
        ("slow_writer", 15, prof.slow_writers),
        ("lock", 15, prof.locks),
        ("symlink", 10, prof.symlinks),
        ("dir_move", 12, prof.dir_moves),
        ("burst", 4, prof.bursts),
        ("sighup", 4, prof.sighup),
        ("purge", 4, prof.purge),
        ("cleanup", 3, prof.cleanup),
        ("kill", 1, prof.kill),
        ("root_replace", 1, prof.root_replace),
        ("regen_at_expiry", 12, prof.regen_at_expiry),
    ];
    let weights: Vec<(&'static str, u64)> = weights
        .into_iter()
        .filter(|x| x.2)
        .map(|x| (x.0, x.1))
        .collect();
    let total: u64 = weights.iter().map(|x| x.1).sum();
    while t0.elapsed() < prof.secs && w.failures.is_empty() {
        step += 1;
        let mut r = w.rng.below(total);
        let op = weights
            .iter()
            .find(|(_, wt)| {
                if r < *wt {
                    true
                } else {
                    r -= wt;
                    false
                }
            })
            .unwrap()
            .0;
        match op {
            "new" => w.op_new(),
            "rename_over" => {
                if let Some(p) = w.pick_managed(true) {
                    w.rename_over(&p)
                }
            }
            "rewrite" => {
                if let Some(p) = w.pick_managed(false) {
                    w.rewrite(&p)
                }
            }
            "truncate" => w.op_truncate(),
            "link" => w.op_link(),
            "rename_file" => w.op_rename_file(),
            "delete" => w.op_delete(),
            "slow_writer" => w.op_slow_writer(),
            "lock" => w.op_lock(),
            "symlink" => w.op_symlink(),
            "dir_move" => w.op_dir_move(),
            "burst" => w.op_burst(),
            "sighup" => w.op_sighup(),
            "purge" => w.op_purge(),
            "cleanup" => w.op_cleanup(),
            "kill" => w.op_kill(),
            "root_replace" => w.op_root_replace(),
            "regen_at_expiry" => w.op_regen_at_expiry(),
            _ => unreachable!(),
        }
        *w.sum.op_counts.entry(op).or_default() += 1;
        w.tick_writers(false);
        w.check_hot();
        if step % 25 == 0 {
            w.check_all();
            w.alive_and_fresh();
        }
        let pause = w.rng.below(15);
        std::thread::sleep(Duration::from_millis(pause));
    }
    w.sum.ops = step;
    let q = if w.failures.is_empty() {
        w.quiesce()
    } else {
        Ok(())
    };
    w.alive_and_fresh();
    w.log.update(&w.d.log);
    w.sum.chartd_deletions = w.log.count;
    w.sum.overflows = request_within(&w.d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(3))
        .and_then(|s| s["roots"][0]["overflows"].as_u64())
        .unwrap_or(0);
    eprintln!(
        "MODEL SEED={seed} {}: {} ops {:?}; {} deletions checked, chartd logged {} deletions; \
         {} restarts, {} root replacements, {} overflows (chartd's count since its last start); \
         {} sacred files checked by content; {} unlinks raced a rename out of the root \
         (checked beneath the root before the rename returned: accepted); {} names found empty for a moment and put back by chartd; \
         {} open files deleted after their writer stalled past the writer timeout (accepted); \
         {} names of an inode found gone when we locked it (went before the lock); \
         quiescence {:.1?}",
        if w.failures.is_empty() && q.is_ok() {
            "ok"
        } else {
            "FAILED"
        },
        w.sum.ops,
        w.sum.op_counts,
        w.sum.deletions_checked,
        w.sum.chartd_deletions,
        w.sum.restarts,
        w.sum.root_replacements,
        w.sum.overflows,
        w.sum.sacred_checked,
        w.sum.raced_renames,
        w.sum.put_back_seen,
        w.sum.writer_timeouts,
        w.sum.gone_before_lock,
        w.sum.quiescence
    );
    let mut errs = w.failures.clone();
    if let Err(e) = q {
        errs.push(e);
    }
    if errs.is_empty() && w.sum.chartd_deletions == 0 {
        errs.push("positive control: chartd deleted nothing during the run".into());
    }
    if errs.is_empty() {
        (w.sum.clone(), Ok(()))
    } else {
        let log = w.d.log_text();
        let keep = std::env::temp_dir().join(format!("chartd-model-seed{seed}.log"));
        let _ = fs::write(&keep, &log);
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let e = format!(
            "MODEL SEED={seed} FAILED ({} violations): {}\n  replay: CHARTD_MODEL_SEED={seed} \
             cargo test --release --test model -- --nocapture\n  chartd's log: {}; its tail:\n{}",
            errs.len(),
            errs.iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            keep.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        (w.sum.clone(), Err(e))
    }
}

/// The oracle's own check of how it judges `flock`s, deterministic. chartd runs but has nothing
/// to do (no size pressure, the files are far younger than max_age), so every removal here is
/// made by this function behind the model's back, standing in for chartd; `locked` means the
/// lock is ours, and the kernel guarantees chartd's `LOCK_EX | LOCK_NB` fails on that inode from
/// the moment our `flock` returns until we drop it.
///
/// - A: a hard link of an inode is removed, then a lock is taken through another name of that
///   inode: the removal happened before the lock existed (it deleted an old, unlocked file) and
///   must not be blamed as "flocked" when the oracle gets to look at the link.
/// - B: a link removed while the lock is held: a violation, caught.
/// - C: the same, but the lock is released before the oracle looks: still caught.
pub fn oracle_flock_selftest() -> Result<(), String> {
    let max_size = 1 << 30;
    let max_age = Duration::from_secs(3600);
    let d = Daemon::start(&policy(max_size, max_age), |root| {
        for g in 0..GROUPS {
            fs::create_dir_all(root.join(format!("G{g}"))).unwrap();
        }
    });
    let mut w = World::new(
        0,
        Rng::new(0),
        Profile::mix(Duration::ZERO),
        d,
        max_size,
        max_age,
    );
    w.selftest = true;
    let dir = w.root.join("G4");
    let age = Some(Duration::from_secs(600));
    let mut errs: Vec<String> = Vec::new();
    let pair = |w: &mut World, n: &str| {
        let (p, l) = (
            dir.join(format!("{n}.png")),
            dir.join(format!("{n}_link.png")),
        );
        w.write_at(&p, Kind::Managed, 4000, age);
        let e = w.entries[&p].clone();
        w.link_as(&p, &l, &e);
        assert!(w.entries.contains_key(&l), "link {}", l.display());
        (p, l, e.vid)
    };

    let (a, a_link, _) = pair(&mut w, "a");
    fs::remove_file(&a_link).unwrap();
    assert!(w.lock_path(&a), "lock {}", a.display());
    w.check_all();
    if !w.failures.is_empty() {
        errs.push(format!(
            "A (a link removed before the lock on another name was taken): the oracle blamed \
             chartd: {:?}",
            w.failures
        ));
    }
    w.failures.clear();

    let (b, b_link, _) = pair(&mut w, "b");
    assert!(w.lock_path(&b), "lock {}", b.display());
    fs::remove_file(&b_link).unwrap();
    w.check_all();
    let caught = |f: &[String], l: &Path| {
        f.len() == 1 && f[0].contains("flocked") && f[0].contains(&*l.to_string_lossy())
    };
    if !caught(&w.failures, &b_link) {
        errs.push(format!(
            "B (a link removed while the lock was held): not caught as exactly one flocked \
             violation: {:?}",
            w.failures
        ));
    }
    w.failures.clear();

    let (c, c_link, c_vid) = pair(&mut w, "c");
    assert!(w.lock_path(&c), "lock {}", c.display());
    fs::remove_file(&c_link).unwrap();
    w.unlock(c_vid);
    w.check_all();
    if !caught(&w.failures, &c_link) {
        errs.push(format!(
            "C (a link removed while the lock was held, the lock released before the oracle \
             looked): not caught as exactly one flocked violation: {:?}",
            w.failures
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}
