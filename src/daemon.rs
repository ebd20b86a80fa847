//! The supervisor: loads the config, starts the index owner on its own thread, serves the
//! control socket, talks to systemd (READY, STATUS, WATCHDOG, STOPPING), and handles signals
//! (SIGTERM/SIGINT: graceful stop, a second one exits at once; SIGHUP: reload).

use crate::config::{self, CliOverrides, Config};
use crate::control::{self, CommandMsg, ReloadMsg};
use crate::logging::{self, LogHandle};
use crate::owner::{Ctl, Owner, OwnerChannels};
use crate::root::Progress;
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
    }
}

fn notify(states: &[NotifyState]) {
    let _ = sd_notify::notify(false, states);
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
}

impl Supervisor {
    /// Loads the config again and hands it to the owner; on any error the running config stays.
    async fn reload(&mut self) -> Result<String, String> {
        notify(&[NotifyState::Reloading]);
        let r = self.try_reload().await;
        match &r {
            Ok(m) => tracing::info!("{m}"),
            Err(e) => tracing::error!("config not reloaded, keeping the running one: {e}"),
        }
        notify(&[NotifyState::Ready]);
        r
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        let new = config::load(self.config_path.as_deref(), &self.overrides)
            .map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Ctl::Reload(Box::new(new.clone()), tx))
            .await
            .map_err(|_| "the index owner has stopped".to_string())?;
        rx.await
            .map_err(|_| "the index owner has stopped".to_string())??;
        let mut note = String::new();
        if new.socket != self.cfg.socket {
            note = format!(
                " (the socket stays at {}: a new socket path takes effect on restart)",
                self.cfg.socket.display()
            );
        }
        if let Ok(mut r) = self.ctx.roots.write() {
            *r = new.roots.clone();
        }
        if let Ok(mut c) = self.ctx.control.write() {
            *c = new.control.clone();
        }
        self.log.set_level(&new.log.level);
        let roots = new.roots.len();
        self.cfg = new;
        Ok(format!("config reloaded: {roots} root(s){note}"))
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
    let owner = match Owner::new(
        cfg.clone(),
        watcher,
        feed,
        OwnerChannels {
            commands: cmd_rx,
            ctl: ctl_rx,
            snapshot: snap_tx,
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
    let owner_thread = match std::thread::Builder::new()
        .name("chartd-index".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(owner.run(ready_tx)),
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
    let ctx = Arc::new(control::Context::new(
        snap_rx.clone(),
        cmd_tx,
        reload_tx,
        cfg.control.clone(),
        cfg.roots.clone(),
        progress.clone(),
    ));
    let server = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => tokio::spawn(control::serve(l, ctx.clone(), stop_rx)),
        Err(e) => {
            tracing::error!("control socket: {e}");
            return 1;
        }
    };
    let socket_path = cfg.socket.clone();
    let mut sup = Supervisor {
        cfg,
        config_path,
        overrides,
        log,
        ctl: ctl_tx.clone(),
        ctx,
    };

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
                notify(&[NotifyState::Ready, NotifyState::Status(&line)]);
                tracing::info!("ready: {line}");
            }
            s = sigs.recv() => match s {
                Some(signal_hook::consts::SIGHUP) => { let _ = sup.reload().await; }
                _ => break,
            },
            Some(msg) = reload_rx.recv() => {
                let r = sup.reload().await;
                let _ = msg.reply.send(r);
            }
            _ = wd_tick.tick(), if watchdog.is_some() => {
                let ticks = progress.ticks.load(Ordering::Relaxed);
                if progress.idle.load(Ordering::Acquire) || ticks != last_ticks {
                    notify(&[NotifyState::Watchdog]);
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
                notify(&[NotifyState::Status(&line)]);
            }
        }
    }
    // Graceful stop: a second SIGTERM/SIGINT exits at once.
    notify(&[NotifyState::Stopping]);
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
