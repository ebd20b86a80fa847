//! Phase `reaction`: a writer's close() → chartd's unlink of the victim that pays for it, on a
//! live tree, next to a minimal inotify reactor doing the same job in the same run.
//!
//! May touch: the live tree's new-file directory and victims (the live phase repairs them), its
//! scratch directory (reference files), and nothing of the daemon but its status.

use crate::daemon::Daemon;
use crate::inotify::{Watcher, IN_DELETE, IN_MOVED_FROM};
use crate::opts::Opts;
use crate::tree::{make_file, Tree, CHARTS};
use crate::util::{err, pct, stats, Res};
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// A minimal reactor, the reference for reaction latency: on IN_CLOSE_WRITE of `w<i>.png` in
/// `dir` it unlinks `v<i>.png` there. The floor any inotify-driven deleter pays on this machine
/// right now (two inotify wake-ups and an unlink).
pub fn start_reactor(dir: &Path) -> Res<(thread::JoinHandle<()>, PathBuf)> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    inotify::add_watch(&fd, dir, inotify::WatchFlags::CLOSE_WRITE)
        .map_err(err("inotify_add_watch"))?;
    let dir2 = dir.to_path_buf();
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(fd.as_fd(), &mut buf);
        loop {
            let Ok(ev) = r.next() else { return };
            let Some(name) = ev.file_name() else { continue };
            let name = name.to_string_lossy();
            if name == "stop" {
                return;
            }
            if let Some(i) = name.strip_prefix('w') {
                let _ = fs::remove_file(dir2.join(format!("v{i}")));
            }
        }
    });
    Ok((h, dir.join("stop")))
}

/// `--reaction-n` samples: each writes a file of the next victim's size into `new_dir` and times
/// its `close()` to the victim's IN_DELETE; then the same against the reference reactor in
/// `scratch`. `next_victim` advances through `order`, chartd's eviction order.
#[allow(clippy::too_many_arguments)]
pub fn reaction(
    o: &Opts,
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    next_victim: &mut usize,
    new_dir: &Path,
    scratch: &Path,
    out: &mut Value,
) -> Res<()> {
    use rustix::fs::inotify::WatchFlags;
    let samples = o.reaction_n.min(tree.n / 4);
    let refdir = scratch.join("ref");
    fs::create_dir_all(&refdir).map_err(err("ref dir"))?;
    for j in 0..samples {
        make_file(&refdir.join(format!("v{j}.png")), 1, None)?;
    }
    let (reactor, reactor_stop) = start_reactor(&refdir)?;
    let w = Watcher::new(&scratch.join("wake-r"))?;
    let ref_wd = w.add(&refdir, WatchFlags::DELETE)?;
    let mut close_ms = Vec::new();
    let mut create_ms = Vec::new();
    let mut ref_ms = Vec::new();
    let mut early = 0;
    let mut missed = 0;
    let wait_delete = |wd: i32, name: &[u8]| -> Option<Instant> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.rx.recv_timeout(left) {
                Ok(e)
                    if e.wd == wd
                        && e.mask & (IN_DELETE | IN_MOVED_FROM) != 0
                        && e.name == name =>
                {
                    return Some(e.t)
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    for j in 0..samples {
        // chartd
        let v = order[*next_victim] as usize;
        *next_victim += 1;
        let wd = w.add(
            &tree.dir_path(v / 4),
            WatchFlags::DELETE | WatchFlags::MOVED_FROM,
        )?;
        w.drain();
        let size = tree.size(v);
        let t_create = Instant::now();
        let f = fs::File::create(new_dir.join(format!("n{j:06}.png"))).map_err(err("write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        let t_close = Instant::now();
        drop(f);
        match wait_delete(wd, CHARTS[v % 4].as_bytes()) {
            Some(t) => {
                if t < t_close {
                    early += 1;
                }
                let signed = if t >= t_close {
                    (t - t_close).as_secs_f64()
                } else {
                    -(t_close - t).as_secs_f64()
                };
                close_ms.push(signed.max(0.0) * 1e3);
                create_ms.push((t - t_create).as_secs_f64() * 1e3);
            }
            None => {
                missed += 1;
                if missed > 5 {
                    return Err(format!(
                        "victim {} not deleted within 5 s (more than 5 misses); chartd log:\n{}",
                        tree.file_path(v).display(),
                        d.log_tail()
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(3));
        // reference reactor
        w.drain();
        let f = fs::File::create(refdir.join(format!("w{j}.png"))).map_err(err("write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        let t_close = Instant::now();
        drop(f);
        if let Some(t) = wait_delete(ref_wd, format!("v{j}.png").as_bytes()) {
            ref_ms.push((t - t_close).as_secs_f64() * 1e3);
        }
        thread::sleep(Duration::from_millis(3));
    }
    let _ = fs::File::create(&reactor_stop);
    let _ = reactor.join();
    drop(w);
    let st = d.status()?;
    eprintln!(
        "  [{}] reaction close→gone p50/p99 {:.3}/{:.3} ms (reference reactor {:.3}/{:.3} ms); {early} evicted before close, {missed} missed",
        tree.n,
        pct(&close_ms, 50.0),
        pct(&close_ms, 99.0),
        pct(&ref_ms, 50.0),
        pct(&ref_ms, 99.0)
    );
    out["reaction"] = json!({
        "indexed_files": tree.n,
        "close_to_gone_ms": stats(&close_ms),
        "create_to_gone_ms": stats(&create_ms),
        "reference_reactor_ms": stats(&ref_ms),
        "evicted_before_close": early,
        "missed": missed,
        "files_removed": st["files_removed"],
    });
    Ok(())
}
