//! The directory tree of the index: nodes linked to their parent, children and files,
//! looked up by (parent, name).
//!
//! May touch: the index's directory nodes, their lookup table and the name arena; never the disk.

use super::*;

/// The watch epoch: bumped by [`begin_kernel_read`] each time the kernel's watches are read,
/// off the owner's thread, for a later comparison with the index. An inode's watch counted in
/// a later epoch than a read's was added after that read began: the read cannot have seen it,
/// so the comparison does not judge it. Process-wide, so that an index built after the read
/// began (a replaced root, a reload) starts beyond it. A `u32`: one read a second would take
/// 136 years to wrap it.
static WATCH_EPOCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Starts a read of the kernel's watches: returns the epoch that the comparison of its result
/// judges up to (see [`Index::watched_since`]).
pub fn begin_kernel_read() -> u32 {
    WATCH_EPOCH.fetch_add(1, Ordering::Relaxed)
}

fn watch_epoch() -> u32 {
    WATCH_EPOCH.load(Ordering::Relaxed)
}

impl Index {
    pub fn dir(&self, d: DirId) -> &DirNode {
        &self.dirs[d as usize]
    }

    pub fn dir_name(&self, d: DirId) -> &OsStr {
        self.names.get(self.dirs[d as usize].name)
    }

    pub fn find_dir(&self, parent: DirId, name: &OsStr) -> Option<DirId> {
        let h = self.key_hash(parent, name);
        self.dir_by_name
            .find(h, |&d| {
                let n = &self.dirs[d as usize];
                n.parent == parent && self.names.get(n.name) == name
            })
            .copied()
    }

    /// Adds directory `name` under `parent` (or returns the existing one).
    pub fn add_dir(&mut self, parent: DirId, name: &OsStr, ino: u64) -> DirId {
        if let Some(d) = self.find_dir(parent, name) {
            self.set_dir_ino(d, ino);
            return d;
        }
        let nref = self.names.push(name);
        let group = if parent == ROOT {
            NONE
        } else {
            self.dirs[parent as usize].group
        };
        let node = DirNode {
            parent,
            name: nref,
            flags: flag::LIVE | flag::SEEN,
            first_file: NONE,
            first_child: NONE,
            next_sib: self.dirs[parent as usize].first_child,
            prev_sib: NONE,
            group,
            ino,
            read_mtime_ns: i64::MIN,
            n_files: 0,
            g_files: 0,
            g_bytes: 0,
            rule: if parent == ROOT {
                self.rules.rule_for(name)
            } else {
                0
            },
        };
        let id = match self.free_dirs.pop() {
            Some(id) => {
                self.dirs[id as usize] = node;
                id
            }
            None => {
                self.dirs.push(node);
                (self.dirs.len() - 1) as DirId
            }
        };
        if group == NONE {
            self.dirs[id as usize].group = id;
        }
        let next = self.dirs[id as usize].next_sib;
        if next != NONE {
            self.dirs[next as usize].prev_sib = id;
        }
        self.dirs[parent as usize].first_child = id;
        let h = self.key_hash(parent, name);
        let dirs = &self.dirs;
        let names = &self.names;
        let hasher = &self.hasher;
        self.dir_by_name.insert_unique(h, id, |&d| {
            let n = &dirs[d as usize];
            hasher.hash_one((n.parent, names.get(n.name)))
        });
        self.dir_count += 1;
        id
    }

    pub fn set_watched(&mut self, d: DirId, watched: bool) {
        let n = &mut self.dirs[d as usize];
        let was = n.flags & flag::WATCHED != 0;
        if was != watched {
            n.flags ^= flag::WATCHED;
            let ino = n.ino;
            if watched {
                self.watched_dirs += 1;
                self.watched_inos.entry(ino).or_insert((0, watch_epoch())).0 += 1;
            } else {
                self.watched_dirs = self.watched_dirs.saturating_sub(1);
                self.unwatch_ino(ino);
            }
        }
    }

    fn unwatch_ino(&mut self, ino: u64) {
        if let Some((c, _)) = self.watched_inos.get_mut(&ino) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.watched_inos.remove(&ino);
            }
        }
    }

    /// How many watched directories of the index are inode `ino`. inotify has one watch per
    /// inode: while a directory renamed during an overflow is indexed under both its old and
    /// its new name, dropping the old name must not remove the watch the new one shares.
    pub fn watched_with_ino(&self, ino: u64) -> u32 {
        self.watched_inos.get(&ino).map_or(0, |&(c, _)| c)
    }

    /// The watch epoch in which inode `ino`'s watch was first counted (`None`: not watched). A
    /// read of the kernel's watches begun in epoch `e` (see [`begin_kernel_read`]) may judge
    /// the inodes watched since `e` or earlier.
    pub fn watched_since(&self, ino: u64) -> Option<u32> {
        self.watched_inos.get(&ino).map(|&(_, e)| e)
    }

    /// The inodes of the watched directories (to compare with what the kernel holds).
    pub fn watched_inos(&self) -> impl Iterator<Item = u64> + '_ {
        self.watched_inos.keys().copied()
    }

    /// Records a (possibly new) inode for `d`, keeping the watched-inode counts right.
    pub(super) fn set_dir_ino(&mut self, d: DirId, ino: u64) {
        let n = &mut self.dirs[d as usize];
        let (old, watched) = (n.ino, n.flags & flag::WATCHED != 0);
        n.ino = ino;
        if watched && old != ino {
            self.unwatch_ino(old);
            self.watched_inos.entry(ino).or_insert((0, watch_epoch())).0 += 1;
        }
    }

    pub fn is_watched(&self, d: DirId) -> bool {
        self.dirs[d as usize].flags & flag::WATCHED != 0
    }

    /// Whether the directory holds nothing the index knows of.
    pub fn dir_is_empty(&self, d: DirId) -> bool {
        let n = &self.dirs[d as usize];
        n.first_file == NONE && n.first_child == NONE
    }

    pub fn children(&self, d: DirId) -> Vec<DirId> {
        let mut v = Vec::new();
        let mut c = self.dirs[d as usize].first_child;
        while c != NONE {
            v.push(c);
            c = self.dirs[c as usize].next_sib;
        }
        v
    }

    pub fn files_in(&self, d: DirId) -> Vec<FileId> {
        let mut v = Vec::new();
        let mut f = self.dirs[d as usize].first_file;
        while f != NONE {
            v.push(f);
            f = self.files[f as usize].next;
        }
        v
    }

    /// `d` and every directory below it, parents before children.
    pub fn subtree(&self, d: DirId) -> Vec<DirId> {
        let mut out = vec![d];
        let mut i = 0;
        while i < out.len() {
            let mut c = self.dirs[out[i] as usize].first_child;
            while c != NONE {
                out.push(c);
                c = self.dirs[c as usize].next_sib;
            }
            i += 1;
        }
        out
    }

    /// Names from the root down to `d`, owned: the one place a path is rebuilt from the
    /// tree (to open a directory beneath the root, or to name it in a log line).
    pub fn dir_path(&self, d: DirId) -> Vec<std::ffi::OsString> {
        self.dir_components(d)
            .into_iter()
            .map(|s| s.to_owned())
            .collect()
    }

    /// Names from the root down to the file, owned.
    pub fn file_path(&self, f: FileId) -> Vec<std::ffi::OsString> {
        self.file_components(f)
            .into_iter()
            .map(|s| s.to_owned())
            .collect()
    }

    /// Names from the root down to `d` (empty for the root).
    pub fn dir_components(&self, mut d: DirId) -> Vec<&OsStr> {
        let mut v = Vec::new();
        while d != ROOT && d != NONE {
            let n = &self.dirs[d as usize];
            v.push(self.names.get(n.name));
            d = n.parent;
        }
        v.reverse();
        v
    }

    /// Removes `d` and everything below it from the index (never the root itself).
    pub fn remove_dir_tree(&mut self, d: DirId) {
        if d == ROOT {
            for c in self.children(ROOT) {
                self.remove_dir_tree(c);
            }
            for f in self.files_in(ROOT) {
                self.remove_file(f);
            }
            return;
        }
        let all = self.subtree(d);
        for &x in all.iter().rev() {
            for f in self.files_in(x) {
                self.remove_file(f);
            }
            self.unlink_dir(x);
        }
    }

    fn unlink_dir(&mut self, d: DirId) {
        let n = self.dirs[d as usize];
        let h = self.key_hash(n.parent, self.names.get(n.name));
        if let Ok(e) = self.dir_by_name.find_entry(h, |&x| x == d) {
            e.remove();
        }
        if n.prev_sib != NONE {
            self.dirs[n.prev_sib as usize].next_sib = n.next_sib;
        } else if n.parent != NONE {
            self.dirs[n.parent as usize].first_child = n.next_sib;
        }
        if n.next_sib != NONE {
            self.dirs[n.next_sib as usize].prev_sib = n.prev_sib;
        }
        if n.flags & flag::WATCHED != 0 {
            self.watched_dirs = self.watched_dirs.saturating_sub(1);
            self.unwatch_ino(n.ino);
        }
        self.names.release(n.name);
        self.q_forget_dir(d);
        self.forget_prune(d);
        self.dirs[d as usize].flags = 0;
        self.free_dirs.push(d);
        self.dir_count = self.dir_count.saturating_sub(1);
    }
}
