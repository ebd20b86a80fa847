//! Answers to the control-socket commands that need the index: `groups`, `list`, `cleanup`,
//! `purge`. They are functions of the roots they act on (and the watcher a resync needs): the
//! owner calls them between batches of events, so they see a consistent index, and they have
//! no way back into the owner.
//!
//! `purge` decides on a list of files up front and then deletes them one by one; a deletion may
//! refresh the index, and a refresh may rebuild it (the root was replaced) or reuse a freed
//! slot for another file. So every victim is checked again right before its deletion: the
//! index is still the one the list was made from (its epoch), the slot is still the same file
//! (inode, size, mtime), still managed, still in the purged group. A replaced root stops the
//! purge, and the answer says so.

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
        } => purge(scope, root.as_deref(), group.as_deref(), dry_run),
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
            rows.push((
                r.index.dir_name(g).to_string_lossy().into_owned(),
                r.cfg.path.display().to_string(),
                node.g_files,
                node.g_bytes,
                oldest,
                newest,
            ));
        }
    }
    match sort {
        GroupSort::Bytes => rows.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0))),
        GroupSort::Files => rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0))),
        GroupSort::Age => {
            rows.sort_by(|a, b| a.4.unwrap_or(i64::MAX).cmp(&b.4.unwrap_or(i64::MAX)))
        }
        GroupSort::Name => rows.sort_by(|a, b| a.0.cmp(&b.0)),
    }
    let total = rows.len();
    if let Some(n) = top {
        rows.truncate(n);
    }
    let groups = rows
        .into_iter()
        .map(|(name, root, files, bytes, oldest, newest)| GroupRow {
            name,
            root,
            files: u64::from(files),
            bytes,
            oldest_file_age_hours: oldest.map(hours_since),
            newest_file_age_hours: newest.map(hours_since),
        })
        .collect();
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
        r.resync_all(scope.watcher);
        // One pass per root: a dry run's would-be figures must not leak into the next root.
        let mut pass = Pass::new(dry_run, true).triggered_at(scope.received);
        pass.unlimited();
        r.enforce(scope.watcher, &mut pass);
        totals.add(&mut pass);
    }
    Ok(fields(&answer(&totals, dry_run, None)))
}

/// A file chosen by `purge`, as it was when it was chosen.
struct Victim {
    id: FileId,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

fn purge(scope: Scope<'_>, root: Option<&Path>, group: Option<&str>, dry_run: bool) -> Reply {
    refuse_if_observing(scope.cleanup_enabled, dry_run)?;
    let now = now_ns();
    let mut found = group.is_none();
    let mut grace_skipped = 0u64;
    let mut totals = Totals::default();
    let roots: Vec<&mut RootState> = match root {
        None if group.is_none() && scope.roots.len() > 1 => {
            return Err("purge --all needs --root when several roots are configured".into())
        }
        _ => scope
            .roots
            .iter_mut()
            .filter(|r| root.is_none_or(|p| r.cfg.path == p))
            .collect(),
    };
    if roots.is_empty() {
        return Err("no such root (see `chartd status` for the configured roots)".into());
    }
    for r in roots {
        let target = match group {
            Some(g) => match find_group(r, g) {
                Some(d) => d,
                None => continue,
            },
            None => ROOT,
        };
        found = true;
        let epoch = r.index.epoch();
        let target_ino = r.index.dir(target).ino;
        let grace = r.grace_ns();
        let mut victims: Vec<Victim> = group_files(r, target, false)
            .into_iter()
            .map(|f| {
                let s = *r.index.file(f);
                Victim {
                    id: f,
                    ino: s.ino,
                    size: s.size,
                    mtime_ns: s.mtime_ns,
                }
            })
            .collect();
        victims.sort_by_key(|v| v.mtime_ns);
        let mut pass = Pass::new(dry_run, true).triggered_at(scope.received);
        pass.unlimited();
        let mut replaced = false;
        for v in victims {
            if r.index.epoch() != epoch || r.dir.is_none() {
                replaced = true;
                break;
            }
            if !still_chosen(r, &v, target, target_ino) {
                continue;
            }
            let s = *r.index.file(v.id);
            let in_grace = s.mtime_ns.saturating_add(grace) > now;
            let held = s.held() && !dry_run;
            if s.protected() || r.is_being_written(v.id) || in_grace || held {
                grace_skipped += u64::from(in_grace && !s.protected());
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
            group.unwrap_or_default()
        ));
    }
    Ok(fields(&answer(&totals, dry_run, Some(grace_skipped))))
}

/// Whether the slot of a chosen file still holds that file, managed, in the purged group.
fn still_chosen(r: &RootState, v: &Victim, target: DirId, target_ino: u64) -> bool {
    if !r.index.is_live(v.id) || !r.index.is_live_dir(target) {
        return false;
    }
    if r.index.dir(target).ino != target_ino {
        return false;
    }
    let s = *r.index.file(v.id);
    if s.ino != v.ino || s.size != v.size || s.mtime_ns != v.mtime_ns || !s.managed() {
        return false;
    }
    target == ROOT || s.dir == target || r.index.dir(s.dir).group == target
}
