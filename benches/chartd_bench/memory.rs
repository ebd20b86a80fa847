//! Phase `memory`, the part not measured on chartd itself: what notify's own watch tables cost
//! per file, and how long the same watches take with bare inotify_add_watch(2). chartd's RSS and
//! index bytes per file are sampled by the crawl phase, on the same daemons.
//!
//! May touch: the tree's directories (watched, read-only); it measures this process's RSS.

use crate::common::proc_status_kib;
use crate::tree::Tree;
use crate::util::{err, Res};
use std::time::Instant;

/// What notify's own watch tables cost per indexed file, the part of chartd's memory that lives
/// inside notify: the harness watches the tree's directories with a bare `INotifyWatcher`, one
/// non-recursive watch each as chartd does, and reports its own RSS growth divided by N.
pub fn notify_share(tree: &Tree) -> Res<(f64, f64, f64)> {
    use notify::Watcher as _;
    let me = std::process::id() as i32;
    let before = proc_status_kib(me, "VmRSS");
    let t0 = Instant::now();
    let mut w = notify::INotifyWatcher::new(
        |_: notify::Result<notify::Event>| {},
        notify::Config::default(),
    )
    .map_err(err("notify"))?;
    let mode = notify::RecursiveMode::NonRecursive;
    w.watch(&tree.root, mode).map_err(err("notify watch"))?;
    for d in 0..tree.n / 4 {
        w.watch(&tree.dir_path(d), mode)
            .map_err(err("notify watch"))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = proc_status_kib(me, "VmRSS");
    drop(w);
    // The same watches with bare inotify_add_watch(2) calls, for scale.
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    let t1 = Instant::now();
    let flags = inotify::WatchFlags::CREATE
        | inotify::WatchFlags::DELETE
        | inotify::WatchFlags::CLOSE_WRITE;
    inotify::add_watch(&fd, &tree.root, flags).map_err(err("inotify_add_watch"))?;
    for d in 0..tree.n / 4 {
        inotify::add_watch(&fd, tree.dir_path(d), flags).map_err(err("inotify_add_watch"))?;
    }
    let raw = t1.elapsed().as_secs_f64();
    drop(fd);
    Ok((
        after.saturating_sub(before) as f64 * 1024.0 / tree.n as f64,
        secs,
        raw,
    ))
}
