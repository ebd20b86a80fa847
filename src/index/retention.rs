//! Per-group retention in the index: each file's queue key from its group's rule, the
//! `keep_newest` files of each group, and the groups over their quota.
//!
//! A group's rule number lives on its directory node (set when the group is first indexed,
//! and again when the rules change), so a file's limits are two lookups away and the event
//! path never matches a glob.
//!
//! `keep_newest`: each group with N > 0 keeps a list of its at most N newest managed files
//! (flag `KEEP`, band 0 of the queue key: evicted only when nothing else is left, never by
//! age). A newer file displaces the oldest kept one in O(N). A kept file that leaves (deleted,
//! renamed, or updated) marks its group dirty; before the next eviction candidate is chosen
//! the group's next newest file is promoted, by one walk of that group (O(group)).
//!
//! Quotas: the totals of a group (`g_files`, `g_bytes`) change in `links.rs`; a group found
//! over its quota there is listed once (flag `OVER`) for eviction to trim
//! ([`Index::take_over_quota`]).
//!
//! May touch: the index's queue keys, `keep_newest` lists and over-quota list, and its `Rules`
//! (read); never the disk.

use super::*;

impl Index {
    /// The limits that apply to files in directory `d` (those of its group's rule).
    pub(super) fn limits_of(&self, d: DirId) -> &crate::rules::GroupLimits {
        let g = self.dirs[d as usize].group;
        self.rules.limits(self.dirs[g as usize].rule)
    }

    /// The rules the index applies.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The rule group `g` follows.
    pub fn group_rule(&self, g: DirId) -> RuleId {
        self.dirs[g as usize].rule
    }

    /// The queue key of slot `s` (see [`QKey`]).
    pub(super) fn key_of(&self, s: &FileSlot) -> QKey {
        if s.flags & flag::KEEP != 0 {
            return QKey::new(band::KEPT, s.mtime_ns, s.size);
        }
        match self.limits_of(s.dir).age_ns {
            Some(age) => QKey::new(band::AGED, s.mtime_ns.saturating_add(age), s.size),
            None => QKey::new(band::NO_AGE, s.mtime_ns, s.size),
        }
    }

    /// Whether group `g`'s files are protected by their rule.
    pub fn rule_protects(&self, d: DirId) -> bool {
        self.limits_of(d).protect
    }

    // ------------------------------------------------------------ keep_newest

    /// Sets or clears `KEEP` on `id`, moving it in the queue accordingly.
    fn set_keep(&mut self, id: FileId, keep: bool) {
        let s = self.files[id as usize];
        if (s.flags & flag::KEEP != 0) == keep {
            return;
        }
        let queued = s.in_queue();
        if queued {
            self.q_remove(id);
        }
        if keep {
            self.files[id as usize].flags |= flag::KEEP;
        } else {
            self.files[id as usize].flags &= !flag::KEEP;
        }
        if queued {
            self.q_insert(id);
        }
    }

    /// A managed file was just accounted (not yet queued): it may be one of its group's
    /// newest. Called before it enters the queue, so its own flag needs no requeue.
    ///
    /// Only the name that carries its inode's count (`COUNTED`) is a candidate: a file with
    /// two hard links is one file, and takes one kept place (its other names age as usual,
    /// and deleting them frees nothing).
    pub(super) fn keep_consider(&mut self, id: FileId) {
        let s = self.files[id as usize];
        let n = self.limits_of(s.dir).keep_newest as usize;
        if n == 0 || !s.managed() || s.flags & flag::COUNTED == 0 {
            return;
        }
        let g = self.dirs[s.dir as usize].group;
        let mut list = self.keep.remove(&g).unwrap_or_default();
        if list.contains(&id) {
            self.keep.insert(g, list);
            return;
        }
        if list.len() < n && self.dirs[g as usize].flags & flag::KEEP_DIRTY != 0 {
            // The group lost a kept file: whether this one is among its newest is decided
            // with the others by `settle_keep`.
            self.keep.insert(g, list);
            return;
        }
        if list.len() >= n {
            // The oldest kept file goes if this one is newer.
            let (pos, oldest) = match list
                .iter()
                .enumerate()
                .min_by_key(|(_, &f)| self.files[f as usize].mtime_ns)
            {
                Some((p, &f)) => (p, f),
                None => (0, NONE),
            };
            if oldest == NONE || self.files[oldest as usize].mtime_ns >= s.mtime_ns {
                self.keep.insert(g, list);
                return;
            }
            list.swap_remove(pos);
            self.set_keep(oldest, false);
        }
        list.push(id);
        self.files[id as usize].flags |= flag::KEEP;
        self.keep.insert(g, list);
    }

    /// A name that just became its inode's counted one: its group settles its kept set again
    /// (the name is queued already, so it is not flagged here directly).
    pub(super) fn keep_recheck(&mut self, id: FileId) {
        let s = self.files[id as usize];
        if self.limits_of(s.dir).keep_newest == 0 {
            return;
        }
        let g = self.dirs[s.dir as usize].group;
        if self.dirs[g as usize].flags & flag::KEEP_DIRTY == 0 {
            self.dirs[g as usize].flags |= flag::KEEP_DIRTY;
            self.keep_dirty.push(g);
        }
    }

    /// A managed file is withdrawn (already out of the queue): if it was kept, its group may
    /// have to promote another one (see [`Index::settle_keep`]).
    pub(super) fn keep_release(&mut self, id: FileId) {
        let s = self.files[id as usize];
        if s.flags & flag::KEEP == 0 {
            return;
        }
        self.files[id as usize].flags &= !flag::KEEP;
        let g = self.dirs[s.dir as usize].group;
        if let Some(list) = self.keep.get_mut(&g) {
            list.retain(|&f| f != id);
        }
        if self.dirs[g as usize].flags & flag::KEEP_DIRTY == 0 {
            self.dirs[g as usize].flags |= flag::KEEP_DIRTY;
            self.keep_dirty.push(g);
        }
    }

    /// Promotes the next newest files of groups that lost a kept one (one walk of each such
    /// group, only while it has fewer kept files than its `keep_newest`).
    pub(super) fn settle_keep(&mut self) {
        while let Some(g) = self.keep_dirty.pop() {
            if !self.is_live_dir(g) {
                self.keep.remove(&g);
                continue;
            }
            // The group was removed and its slot reused (by a subdirectory, or a new group
            // that lost nothing yet): the entry is stale.
            if self.dirs[g as usize].group != g
                || self.dirs[g as usize].flags & flag::KEEP_DIRTY == 0
            {
                continue;
            }
            self.dirs[g as usize].flags &= !flag::KEEP_DIRTY;
            let n = self.rules.limits(self.dirs[g as usize].rule).keep_newest as usize;
            let have = self.keep.get(&g).map_or(0, Vec::len);
            if have >= n {
                continue;
            }
            let mut candidates: Vec<(i64, FileId)> = self
                .group_files(g)
                .into_iter()
                .filter(|&f| {
                    let s = &self.files[f as usize];
                    s.managed() && s.flags & (flag::KEEP | flag::COUNTED) == flag::COUNTED
                })
                .map(|f| (self.files[f as usize].mtime_ns, f))
                .collect();
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            for (_, f) in candidates.into_iter().take(n - have) {
                self.set_keep(f, true);
                self.keep.entry(g).or_default().push(f);
            }
        }
    }

    /// Every file of group `g` (for ROOT, the files directly in the root: files in
    /// subdirectories belong to those groups).
    pub fn group_files(&self, g: DirId) -> Vec<FileId> {
        if g == ROOT {
            return self.files_in(ROOT);
        }
        self.subtree(g)
            .into_iter()
            .flat_map(|d| self.files_in(d))
            .collect()
    }

    // ------------------------------------------------------------ quotas

    /// After a group's totals grew: list it for trimming if it is over its quota.
    pub(super) fn check_quota(&mut self, g: DirId) {
        let n = &self.dirs[g as usize];
        if n.flags & flag::OVER != 0 {
            return;
        }
        let lim = self.rules.limits(n.rule);
        let over = lim.quota_bytes.is_some_and(|q| n.g_bytes > q)
            || lim.quota_files.is_some_and(|q| u64::from(n.g_files) > q);
        if over {
            self.dirs[g as usize].flags |= flag::OVER;
            self.over_quota.push(g);
        }
    }

    /// The groups found over their quota since the last call (live ones, each once).
    pub fn take_over_quota(&mut self) -> Vec<DirId> {
        let mut out = Vec::new();
        for g in std::mem::take(&mut self.over_quota) {
            let n = &mut self.dirs[g as usize];
            if n.flags & flag::OVER != 0 && n.flags & flag::LIVE != 0 {
                n.flags &= !flag::OVER;
                out.push(g);
            }
        }
        out
    }

    /// Lists group `g` again (its trim was blocked; it is looked at on the next pass).
    pub fn requeue_over_quota(&mut self, g: DirId) {
        if self.is_live_dir(g) && self.dirs[g as usize].flags & flag::OVER == 0 {
            self.dirs[g as usize].flags |= flag::OVER;
            self.over_quota.push(g);
        }
    }

    /// Whether any group is listed over its quota.
    pub fn has_over_quota(&self) -> bool {
        !self.over_quota.is_empty()
    }

    /// The queued files of group `g`, in eviction order (for a quota trim).
    pub fn group_queue(&mut self, g: DirId) -> Vec<FileId> {
        self.settle_keep();
        let mut v: Vec<(QKey, FileId)> = self
            .group_files(g)
            .into_iter()
            .filter(|&f| self.files[f as usize].in_queue())
            .map(|f| (self.key_of(&self.files[f as usize]), f))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, f)| f).collect()
    }

    // ------------------------------------------------------------ new rules

    /// Applies new rules to the indexed files without a re-crawl: every group's rule is
    /// matched again, the kept files chosen again, the queue rebuilt with the new keys
    /// (O(n log n), once per reload), and the quotas checked. `protected` says whether a
    /// file's path matches the root's `protect` globs, for files whose rule no longer
    /// protects them.
    pub fn set_rules(&mut self, rules: Arc<Rules>, protected: impl Fn(&[&OsStr]) -> bool) {
        // Everything leaves the queue under the old keys.
        self.file_queue.clear();
        self.dir_queue.clear();
        self.keep.clear();
        for g in std::mem::take(&mut self.keep_dirty) {
            self.dirs[g as usize].flags &= !flag::KEEP_DIRTY;
        }
        self.rules = rules;
        for g in self.children(ROOT) {
            let rule = self.rules.rule_for(self.dir_name(g));
            self.dirs[g as usize].rule = rule;
        }
        // Protection by rule, re-evaluated: a flip moves the file's share in and out of the
        // protected totals (nothing is queued at this point).
        for id in 0..self.files.len() as FileId {
            let s = self.files[id as usize];
            if s.flags & flag::LIVE == 0 || !s.managed() {
                continue;
            }
            self.files[id as usize].flags &= !flag::KEEP;
            let want = self.rule_protects(s.dir) || protected(&self.file_components(id));
            if want != s.protected() {
                let counted = self.is_counted(id);
                if counted {
                    self.contribute(id, false);
                }
                self.files[id as usize].flags ^= flag::PROTECTED;
                if counted {
                    self.contribute(id, true);
                }
            }
        }
        // Kept files, chosen again per group.
        let mut groups: Vec<DirId> = self.children(ROOT);
        groups.push(ROOT);
        for g in groups {
            if self.rules.limits(self.dirs[g as usize].rule).keep_newest > 0 {
                self.keep_dirty.push(g);
            }
            self.dirs[g as usize].flags &= !flag::OVER;
        }
        self.over_quota.clear();
        self.settle_keep_unqueued();
        // The queue, rebuilt.
        for id in 0..self.files.len() as FileId {
            let s = self.files[id as usize];
            if s.flags & flag::LIVE != 0 && s.in_queue() {
                self.q_insert(id);
            }
        }
        let mut groups: Vec<DirId> = self.children(ROOT);
        groups.push(ROOT);
        for g in groups {
            self.check_quota(g);
        }
    }

    /// `settle_keep` while nothing is queued (inside `set_rules`): flags only.
    fn settle_keep_unqueued(&mut self) {
        while let Some(g) = self.keep_dirty.pop() {
            self.dirs[g as usize].flags &= !flag::KEEP_DIRTY;
            let n = self.rules.limits(self.dirs[g as usize].rule).keep_newest as usize;
            let mut candidates: Vec<(i64, FileId)> = self
                .group_files(g)
                .into_iter()
                .filter(|&f| {
                    let s = &self.files[f as usize];
                    s.managed() && s.flags & flag::COUNTED != 0
                })
                .map(|f| (self.files[f as usize].mtime_ns, f))
                .collect();
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let kept: Vec<FileId> = candidates.into_iter().take(n).map(|(_, f)| f).collect();
            for &f in &kept {
                self.files[f as usize].flags |= flag::KEEP;
            }
            self.keep.insert(g, kept);
        }
    }
}
