//! Group quotas: a group over its `group_max_size` / `group_max_files` loses its own files,
//! in queue order (soonest expiry first, its kept files last), down to the root's low
//! watermark of the quota. Other groups are untouched.
//!
//! The index lists a group the moment its totals cross its quota (`index/retention.rs`), so
//! this runs only for groups that crossed: one walk of the group per trim, which the low
//! watermark amortises over the files it removes. A trim that is blocked (files in grace,
//! being written, locked) lists the group again for the next pass.
//!
//! May touch: the root's index (group totals, queue, over-quota list), deleting only through
//! `delete`; nothing else.

use super::{Pass, Reason};
use crate::index::{DirId, HoldReason};
use crate::root::RootState;

impl RootState {
    /// Trims every group listed over its quota.
    pub(super) fn enforce_quotas(&mut self, pass: &mut Pass, now: i64) {
        if !self.index.has_over_quota() {
            return;
        }
        for g in self.index.take_over_quota() {
            self.trim_group(g, pass, now);
        }
    }

    /// The group's managed (files, bytes), a dry run's would-be deletions left out.
    fn group_totals(&self, g: DirId, gone: (u64, u64)) -> (u64, u64) {
        let n = self.index.dir(g);
        (
            u64::from(n.g_files).saturating_sub(gone.0),
            n.g_bytes.saturating_sub(gone.1),
        )
    }

    fn trim_group(&mut self, g: DirId, pass: &mut Pass, now: i64) {
        let lim = *self.index.rules().limits(self.index.group_rule(g));
        let wm = self.cfg.low_watermark;
        let target_files = lim.quota_files.map(|q| (q as f64 * wm) as u64);
        let target_bytes = lim.quota_bytes.map(|q| (q as f64 * wm) as u64);
        let above = |(f, b): (u64, u64)| {
            target_files.is_some_and(|t| f > t) || target_bytes.is_some_and(|t| b > t)
        };
        let mut gone = (0u64, 0u64);
        let mut blocked = false;
        for id in self.index.group_queue(g) {
            if !above(self.group_totals(g, gone)) {
                break;
            }
            if pass.budget == 0 {
                pass.more = true;
                blocked = true;
                break;
            }
            // Still the file the walk found (deletions in this pass only remove their own
            // victim, but a dry run's are hidden instead): live, queued, in this group.
            if !self.index.is_live(id) || self.index.dir(self.index.file(id).dir).group != g {
                continue;
            }
            // Held (locked, failing, being written): looked at again once released.
            if self.index.file(id).held() {
                blocked = true;
                continue;
            }
            let p = self.index.prio(id);
            let free_at = p.mtime_ns.saturating_add(p.grace_ns);
            if free_at > now {
                pass.due(free_at);
                blocked = true;
                continue;
            }
            if self.is_being_written(id) {
                if let Some(t) = self.index.last_write(id) {
                    self.index
                        .hold(id, HoldReason::Writing, t + self.writer_quiet());
                }
                blocked = true;
                continue;
            }
            let (files_before, bytes_before) = (pass.files, pass.bytes);
            self.evict_one(id, Reason::Quota, pass);
            if pass.dry_run {
                gone.0 += pass.files - files_before;
                gone.1 += pass.bytes - bytes_before;
            } else if self.index.is_live(id) && self.index.file(id).held() {
                // Not deleted (locked, failing, changed): held with a retry.
                blocked = true;
            }
        }
        // Files held out of the queue (locked, failing, being written) are not in the walk,
        // but come back with their retry: the group is still to be trimmed then.
        if !blocked && !pass.dry_run && above(self.group_totals(g, gone)) {
            blocked = self
                .index
                .group_files(g)
                .into_iter()
                .any(|f| self.index.file(f).held());
        }
        // A dry run leaves the list as it found it (the group was listed).
        if pass.dry_run || (blocked && above(self.group_totals(g, gone))) {
            self.index.requeue_over_quota(g);
        }
    }
}
