//! Symlink and rename races (tmpreaper CVE-2019-3461, systemd-tmpfiles CVE-2018-6954): while
//! chartd evicts under constant size pressure, an attacker loop
//!
//! - swaps a group directory full of old charts for a symlink to an outside directory holding
//!   old files with the very same names (and back),
//! - swaps two group directories by renames,
//! - replaces old charts by symlinks to outside files (and back),
//!
//! and afterwards not one outside file, protected file or excluded file is gone or changed
//! (checked by content and inode), the index equals the disk, and the limit holds.
//!
//! `CHARTD_STRESS=full`: 10,000 attacker iterations; CI: 500.
//!
//! May touch: its own temporary directories and the chartd processes it starts (signalled by PID)
//! with their sockets.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;
const VICTIMS: usize = 10;

/// Old charts in `dir` (recreated whenever chartd has deleted them): always first in line.
fn refill(dir: &Path, prefix: &str, recreated: &AtomicU64) {
    for i in 0..VICTIMS {
        let p = dir.join(format!("{prefix}{i}.png"));
        if fs::symlink_metadata(&p).is_err() && fs::create_dir_all(dir).is_ok() {
            if let Ok(f) = fs::File::create(&p) {
                let _ = f.set_len(4 * KIB);
                let _ = f.set_modified(std::time::SystemTime::now() - hours(48));
                recreated.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn symlink_and_rename_races_never_delete_outside_the_root_or_policy() {
    let iterations = scale(500, 10_000);
    let (dir, root) = workspace();
    let outside = dir.path().join("outside");
    let mut canaries = Vec::new();
    // Outside: old files named exactly like the ones in the attacked group, and deeper.
    for i in 0..VICTIMS {
        canaries.push(Canary::plant(&outside.join(format!("c{i}.png")), hours(48)));
        canaries.push(Canary::plant(
            &outside.join(format!("sub/c{i}.png")),
            hours(48),
        ));
    }
    // Inside, outside the policy: protected and excluded old files.
    for i in 0..5 {
        canaries.push(Canary::plant(
            &root.join(format!("keep/k{i}.png")),
            hours(48),
        ));
        canaries.push(Canary::plant(
            &root.join(format!("victim/x{i}.tmp")),
            hours(48),
        ));
        canaries.push(Canary::plant(&root.join(format!("RA/x{i}.tmp")), hours(48)));
        canaries.push(Canary::plant(&root.join(format!("RB/x{i}.tmp")), hours(48)));
        canaries.push(Canary::plant(
            &root.join(format!("links/x{i}.tmp")),
            hours(48),
        ));
    }
    let socket = dir.path().join("s.sock");
    let config = dir.path().join("c.yaml");
    fs::write(
        &config,
        config_text(
            &root,
            &socket,
            "max_age: 1h\nmax_size: 200KiB\ngrace: 0s\nprotect: [\"keep/**\"]",
        ),
    )
    .unwrap();
    let d = Daemon::spawn(dir, root.clone(), socket, config, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    // Size pressure: a steady stream of new charts.
    let writer = {
        let (root, stop, written) = (root.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let p = root.join(format!("P{}/w{n}.png", n % 8));
                let _ = fs::create_dir_all(p.parent().unwrap());
                let _ = fs::write(&p, vec![3u8; 4 * KIB as usize]);
                n += 1;
                written.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let recreated = AtomicU64::new(0);
    let victim = root.join("victim");
    let parked = root.join("victim.parked");
    let (ra, rb, rt) = (root.join("RA"), root.join("RB"), root.join("R.tmp"));
    let links = root.join("links");
    let t0 = Instant::now();
    let removed_before = d.status_root()["files_removed"].as_u64().unwrap();
    let mut swaps = [0u64; 3];
    // At least the iterations, and at least 2 s of attack: on a fast machine 500 iterations
    // take 0.2 s, too short for the positive control below to mean anything.
    let mut it = 0usize;
    // An even count: the group swaps (2. below) leave RA and RB where they were.
    while it < iterations || t0.elapsed() < Duration::from_secs(2) || it % 2 == 1 {
        it += 1;
        refill(&victim, "c", &recreated);
        refill(&ra, "a", &recreated);
        refill(&rb, "b", &recreated);
        refill(&links, "l", &recreated);
        // 1. The group directory becomes a symlink to the outside, then comes back.
        if fs::rename(&victim, &parked).is_ok() {
            let _ = std::os::unix::fs::symlink(&outside, &victim);
            std::thread::yield_now();
            let _ = fs::remove_file(&victim);
            let _ = fs::rename(&parked, &victim);
            swaps[0] += 1;
        }
        // 2. Two groups swap places.
        if fs::rename(&ra, &rt).is_ok() {
            let _ = fs::rename(&rb, &ra);
            let _ = fs::rename(&rt, &rb);
            swaps[1] += 1;
        }
        // 3. An old chart becomes a symlink to an outside file of the same name (and the
        //    next refill puts a real file back).
        let j = it % VICTIMS;
        let tmp = links.join(".swap");
        let _ = fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(outside.join(format!("c{j}.png")), &tmp).is_ok()
            && fs::rename(&tmp, links.join(format!("l{j}.png"))).is_ok()
        {
            swaps[2] += 1;
        }
        if it % 100 == 99 {
            let _ = fs::remove_file(links.join(format!("l{}.png", (it / 100) % VICTIMS)));
        }
    }
    let iterations = it;
    let attack = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Let the last events settle, then look at everything.
    let checked = check_canaries(&canaries);
    let t1 = Instant::now();
    let n = d
        .converge(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("index != disk: {e}\n{}", d.log_text()));
    let st = d.status_root();
    assert!(
        wait_until(Duration::from_secs(10), || walk_png(&root).1
            <= 200 * KIB + 5 * 4 * KIB),
        "limit does not hold: {:?} {}",
        walk_png(&root),
        d.status_root()
    );
    let removed = st["files_removed"].as_u64().unwrap() - removed_before;
    eprintln!(
        "races: {iterations} iterations in {attack:.1?} (dir->symlink swaps {}, group swaps {}, \
         file->symlink swaps {}), {} old charts recreated, {} charts written, {removed} files \
         deleted by chartd, {checked} canaries intact (content + inode), index == disk ({n} files) after {:.1?}",
        swaps[0],
        swaps[1],
        swaps[2],
        recreated.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
        t1.elapsed()
    );
    assert!(
        removed > iterations as u64,
        "chartd must have been evicting throughout"
    );
    assert!(
        recreated.load(Ordering::Relaxed) > 0,
        "the attacked charts were evicted"
    );
    check_canaries(&canaries);
    assert_eq!(d.status_root()["ready"], true);
}
