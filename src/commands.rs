//! Answers to the control-socket commands that need the index: `groups`, `list`, `cleanup`,
//! `purge`. They are functions of the roots they act on (and the watcher a resync needs): the
//! owner calls them between batches of events, so they see a consistent index, and they have
//! no way back into the owner.
//!
//! `purge` takes a group, a glob of groups (`RELIANCE_*`: every group whose name matches, in
//! every root it acts on) or a whole root. It decides on a list of files up front and then
//! deletes them one by one; a deletion may refresh the index, and a refresh may rebuild it
//! (the root was replaced) or reuse a freed slot for another file. So every victim is checked
//! again right before its deletion: the index is still the one the list was made from (its
//! epoch), the slot is still the same file (inode, size, mtime), still managed, still in the
//! group it was chosen in. A replaced root stops the purge, and the answer says so.
//!
//! May touch: the roots in its `Scope` (their index and counters, and their disk through `evict`
//! and `scan`) and the owner's watcher, lent in the `Scope` for a `cleanup` resync; never the owner
//! itself, the snapshot or the socket.

use crate::control::messages::{
    fields, DeletionReply, GroupRow, GroupsReply, ListReply, ListedFile, RemovedFile,
};
use crate::control::{GroupSort, Reply, Request};
use crate::evict::{Pass, Removal};
use crate::index::{DirId, FileId, HoldReason, ROOT};
use crate::root::{now_ns, ns_to_time, RootState};
use crate::stats::Reason;
use crate::watcher::Watcher;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Instant;

/// At most this many paths are listed in a `cleanup` / `purge` answer.
const MAX_LISTED: usize = 1000;

/// What the commands act on: the owner's roots and its watcher.
pub struct Scope<'a> {
    pub roots: &'a mut [RootState],
    pub watcher: &'a mut Watcher,
    pub cleanup_enabled: bool,
    /// When the owner received the command (the start of the eviction latency of its
    /// deletions).
    pub received: Instant,
}

pub fn handle(scope: Scope<'_>, req: Request) -> Reply {
    match req {
        Request::Groups { root, top, sort } => groups(scope.roots, root.as_deref(), top, sort),
        Request::List { root, group } => list(scope.roots, root.as_deref(), &group),
        Request::Cleanup { dry_run } => cleanup(scope, dry_run),
        Request::Purge {
            root,
            group,
            dry_run,
            include_young,
        } => purge(
            scope,
            PurgeArgs {
                root: root.as_deref(),
                group: group.as_deref(),
                dry_run,
                include_young,
            },
        ),
    }
}

fn hours_since(ns: i64) -> f64 {
    let h = (now_ns() - ns) as f64 / 3.6e12;
    (h.max(0.0) * 100.0).round() / 100.0
}

fn select_roots<'a>(
    roots: &'a mut [RootState],
    root: Option<&Path>,
) -> Result<Vec<&'a mut RootState>, String> {
    let all: Vec<&mut RootState> = roots.iter_mut().collect();
    match root {
        None => Ok(all),
        Some(p) => {
            let v: Vec<_> = all.into_iter().filter(|r| r.cfg.path == p).collect();
            if v.is_empty() {
                Err(format!(
                    "no such root {:?} (see `chartd status` for the configured roots)",
                    p.display().to_string()
                ))
            } else {
                Ok(v)
            }
        }
    }
}

/// The managed files below `g` (each name; `counted_only`: each inode once).
fn group_files(r: &RootState, g: DirId, counted_only: bool) -> Vec<FileId> {
    let mut out = Vec::new();
    for d in r.index.subtree(g) {
        out.extend(
            r.index
                .files_in(d)
                .into_iter()
                .filter(|&f| r.index.file(f).managed() && (!counted_only || r.index.is_counted(f))),
        );
    }
    out
}

fn groups(
    roots: &mut [RootState],
    root: Option<&Path>,
    top: Option<usize>,
    sort: GroupSort,
) -> Reply {
    let mut rows = Vec::new();
    for r in select_roots(roots, root)? {
        for g in r.index.children(ROOT) {
            let files = group_files(r, g, true);
            let mtimes = files.iter().map(|&f| r.index.file(f).mtime_ns);
            let oldest = mtimes.clone().min();
            let newest = mtimes.max();
            let node = r.index.dir(g);
            let rule = r.index.group_rule(g);
            let lim = *r.index.rules().limits(rule);
            let share = |used: u64, quota: Option<u64>| {
                quota.map(|q| used as f64 * 100.0 / q.max(1) as f64)
            };
            let quota_percent = share(node.g_bytes, lim.quota_bytes)
                .into_iter()
                .chain(share(u64::from(node.g_files), lim.quota_files))
                .reduce(f64::max)
                .map(|p| (p * 10.0).round() / 10.0);
            rows.push((
                GroupRow {
                    name: r.index.dir_name(g).to_string_lossy().into_owned(),
                    root: r.cfg.path.display().to_string(),
                    files: u64::from(node.g_files),
                    bytes: node.g_bytes,
                    oldest_file_age_hours: oldest.map(hours_since),
                    newest_file_age_hours: newest.map(hours_since),
                    rule: r.index.rules().label(rule).map(str::to_string),
                    max_age_hours: lim
                        .age_ns
                        .map(|a| (a as f64 / 3.6e12 * 100.0).round() / 100.0),
                    quota_bytes: lim.quota_bytes,
                    quota_files: lim.quota_files,
                    quota_percent,
                },
                oldest,
            ));
        }
    }
    match sort {
        GroupSort::Bytes => {
            rows.sort_by(|a, b| b.0.bytes.cmp(&a.0.bytes).then(a.0.name.cmp(&b.0.name)))
        }
        GroupSort::Files => {
            rows.sort_by(|a, b| b.0.files.cmp(&a.0.files).then(a.0.name.cmp(&b.0.name)))
        }
        GroupSort::Age => {
            rows.sort_by(|a, b| a.1.unwrap_or(i64::MAX).cmp(&b.1.unwrap_or(i64::MAX)))
        }
        GroupSort::Name => rows.sort_by(|a, b| a.0.name.cmp(&b.0.name)),
    }
    let total = rows.len();
    if let Some(n) = top {
        rows.truncate(n);
    }
    let groups = rows.into_iter().map(|(row, _)| row).collect();
    Ok(fields(&GroupsReply {
        groups,
        total_groups: total as u64,
    }))
}

fn find_group(r: &RootState, group: &str) -> Option<DirId> {
    r.index.find_dir(ROOT, OsStr::new(group))
}

fn list(roots: &mut [RootState], root: Option<&Path>, group: &str) -> Reply {
    for r in select_roots(roots, root)? {
        let Some(g) = find_group(r, group) else {
            continue;
        };
        let mut files = group_files(r, g, false);
        files.sort_by_key(|&f| {
            (
                r.index.file(f).mtime_ns,
                std::cmp::Reverse(r.index.file(f).size),
            )
        });
        let rows = files
            .iter()
            .map(|&f| {
                let s = r.index.file(f);
                let path = r.abs_path(&r.index.file_components(f));
                ListedFile {
                    path: path.display().to_string(),
                    bytes: s.size,
                    mtime: humantime::format_rfc3339_seconds(ns_to_time(s.mtime_ns)).to_string(),
                    mtime_unix: s.mtime_ns as f64 / 1e9,
                    age_hours: hours_since(s.mtime_ns),
                    protected: s.protected(),
                }
            })
            .collect();
        return Ok(fields(&ListReply {
            root: r.cfg.path.display().to_string(),
            group: group.to_string(),
            files: rows,
        }));
    }
    Err(format!(
        "no group {group:?} (see `chartd groups` for the existing ones)"
    ))
}

fn removed_files(list: &[Removal]) -> Vec<RemovedFile> {
    list.iter()
        .take(MAX_LISTED)
        .map(|x| RemovedFile {
            path: x.path.display().to_string(),
            bytes: x.bytes,
            age_hours: (x.age.as_secs_f64() / 36.0).round() / 100.0,
            reason: x.reason.as_str().to_string(),
        })
        .collect()
}

/// The figures of several roots' passes, added up.
#[derive(Default)]
struct Totals {
    files: u64,
    bytes: u64,
    skipped: u64,
    removals: Vec<Removal>,
}

impl Totals {
    fn add(&mut self, pass: &mut Pass) {
        self.files += pass.files;
        self.bytes += pass.bytes;
        self.skipped += pass.skipped;
        if self.removals.len() < MAX_LISTED {
            self.removals.append(&mut pass.removals);
        }
    }
}

fn answer(t: &Totals, dry_run: bool, skipped_in_grace: Option<u64>) -> DeletionReply {
    let (real, rehearsal) = if dry_run {
        (None, Some(()))
    } else {
        (Some(()), None)
    };
    DeletionReply {
        files_removed: real.map(|()| t.files),
        bytes_freed: real.map(|()| t.bytes),
        would_remove: rehearsal.map(|()| t.files),
        would_free_bytes: rehearsal.map(|()| t.bytes),
        skipped: t.skipped,
        files: removed_files(&t.removals),
        dry_run,
        skipped_in_grace,
        groups_matched: None,
    }
}

fn refuse_if_observing(cleanup_enabled: bool, dry_run: bool) -> Result<(), String> {
    if !dry_run && !cleanup_enabled {
        return Err("cleanup_enabled is false: chartd only observes and deletes nothing (use --dry-run to see what would go)".into());
    }
    Ok(())
}

fn cleanup(scope: Scope<'_>, dry_run: bool) -> Reply {
    refuse_if_observing(scope.cleanup_enabled, dry_run)?;
    let mut totals = Totals::default();
    for r in scope.roots.iter_mut() {
        // An explicit cleanup retries everything held back (locked, failing) right away; files
        // being written stay held until their writer is quiet.
        let held: Vec<FileId> = r
            .index
            .holds()
            .filter(|(_, h)| h.reason != HoldReason::Writing)
            .map(|(id, _)| id)
            .collect();
        for id in held {
            r.index.unhold(id);
        }
        r.counters.resyncs += 1;
        // A dry run deletes nothing, leftovers of interrupted deletions included.
        let remove_leftovers = r.cleanup_enabled && !dry_run;
        r.resync_all_with(scope.watcher, remove_leftovers);
        // One pass per root: a dry run's would-be figures must not leak into the next root.
        let mut pass = Pass::new(dry_run, true).triggered_at(scope.received);
        pass.unlimited();
        r.enforce(scope.watcher, &mut pass);
        totals.add(&mut pass);
    }
    Ok(fields(&answer(&totals, dry_run, None)))
}

/// A file chosen by `purge`, as it was when it was chosen, and the group it was chosen in.
struct Victim {
    id: FileId,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    /// The purged group (ROOT for `all`) and its inode when the file was chosen.
    group: DirId,
    group_ino: u64,
}

/// What a purge was told to take.
enum Selection<'a> {
    /// Every managed file of the roots (`all`).
    All,
    /// The group of this exact name.
    Name(&'a str),
    /// Every group whose name matches the glob.
    Glob(globset::GlobMatcher),
}

impl Selection<'_> {
    /// A group named exactly `group` in one of the roots is that group, whatever characters
    /// its name has (so names such as `a[1]` keep working); otherwise `group` is a glob of
    /// group names, compiled by the one glob compiler of chartd. A name without glob
    /// characters is a glob matching itself only, so it means the same either way.
    fn new<'a>(roots: &[&mut RootState], group: Option<&'a str>) -> Result<Selection<'a>, String> {
        let Some(g) = group else {
            return Ok(Selection::All);
        };
        if roots.iter().any(|r| find_group(r, g).is_some()) {
            return Ok(Selection::Name(g));
        }
        crate::policy::compile("purge", g)
            .map(|glob| Selection::Glob(glob.compile_matcher()))
            .map_err(|e| {
                format!("{e}; give a group name or a glob of group names such as 'RELIANCE_*' (see `chartd groups`)")
            })
    }

    /// The groups of `r` this selection takes (`[ROOT]` for `All`).
    fn groups(&self, r: &RootState) -> Vec<DirId> {
        match self {
            Selection::All => vec![ROOT],
            Selection::Name(g) => find_group(r, g).into_iter().collect(),
            Selection::Glob(m) => r
                .index
                .children(ROOT)
                .into_iter()
                .filter(|&d| m.is_match(Path::new(r.index.dir_name(d))))
                .collect(),
        }
    }
}

/// What `purge` was asked to do.
struct PurgeArgs<'a> {
    root: Option<&'a Path>,
    group: Option<&'a str>,
    dry_run: bool,
    /// Files inside `grace` go too.
    include_young: bool,
}

fn purge(scope: Scope<'_>, a: PurgeArgs<'_>) -> Reply {
    refuse_if_observing(scope.cleanup_enabled, a.dry_run)?;
    let received = scope.received;
    let now = now_ns();
    let mut found = a.group.is_none();
    let mut grace_skipped = 0u64;
    let mut groups_matched = 0u64;
    let mut totals = Totals::default();
    let roots: Vec<&mut RootState> = match a.root {
        None if a.group.is_none() && scope.roots.len() > 1 => {
            return Err("purge --all needs --root when several roots are configured".into())
        }
        _ => scope
            .roots
            .iter_mut()
            .filter(|r| a.root.is_none_or(|p| r.cfg.path == p))
            .collect(),
    };
    if roots.is_empty() {
        return Err("no such root (see `chartd status` for the configured roots)".into());
    }
    let selection = Selection::new(&roots, a.group)?;
    for r in roots {
        let targets = selection.groups(r);
        if targets.is_empty() {
            continue;
        }
        found = true;
        groups_matched += if matches!(selection, Selection::All) {
            r.index.children(ROOT).len() as u64
        } else {
            targets.len() as u64
        };
        let epoch = r.index.epoch();
        let mut victims: Vec<Victim> = Vec::new();
        for &target in &targets {
            let group_ino = r.index.dir(target).ino;
            victims.extend(group_files(r, target, false).into_iter().map(|f| {
                let s = *r.index.file(f);
                Victim {
                    id: f,
                    ino: s.ino,
                    size: s.size,
                    mtime_ns: s.mtime_ns,
                    group: target,
                    group_ino,
                }
            }));
        }
        victims.sort_by_key(|v| v.mtime_ns);
        let mut pass = Pass::new(a.dry_run, true).triggered_at(received);
        pass.unlimited();
        let mut replaced = false;
        for v in victims {
            if r.index.epoch() != epoch || r.dir.is_none() {
                replaced = true;
                break;
            }
            if !still_chosen(r, &v) {
                continue;
            }
            let s = *r.index.file(v.id);
            // Young files stay unless the operator asked for them; open, locked and protected
            // files stay whatever was asked.
            let grace = r.index.prio(v.id).grace_ns;
            let young = s.mtime_ns.saturating_add(grace) > now && !a.include_young;
            // A file held only because it is inside grace (rules) is judged as young above.
            let held = s.held()
                && !a.dry_run
                && r.index
                    .hold_of(v.id)
                    .is_none_or(|h| h.reason != HoldReason::Grace);
            if s.protected() || r.is_being_written(v.id) || young || held {
                grace_skipped += u64::from(young && !s.protected());
                pass.skipped += 1;
                continue;
            }
            r.evict_one(v.id, Reason::Purge, &mut pass);
        }
        for id in pass.take_temp_held() {
            if r.index.epoch() == epoch && r.index.is_live(id) {
                r.index.set_held(id, false);
            }
        }
        totals.add(&mut pass);
        if replaced {
            return Err(format!(
                "the root {} was removed or replaced while the purge ran: stopped after \
                 removing {} files ({} bytes); nothing else was touched. Run the purge again \
                 to continue on the new root.",
                r.cfg.path.display(),
                totals.files,
                totals.bytes
            ));
        }
    }
    if !found {
        return Err(format!(
            "no group {:?} (see `chartd groups`)",
            a.group.unwrap_or_default()
        ));
    }
    let mut reply = answer(&totals, a.dry_run, Some(grace_skipped));
    reply.groups_matched = Some(groups_matched);
    Ok(fields(&reply))
}

/// Whether the slot of a chosen file still holds that file, managed, in the group it was
/// chosen in (still the same directory).
fn still_chosen(r: &RootState, v: &Victim) -> bool {
    if !r.index.is_live(v.id) || !r.index.is_live_dir(v.group) {
        return false;
    }
    if r.index.dir(v.group).ino != v.group_ino {
        return false;
    }
    let s = *r.index.file(v.id);
    if s.ino != v.ino || s.size != v.size || s.mtime_ns != v.mtime_ns || !s.managed() {
        return false;
    }
    v.group == ROOT || s.dir == v.group || r.index.dir(s.dir).group == v.group
}
