//! The index owner: the one task that holds every root's index, applies inotify events to it,
//! enforces the limits, and answers the commands that need the index.
//!
//! It runs on its own thread (with a single-threaded runtime), because everything it does is
//! blocking filesystem work: a slow or stuck filesystem call there never delays the control
//! socket or the watchdog, which live on the supervisor's runtime.
//!
//! Like mini-redis's `purge_expired_tasks`, it never polls: it sleeps until the earliest of
//! the next event, the next command, and the next deadline (the oldest file's expiry, the end
//! of a blocking grace period, a held file's retry, a resync, and, only while a limit is
//! blocked, a recount of the files inside grace that the snapshot shows).
//!
//! May touch: the roots (`RootState`) and the watcher it owns, and through them the indexes and the
//! disk (`scan`, `evict`, `commands`); root locks on reload; the snapshot it publishes, and the
//! control server's alert tracker (fed each snapshot, under its lock). Reached
//! only through its channels (debug builds also read `CHARTD_TEST_PANIC_ON`).

use crate::commands;
use crate::config::Config;
use crate::control::CommandMsg;
use crate::evict::Pass;
use crate::root::{now_ns, Progress, RootState};
use crate::stats::Snapshot;
use crate::watcher::{Ev, EventFeed, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

/// Events handled per batch at most (then the limits are enforced and a snapshot published).
const BATCH: usize = 512;
/// How often directories without a watch are rescanned while degraded (or every
/// `resync_interval`, when that is shorter).
const DEGRADED_RESCAN: Duration = Duration::from_secs(30);

/// Messages from the supervisor.
pub enum Ctl {
    Reload(Box<Config>, oneshot::Sender<Result<(), String>>),
    Shutdown,
}

pub struct Owner {
    pub(crate) cfg: Config,
    pub(crate) roots: Vec<RootState>,
    pub(crate) watcher: Watcher,
    feed: EventFeed,
    commands: mpsc::Receiver<CommandMsg>,
    ctl: mpsc::Receiver<Ctl>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    health: crate::health::SharedTracker,
    pub(crate) progress: Arc<Progress>,
    started: SystemTime,
    /// Overflow backoff: when the last overflow resync ran, the current delay, and a pending one.
    last_overflow_resync: Option<Instant>,
    overflow_backoff: Duration,
    pending_resync: Option<Instant>,
    /// When the latest overflow was seen: a pending resync runs early once overflows stop.
    last_overflow: Option<Instant>,
    /// When the owner received what it is handling now (a batch of events, a command, a
    /// reload, its timer firing): the start of the eviction latency of the passes it runs.
    woke: std::time::Instant,
    /// Reads of the kernel's watches, off this thread (see `scan::KernelReader`).
    kernel: crate::scan::KernelReader,
}

pub struct OwnerChannels {
    pub commands: mpsc::Receiver<CommandMsg>,
    pub ctl: mpsc::Receiver<Ctl>,
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// The control server's alert tracker, fed each published snapshot.
    pub health: crate::health::SharedTracker,
}

pub fn build_roots(cfg: &Config, progress: &Arc<Progress>) -> Result<Vec<RootState>, String> {
    cfg.roots
        .iter()
        .map(|r| {
            let mut root = RootState::new(
                r.clone(),
                cfg.cleanup_enabled,
                cfg.resync_interval,
                progress.clone(),
            )?;
            root.take_lock = true;
            Ok(root)
        })
        .collect()
}

impl Owner {
    pub fn new(
        cfg: Config,
        watcher: Watcher,
        feed: EventFeed,
        ch: OwnerChannels,
        progress: Arc<Progress>,
    ) -> Result<Owner, String> {
        let roots = build_roots(&cfg, &progress)?;
        Ok(Owner {
            cfg,
            roots,
            watcher,
            feed,
            commands: ch.commands,
            ctl: ch.ctl,
            snapshot: ch.snapshot,
            health: ch.health,
            progress,
            started: SystemTime::now(),
            last_overflow_resync: None,
            overflow_backoff: Duration::from_secs(1),
            pending_resync: None,
            last_overflow: None,
            woke: std::time::Instant::now(),
            kernel: crate::scan::KernelReader::default(),
        })
    }

    /// Crawls every root, says ready, then serves until told to stop.
    pub async fn run(mut self, ready: oneshot::Sender<()>) {
        for i in 0..self.roots.len() {
            let r = &mut self.roots[i];
            r.resync_all(&mut self.watcher);
            r.ready = true;
            tracing::info!(
                root = %r.cfg.path.display(),
                files = r.index.total_files,
                bytes = r.index.total_bytes,
                watches = r.index.watched_dirs,
                "indexed {} files ({} bytes) under {}",
                r.index.total_files,
                r.index.total_bytes,
                r.cfg.path.display()
            );
        }
        self.check_watches();
        self.woke = std::time::Instant::now();
        self.enforce_all();
        self.publish();
        let _ = ready.send(());
        loop {
            if self.progress.cancelled() {
                break;
            }
            let wake = self.next_wake();
            self.progress.idle.store(true, Ordering::Release);
            // Not `biased`: while chartd evicts, its own deletions keep the event feed non-empty,
            // and a fixed order would starve commands (`groups`, `list`, `cleanup`) until the
            // eviction ends. Random order serves every ready branch in turn.
            tokio::select! {
                msg = self.ctl.recv() => {
                    self.woke();
                    match msg {
                        Some(Ctl::Reload(cfg, reply)) => {
                            let r = self.reload(*cfg);
                            let _ = reply.send(r);
                        }
                        Some(Ctl::Shutdown) | None => break,
                    }
                }
                ev = self.feed.rx.recv() => {
                    self.woke();
                    self.kernel.activity();
                    match ev {
                        Some(ev) => self.handle_batch(ev),
                        None => break,
                    }
                }
                cmd = self.commands.recv() => {
                    self.woke();
                    if let Some(cmd) = cmd {
                        let scope = commands::Scope {
                            roots: &mut self.roots,
                            watcher: &mut self.watcher,
                            cleanup_enabled: self.cfg.cleanup_enabled,
                            received: self.woke,
                        };
                        let resyncs = matches!(cmd.request, crate::control::Request::Cleanup { .. });
                        let reply = commands::handle(scope, cmd.request);
                        if resyncs {
                            self.check_watches();
                        }
                        self.enforce_all();
                        let _ = cmd.reply.send(reply);
                    }
                }
                read = self.kernel.recv() => {
                    self.woke();
                    self.on_kernel_watches(read);
                }
                _ = sleep_until(wake) => {
                    self.woke();
                    self.on_timer();
                    self.kernel.start_if_due();
                }
            }
            if self.feed.take_overflow() {
                self.on_overflow();
            }
            self.publish();
        }
        self.progress.idle.store(true, Ordering::Release);
    }

    /// Woken by a batch of events, a command, a reload or the timer: no longer idle, and what
    /// it acts on was received now.
    fn woke(&mut self) {
        self.progress.idle.store(false, Ordering::Release);
        self.woke = std::time::Instant::now();
    }

    /// Drains up to a batch of events, coalesces them per path, applies them, then enforces.
    fn handle_batch(&mut self, first: Ev) {
        // Each path once, in first-seen order, with whether every event for it was a removal.
        let mut refresh: Vec<(PathBuf, bool)> = Vec::new();
        let mut at: HashMap<PathBuf, usize> = HashMap::new();
        let mut writing: HashMap<PathBuf, bool> = HashMap::new();
        // Removed names, each once, in first-seen order (a set beside the list: a deletion
        // burst brings hundreds per batch, chartd's own deletions among them, and a linear
        // `contains` made the batch quadratic).
        let mut gone: Vec<PathBuf> = Vec::new();
        let mut gone_set: HashSet<PathBuf> = HashSet::new();
        let mut rescan = false;
        let mut next = Some(first);
        let mut n = 0;
        let mut note =
            |p: &PathBuf, removal: bool, refresh: &mut Vec<(PathBuf, bool)>| match at.get(p) {
                Some(&i) => refresh[i].1 &= removal,
                None => {
                    at.insert(p.clone(), refresh.len());
                    refresh.push((p.clone(), removal));
                }
            };
        while let Some(ev) = next {
            n += 1;
            #[cfg(debug_assertions)]
            crate::test_trigger::on_event(&ev);
            match ev {
                Ev::Refresh(p) => note(&p, false, &mut refresh),
                Ev::Gone(p) => {
                    note(&p, true, &mut refresh);
                    if gone_set.insert(p.clone()) {
                        gone.push(p);
                    }
                }
                Ev::Writing(p) => {
                    // Looked at too: a `truncate` or an append changes the size without a
                    // close event to follow.
                    note(&p, false, &mut refresh);
                    writing.insert(p, true);
                }
                Ev::Closed(p) => {
                    note(&p, false, &mut refresh);
                    writing.insert(p, false);
                }
                Ev::Rescan => rescan = true,
                Ev::Error(e) => tracing::warn!("inotify: {e}"),
            }
            next = if n < BATCH {
                self.feed.rx.try_recv().ok()
            } else {
                None
            };
        }
        // Writers' state first, so that no enforcement in this batch sees a file being written
        // as free to go (files created in this batch get theirs right after their refresh).
        for (p, w) in &writing {
            if let Some(r) = self.root_for(p) {
                self.roots[r].set_writing(p, *w);
            }
        }
        if rescan {
            self.on_overflow();
        } else {
            for (p, removal) in &refresh {
                if let Some(r) = self.root_for(p) {
                    let root = &mut self.roots[r];
                    // A name that was only removed and that the index does not hold needs no
                    // look: chartd's own deletions come back as exactly these.
                    if !(*removal && root.knows_nothing_of(p)) {
                        root.refresh(p, &mut self.watcher);
                    }
                    if let Some(&w) = writing.get(p) {
                        root.set_writing(p, w);
                    }
                    // Crossing max_size is acted on at once, not at the end of the batch:
                    // this bounds the overshoot during a burst.
                    if root.over_max_size() {
                        let trigger = root.wake.more.unwrap_or(self.woke);
                        let mut pass = Pass::new(false, false).triggered_at(trigger);
                        root.enforce(&mut self.watcher, &mut pass);
                    }
                }
            }
            for p in &gone {
                if let Some(r) = self.root_for(p) {
                    self.roots[r].rewatch(p, &mut self.watcher);
                }
            }
        }
        for (p, w) in writing {
            if let Some(r) = self.root_for(&p) {
                self.roots[r].set_writing(&p, w);
            }
        }
        self.enforce_all();
    }

    fn root_for(&self, p: &std::path::Path) -> Option<usize> {
        self.roots.iter().position(|r| p.starts_with(&r.real_path))
    }

    /// Events were lost (kernel queue overflow, or our channel was full): resync, but back off
    /// when overflows repeat instead of rescanning in a loop.
    fn on_overflow(&mut self) {
        for r in &mut self.roots {
            r.counters.overflows += 1;
        }
        let now = Instant::now();
        self.last_overflow = Some(now);
        let recent = self
            .last_overflow_resync
            .is_some_and(|t| now.duration_since(t) < self.overflow_backoff * 4);
        if recent {
            // The backoff doubles per resync, not per overflow: a burst overflows many times
            // before the one pending resync runs, and doubling on each would push the next
            // resync (and the limits on files created meanwhile) a minute out.
            if self.pending_resync.is_some() {
                return;
            }
            self.overflow_backoff = (self.overflow_backoff * 2).min(Duration::from_secs(60));
            let at = self.last_overflow_resync.unwrap_or(now) + self.overflow_backoff;
            tracing::warn!(
                "inotify queue overflowed again; resyncing in {:?} (raise fs.inotify.max_queued_events if this repeats)",
                at.saturating_duration_since(now)
            );
            self.pending_resync = Some(at);
        } else {
            self.overflow_backoff = Duration::from_secs(1);
            tracing::warn!("inotify queue overflowed: resyncing the index with the disk");
            self.resync_now();
        }
    }

    /// When the pending overflow resync runs: at the end of its backoff, or earlier once the
    /// storm is over (no overflow for a quarter of the backoff, at least 1 s), so that the
    /// index, and the limits on the files created meanwhile, are not left stale for up to a
    /// minute after the last overflow.
    fn resync_due(&self) -> Option<Instant> {
        let pending = self.pending_resync?;
        let quiet = (self.overflow_backoff / 4).max(Duration::from_secs(1));
        Some(
            self.last_overflow
                .map_or(pending, |l| pending.min(l + quiet)),
        )
    }

    /// The resync after lost events: only the directories that changed are reread.
    fn resync_now(&mut self) {
        self.pending_resync = None;
        self.last_overflow_resync = Some(Instant::now());
        for r in &mut self.roots {
            r.counters.resyncs += 1;
            r.quick_resync(&mut self.watcher);
        }
        self.check_watches();
        self.enforce_all();
    }

    /// Asks for a comparison of every root's watches with what the kernel holds: the kernel is
    /// read off this thread at a quiet moment (see `scan::KernelReader`), and
    /// [`Self::on_kernel_watches`] compares and repairs.
    fn check_watches(&mut self) {
        if self.watcher.enabled() {
            self.kernel.request();
        }
    }

    /// A read of the kernel's watches is back: each root repairs the watches it lost (its
    /// confirming reread, rare, runs here), and what the repair found is enforced.
    fn on_kernel_watches(&mut self, read: Option<crate::scan::KernelRead>) {
        let Some(crate::scan::KernelRead { epoch, watches }) = read else {
            return;
        };
        if let Some(k) = &watches {
            for r in &mut self.roots {
                r.check_watches(k, epoch, &mut self.watcher, crate::scan::kernel_watches);
            }
        }
        self.kernel.done();
        self.enforce_all();
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.resync_due().is_some_and(|t| t <= now) {
            self.resync_now();
        }
        // A resync, or the retry of a repair that left the watches disagreeing with the
        // kernel, ends with a kernel check.
        let mut check = false;
        for r in &mut self.roots {
            if r.wake.retry_root.is_some_and(|(t, _)| t <= now.into_std()) {
                r.check_root(&mut self.watcher);
            }
            if r.wake.resync <= now.into_std() {
                r.wake.resync = now.into_std() + self.cfg.resync_interval;
                r.counters.resyncs += 1;
                r.resync_all(&mut self.watcher);
                check = true;
            }
            if r.wake.degraded_check.is_some_and(|t| t <= now.into_std()) {
                r.wake.degraded_check = None;
                r.rescan_unwatched(&mut self.watcher);
                check |= r.watch.mismatch.is_some();
            }
            r.run_due_prunes();
        }
        if check {
            self.check_watches();
        }
        self.enforce_all();
    }

    pub(crate) fn enforce_all(&mut self) {
        for r in &mut self.roots {
            // Work left over by a pass that ran out of budget keeps its original trigger.
            let trigger = r.wake.more.unwrap_or(self.woke);
            let mut pass = Pass::new(false, false).triggered_at(trigger);
            r.enforce(&mut self.watcher, &mut pass);
            r.wake.due_ns = pass.next_due_ns;
            r.wake.more = pass.more.then_some(trigger);
            if r.degraded.is_some() && r.dir.is_some() && r.wake.degraded_check.is_none() {
                let every = DEGRADED_RESCAN.min(self.cfg.resync_interval);
                r.wake.degraded_check = Some(std::time::Instant::now() + every);
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let now_wall = now_ns();
        let mut wake = now + Duration::from_secs(3600);
        let mut at = |t: Instant| {
            if t < wake {
                wake = t;
            }
        };
        if let Some(t) = self.resync_due() {
            at(t);
        }
        if let Some(t) = self.kernel.due() {
            at(Instant::from_std(t));
        }
        for r in &self.roots {
            if r.wake.more.is_some() {
                at(now);
            }
            if let Some(t) = r.grace_recount_due() {
                // Late rather than early too: the count is not taken again before its time.
                at(Instant::from_std(t) + Duration::from_millis(2));
            }
            if let Some(due) = r.wake.due_ns {
                let d = Duration::from_nanos(due.saturating_sub(now_wall).max(0) as u64);
                // A few ms late rather than early: a file is never deleted before its time.
                at(now + d + Duration::from_millis(2));
            }
            for t in [
                r.next_held_retry(),
                r.index.next_prune(),
                Some(r.wake.resync),
                r.wake.degraded_check,
                r.wake.retry_root.map(|(t, _)| t),
            ]
            .into_iter()
            .flatten()
            {
                at(Instant::from_std(t));
            }
        }
        wake
    }

    pub(crate) fn publish(&mut self) {
        let snap = Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            started: self.started,
            warning_percent: self.cfg.alerts.warning_percent,
            critical_percent: self.cfg.alerts.critical_percent,
            roots: self.roots.iter_mut().map(|r| r.stats()).collect(),
            published: SystemTime::now(),
        };
        crate::health::observe_shared(&self.health, &snap);
        self.snapshot.send_replace(Arc::new(snap));
    }

    /// Applies a new config, all or nothing: every new root's policy is built and every new
    /// root crawled beside the running ones first; only when all of that succeeded are the
    /// roots swapped. Unchanged roots keep their index (re-classified if their globs changed),
    /// removed roots are dropped with their watches.
    fn reload(&mut self, cfg: Config) -> Result<(), String> {
        let mut policies = Vec::with_capacity(cfg.roots.len());
        let mut compiled_rules = Vec::with_capacity(cfg.roots.len());
        for rc in &cfg.roots {
            let p = crate::policy::Policy::new(rc)
                .map_err(|e| format!("root {}: {e}", rc.path.display()))?;
            policies.push(p);
            compiled_rules.push(Some(
                crate::rules::Rules::new(rc)
                    .map_err(|e| format!("root {}: {e}", rc.path.display()))?,
            ));
        }
        let mut fresh: Vec<Option<RootState>> = Vec::with_capacity(cfg.roots.len());
        for rc in &cfg.roots {
            if self.roots.iter().any(|r| r.cfg.path == rc.path) {
                fresh.push(None);
                continue;
            }
            let made = crate::rootlock::lock_root(&rc.path).and_then(|_| {
                RootState::new(
                    rc.clone(),
                    cfg.cleanup_enabled,
                    cfg.resync_interval,
                    self.progress.clone(),
                )
            });
            match made {
                Ok(mut r) => {
                    r.take_lock = true;
                    r.resync_all(&mut self.watcher);
                    r.ready = true;
                    fresh.push(Some(r));
                }
                Err(e) => {
                    for mut r in fresh.into_iter().flatten() {
                        r.unwatch_all(&mut self.watcher);
                    }
                    return Err(e);
                }
            }
        }
        // From here on nothing fails.
        let mut old: Vec<RootState> = std::mem::take(&mut self.roots);
        let mut next = Vec::with_capacity(cfg.roots.len());
        for (((rc, policy), new), mut rules) in cfg
            .roots
            .iter()
            .zip(policies)
            .zip(fresh)
            .zip(compiled_rules)
        {
            if let Some(r) = new {
                next.push(r);
                continue;
            }
            let Some(i) = old.iter().position(|r| r.cfg.path == rc.path) else {
                continue;
            };
            let mut r = old.swap_remove(i);
            let globs_changed = r.cfg.include != rc.include
                || r.cfg.exclude != rc.exclude
                || r.cfg.protect != rc.protect;
            let limits_changed = r.cfg.max_age != rc.max_age
                || r.cfg.grace != rc.grace
                || r.cfg.keep_newest != rc.keep_newest
                || r.cfg.group_max_size != rc.group_max_size
                || r.cfg.group_max_files != rc.group_max_files
                || r.cfg.rules != rc.rules;
            r.policy = policy;
            r.cfg = rc.clone();
            // New limits and rules re-key the indexed files in place, without a re-crawl.
            if let Some(rules) = rules.take().filter(|_| limits_changed) {
                r.apply_rules(rules);
            }
            r.cleanup_enabled = cfg.cleanup_enabled;
            if globs_changed || r.degraded.is_some() {
                r.resync_all(&mut self.watcher);
            }
            next.push(r);
        }
        for mut gone in old {
            gone.unwatch_all(&mut self.watcher);
        }
        let kept: Vec<PathBuf> = next
            .iter()
            .flat_map(|r| [r.cfg.path.clone(), r.real_path.clone()])
            .collect();
        crate::rootlock::release_except(&kept);
        self.roots = next;
        self.cfg = cfg;
        self.check_watches();
        self.enforce_all();
        Ok(())
    }
}
