//! Phase `overshoot`: a burst at 10k files/s into a live tree at its limit; the excess over
//! `max_size` the writer sees at every write, next to the same burst against a minimal inotify
//! deleter in the same run. A victim counts as deleted when it is unlinked (the `IN_DELETE` of
//! the private name chartd moved it to, or of its name for a deleter that unlinks directly:
//! see `victim.rs`), the point where the space is freed; the excess at "off its name" is kept
//! as a second figure. With a baseline binary each repetition runs both (the order
//! alternating), each on the same restored tree after the same reference burst.
//!
//! May touch: the live tree on the tmpfs (burst directories, victims), the reference's scratch
//! directory (removed afterwards), and nothing of the daemons but their status.

use crate::compare::{block, row_reps, turn_order, Better};
use crate::daemon::{wait_status, Daemon};
use crate::floor::{delete, open_dir, Protocol};
use crate::live::{restore, start_live, LiveVariant, BURST_DIR};
use crate::opts::Opts;
use crate::reaction::CLEANER_WATCH;
use crate::tree::{make_file, rand_size, Tree, CHARTS, MAX_SIZE, MIN_SIZE};
use crate::util::{err, pace, pct, Res};
use crate::victim::{Tracker, IN_Q_OVERFLOW};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

const AVG: f64 = ((MIN_SIZE + MAX_SIZE) / 2) as f64;

/// The bursts (`--quick`: 10k files, else 30k, at most N/2) at 10k files/s, `--overshoot-reps`
/// per variant, each repetition after its own reference burst.
pub fn overshoot(o: &Opts, tree: &Tree, variants: &[LiveVariant], out: &mut Value) -> Res<()> {
    let rate = 10_000.0;
    let count = (tree.n / 2).min(if o.quick { 10_000 } else { 30_000 });
    // The bytes the burst adds; the victims that pay for it come from the front of `order`.
    let sizes: Vec<u64> = (0..count)
        .map(|j| rand_size(0xB0B0_0000 ^ j as u64))
        .collect();
    let mut runs: Vec<Vec<Value>> = variants.iter().map(|_| Vec::new()).collect();
    let mut refs = Vec::new();
    let mut refs_airtight = Vec::new();
    for rep in 0..o.overshoot_reps {
        // The references first: the same burst against a minimal reactor deleting by a plain
        // unlink, and one deleting by the airtight protocol.
        let place = tree.dir.join("overshoot-reference");
        refs.push(overshoot_reference(&place, &sizes, rate, Protocol::Plain)?);
        refs_airtight.push(overshoot_reference(
            &place,
            &sizes,
            rate,
            Protocol::Airtight,
        )?);
        for k in turn_order(rep, variants.len()) {
            let v = &variants[k];
            let d = start_live(o, tree, &v.v)?;
            let r = one_burst(tree, &d, &v.order, &sizes, rate);
            d.stop()?;
            let (fig, gone) = r?;
            eprintln!(
                "  [{}] {}: overshoot: {count} files at {:.0}/s: max excess ~{:.1} files (p99 {:.1}, p50 {:.1}; off-name max ~{:.1}); reference reactor max ~{:.1} files (p99 {:.1}), airtight ~{:.1} (p99 {:.1}); {} deletions seen / {} by chartd; {} overflows; catch-up {:.2} s",
                tree.n,
                v.v.label,
                fig["rate_achieved"].as_f64().unwrap_or(0.0),
                fig["max_excess_files"].as_f64().unwrap_or(0.0),
                fig["p99_excess_files"].as_f64().unwrap_or(0.0),
                fig["p50_excess_files"].as_f64().unwrap_or(0.0),
                fig["off_name_max_excess_files"].as_f64().unwrap_or(0.0),
                refs[rep].worst as f64 / AVG,
                refs[rep].p99 / AVG,
                refs_airtight[rep].worst as f64 / AVG,
                refs_airtight[rep].p99 / AVG,
                fig["deletions_seen"],
                fig["deletions_by_chartd"],
                fig["chartd_overflows"],
                fig["catch_up_s"].as_f64().unwrap_or(0.0),
            );
            if fig["all_deletions_accounted"] != json!(true) {
                eprintln!(
                    "  [{}] {}: WARNING: the harness did not account for every deletion (seen {}, by chartd {}, unknown {}, harness watcher overflowed: {}): this repetition's excess figures are not exact",
                    tree.n,
                    v.v.label,
                    fig["deletions_seen"],
                    fig["deletions_by_chartd"],
                    fig["unknown_deletions"],
                    fig["harness_watcher_overflowed"]
                );
            }
            // Put back what chartd removed: the victims seen, and the predicted prefix of the
            // eviction order as long as chartd's own count (a deletion the harness missed
            // would otherwise leave the tree under its limit for the next daemon).
            let by_chartd = fig["deletions_by_chartd"].as_u64().unwrap_or(0) as usize;
            let mut victims: std::collections::BTreeSet<usize> = gone.into_iter().collect();
            victims.extend(
                v.order[..by_chartd.min(v.order.len())]
                    .iter()
                    .map(|&i| i as usize),
            );
            runs[k].push(fig);
            restore(tree, victims)?;
        }
    }
    // This build's figures: one burst as it was, or the median over the repetitions.
    let med = |runs: &[Value], key: &str| -> f64 {
        let v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        pct(&v, 50.0)
    };
    let mut fig = runs[0][0].clone();
    for key in [
        "max_excess_bytes",
        "max_excess_files",
        "p99_excess_files",
        "p50_excess_files",
    ] {
        fig[key] = json!(med(&runs[0], key));
    }
    let rmed = |f: fn(&Burst) -> f64| pct(&refs.iter().map(f).collect::<Vec<_>>(), 50.0);
    fig["reference_max_excess_files"] = json!(rmed(|b| b.worst as f64 / AVG));
    fig["reference_p99_excess_files"] = json!(rmed(|b| b.p99 / AVG));
    fig["reference_p50_excess_files"] = json!(rmed(|b| b.p50 / AVG));
    fig["reference_rate_achieved"] = json!(rmed(|b| b.achieved));
    let amed = |f: fn(&Burst) -> f64| pct(&refs_airtight.iter().map(f).collect::<Vec<_>>(), 50.0);
    fig["reference_airtight_max_excess_files"] = json!(amed(|b| b.worst as f64 / AVG));
    fig["reference_airtight_p99_excess_files"] = json!(amed(|b| b.p99 / AVG));
    fig["reference_airtight_p50_excess_files"] = json!(amed(|b| b.p50 / AVG));
    fig["repetitions"] = json!(runs[0]);
    out["overshoot"] = fig;
    if variants.len() > 1 {
        let per = |k: usize, key: &str| -> Vec<f64> {
            runs[k].iter().filter_map(|r| r[key].as_f64()).collect()
        };
        let lower = Better::Lower;
        // Each repetition's excess divided by that of the reference deleter that deletes the
        // way the variant does (seen from its events), the references' burst of the same
        // repetition: each build's overshoot over the floor of its own protocol.
        let over = |k: usize, f: fn(&Burst) -> f64, key: &str| -> Vec<f64> {
            runs[k]
                .iter()
                .enumerate()
                .filter_map(|(rep, r)| {
                    let floor = if r["airtight"] == json!(true) {
                        f(&refs_airtight[rep])
                    } else {
                        f(&refs[rep])
                    };
                    let x = r[key].as_f64()? / floor;
                    x.is_finite().then_some(x)
                })
                .collect()
        };
        let over_floor = |what: &str, f: fn(&Burst) -> f64, key: &str| {
            row_reps(
                &format!("overshoot over the floor of its protocol: {what} excess ÷ the same-run reference deleter's, deleting the same way"),
                "x",
                lower,
                Some(1.10),
                &over(0, f, key),
                &over(1, f, key),
            )
        };
        let row = |what: &str, key: &str, bound| {
            row_reps(what, "files", lower, bound, &per(0, key), &per(1, key))
        };
        out["compare"]["overshoot"] = block(
            &variants[0].v.label,
            &variants[1].v.label,
            vec![
                row(
                    "overshoot: max excess (unlinked)",
                    "max_excess_files",
                    Some(1.10),
                ),
                row(
                    "overshoot: p99 excess (unlinked)",
                    "p99_excess_files",
                    Some(1.10),
                ),
                row(
                    "overshoot: p50 excess (unlinked)",
                    "p50_excess_files",
                    Some(1.10),
                ),
                row(
                    "overshoot: max excess (off its name)",
                    "off_name_max_excess_files",
                    None,
                ),
                over_floor("max", |b| b.worst as f64 / AVG, "max_excess_files"),
                over_floor("p99", |b| b.p99 / AVG, "p99_excess_files"),
                over_floor("p50", |b| b.p50 / AVG, "p50_excess_files"),
            ],
        );
    }
    Ok(())
}

/// One burst of `sizes` into the burst directories against daemon `d`, then waits for it to
/// catch up and accounts every deletion. Returns the figures and the victims it deleted.
fn one_burst(
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    sizes: &[u64],
    rate: f64,
) -> Res<(Value, Vec<usize>)> {
    use rustix::fs::inotify;
    let burst_bytes: u64 = sizes.iter().sum();
    // The writer reads deletions itself, non-blocking, right before each write: the kernel
    // queues an IN_DELETE synchronously with the unlink, so what it finds there is exactly
    // what has been deleted so far, whatever the scheduler does to any thread.
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let mut wd_dir: HashMap<i32, usize> = HashMap::new();
    let (mut covered, mut k) = (0u64, 0);
    let flags = inotify::WatchFlags::DELETE
        | inotify::WatchFlags::MOVED_FROM
        | inotify::WatchFlags::MOVED_TO;
    while covered < burst_bytes * 2 && k < order.len() {
        let v = order[k] as usize;
        let wd = inotify::add_watch(&fd, tree.dir_path(v / 4), flags)
            .map_err(err("inotify_add_watch"))?;
        wd_dir.insert(wd, v / 4);
        covered += tree.size(v);
        k += 1;
    }
    let s0 = d.status()?;
    let max = tree.total_bytes();
    let removed0 = s0["files_removed"].as_u64().unwrap_or(0);
    // Excess of the disk total over max_size, in bytes.
    let excess0 = s0["total_bytes"].as_u64().unwrap_or(0) as i64 - max as i64;
    let victim = |wd: i32, name: &[u8]| {
        let dir = *wd_dir.get(&wd)?;
        let kk = CHARTS.iter().position(|c| c.as_bytes() == name)?;
        Some(dir * 4 + kk)
    };
    let sz = Sizes {
        victim: &victim,
        size: &|i| tree.size(i),
    };
    let burst_dir = tree.root.join(BURST_DIR);
    let mut b = burst(&fd, excess0, &burst_dir, sizes, rate, &sz)?;
    let count = sizes.len();
    // Let chartd catch up.
    let catch_up = Instant::now();
    // Caught up: the index holds every file written (N + burst − removed) and is within the limit.
    let expect_files = (tree.n + count) as u64;
    let settled = wait_status(d, Duration::from_secs(120), |s| {
        let removed = s["files_removed"].as_u64().unwrap_or(0) - removed0;
        s["total_bytes"].as_u64().is_some_and(|b| b <= max)
            && s["total_files"].as_u64() == Some(expect_files - removed)
    });
    let catch_up = catch_up.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(200));
    let mut ex = Excess::default();
    let mut t = std::mem::take(&mut b.tracker);
    read_deletions(&fd, &mut t, &sz, &mut ex, &mut b);
    b.tracker = t;
    let s1 = d.status()?;
    let removed = s1["files_removed"].as_u64().unwrap_or(0) - removed0;
    let overflows = s1["overflows"].as_u64().unwrap_or(0) - s0["overflows"].as_u64().unwrap_or(0);
    let fig = json!({
        "indexed_files": tree.n,
        "burst_files": count,
        "rate_target": rate,
        "rate_achieved": b.achieved,
        "max_excess_bytes": b.worst,
        "max_excess_files": b.worst as f64 / AVG,
        "p99_excess_files": b.p99 / AVG,
        "p50_excess_files": b.p50 / AVG,
        "off_name_max_excess_files": b.worst_name as f64 / AVG,
        "off_name_p99_excess_files": b.p99_name / AVG,
        "off_name_p50_excess_files": b.p50_name / AVG,
        "one_file_max_bytes": MAX_SIZE,
        "deletions_seen": b.gone.len(),
        "deletions_by_chartd": removed,
        "chartd_overflows": overflows,
        "all_deletions_accounted": b.gone.len() as u64 == removed && b.unknown == 0 && !b.overflow && b.tracker.pending() == 0,
        "unknown_deletions": b.unknown,
        "airtight": b.private * 2 > b.gone.len() as u64,
        "moved_not_unlinked": b.tracker.pending(),
        "harness_watcher_overflowed": b.overflow,
        "catch_up_s": catch_up,
        "settled_under_limit": settled.is_ok(),
    });
    Ok((fig, b.gone))
}

/// Which (watch, name) is a victim, and its size.
struct Sizes<'a> {
    victim: &'a dyn Fn(i32, &[u8]) -> Option<usize>,
    size: &'a dyn Fn(usize) -> u64,
}

/// The excess over the limit (bytes), counting a victim as deleted when it is unlinked
/// (`gone`), or when it is off its name (`name`).
#[derive(Default)]
struct Excess {
    gone: i64,
    name: i64,
}

/// What a paced burst saw: the excess over the limit (bytes) at every write.
#[derive(Default)]
struct Burst {
    pub worst: i64,
    pub p50: f64,
    pub p99: f64,
    pub worst_name: i64,
    pub p50_name: f64,
    pub p99_name: f64,
    pub achieved: f64,
    /// The victims unlinked, in order.
    pub gone: Vec<usize>,
    pub unknown: u64,
    /// Victims unlinked under a private name (the airtight protocol).
    pub private: u64,
    pub overflow: bool,
    tracker: Tracker<usize>,
}

/// Drains, non-blocking, the deletion events queued on `fd`, subtracting each victim's size
/// from the excess when it is off its name and when it is unlinked.
fn read_deletions(
    fd: &OwnedFd,
    t: &mut Tracker<usize>,
    sz: &Sizes,
    ex: &mut Excess,
    b: &mut Burst,
) {
    use rustix::fs::inotify;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut r = inotify::Reader::new(fd, &mut buf);
    loop {
        match r.next() {
            Ok(e) => {
                let m = e.events().bits();
                b.overflow |= m & IN_Q_OVERFLOW != 0;
                let name = e.file_name().map(|n| n.to_bytes()).unwrap_or_default();
                let s = t.on_event(e.wd(), m, e.cookie(), name, sz.victim);
                if let Some(k) = s.off_name {
                    ex.name -= (sz.size)(k) as i64;
                }
                if let Some(k) = s.gone {
                    ex.gone -= (sz.size)(k) as i64;
                    b.gone.push(k);
                    b.private += u64::from(crate::victim::is_private(name));
                }
                b.unknown += u64::from(s.unknown);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Creates `sizes.len()` files paced at `rate` (four per directory, over `dirs/dNNN/`), and,
/// right before each write, accounts the deletions queued on `fd` (watches on the victims'
/// directories). Returns the excess over the limit seen at each write.
fn burst(
    fd: &OwnedFd,
    excess0: i64,
    dirs: &Path,
    sizes: &[u64],
    rate: f64,
    sz: &Sizes,
) -> Res<Burst> {
    let mut b = Burst {
        worst: excess0.max(0),
        worst_name: excess0.max(0),
        ..Burst::default()
    };
    let mut t = Tracker::new();
    let mut ex = Excess {
        gone: excess0,
        name: excess0,
    };
    let mut samples = Vec::with_capacity(sizes.len());
    let mut samples_name = Vec::with_capacity(sizes.len());
    let start = Instant::now();
    for (j, &size) in sizes.iter().enumerate() {
        pace(start, j as u64, rate);
        read_deletions(fd, &mut t, sz, &mut ex, &mut b);
        let p = dirs
            .join(format!("d{:03}", (j / 4) % 100))
            .join(format!("b{j:06}.png"));
        make_file(&p, size, None)?;
        ex.gone += size as i64;
        ex.name += size as i64;
        b.worst = b.worst.max(ex.gone);
        b.worst_name = b.worst_name.max(ex.name);
        samples.push(ex.gone.max(0) as f64);
        samples_name.push(ex.name.max(0) as f64);
    }
    b.achieved = sizes.len() as f64 / start.elapsed().as_secs_f64();
    b.p50 = pct(&samples, 50.0);
    b.p99 = pct(&samples, 99.0);
    b.p50_name = pct(&samples_name, 50.0);
    b.p99_name = pct(&samples_name, 99.0);
    b.tracker = t;
    Ok(b)
}

/// The overshoot reference, in the same run: the same paced burst, against the smallest
/// possible inotify deleter (a harness thread that, on each IN_CLOSE_WRITE in the burst
/// directories, deletes the next victim, a file of the same size, by `proto`; it also watches
/// the victims' directory as a cleaner must, `reaction::CLEANER_WATCH`, and reads what its own
/// deletions queue there). What it overshoots is what this machine's scheduling, inotify
/// delivery and the deletion protocol impose on any deleter: a floor, not a target chartd can
/// beat.
fn overshoot_reference(dir: &Path, sizes: &[u64], rate: f64, proto: Protocol) -> Res<Burst> {
    use rustix::fs::inotify;
    let _ = fs::remove_dir_all(dir);
    let victims = dir.join("victims");
    fs::create_dir_all(&victims).map_err(err("reference dir"))?;
    for (k, &size) in sizes.iter().enumerate() {
        make_file(&victims.join(format!("v{k:06}")), size, None)?;
    }
    let burst_dirs = dir.join("burst");
    let reactor = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    for k in 0..100 {
        let d = burst_dirs.join(format!("d{k:03}"));
        fs::create_dir_all(&d).map_err(err("reference burst dir"))?;
        inotify::add_watch(&reactor, &d, inotify::WatchFlags::CLOSE_WRITE)
            .map_err(err("inotify_add_watch"))?;
    }
    inotify::add_watch(&reactor, &victims, CLEANER_WATCH).map_err(err("inotify_add_watch"))?;
    let vfd = open_dir(&victims)?;
    let count = sizes.len();
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(reactor.as_fd(), &mut buf);
        let mut k = 0;
        while k < count {
            let Ok(ev) = r.next() else { return };
            if !ev.events().contains(inotify::ReadFlags::CLOSE_WRITE) {
                continue; // its own deletions' events
            }
            if ev.file_name().is_some_and(|n| n.to_bytes() == b"stop") {
                return;
            }
            let name = format!("v{k:06}");
            let _ = delete(&vfd, std::ffi::OsStr::new(&name), proto, k as u64);
            k += 1;
        }
    });
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let wd = inotify::add_watch(&fd, &victims, inotify::WatchFlags::DELETE)
        .map_err(err("inotify_add_watch"))?;
    let victim = |w: i32, name: &[u8]| {
        let k: usize = std::str::from_utf8(name.strip_prefix(b"v")?)
            .ok()?
            .parse()
            .ok()?;
        (w == wd && k < sizes.len()).then_some(k)
    };
    let b = burst(
        &fd,
        0,
        &burst_dirs,
        sizes,
        rate,
        &Sizes {
            victim: &victim,
            size: &|k| sizes[k],
        },
    );
    let _ = fs::File::create(burst_dirs.join("d000").join("stop"));
    let _ = h.join();
    let _ = fs::remove_dir_all(dir);
    b
}
