//! Issue #10 "Trust": regression tests for items 6-9 against the real binary (items 1-5 and
//! the item 4 overflow case are in `tests/trust.rs`, whose header says how each failed on the
//! code before the fixes; shared helpers in `tests/trust_support/`).
//!
//! Run: `cargo test --test trust_late -- --nocapture`. Item 6 (unopenable case) and item 9
//! (EACCES case) need root (chartd run as `nobody` with setpriv) and print `SKIP` otherwise.
//!
//! May touch: the temp dirs of the daemons it starts (files, modes, owners), the chartd
//! processes it starts (as uid 65534 with setpriv, when root), the notify sockets it binds in
//! those dirs, `/proc/sys/net/unix/max_dgram_qlen` (read).

mod common;
mod model_support;
mod trust_support;

use common::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use trust_support::*;

/// The deletion window: fixed chart names regenerated exactly at their expiry (max_age 3 s,
/// grace 2 s), alternately in place (O_TRUNC, as matplotlib's savefig) and by an atomic
/// rename over the name. A regenerated chart is fresh: it must still be there (same inode,
/// same token) 1 s later. The old chart may go (and does, positive control). One case is
/// reported, not failed, because no name-based deletion can close it and chartd's decision was
/// right: an in-place rewrite whose open resolved the name to the old chart before chartd took
/// it off its name, and whose truncate and write came after chartd had checked and unlinked it
/// (seen once in CI in 599 regenerations; see README, *Deleting safely*).
#[test]
fn item6_charts_regenerated_at_their_expiry_are_never_deleted() {
    let names = 60;
    let secs = if std::env::var("CHARTD_ITEM6_SECS").is_ok() {
        std::env::var("CHARTD_ITEM6_SECS").unwrap().parse().unwrap()
    } else {
        30
    };
    let max_age = Duration::from_secs(3);
    let d = Daemon::start("max_age: 3s\ngrace: 2s\n^resync_interval: 1h", |_| {});
    let dir = d.root.join("g");
    fs::create_dir_all(&dir).unwrap();
    // Positive control: charts written once and never regenerated, which chartd must delete
    // at their expiry while the race below runs (it cannot pass because chartd was idle).
    for i in 0..10 {
        fs::write(dir.join(format!("once{i}.png")), vec![b'o'; 4096]).unwrap();
    }
    // Each name: (next regeneration time, expected inode and token to check at, check time).
    struct Slot {
        next: Instant,
        /// When to check, the inode and token written, and the writer's fd of an in-place
        /// rewrite (kept open to tell, if the check fails, whether what it wrote was unlinked).
        check: Option<(Instant, u64, String, Option<fs::File>)>,
        gen: u64,
    }
    let t0 = Instant::now();
    let mut slots: Vec<Slot> = (0..names)
        .map(|i| Slot {
            next: t0 + Duration::from_millis(50 * i as u64),
            check: None,
            gen: 0,
        })
        .collect();
    let (mut regens, mut fresh_deleted, mut old_gone_first) = (0u64, Vec::new(), 0u64);
    let mut raced_open = Vec::new();
    let mut rng = model_support::Rng::new(6);
    while t0.elapsed() < Duration::from_secs(secs) {
        // The earliest due action.
        let (i, at, is_check) = slots
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let mut v = vec![(i, s.next, false)];
                if let Some((c, _, _, _)) = &s.check {
                    v.push((i, *c, true));
                }
                v
            })
            .min_by_key(|x| x.1)
            .unwrap();
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let path = dir.join(format!("chart{i:02}.png"));
        if is_check {
            let (_, ino, token, fd) = slots[i].check.take().unwrap();
            let ok = fs::metadata(&path)
                .ok()
                .filter(|m| m.ino() == ino)
                .is_some()
                && fs::read(&path).is_ok_and(|c| c.starts_with(token.as_bytes()));
            if !ok {
                let what = format!("{} ({token})", path.display());
                // The one window no name-based deletion can close: the writer's
                // open(O_TRUNC) resolved the name to the previous generation before chartd
                // took that file off its name, and its truncate and write came after chartd
                // had checked and unlinked it (the kernel truncates after the lookup). The
                // writer then wrote into a deleted inode. Told apart from a wrong deletion by
                // what it leaves: the writer's own fd shows the inode unlinked, and chartd's
                // log deleted that path on a decision about a file at least `grace` old (the
                // previous generation; this one was under 1 s old until now).
                let unlinked = fd
                    .and_then(|f| f.metadata().ok())
                    .is_some_and(|m| m.nlink() == 0);
                if unlinked && deleted_old(&d.log_text(), &path, 2) {
                    raced_open.push(what);
                } else {
                    fresh_deleted.push(what);
                }
            }
            continue;
        }
        let s = &mut slots[i];
        s.gen += 1;
        let token = format!("chart{i:02} gen {}\n", s.gen);
        if !path.exists() && s.gen > 1 {
            old_gone_first += 1;
        }
        let mut body = token.clone().into_bytes();
        body.resize(4096, b'#');
        // The identity of what this writer wrote, taken from its own file (not from the name:
        // a deletion chartd aborts takes the name away for a few microseconds and puts it
        // back, and a look at the name right then would blame chartd for a file it kept).
        let (m, fd) = if s.gen % 2 == 0 {
            let tmp = dir.join(format!(".chart{i:02}.tmp"));
            fs::write(&tmp, &body).unwrap();
            let m = fs::metadata(&tmp).ok();
            fs::rename(&tmp, &path).unwrap();
            (m, None)
        } else {
            let mut f = fs::File::create(&path).unwrap();
            f.write_all(&body).unwrap();
            (f.metadata().ok(), Some(f))
        };
        regens += 1;
        let ino = m.as_ref().map(|m| m.ino()).unwrap_or(0);
        let written = m
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        let now = Instant::now();
        s.check = Some((now + Duration::from_millis(1000), ino, token, fd));
        // The next regeneration exactly at the expiry of this one, give or take 3 ms.
        let jitter = rng.below(6_000) as i64 - 3_000;
        let base = now + max_age - written;
        s.next = if jitter >= 0 {
            base + Duration::from_micros(jitter as u64)
        } else {
            base - Duration::from_micros((-jitter) as u64)
        };
    }
    let deleted = deletions(&d.log_text()).len();
    eprintln!(
        "item6: {regens} regenerations at expiry in {secs} s; chartd deleted {deleted} files \
         (old charts gone before their regeneration: {old_gone_first}); fresh charts deleted: {}; \
         in-place rewrites whose open raced the deletion of the previous generation: {:?}",
        fresh_deleted.len(),
        raced_open
    );
    assert!(alive(d.pid()));
    let once_left = (0..10)
        .filter(|i| dir.join(format!("once{i}.png")).exists())
        .count();
    assert!(
        deleted >= 10 && once_left == 0,
        "positive control: chartd deleted expired charts meanwhile ({deleted} deletions, \
         {once_left} of 10 expired once-written charts left)"
    );
    assert!(
        fresh_deleted.is_empty(),
        "item 6: {} of {regens} charts regenerated at their expiry (O_TRUNC or rename over the \
         name) were deleted while fresh (< 1 s old, grace 2 s): {:?}",
        fresh_deleted.len(),
        &fresh_deleted[..fresh_deleted.len().min(10)]
    );
}

/// Whether chartd's last deletion of `path` in its log was on a decision about a file at least
/// `min_secs` old (its lines read `deleted PATH (N bytes, age 3s, reason age)`): the last one,
/// so that a wrong deletion of a fresh generation is not excused by an older generation's.
fn deleted_old(log: &str, path: &Path, min_secs: u64) -> bool {
    let head = format!(" deleted {} (", path.display());
    let Some(last) = log.lines().rev().find(|l| l.contains(&head)) else {
        return false;
    };
    let rest = &last[last.find(&head).unwrap_or(0) + head.len()..];
    let Some(age) = rest
        .split(", age ")
        .nth(1)
        .and_then(|a| a.split(',').next())
    else {
        return false;
    };
    // humantime: "3s", or with minutes and hours ("1m 2s"): old either way.
    match age.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => n >= min_secs,
        None => age.contains('m') || age.contains('h'),
    }
}

// ------------------------------------------------------------------------------- item 7

/// A notify socket nobody reads (its queue fills after net.unix.max_dgram_qlen datagrams):
/// `chartd status` must keep answering within 2 s, with fresh figures, the whole time.
#[test]
fn item7_a_full_notify_socket_never_freezes_the_control_plane() {
    let qlen = fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen").unwrap_or_default();
    let (ws, _root) = workspace();
    let nsock = ws.path().join("notify.sock");
    let receiver = UnixDatagram::bind(&nsock).unwrap(); // never read
    let nsock_s = nsock.display().to_string();
    let d = Daemon::start_with(
        "max_size: 1MiB\ngrace: 0s",
        &[
            ("NOTIFY_SOCKET", nsock_s.as_str()),
            ("WATCHDOG_USEC", "200000"),
        ],
        |_| {},
    );
    let t0 = Instant::now();
    let mut answered = 0;
    let mut n = 0u64;
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(12) {
        chart(&d.root.join(format!("g/c{n}.png")), "c", 1000);
        n += 1;
        let q = Instant::now();
        let st = request_within(&d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(2));
        worst = worst.max(q.elapsed());
        match st {
            Some(_) => answered += 1,
            None => panic!(
                "item 7: with a notify socket nobody reads (max_dgram_qlen {}), `status` did not \
                 answer within 2 s, {:.1?} into the run ({answered} answers before)",
                qlen.trim(),
                t0.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Fresh figures, not a frozen snapshot.
    let fresh = wait_until(Duration::from_secs(3), || {
        request_within(&d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(2))
            .is_some_and(|v| v["roots"][0]["total_files"] == n)
    });
    drop(receiver);
    eprintln!("item7: {answered} status answers in 12 s, slowest {worst:.1?}; {n} charts written");
    assert!(
        fresh,
        "item 7: status figures are stale ({n} charts on disk)"
    );
}

// ------------------------------------------------------------------------------- item 8

/// A seeded random mix of writes, renames, links and truncations; after quiescence status
/// equals a disk walk (hard links once). Seeds 1..=2, 12 s each (the full model test:
/// tests/model.rs).
#[test]
fn item8_after_a_random_mix_status_equals_the_disk() {
    for seed in [1u64, 2] {
        let p = model_support::Profile::mix(Duration::from_secs(12));
        if let (_, Err(e)) = model_support::run(seed, &p) {
            panic!("item 8: {e}");
        }
    }
}

// ------------------------------------------------------------------------------- item 9

/// EACCES while reading a directory is not "gone": the sweep must keep its files. chartd runs
/// as `nobody` (setpriv) so that a mode-000 directory really fails with EACCES.
#[test]
fn item9_eacces_while_reading_a_directory_keeps_its_files() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP item9_eacces: needs root and setpriv to run chartd as nobody");
        return;
    }
    let (dir, root) = workspace();
    for i in 0..5 {
        chart(&root.join(format!("g/locked/f{i}.png")), "l", 1000);
    }
    chart(&root.join("g/open/a.png"), "a", 1000);
    let d = start_as_nobody(dir, root, "grace: 0s\n^resync_interval: 1h");
    assert_eq!(d.status_root()["total_files"], 6);
    let locked = d.root.join("g/locked");
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // Positive control: a new file elsewhere is indexed; then a full resync (cleanup).
    chart(&d.root.join("g/open/b.png"), "b", 1000);
    let _ = d.request(r#"{"cmd":"cleanup"}"#);
    // The snapshot after the cleanup's resync is published right after its answer: wait for
    // it (a dropped subtree would not come back: the next resync is an hour away).
    wait_until(Duration::from_secs(5), || {
        d.status_root()["total_files"] == 7
    });
    let st = d.status_root();
    let log = d.log_text();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    eprintln!(
        "item9 eacces: status after cleanup: {} files",
        st["total_files"]
    );
    assert!(
        st["total_files"] == 7,
        "item 9: after EACCES on g/locked (mode 000) the resync dropped its 5 files from the \
         index (status total_files {}, 7 on disk); log tail:\n{}",
        st["total_files"],
        tail(&log, 8)
    );
}

/// A dry-run cleanup across two roots: each root's would-free figures are its own (one pass
/// per root), equal to what a real cleanup then frees.
#[test]
fn item9_dry_run_cleanup_across_two_roots_does_not_leak() {
    let (dir, root) = workspace();
    let root_b = dir.path().join("root_b");
    for r in [&root, &root_b] {
        for i in 0..10 {
            file(
                &r.join(format!("g/f{i}.png")),
                10 * KIB,
                hours(1 + i as u64),
            );
        }
    }
    let socket = dir.path().join("chartd.sock");
    let config = dir.path().join("chartd.yaml");
    let pol = "max_size: 50KiB\nlow_watermark: 90%\ngrace: 0s";
    fs::write(
        &config,
        multi_config(
            &socket,
            "cleanup_enabled: false\n",
            &[(&root, pol), (&root_b, pol)],
        ),
    )
    .unwrap();
    let d = Daemon::spawn(dir, root.clone(), socket, config, &[]);
    let a = d.request(r#"{"cmd":"cleanup","dry_run":true}"#);
    let files: Vec<String> = a["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let in_b = files
        .iter()
        .filter(|p| Path::new(p).starts_with(&root_b))
        .count();
    eprintln!(
        "item9 dry run: would_remove {}, would_free {}, {in_b} of them in root_b",
        a["would_remove"], a["would_free_bytes"]
    );
    // Each root: 100 KiB > 50 KiB, down to 45 KiB: the 6 oldest (60 KiB) each.
    assert_eq!(
        (
            a["would_remove"].as_u64(),
            a["would_free_bytes"].as_u64(),
            in_b
        ),
        (Some(12), Some(120 * KIB), 6),
        "item 9: a dry-run cleanup across two roots leaks one root's would-free bytes into the \
         next: {a}"
    );
    // Nothing was deleted (observe only).
    assert_eq!(walk_png(&root).0 + walk_png(&root_b).0, 20);
}

/// A directory emptied by eviction, younger than grace, is not pruned at once: a writer's
/// `mkdir -p D` followed by `open(D/new.png)` must not fail.
#[test]
fn item9_an_emptied_directory_in_grace_is_not_pruned_at_once() {
    let d = Daemon::start("max_age: 1h\ngrace: 2s\n^resync_interval: 1h", |_| {});
    let mut failures = Vec::new();
    let mut evicted = 0;
    for i in 0..20 {
        let dd = d.root.join(format!("g{i}/sub"));
        fs::create_dir_all(&dd).unwrap();
        // An old file appears: chartd evicts it (age) and empties the directory.
        let old = dd.join("old.png");
        file(&old, 100, hours(5));
        if wait_until(Duration::from_secs(5), || !old.exists()) {
            evicted += 1;
        }
        // The application then writes its chart into the directory it just created.
        std::thread::sleep(Duration::from_millis(20));
        if let Err(e) = fs::write(dd.join("new.png"), b"fresh") {
            failures.push(format!("{}: {e}", dd.display()));
        }
    }
    eprintln!(
        "item9 prune: {evicted} old files evicted; {} writes failed",
        failures.len()
    );
    assert!(
        evicted >= 10,
        "positive control: the old files were evicted"
    );
    assert!(
        failures.is_empty(),
        "item 9: directories emptied by eviction were pruned at once (younger than grace), so the \
         writer's open failed: {failures:?}"
    );
}

/// A reload whose new config holds a bad new root (missing, and one on a path that is a file)
/// keeps the running roots working.
#[test]
fn item9_reload_with_a_bad_new_root_keeps_the_old_root() {
    let d = Daemon::start("max_age: 1h\ngrace: 0s", |_| {});
    let bogus = d.dir.path().join("a-file");
    fs::write(&bogus, b"not a dir").unwrap();
    let missing = d.dir.path().join("missing/root");
    let text = multi_config(
        &d.socket,
        "",
        &[
            (&d.root, "max_age: 1h\ngrace: 0s"),
            (&bogus, "max_age: 1h"),
            (
                &missing,
                "max_age: 1h\ninclude: [\"*.png\", \"sub/**/x.png\"]",
            ),
        ],
    );
    let tmp = d.config.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, &d.config).unwrap();
    let r = request_within(&d.socket, r#"{"cmd":"reload"}"#, Duration::from_secs(20));
    eprintln!("item9 reload: {r:?}");
    file(&d.root.join("g/old.png"), 100, hours(5));
    assert!(
        wait_until(Duration::from_secs(5), || !d
            .root
            .join("g/old.png")
            .exists()),
        "item 9: after a reload with bad new roots the old root no longer enforces max_age; \
         reload answer {r:?}; status {:?}",
        d.try_request(r#"{"cmd":"status"}"#)
    );
    let st = d.request(r#"{"cmd":"status"}"#);
    assert!(
        st["roots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["path"] == d.root.display().to_string()),
        "item 9: the old root vanished from status after the reload: {st}"
    );
}

/// A reload that adds a root crawls it; that must not run inline in the supervisor loop: the
/// WATCHDOG=1 pings (every 100 ms with WATCHDOG_USEC=200000) keep coming during the crawl of a
/// 100k-file root added by `reload`, and status keeps answering.
#[test]
fn item9_a_reload_that_crawls_keeps_the_watchdog_pinging() {
    let (ws, _r) = workspace();
    let nsock = ws.path().join("notify.sock");
    let rx = UnixDatagram::bind(&nsock).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let pings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (pings, stop) = (pings.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = rx.recv(&mut buf) {
                    if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
                        pings.lock().unwrap().push(Instant::now());
                    }
                }
            }
        })
    };
    let nsock_s = nsock.display().to_string();
    let d = Daemon::start_with(
        "grace: 0s",
        &[
            ("NOTIFY_SOCKET", nsock_s.as_str()),
            ("WATCHDOG_USEC", "200000"),
        ],
        |_| {},
    );
    let big = d.dir.path().join("big");
    for i in 0..100_000 {
        if i % 20 == 0 {
            fs::create_dir_all(big.join(format!("d{}/e{}", i / 2000, i / 20))).unwrap();
        }
        fs::File::create(big.join(format!("d{}/e{}/f{i}.png", i / 2000, i / 20))).unwrap();
    }
    let text = multi_config(
        &d.socket,
        "",
        &[(&d.root, "grace: 0s"), (&big, "grace: 0s")],
    );
    let tmp = d.config.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, &d.config).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let before = pings.lock().unwrap().len();
    let t0 = Instant::now();
    let sock = d.socket.clone();
    let h = std::thread::spawn(move || {
        request_within(&sock, r#"{"cmd":"reload"}"#, Duration::from_secs(120))
    });
    let mut slow_status = None;
    while !h.is_finished() {
        let q = Instant::now();
        let st = request_within(&d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(2));
        if st.is_none() && slow_status.is_none() {
            slow_status = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50).saturating_sub(q.elapsed()));
    }
    let reload_took = t0.elapsed();
    let answer = h.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let p = pings.lock().unwrap().clone();
    let window: Vec<Instant> = p.iter().copied().filter(|&t| t >= t0).collect();
    let mut gap = window.first().map(|&f| f - t0).unwrap_or(reload_took);
    for w in window.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    let st = d.request(r#"{"cmd":"status"}"#);
    let big_files = st["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == big.display().to_string())
        .map(|r| r["total_files"].clone());
    eprintln!(
        "item9 reload crawl: reload took {reload_took:.1?} ({answer:?}); {before} pings before, \
         {} from the reload on; longest gap {gap:.1?}; big root indexed {big_files:?}; status \
         unanswered from {slow_status:?}",
        window.len()
    );
    assert!(
        before >= 5,
        "positive control: WATCHDOG=1 pings arrived before the reload"
    );
    assert_eq!(
        big_files,
        Some(Value::from(100_000u64)),
        "the reload added the big root"
    );
    assert!(
        slow_status.is_none(),
        "item 9: status did not answer within 2 s during a reload's crawl (from {slow_status:?})"
    );
    assert!(
        gap < Duration::from_millis(600),
        "item 9: a reload that crawls a new root ({reload_took:.1?}) ran inline in the supervisor \
         loop: no WATCHDOG=1 for {gap:.1?} (interval 100 ms)"
    );
}

/// Item 6, last sentence: a file chartd cannot open skips the lock test. chartd runs as
/// `nobody`; a root-owned mode-000 file, old and `flock`ed by its writer, sits in a directory
/// nobody may write: chartd cannot test the lock, so it must not delete it. Positive control:
/// an old readable file next to it is evicted.
#[test]
fn item6_a_flocked_file_chartd_cannot_open_is_not_deleted() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP item6_unopenable: needs root and setpriv to run chartd as nobody");
        return;
    }
    let (dir, root) = workspace();
    fs::create_dir_all(root.join("g")).unwrap();
    let d = start_as_nobody(dir, root, "max_age: 1h\ngrace: 0s");
    // The writer (root) holds a lock on its chart; nobody may read it. Both files are aged
    // only once both exist (an emptied g/ would be pruned and recreated by root).
    let other = d.root.join("g/other.png");
    chart(&other, "other", 1000);
    Command::new("chown")
        .args(["65534:65534"])
        .arg(&other)
        .status()
        .unwrap();
    let locked = d.root.join("g/locked.png");
    chart(&locked, "locked", 1000);
    let lock = fs::File::open(&locked).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockShared).unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    set_age(&locked, hours(5));
    set_age(&other, hours(5));
    let evicted = wait_until(Duration::from_secs(5), || !other.exists());
    std::thread::sleep(Duration::from_millis(500));
    let survived = locked.exists();
    eprintln!(
        "item6 unopenable: control evicted {evicted}, locked unreadable file kept {survived}"
    );
    drop(lock);
    assert!(
        evicted,
        "positive control: the readable old file was evicted; log:\n{}",
        d.log_text()
    );
    assert!(
        survived,
        "item 6: chartd (as nobody) deleted an old file it could not open, without testing the \
         writer's flock on it"
    );
}
