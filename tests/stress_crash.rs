//! Crashes, restarts, reload storms and a stuck index thread.
//!
//! - `kill -9` in the middle of an eviction storm, then a restart: chartd converges, deleted
//!   oldest first across the crash (what remains is exactly the newest files), down to the low
//!   watermark and no further, and no file outside the policy is touched.
//! - 100 SIGHUPs while files are written: still serving, the last config applies, index == disk.
//! - The watchdog: while the index thread walks a large tree, `status` answers promptly and
//!   WATCHDOG=1 keeps coming; when the index thread is frozen in the middle of that walk (ptrace
//!   stops that one thread, as a filesystem call that never returns would), `status` still
//!   answers from the snapshot, and WATCHDOG=1 stops, so systemd would restart chartd.
//!
//! `CHARTD_STRESS=full`: 50,000 files for the crash, 200,000 for the watchdog walk.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets (`kill -9`, SIGHUP), and `ptrace` of its own daemon to freeze it inside a
//! syscall (root only; skips otherwise).

mod common;

use common::*;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

fn chart(root: &Path, i: usize) -> std::path::PathBuf {
    root.join(format!("G{:02}/c{i:06}.png", i % 50))
}

#[test]
fn kill_9_mid_eviction_then_restart_converges_oldest_first() {
    let n = scale(5_000, 50_000);
    let mut canaries = Vec::new();
    let mut d = Daemon::start(
        "max_size: 1GiB\ngrace: 30s\nprotect: [\"keep/**\"]",
        |root| {
            // c000000 is the oldest; one second apart.
            for i in 0..n {
                file(
                    &chart(root, i),
                    KIB,
                    Duration::from_secs((n - i) as u64 + 3600),
                );
            }
        },
    );
    for i in 0..5 {
        canaries.push(Canary::plant(
            &d.root.join(format!("keep/k{i}.png")),
            hours(99),
        ));
        canaries.push(Canary::plant(
            &d.root.join(format!("G00/x{i}.tmp")),
            hours(99),
        ));
        canaries.push(Canary::plant(
            &d.root.join(format!("G01/fresh{i}.png")),
            Duration::ZERO,
        ));
    }
    assert!(wait_until(Duration::from_secs(10), || d.status_root()
        ["total_files"]
        == (n + 10) as u64));
    // A quarter of the charts fit: the reload starts a storm of ~3/4 n deletions.
    let max = (n as u64 / 4) * KIB;
    d.rewrite_config(&format!(
        "max_size: {max}\ngrace: 30s\nprotect: [\"keep/**\"]"
    ));
    d.signal(1);
    let t0 = Instant::now();
    // Kill it as soon as the storm is visibly under way.
    while chart(&d.root, 0).exists() && t0.elapsed() < Duration::from_secs(20) {
        std::hint::spin_loop();
    }
    std::thread::sleep(Duration::from_millis(scale(20, 100) as u64));
    d.signal(9);
    let _ = d.wait_exit(Duration::from_secs(5));
    let at_kill = walk_png(&d.root).0 as usize - 10;
    d.restart();
    let files = d
        .converge(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    check_canaries(&canaries);
    // Oldest first across the crash: what is left is a contiguous run of the newest charts.
    let left: Vec<usize> = (0..n).filter(|&i| chart(&d.root, i).exists()).collect();
    let first = left[0];
    assert_eq!(
        left,
        (first..n).collect::<Vec<_>>(),
        "a newer chart was deleted before an older one"
    );
    // Down to the low watermark (90 %), not further: the protected and fresh files count too.
    let bytes = d.status_root()["total_bytes"].as_u64().unwrap();
    assert!(bytes <= max, "{bytes} > {max}");
    assert!(
        bytes + KIB > max * 9 / 10,
        "deleted past the low watermark: {bytes}"
    );
    eprintln!(
        "kill -9: {n} charts, killed after {} deletions ({} left at the kill), restart deleted \
         {} more; {} managed files left, newest {} charts kept in order, {} canaries intact",
        n - at_kill,
        at_kill,
        at_kill - left.len(),
        files,
        left.len(),
        canaries.len()
    );
}

#[test]
fn sighup_storm_while_writing() {
    let reloads = 100;
    let d = Daemon::start("max_size: 400KiB\ngrace: 0s", |_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (root, stop) = (d.root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                write_file(&root.join(format!("W{}/w{i}.png", i % 10)), 2048);
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
    };
    let rss0 = proc_status_kib(d.pid(), "VmRSS");
    let t0 = Instant::now();
    for r in 0..reloads {
        // Alternate limits; every 10th reload also changes the globs (a re-read of the tree).
        let exclude = if r % 10 == 0 {
            "\nexclude: [\"*.tmp\", \".*\", \"none*\"]"
        } else {
            ""
        };
        d.rewrite_config(&format!(
            "max_size: {}KiB\ngrace: 0s{exclude}",
            300 + 100 * (r % 2)
        ));
        d.signal(1);
        std::thread::sleep(Duration::from_millis(10));
    }
    d.rewrite_config("max_size: 100KiB\ngrace: 0s");
    d.signal(1);
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || d.status_root()["max_size_mb"]
            == 0.1),
        "the last config did not apply: {}",
        d.status_root()
    );
    let files = d
        .converge(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(10), || walk_png(&d.root).1 <= 100 * KIB));
    let applied = d.log_text().matches("config reloaded").count();
    let rss1 = proc_status_kib(d.pid(), "VmRSS");
    eprintln!(
        "SIGHUP storm: {} reloads in {took:.1?} while writing {written} charts; {applied} \
         applied, index == disk ({files} files), VmRSS {rss0} -> {rss1} KiB",
        reloads + 1
    );
    assert!(applied >= 1);
    assert!(
        d.log_text().matches("config not reloaded").count() == 0,
        "{}",
        d.log_text()
    );
}

/// The tid of chartd's index thread.
fn index_tid(pid: i32) -> i32 {
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "chartd-index" {
            return t.file_name().to_str().unwrap().parse().unwrap();
        }
    }
    panic!("no chartd-index thread in {pid}");
}

/// The index thread and, during a full crawl, its reader threads.
fn walk_tids(pid: i32, index: i32) -> Vec<i32> {
    let mut v = vec![index];
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with("chartd-crawl") {
            if let Some(id) = t.file_name().to_str().and_then(|x| x.parse().ok()) {
                v.push(id);
            }
        }
    }
    v
}

/// Stops one thread with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT: only that thread stops, unlike
/// SIGSTOP). Detached on drop, or by the kernel if the test thread dies.
struct Frozen(i32);

impl Frozen {
    fn freeze(tid: i32) -> Option<Frozen> {
        // SAFETY: plain ptrace/waitpid syscalls on a thread of our own child process.
        unsafe {
            if libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) != 0 {
                return None;
            }
            libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
            let mut st = 0;
            libc::waitpid(tid, &mut st, libc::__WALL);
        }
        Some(Frozen(tid))
    }

    /// The syscall the frozen thread is in (from /proc/.../syscall), or -1 when running.
    fn syscall(&self, pid: i32) -> i64 {
        let s =
            fs::read_to_string(format!("/proc/{pid}/task/{}/syscall", self.0)).unwrap_or_default();
        s.split_whitespace()
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(-1)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: detaching a thread we seized.
        unsafe {
            libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0);
        }
    }
}

/// Collects WATCHDOG=1 arrival times from the notify socket, in the background.
fn watch_pings(sock: UnixDatagram) -> Arc<std::sync::Mutex<Vec<Instant>>> {
    let pings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = pings.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") => {
                    out.lock().unwrap().push(Instant::now())
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
            if Arc::strong_count(&out) == 1 {
                return;
            }
        }
    });
    pings
}

fn pings_between(p: &[Instant], a: Instant, b: Instant) -> Vec<Instant> {
    p.iter().copied().filter(|t| *t >= a && *t <= b).collect()
}

fn max_gap(p: &[Instant], a: Instant, b: Instant) -> Duration {
    let mut pts = vec![a];
    pts.extend(pings_between(p, a, b));
    pts.push(b);
    pts.windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[test]
fn a_busy_or_stuck_index_thread_never_starves_status_and_stops_the_watchdog_only_when_stuck() {
    if !is_root() {
        eprintln!("SKIP a_busy_or_stuck_index_thread...: needs root (ptrace of the index thread)");
        return;
    }
    let n = scale(40_000, 200_000);
    let (dir, root) = workspace();
    for g in 0..(n / 100) {
        let gd = root.join(format!("G{g:04}"));
        fs::create_dir(&gd).unwrap();
        for i in 0..100 {
            fs::File::create(gd.join(format!("c{i}.png"))).unwrap();
        }
    }
    let notify_path = dir.path().join("notify.sock");
    let pings = watch_pings(UnixDatagram::bind(&notify_path).unwrap());
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(&config, config_text(&root, &socket, "max_age: 48h")).unwrap();
    let notify = notify_path.to_str().unwrap().to_owned();
    // Pings every 100 ms.
    let d = Daemon::spawn(
        dir,
        root,
        socket,
        config,
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "200000")],
    );
    let tid = index_tid(d.pid());
    let status_time = || {
        let t = Instant::now();
        d.request(r#"{"cmd":"status"}"#);
        t.elapsed()
    };

    // 1. Busy: a `cleanup` walks (statx) the whole tree again.
    let socket = d.socket.clone();
    let t0 = Instant::now();
    let walker = std::thread::spawn(move || request_at(&socket, r#"{"cmd":"cleanup"}"#));
    let mut worst = Duration::ZERO;
    let mut asked = 0;
    while !walker.is_finished() {
        worst = worst.max(status_time());
        asked += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy = t0.elapsed();
    assert!(walker.join().unwrap().is_some_and(|v| v["ok"] == true));
    let gap = max_gap(&pings.lock().unwrap(), t0, t0 + busy);
    eprintln!(
        "busy walk of {n} files: {busy:.1?}; {asked} status answered, slowest {worst:.1?}; \
         longest watchdog gap {gap:.1?}"
    );
    assert!(
        worst < Duration::from_millis(500),
        "status starved: {worst:?}"
    );
    if busy > Duration::from_millis(600) {
        assert!(
            gap < Duration::from_millis(600),
            "watchdog starved by a busy walk: {gap:?}"
        );
    }

    // 2. Stuck: freeze the index thread in the middle of a walk's filesystem call.
    let mut frozen = None;
    let mut sys = -1;
    for _ in 0..20 {
        let socket = d.socket.clone();
        let w = std::thread::spawn(move || request_at(&socket, r#"{"cmd":"cleanup"}"#));
        std::thread::sleep(Duration::from_millis(30));
        // The walk's filesystem calls run on the index thread or, in a full crawl, on its
        // reader threads (while the index thread waits for them): freeze whichever is in one.
        let mut caught = None;
        for t in walk_tids(d.pid(), tid) {
            let Some(f) = Frozen::freeze(t) else { continue };
            sys = f.syscall(d.pid());
            // Idle, a thread waits in epoll_wait (232) or futex (202); else it is walking.
            if ![232, 202, 281, -1].contains(&sys) {
                caught = Some(f);
                break;
            }
        }
        if let Some(f) = caught {
            // A stuck filesystem (a dead NFS server, say) stalls every reader that reaches
            // it: freeze the other readers too, so that the walk cannot go on without it.
            let mut all = vec![f];
            for t in walk_tids(d.pid(), tid).into_iter().skip(1) {
                if all.iter().all(|x| x.0 != t) {
                    if let Some(g) = Frozen::freeze(t) {
                        all.push(g);
                    }
                }
            }
            frozen = Some((all, w));
            break;
        }
        w.join().unwrap();
    }
    let (f, w) = frozen.expect("could not catch the index thread inside a walk");
    let t1 = Instant::now();
    let mut worst = Duration::ZERO;
    while t1.elapsed() < Duration::from_secs(2) {
        worst = worst.max(status_time());
        std::thread::sleep(Duration::from_millis(50));
    }
    let stuck_end = Instant::now();
    let during = pings_between(
        &pings.lock().unwrap(),
        t1 + Duration::from_millis(300),
        stuck_end,
    );
    drop(f);
    assert!(
        w.join().unwrap().is_some_and(|v| v["ok"] == true),
        "the walk finished after the thaw"
    );
    let t2 = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let after = pings_between(&pings.lock().unwrap(), t2, Instant::now());
    eprintln!(
        "stuck index thread (frozen in syscall {sys}) for 2 s: status answered, slowest \
         {worst:.1?}; WATCHDOG=1 while stuck: {}, within 600 ms after: {}",
        during.len(),
        after.len()
    );
    assert!(
        worst < Duration::from_millis(500),
        "status starved while stuck: {worst:?}"
    );
    assert!(
        during.is_empty(),
        "the watchdog was petted for a stuck index thread"
    );
    assert!(!after.is_empty(), "the watchdog did not resume");
    assert!(d.log_text().contains("made no progress"));
}
