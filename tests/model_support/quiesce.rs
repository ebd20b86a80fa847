//! The model test's end state: after the generator stops, a walk of the disk (hard links once,
//! per group, the oldest file an age limit applies to) against chartd's `status` and
//! `groups`, the limits held or a blocker reported, and every sacred file intact.
//!
//! May touch: the daemon's root (read: a walk and the sacred files' content), its control socket.

use super::model::{mtime_of, now_ns, secs, Entry};
use super::{World, GRACE};
use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Managed files on disk: per group (files = names, bytes = once per inode), the totals, and
/// the oldest managed mtime that an age limit applies to (see `policy`'s rules).
#[derive(Debug, Default, PartialEq)]
struct DiskView {
    files: u64,
    bytes: u64,
    groups: BTreeMap<String, (u64, u64)>,
    /// Per group, the inodes that also have names in other groups (files, bytes): chartd
    /// counts such an inode in the group of the name it indexed first, which a walk cannot
    /// know, so a group's figures may include any of these.
    shared: BTreeMap<String, (u64, u64)>,
}

impl DiskView {
    /// Whether the index's per-group figures `idx` fit this walk: every inode whose names
    /// are all in one group counted there, each inode shared between groups in one of them,
    /// and the totals exact.
    pub(super) fn groups_fit(&self, idx: &BTreeMap<String, (u64, u64)>) -> Vec<String> {
        let mut bad = Vec::new();
        let names: std::collections::BTreeSet<&String> = self
            .groups
            .keys()
            .chain(self.shared.keys())
            .chain(idx.keys())
            .collect();
        for g in names {
            let (ef, eb) = self.groups.get(g).copied().unwrap_or_default();
            let (sf, sb) = self.shared.get(g).copied().unwrap_or_default();
            let (f, b) = idx.get(g).copied().unwrap_or_default();
            if f < ef || f > ef + sf || b < eb || b > eb + sb {
                bad.push(format!(
                    "{g}: disk {:?} (+ up to {:?} shared with other groups) groups {:?}",
                    (ef, eb),
                    (sf, sb),
                    (f, b)
                ));
            }
        }
        let (tf, tb) = idx.values().fold((0, 0), |(a, b), (f, x)| (a + f, b + x));
        if (tf, tb) != (self.files, self.bytes) {
            bad.push(format!(
                "groups add up to {tf} files {tb} B, the disk holds {} files {} B",
                self.files, self.bytes
            ));
        }
        bad
    }
}

fn walk(root: &Path) -> (DiskView, Option<(i128, PathBuf)>) {
    let mut v = DiskView::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut inode_groups: HashMap<u64, (u64, std::collections::BTreeSet<String>)> = HashMap::new();
    let mut oldest: Option<(i128, PathBuf)> = None;
    let mut aging: Vec<(String, i128, PathBuf, bool, u64)> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if name.starts_with('.') || name.ends_with(".tmp") {
                continue;
            }
            if ft.is_dir() {
                stack.push(e.path());
                continue;
            }
            if !ft.is_file() || !name.ends_with(".png") {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let group = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            if rel.components().count() == 1 {
                continue; // files directly in the root belong to no group
            }
            // Hard links count once per inode, like `du` (and chartd).
            if seen.insert(m.ino()) {
                v.files += 1;
                v.bytes += m.len();
            }
            inode_groups
                .entry(m.ino())
                .or_insert_with(|| (m.len(), std::collections::BTreeSet::new()))
                .1
                .insert(group.clone());
            aging.push((
                group,
                mtime_of(&m),
                e.path(),
                name.ends_with("_keep.png"),
                m.ino(),
            ));
        }
    }
    let inode_groups_of: HashMap<u64, std::collections::BTreeSet<String>> = inode_groups
        .iter()
        .map(|(i, (_, g))| (*i, g.clone()))
        .collect();
    for (size, groups) in inode_groups.into_values() {
        let alone = groups.len() == 1;
        for g in groups {
            let e = if alone {
                v.groups.entry(g).or_default()
            } else {
                v.shared.entry(g).or_default()
            };
            e.0 += 1;
            e.1 += size;
        }
    }
    // The rules of `policy`: G3 has no age limit, and G1's two newest managed files (inodes:
    // hard links are one file) are kept whatever their age; protected files never age out.
    // A G1 name of an inode linked into other groups may count in either group (chartd
    // counts an inode under the name it indexed first), so its age is not judged here.
    aging.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut kept_g1: Vec<u64> = Vec::new();
    for (group, _, _, _, ino) in &aging {
        let linked_out = inode_groups_of.get(ino).is_some_and(|g| g.len() > 1);
        if group == "G1" && !linked_out && kept_g1.len() < 2 && !kept_g1.contains(ino) {
            kept_g1.push(*ino);
        }
    }
    for (group, t, path, protected, ino) in aging {
        if group == "G1"
            && (kept_g1.contains(&ino) || inode_groups_of.get(&ino).is_some_and(|g| g.len() > 1))
        {
            continue;
        }
        if protected || group == "G3" {
            continue;
        }
        if oldest.as_ref().is_none_or(|o| t < o.0) {
            oldest = Some((t, path));
        }
    }
    (v, oldest)
}

fn index_view(d: &Daemon) -> Option<(DiskView, Value)> {
    let st = request_within(&d.socket, r#"{"cmd":"status"}"#, Duration::from_secs(3))?;
    let g = request_within(
        &d.socket,
        r#"{"cmd":"groups","sort":"name"}"#,
        Duration::from_secs(5),
    )?;
    let r = st["roots"][0].clone();
    let mut v = DiskView {
        files: r["total_files"].as_u64()?,
        bytes: r["total_bytes"].as_u64()?,
        groups: BTreeMap::new(),
        shared: BTreeMap::new(),
    };
    for x in g["groups"].as_array()? {
        let f = x["files"].as_u64()?;
        if f > 0 {
            v.groups
                .insert(x["name"].as_str()?.to_string(), (f, x["bytes"].as_u64()?));
        }
    }
    Some((v, st))
}

impl World {
    /// Stops the generator and checks the end state (see the module doc).
    pub(super) fn quiesce(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        self.tick_writers(true);
        let vids: Vec<usize> = self.locked.keys().copied().collect();
        for vid in vids {
            self.unlock(vid);
        }
        self.check_all();
        // Everything leaves its grace period (a precondition of the limits, not a wait for
        // chartd: what follows polls with a deadline).
        std::thread::sleep(GRACE + Duration::from_millis(300));
        self.check_all();
        // chartd retries a file it found flocked (or changed at the head of the queue) 30 s
        // later: the deadline allows for that.
        let deadline = Duration::from_secs(45);
        let mut last = String::new();
        let mut stable = 0;
        let ok = wait_until(deadline, || {
            let (disk, oldest) = walk(&self.root);
            let Some((idx, st)) = index_view(&self.d) else {
                let st = request_within(
                    &self.d.socket,
                    r#"{"cmd":"status"}"#,
                    Duration::from_secs(3),
                );
                last = format!(
                    "status or groups did not answer (chartd alive: {}; status alone: {})",
                    alive(self.d.pid()),
                    if st.is_some() { "answers" } else { "no answer" }
                );
                stable = 0;
                return false;
            };
            let r = &st["roots"][0];
            let mut why = Vec::new();
            if idx.files != disk.files || idx.bytes != disk.bytes {
                why.push(format!(
                    "status {} files {} B, disk {} files {} B",
                    idx.files, idx.bytes, disk.files, disk.bytes
                ));
            }
            let diff = disk.groups_fit(&idx.groups);
            if !diff.is_empty() {
                why.push(format!("groups differ: {diff:?}"));
            }
            let blocked = &r["holding"]["blocked"];
            if disk.bytes > self.max_size && blocked.is_null() {
                why.push(format!(
                    "over max_size ({} B on disk > {} B) and status reports no blocker \
                     (roots[0].holding.blocked is {})",
                    disk.bytes, self.max_size, blocked
                ));
            }
            if let Some((t, p)) = &oldest {
                let age = now_ns() - t;
                let limit = (self.max_age.max(GRACE) + Duration::from_secs(1)).as_nanos() as i128;
                if age > limit && blocked.is_null() {
                    why.push(format!(
                        "{} is {:.1} s old (max_age {} s) and no blocker is reported",
                        p.display(),
                        secs(age),
                        self.max_age.as_secs()
                    ));
                }
            }
            if st.get("stale") == Some(&Value::Bool(true)) {
                why.push("status says stale: true".into());
            }
            if why.is_empty() {
                stable += 1;
                return stable >= 2;
            }
            stable = 0;
            last = why.join("; ");
            false
        });
        self.sum.quiescence = t0.elapsed();
        self.check_all();
        // Sacred files: by inode and by content.
        let sacred: Vec<(PathBuf, Entry)> = self
            .entries
            .iter()
            .filter(|(p, e)| self.sacred(p, e).is_some())
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        for (p, e) in sacred {
            let v = &self.versions[e.vid];
            self.sum.sacred_checked += 1;
            if let Some(t) = &v.target {
                if fs::read_link(&p).ok().as_ref() != Some(t) {
                    self.fail(format!("symlink {} changed", p.display()));
                }
            } else if !fs::read(&p).is_ok_and(|c| c.starts_with(v.token.as_bytes())) {
                self.fail(format!(
                    "{} lost its content (token {:?})",
                    p.display(),
                    v.token.trim()
                ));
            }
        }
        if !ok {
            return Err(format!(
                "no quiescence within {deadline:?} after the generator stopped: {last}"
            ));
        }
        Ok(())
    }
}
