//! Answers to the control-socket commands that need the index: `groups`, `list`, `cleanup`,
//! `purge`. They run on the owner, between batches of events, so they see a consistent index.

use crate::control::{GroupSort, Reply, Request};
use crate::evict::{Pass, Removal};
use crate::index::{DirId, FileId, ROOT};
use crate::owner::Owner;
use crate::root::{now_ns, ns_to_time, RootState};
use crate::stats::Reason;
use serde_json::{json, Map, Value};
use std::ffi::OsStr;
use std::path::Path;

/// At most this many paths are listed in a `cleanup` / `purge` answer.
const MAX_LISTED: usize = 1000;

pub fn handle(owner: &mut Owner, req: Request) -> Reply {
    match req {
        Request::Groups { root, top, sort } => groups(owner, root.as_deref(), top, sort),
        Request::List { root, group } => list(owner, root.as_deref(), &group),
        Request::Cleanup { dry_run } => cleanup(owner, dry_run),
        Request::Purge {
            root,
            group,
            dry_run,
        } => purge(owner, root.as_deref(), group.as_deref(), dry_run),
    }
}

fn hours_since(ns: i64) -> f64 {
    let h = (now_ns() - ns) as f64 / 3.6e12;
    (h.max(0.0) * 100.0).round() / 100.0
}

fn select_roots<'a>(
    owner: &'a mut Owner,
    root: Option<&Path>,
) -> Result<Vec<&'a mut RootState>, String> {
    let all: Vec<&mut RootState> = owner.roots.iter_mut().collect();
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

fn group_files(r: &RootState, g: DirId) -> Vec<FileId> {
    let mut out = Vec::new();
    for d in r.index.subtree(g) {
        out.extend(
            r.index
                .files_in(d)
                .into_iter()
                .filter(|&f| r.index.file(f).managed()),
        );
    }
    out
}

fn groups(owner: &mut Owner, root: Option<&Path>, top: Option<usize>, sort: GroupSort) -> Reply {
    let mut rows = Vec::new();
    for r in select_roots(owner, root)? {
        for g in r.index.children(ROOT) {
            let files = group_files(r, g);
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
    let groups: Vec<Value> = rows
        .into_iter()
        .map(|(name, root, files, bytes, oldest, newest)| {
            json!({
                "name": name,
                "root": root,
                "files": files,
                "bytes": bytes,
                "oldest_file_age_hours": oldest.map(hours_since),
                "newest_file_age_hours": newest.map(hours_since),
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("groups".into(), Value::Array(groups));
    m.insert("total_groups".into(), json!(total));
    Ok(m)
}

fn find_group(r: &RootState, group: &str) -> Option<DirId> {
    r.index.find_dir(ROOT, OsStr::new(group))
}

fn list(owner: &mut Owner, root: Option<&Path>, group: &str) -> Reply {
    for r in select_roots(owner, root)? {
        let Some(g) = find_group(r, group) else {
            continue;
        };
        let mut files = group_files(r, g);
        files.sort_by_key(|&f| {
            (
                r.index.file(f).mtime_ns,
                std::cmp::Reverse(r.index.file(f).size),
            )
        });
        let rows: Vec<Value> = files
            .iter()
            .map(|&f| {
                let s = r.index.file(f);
                let path = r.abs_path(&r.index.file_components(f));
                let mtime = humantime::format_rfc3339_seconds(ns_to_time(s.mtime_ns)).to_string();
                let size = s.size;
                json!({
                    "path": path.display().to_string(),
                    "bytes": size,
                    "mtime": mtime,
                    "mtime_unix": s.mtime_ns as f64 / 1e9,
                    "age_hours": hours_since(s.mtime_ns),
                    "protected": s.protected(),
                })
            })
            .collect();
        let mut m = Map::new();
        m.insert("root".into(), json!(r.cfg.path.display().to_string()));
        m.insert("group".into(), json!(group));
        m.insert("files".into(), Value::Array(rows));
        return Ok(m);
    }
    Err(format!(
        "no group {group:?} (see `chartd groups` for the existing ones)"
    ))
}

fn removal_json(list: &[Removal]) -> Value {
    Value::Array(
        list.iter()
            .take(MAX_LISTED)
            .map(|x| {
                json!({
                    "path": x.path.display().to_string(),
                    "bytes": x.bytes,
                    "age_hours": (x.age.as_secs_f64() / 36.0).round() / 100.0,
                    "reason": x.reason.as_str(),
                })
            })
            .collect(),
    )
}

fn answer(pass: &Pass, dry_run: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if dry_run {
        m.insert("would_remove".into(), json!(pass.files));
        m.insert("would_free_bytes".into(), json!(pass.bytes));
    } else {
        m.insert("files_removed".into(), json!(pass.files));
        m.insert("bytes_freed".into(), json!(pass.bytes));
    }
    m.insert("skipped".into(), json!(pass.skipped));
    m.insert("files".into(), removal_json(&pass.removals));
    m.insert("dry_run".into(), json!(dry_run));
    m
}

fn refuse_if_observing(owner: &Owner, dry_run: bool) -> Result<(), String> {
    if !dry_run && !owner.cfg.cleanup_enabled {
        return Err("cleanup_enabled is false: chartd only observes and deletes nothing (use dry_run to see what would go)".into());
    }
    Ok(())
}

fn cleanup(owner: &mut Owner, dry_run: bool) -> Reply {
    refuse_if_observing(owner, dry_run)?;
    let mut pass = Pass::new(dry_run, true);
    pass.unlimited();
    for r in owner.roots.iter_mut() {
        // An explicit cleanup retries everything held back (locked, failing) right away.
        for id in r.held.keys().copied().collect::<Vec<_>>() {
            r.unhold(id);
        }
        r.counters.resyncs += 1;
        r.resync_all(&mut owner.watcher);
        r.enforce(&mut owner.watcher, &mut pass);
    }
    owner.enforce_all();
    Ok(answer(&pass, dry_run))
}

fn purge(owner: &mut Owner, root: Option<&Path>, group: Option<&str>, dry_run: bool) -> Reply {
    refuse_if_observing(owner, dry_run)?;
    let mut pass = Pass::new(dry_run, true);
    pass.unlimited();
    let now = now_ns();
    let mut found = group.is_none();
    let mut grace_skipped = 0u64;
    let watcher = &mut owner.watcher;
    let roots: Vec<&mut RootState> = match root {
        None if group.is_none() && owner.roots.len() > 1 => {
            return Err("purge --all needs --root when several roots are configured".into())
        }
        _ => owner
            .roots
            .iter_mut()
            .filter(|r| root.is_none_or(|p| r.cfg.path == p))
            .collect(),
    };
    if roots.is_empty() {
        return Err("no such root (see `chartd status` for the configured roots)".into());
    }
    for r in roots {
        let scope = match group {
            Some(g) => match find_group(r, g) {
                Some(d) => d,
                None => continue,
            },
            None => ROOT,
        };
        found = true;
        let grace = r.cfg.grace.as_nanos() as i64;
        let mut files = group_files(r, scope);
        files.sort_by_key(|&f| r.index.file(f).mtime_ns);
        for f in files {
            if !r.index.is_live(f) {
                continue;
            }
            let s = *r.index.file(f);
            if s.protected() || s.writing() || s.mtime_ns.saturating_add(grace) > now {
                grace_skipped += u64::from(!s.protected() && !s.writing());
                pass.skipped += 1;
                continue;
            }
            r.evict_one(f, Reason::Purge, &mut pass, watcher);
        }
        for id in pass.take_temp_held() {
            r.index.set_held(id, false);
        }
    }
    if !found {
        return Err(format!(
            "no group {:?} (see `chartd groups`)",
            group.unwrap_or_default()
        ));
    }
    owner.enforce_all();
    let mut m = answer(&pass, dry_run);
    m.insert("skipped_in_grace".into(), json!(grace_skipped));
    Ok(m)
}
