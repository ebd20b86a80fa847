//! The supervisor: loads the config, starts the index owner on its own thread, serves the
//! control socket, talks to systemd (READY, STATUS, WATCHDOG, STOPPING), and handles signals
//! (SIGTERM/SIGINT: graceful stop, a second one exits at once; SIGHUP: reload).
//!
//! May touch: what it starts: config, logging, root locks, the open-files limit, signals, the
//! control socket file (removed at exit), the metrics listener, `NOTIFY_SOCKET`, malloc's
//! thresholds (`mallopt`, once at start); the owner only
//! through its channels and `Progress`, never an index.

use crate::config::{self, CliOverrides, Config};
use crate::control::{self, CommandMsg, ReloadMsg};
use crate::logging::{self, LogHandle};
use crate::owner::{Ctl, Owner, OwnerChannels};
use crate::root::Progress;
use crate::sdnotify::Notifier;
use crate::stats::Snapshot;
use crate::watcher;
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};

/// Events in flight between inotify and the owner before an overflow (and a resync).
const EVENT_CAPACITY: usize = 65_536;

pub fn run(config_path: Option<PathBuf>, overrides: CliOverrides) -> i32 {
    fix_heap_thresholds();
    let cfg = match config::load(config_path.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chartd: {e}");
            return 1;
        }
    };
    let log = logging::init(&cfg.log);
    for w in &cfg.warnings {
        tracing::warn!("config: {w}");
    }
    let roots: Vec<PathBuf> = cfg.roots.iter().map(|r| r.path.clone()).collect();
    if let Err(e) = crate::rootlock::lock_all(&roots) {
        tracing::error!("{e}");
        return 1;
    }
    raise_fd_limit();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(supervise(cfg, config_path, overrides, log))
}

/// Fixes glibc's mmap threshold at 256 KiB, which also turns off its dynamic adjustment.
///
/// Why: by default every free of a large mmapped block (the index's tables are resized by
/// allocating anew and freeing the old one) raises the threshold to that block's size, up to
/// 32 MiB, and the trim threshold to twice it. From then on large temporaries (a crawl's
/// listings, the read of `/proc/self/fdinfo` that checks the watches) come from the owner's
/// thread arena, and once freed they stay resident: a thread arena's top is only given back
/// when it exceeds the (raised) trim threshold, and `malloc_trim` never trims it. At a
/// million files that was tens of MiB of RSS beyond the index. With the threshold fixed, large
/// blocks are mapped and unmapped on their own (a growing `Vec` is `mremap`ped, not copied),
/// and arena tops are trimmed past the default 128 KiB.
fn fix_heap_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers; it only changes malloc's parameters (under malloc's
    // own lock), and is called first thing, before chartd starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Lifts the soft open-files limit to the hard one (systemd's default soft limit is 1024):
/// control connections and the crawl both need descriptors.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, l) {
            tracing::debug!("cannot raise the open-files limit: {e}");
        }
    }
}

fn empty_snapshot(cfg: &Config) -> Snapshot {
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        started: SystemTime::now(),
        warning_percent: cfg.alerts.warning_percent,
        critical_percent: cfg.alerts.critical_percent,
        roots: Vec::new(),
        published: SystemTime::now(),
    }
}

/// The one-line STATUS= systemd shows in `systemctl status`.
fn status_line(s: &Snapshot) -> String {
    let files: u64 = s.roots.iter().map(|r| r.total_files).sum();
    let bytes: u64 = s.roots.iter().map(|r| r.total_bytes).sum();
    let mut line = format!("{files} files, {:.1} MiB", bytes as f64 / 1048576.0);
    for r in &s.roots {
        if let Some(max) = r.max_size.filter(|&m| m > 0) {
            line.push_str(&format!(
                "; {}: {:.0}% of {:.0} MiB",
                r.path.display(),
                r.total_bytes as f64 * 100.0 / max as f64,
                max as f64 / 1048576.0
            ));
        }
        if r.degraded {
            line.push_str(&format!("; {}: DEGRADED", r.path.display()));
        }
    }
    line
}

/// Half of `WATCHDOG_USEC` when systemd's watchdog is on for this process. As in
/// sd_watchdog_enabled(3), an absent `WATCHDOG_PID` means "this process".
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Forwards SIGTERM/SIGINT/SIGHUP from a signal-hook thread into the runtime.
fn signals() -> Result<mpsc::UnboundedReceiver<i32>, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut sigs = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("chartd-signals".into())
        .spawn(move || {
            for s in sigs.forever() {
                if tx.send(s).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(rx)
}

struct Supervisor {
    cfg: Config,
    config_path: Option<PathBuf>,
    overrides: CliOverrides,
    log: LogHandle,
    ctl: mpsc::Sender<Ctl>,
    ctx: Arc<control::Context>,
    /// A reload is with the owner; another was asked for meanwhile; who waits for an answer.
    reloading: bool,
    again: bool,
    waiting: Vec<ReloadReply>,
}

/// A reload the owner is working on: the config it was given, and who asked.
struct ReloadDone {
    cfg: Config,
    result: Result<(), String>,
    replies: Vec<oneshot::Sender<Result<String, String>>>,
}

type ReloadReply = oneshot::Sender<Result<String, String>>;

impl Supervisor {
    /// Loads the config again and hands it to the owner, without waiting for it: the owner
    /// may crawl new roots for a long while, and this loop must keep petting the watchdog and
    /// answering signals meanwhile. The outcome comes back on `done`; on any error the running
    /// config stays. One reload runs at a time: requests that arrive meanwhile (a SIGHUP storm)
    /// are folded into one more reload when it ends, which reads the file as it is then.
    fn start_reload(
        &mut self,
        notifier: &mut Notifier,
        done: &mpsc::UnboundedSender<ReloadDone>,
        reply: Option<ReloadReply>,
    ) {
        self.waiting.extend(reply);
        if self.reloading {
            self.again = true;
            return;
        }
        let replies = std::mem::take(&mut self.waiting);
        let new = match config::load(self.config_path.as_deref(), &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                let e = e.to_string();
                tracing::error!("config not reloaded, keeping the running one: {e}");
                for r in replies {
                    let _ = r.send(Err(e.clone()));
                }
                return;
            }
        };
        notifier.must(&[NotifyState::Reloading]);
        let (tx, rx) = oneshot::channel();
        if self
            .ctl
            .try_send(Ctl::Reload(Box::new(new.clone()), tx))
            .is_err()
        {
            let e = "the index owner has stopped".to_string();
            tracing::error!("config not reloaded: {e}");
            notifier.must(&[NotifyState::Ready]);
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
            return;
        }
        self.reloading = true;
        let done = done.clone();
        tokio::spawn(async move {
            let result = rx
                .await
                .unwrap_or_else(|_| Err("the index owner has stopped".to_string()));
            let _ = done.send(ReloadDone {
                cfg: new,
                result,
                replies,
            });
        });
    }

    /// Applies what the owner's reload means for the supervisor (control permissions, log
    /// level) and answers whoever asked.
    fn finish_reload(
        &mut self,
        notifier: &mut Notifier,
        done: &mpsc::UnboundedSender<ReloadDone>,
        d: ReloadDone,
    ) {
        self.reloading = false;
        let r = d.result.map(|()| {
            let mut note = String::new();
            if d.cfg.socket != self.cfg.socket {
                note = format!(
                    " (the socket stays at {}: a new socket path takes effect on restart)",
                    self.cfg.socket.display()
                );
            }
            if let Ok(mut r) = self.ctx.roots.write() {
                *r = d.cfg.roots.clone();
            }
            if let Ok(mut c) = self.ctx.control.write() {
                *c = d.cfg.control.clone();
            }
            self.log.set_level(&d.cfg.log.level);
            let roots = d.cfg.roots.len();
            self.cfg = d.cfg;
            format!("config reloaded: {roots} root(s){note}")
        });
        match &r {
            Ok(m) => tracing::info!("{m}"),
            Err(e) => tracing::error!("config not reloaded, keeping the running one: {e}"),
        }
        notifier.must(&[NotifyState::Ready]);
        for reply in d.replies {
            let _ = reply.send(r.clone());
        }
        if std::mem::take(&mut self.again) {
            self.start_reload(notifier, done, None);
        }
    }
}

async fn supervise(
    cfg: Config,
    config_path: Option<PathBuf>,
    overrides: CliOverrides,
    log: LogHandle,
) -> i32 {
    let listener = match control::bind(&cfg.socket, &cfg.control) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    // The HTTP scrape endpoint (issue 13): off unless metrics.listen is set or systemd passes
    // chartd-metrics.socket in. Bound before the crawl, so that a bad address fails at once.
    let metrics_listener = match crate::metrics_http::listener(&cfg.metrics) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let mut sigs = match signals() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let (watcher, feed) = match watcher::new(EVENT_CAPACITY) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let (cmd_tx, cmd_rx) = mpsc::channel::<CommandMsg>(64);
    let (ctl_tx, ctl_rx) = mpsc::channel::<Ctl>(8);
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadMsg>(8);
    let (snap_tx, snap_rx) = watch::channel(Arc::new(empty_snapshot(&cfg)));
    let progress = Arc::new(Progress::default());
    let ctx = Arc::new(control::Context::new(
        snap_rx.clone(),
        cmd_tx,
        reload_tx,
        cfg.control.clone(),
        cfg.roots.clone(),
        progress.clone(),
    ));
    let owner = match Owner::new(
        cfg.clone(),
        watcher,
        feed,
        OwnerChannels {
            commands: cmd_rx,
            ctl: ctl_rx,
            snapshot: snap_tx,
            health: ctx.tracker(),
        },
        progress.clone(),
    ) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    tracing::info!(
        socket = %cfg.socket.display(),
        "chartd {} starting: {} root(s), socket {}",
        env!("CARGO_PKG_VERSION"),
        cfg.roots.len(),
        cfg.socket.display()
    );
    let (ready_tx, mut ready_rx) = oneshot::channel();
    let sock_for_panic = cfg.socket.clone();
    let owner_thread = match std::thread::Builder::new()
        .name("chartd-index".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let run = std::panic::AssertUnwindSafe(|| rt.block_on(owner.run(ready_tx)));
                    if std::panic::catch_unwind(run).is_err() {
                        // The index is the daemon: without it nothing is enforced and status
                        // would serve stale figures. Exit, so that the service manager
                        // restarts chartd (the panic message is already on stderr).
                        tracing::error!(
                            "the index thread panicked; chartd exits (status 70) so that its \
                             service manager restarts it"
                        );
                        let _ = std::fs::remove_file(&sock_for_panic);
                        std::process::exit(70);
                    }
                }
                Err(e) => tracing::error!("cannot start the index runtime: {e}"),
            }
        }) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("cannot start the index thread: {e}");
            return 1;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => tokio::spawn(control::serve(l, ctx.clone(), stop_rx.clone())),
        Err(e) => {
            tracing::error!("control socket: {e}");
            return 1;
        }
    };
    // The HTTP scrape endpoint (issue 13), bound above.
    if let Some(l) = metrics_listener {
        drop(tokio::spawn(crate::metrics_http::serve(
            l,
            ctx.clone(),
            stop_rx.clone(),
        )));
    }
    let socket_path = cfg.socket.clone();
    let mut sup = Supervisor {
        cfg,
        config_path,
        overrides,
        log,
        ctl: ctl_tx.clone(),
        ctx,
        reloading: false,
        again: false,
        waiting: Vec::new(),
    };

    let mut notifier = Notifier::from_env();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ReloadDone>();
    let watchdog = watchdog_interval();
    let mut wd_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut last_ticks = u64::MAX;
    let mut status_rx = snap_rx.clone();
    // STATUS= goes out at most once a second: a change waits for its slot here, without
    // blocking this loop (a sleep here would hold up the watchdog, signals and reloads).
    let mut status_due: Option<tokio::time::Instant> = None;
    let mut last_status = tokio::time::Instant::now();
    let mut ready = false;
    loop {
        tokio::select! {
            r = &mut ready_rx, if !ready => {
                ready = true;
                if r.is_err() {
                    tracing::error!("the index owner stopped during the initial crawl");
                    return 1;
                }
                let line = status_line(&status_rx.borrow_and_update());
                notifier.must(&[NotifyState::Ready, NotifyState::Status(&line)]);
                tracing::info!("ready: {line}");
            }
            s = sigs.recv() => match s {
                Some(signal_hook::consts::SIGHUP) => sup.start_reload(&mut notifier, &done_tx, None),
                _ => break,
            },
            Some(msg) = reload_rx.recv() => {
                sup.start_reload(&mut notifier, &done_tx, Some(msg.reply));
            }
            Some(d) = done_rx.recv() => sup.finish_reload(&mut notifier, &done_tx, d),
            _ = tokio::time::sleep(crate::sdnotify::RETRY), if notifier.has_pending() => {
                notifier.retry();
            }
            _ = wd_tick.tick(), if watchdog.is_some() => {
                let ticks = progress.ticks.load(Ordering::Relaxed);
                if progress.idle.load(Ordering::Acquire) || ticks != last_ticks {
                    notifier.must(&[NotifyState::Watchdog]);
                } else {
                    tracing::warn!("the index owner made no progress for a watchdog interval (a filesystem call is stuck?); not petting the watchdog");
                }
                last_ticks = ticks;
            }
            Ok(()) = status_rx.changed(), if ready && status_due.is_none() => {
                status_due = Some(last_status + Duration::from_secs(1));
            }
            _ = tokio::time::sleep_until(status_due.unwrap_or_else(tokio::time::Instant::now)), if status_due.is_some() => {
                status_due = None;
                last_status = tokio::time::Instant::now();
                let line = status_line(&status_rx.borrow_and_update());
                notifier.status(&[NotifyState::Status(&line)]);
            }
        }
    }
    // Graceful stop: a second SIGTERM/SIGINT exits at once.
    notifier.must(&[NotifyState::Stopping]);
    notifier.retry();
    tracing::info!("stopping");
    progress.cancel.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    let _ = ctl_tx.try_send(Ctl::Shutdown);
    let join = tokio::task::spawn_blocking(move || owner_thread.join());
    tokio::select! {
        _ = join => {}
        _ = sigs.recv() => {
            tracing::warn!("second signal: exiting at once");
            let _ = std::fs::remove_file(&socket_path);
            std::process::exit(1);
        }
        _ = tokio::time::sleep(Duration::from_secs(20)) => {
            tracing::warn!("the index owner did not stop within 20 s; exiting anyway");
        }
    }
    server.abort();
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("stopped");
    0
}
