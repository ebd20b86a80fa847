//! Phase `overshoot`: a burst at 10k files/s into a live tree at its limit; the excess over
//! `max_size` the writer sees at every write, next to the same burst against a minimal inotify
//! deleter in the same run.
//!
//! May touch: the live tree on the tmpfs (burst directories, victims), the reference's scratch
//! directory (removed afterwards), and nothing of the daemon but its status.

use crate::daemon::{wait_status, Daemon};
use crate::inotify::{IN_DELETE, IN_MOVED_FROM, IN_Q_OVERFLOW};
use crate::opts::Opts;
use crate::tree::{make_file, rand_size, Tree, CHARTS, MAX_SIZE, MIN_SIZE};
use crate::util::{err, pace, pct, Res};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// The burst (`--quick`: 10k files, else 30k, at most N/2) at 10k files/s into `burst_dir`,
/// after the reference burst; then waits for chartd to catch up and accounts every deletion.
/// `next_victim` advances by what chartd removed.
#[allow(clippy::too_many_arguments)]
pub fn overshoot(
    o: &Opts,
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    next_victim: &mut usize,
    burst_dir: &Path,
    out: &mut Value,
) -> Res<()> {
    use rustix::fs::inotify;
    let rate = 10_000.0;
    let count = (tree.n / 2).min(if o.quick { 10_000 } else { 30_000 });
    // The bytes the burst adds; the victims that pay for it come from the front of `order`.
    let sizes: Vec<u64> = (0..count)
        .map(|j| rand_size(0xB0B0_0000 ^ j as u64))
        .collect();
    let burst_bytes: u64 = sizes.iter().sum();

    // The reference first: the same burst against a minimal reactor (see `overshoot_reference`).
    let reference = overshoot_reference(&tree.dir.join("overshoot-reference"), &sizes, rate)?;

    // The writer reads deletions itself, non-blocking, right before each write: the kernel
    // queues an IN_DELETE synchronously with the unlink, so what it finds there is exactly
    // what has been deleted so far, whatever the scheduler does to any thread.
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let mut wd_dir: HashMap<i32, usize> = HashMap::new();
    let (mut covered, mut k) = (0u64, *next_victim);
    while covered < burst_bytes * 2 && k < order.len() {
        let v = order[k] as usize;
        let wd = inotify::add_watch(
            &fd,
            tree.dir_path(v / 4),
            inotify::WatchFlags::DELETE | inotify::WatchFlags::MOVED_FROM,
        )
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
    let victim_size = |wd: i32, name: &[u8]| {
        let dir = *wd_dir.get(&wd)?;
        let kk = CHARTS.iter().position(|c| c.as_bytes() == name)?;
        Some(tree.size(dir * 4 + kk))
    };
    let b = burst(&fd, excess0, burst_dir, &sizes, rate, victim_size)?;
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
    let mut after = drain_after(&fd, victim_size);
    after.deleted += b.deleted;
    let s1 = d.status()?;
    let removed = s1["files_removed"].as_u64().unwrap_or(0) - removed0;
    let overflows = s1["overflows"].as_u64().unwrap_or(0) - s0["overflows"].as_u64().unwrap_or(0);
    *next_victim += removed as usize;
    let avg = ((MIN_SIZE + MAX_SIZE) / 2) as f64;
    eprintln!(
        "  [{}] overshoot: {count} files at {:.0}/s: max excess {:.0} KiB (~{:.1} files; p99 {:.1}, p50 {:.1}); reference reactor max ~{:.1} files (p99 {:.1}); {} deletions seen / {removed} by chartd; {overflows} overflows; catch-up {catch_up:.2} s",
        tree.n,
        b.achieved,
        b.worst as f64 / 1024.0,
        b.worst as f64 / avg,
        b.p99 / avg,
        b.p50 / avg,
        reference.worst as f64 / avg,
        reference.p99 / avg,
        after.deleted,
    );
    out["overshoot"] = json!({
        "indexed_files": tree.n,
        "burst_files": count,
        "rate_target": rate,
        "rate_achieved": b.achieved,
        "max_excess_bytes": b.worst,
        "max_excess_files": b.worst as f64 / avg,
        "p99_excess_files": b.p99 / avg,
        "p50_excess_files": b.p50 / avg,
        "reference_max_excess_files": reference.worst as f64 / avg,
        "reference_p99_excess_files": reference.p99 / avg,
        "reference_p50_excess_files": reference.p50 / avg,
        "reference_rate_achieved": reference.achieved,
        "one_file_max_bytes": MAX_SIZE,
        "deletions_seen": after.deleted,
        "deletions_by_chartd": removed,
        "chartd_overflows": overflows,
        "all_deletions_accounted": after.deleted == removed && b.unknown + after.unknown == 0 && !(b.overflow || after.overflow),
        "unknown_deletions": b.unknown + after.unknown,
        "harness_watcher_overflowed": b.overflow || after.overflow,
        "catch_up_s": catch_up,
        "settled_under_limit": settled.is_ok(),
    });
    Ok(())
}

/// What a paced burst saw: the excess over the limit (bytes) at every write.
#[derive(Default)]
struct Burst {
    pub worst: i64,
    pub p50: f64,
    pub p99: f64,
    pub achieved: f64,
    pub deleted: u64,
    pub unknown: u64,
    pub overflow: bool,
}

/// Reads the deletions still queued after a burst (accounting only).
fn drain_after(fd: &OwnedFd, victim_size: impl Fn(i32, &[u8]) -> Option<u64>) -> Burst {
    let mut b = Burst::default();
    read_deletions(fd, &victim_size, &mut 0, &mut b);
    b
}

/// Drains, non-blocking, the IN_DELETEs queued on `fd`, subtracting each victim's size.
fn read_deletions(
    fd: &OwnedFd,
    victim_size: &impl Fn(i32, &[u8]) -> Option<u64>,
    excess: &mut i64,
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
                if m & (IN_DELETE | IN_MOVED_FROM) == 0 {
                    continue;
                }
                let name = e.file_name().map(|n| n.to_bytes()).unwrap_or_default();
                match victim_size(e.wd(), name) {
                    Some(size) => {
                        *excess -= size as i64;
                        b.deleted += 1;
                    }
                    None => b.unknown += 1,
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Creates `sizes.len()` files paced at `rate` (four per directory, over `dirs/dNNN/`), and,
/// right before each write, accounts the deletions queued on `fd` (IN_DELETE watches on the
/// victims' directories). Returns the excess over the limit seen at each write.
fn burst(
    fd: &OwnedFd,
    excess0: i64,
    dirs: &Path,
    sizes: &[u64],
    rate: f64,
    victim_size: impl Fn(i32, &[u8]) -> Option<u64>,
) -> Res<Burst> {
    let mut b = Burst {
        worst: excess0.max(0),
        ..Burst::default()
    };
    let mut excess = excess0;
    let mut samples = Vec::with_capacity(sizes.len());
    let start = Instant::now();
    for (j, &size) in sizes.iter().enumerate() {
        pace(start, j as u64, rate);
        read_deletions(fd, &victim_size, &mut excess, &mut b);
        let p = dirs
            .join(format!("d{:03}", (j / 4) % 100))
            .join(format!("b{j:06}.png"));
        make_file(&p, size, None)?;
        excess += size as i64;
        b.worst = b.worst.max(excess);
        samples.push(excess.max(0) as f64);
    }
    b.achieved = sizes.len() as f64 / start.elapsed().as_secs_f64();
    b.p50 = pct(&samples, 50.0);
    b.p99 = pct(&samples, 99.0);
    Ok(b)
}

/// The overshoot reference, in the same run: the same paced burst, against the smallest
/// possible inotify deleter (a harness thread that, on each IN_CLOSE_WRITE in the burst
/// directories, unlinks the next victim, a file of the same size). What it overshoots is what
/// this machine's scheduling and inotify delivery impose on any deleter: a floor, not a
/// target chartd can beat.
fn overshoot_reference(dir: &Path, sizes: &[u64], rate: f64) -> Res<Burst> {
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
    let count = sizes.len();
    let victims2 = victims.clone();
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(reactor.as_fd(), &mut buf);
        let mut k = 0;
        while k < count {
            let Ok(ev) = r.next() else { return };
            if ev.file_name().is_some_and(|n| n.to_bytes() == b"stop") {
                return;
            }
            let _ = fs::remove_file(victims2.join(format!("v{k:06}")));
            k += 1;
        }
    });
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(err("inotify"))?;
    let wd = inotify::add_watch(&fd, &victims, inotify::WatchFlags::DELETE)
        .map_err(err("inotify_add_watch"))?;
    let victim_size = |w: i32, name: &[u8]| {
        let k: usize = std::str::from_utf8(name.strip_prefix(b"v")?)
            .ok()?
            .parse()
            .ok()?;
        (w == wd).then(|| sizes.get(k).copied()).flatten()
    };
    let b = burst(&fd, 0, &burst_dirs, sizes, rate, victim_size);
    let _ = fs::File::create(burst_dirs.join("d000").join("stop"));
    let _ = h.join();
    let _ = fs::remove_dir_all(dir);
    b
}
