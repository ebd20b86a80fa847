//! Unit tests of eviction on real temporary directories: the latency trigger, and the
//! review's cases of blocked quota trims.
//!
//! May touch: files in temporary directories it creates (deleted by the eviction under test).

mod trigger {
    use super::super::*;
    use crate::watcher::Watcher;

    /// A root of four 10-byte charts, an hour old, limited to 20 bytes (low watermark 100 %):
    /// a pass deletes two of them.
    fn over_limit() -> (tempfile::TempDir, RootState, Watcher) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            let p = dir.path().join(format!("g/c{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(10).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
        }
        let mut rc = crate::policy::tests::test_root(&dir.path().to_string_lossy());
        rc.max_size = Some(20);
        rc.low_watermark = 1.0;
        rc.prune_empty_dirs = false;
        let (root, w) = super::crawled(rc);
        (dir, root, w)
    }

    #[test]
    fn eviction_latency_counts_from_the_trigger() {
        // The owner received the batch that crossed the limit 2 s before the pass ran: each
        // deletion's latency includes those 2 s.
        let Some(received) = Instant::now().checked_sub(Duration::from_secs(2)) else {
            return; // a machine up for less than 2 s
        };
        let (_dir, mut root, mut w) = over_limit();
        let mut pass = Pass::new(false, false).triggered_at(received);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 2);
        let h = &root.counters.latency;
        assert_eq!(h.count, 2);
        assert!(h.sum_seconds >= 4.0, "{h:?}");
        assert_eq!(h.buckets.last(), Some(&0), "{h:?}"); // none within 1 s

        // Without a trigger, a pass counts from its own start.
        let (_dir, mut root, mut w) = over_limit();
        let mut pass = Pass::new(false, false);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 2);
        assert!(root.counters.latency.sum_seconds < 2.0);
    }
}

mod review {
    use super::super::*;
    use crate::watcher::Watcher;

    /// Group `sess-1` of four 10-byte charts, `age_s` old, with a quota of 2 files (low
    /// watermark 100 %), grace `grace_s`.
    fn over_quota(age_s: u64, grace_s: u64) -> (tempfile::TempDir, RootState, Watcher) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            let p = dir.path().join(format!("sess-1/c{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(10).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(age_s + 10 - i))
                .unwrap();
        }
        let mut rc = crate::policy::tests::test_root(&dir.path().to_string_lossy());
        rc.group_max_files = Some(2);
        rc.grace = Duration::from_secs(grace_s);
        rc.low_watermark = 1.0;
        rc.prune_empty_dirs = false;
        let (root, w) = super::crawled(rc);
        (dir, root, w)
    }

    fn on_disk(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path().join("sess-1"))
            .unwrap()
            .count()
    }

    /// Review: a trim blocked by grace lists its group again for the next pass, but a dry run
    /// (`cleanup --dry-run`) takes the group off the list (`take_over_quota`) and, being a
    /// dry run, does not list it again: the real quota is then never enforced until the
    /// group grows again. A dry run must leave the daemon's state as it found it.
    #[test]
    fn review_dry_run_keeps_a_blocked_quota_listed() {
        let (_dir, mut root, mut w) = over_quota(0, 3600);
        let mut pass = Pass::new(false, false);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 0, "everything is inside grace");
        assert!(root.index.has_over_quota(), "blocked: listed again");
        let mut dry = Pass::new(true, true);
        root.evict_pass(&mut dry);
        assert!(
            root.index.has_over_quota(),
            "a dry run took the over-quota group off the list for good"
        );
    }

    /// Review: a trim whose candidates are held (a writer's flock, a failing unlink, a
    /// writer's hold from an earlier pass) is skipped without counting as blocked, so the group
    /// is not listed again: once the holds are released the group stays over its quota until
    /// a new file arrives in it (a finished session's group, never).
    #[test]
    fn review_quota_trim_blocked_by_held_files_is_retried() {
        let (dir, mut root, mut w) = over_quota(3600, 0);
        // The three oldest are held (as a Locked outcome or a failing unlink would leave them).
        let g = root.index.children(crate::index::ROOT)[0];
        let mut files = root.index.group_queue(g);
        files.truncate(3);
        for &f in &files {
            root.index.hold(
                f,
                HoldReason::Locked,
                Instant::now() + Duration::from_secs(30),
            );
        }
        let mut pass = Pass::new(false, false);
        root.enforce(&mut w, &mut pass);
        assert_eq!(pass.files, 1, "only the newest could go");
        assert_eq!(on_disk(&dir), 3, "still over the quota of 2");
        // The locks are released (their retry comes).
        for &f in &files {
            root.index.unhold(f);
        }
        let mut pass = Pass::new(false, false);
        root.enforce(&mut w, &mut pass);
        assert_eq!(
            on_disk(&dir),
            2,
            "the group is still over its quota and no pass will ever trim it"
        );
    }
}

use super::*;
use crate::watcher::Watcher;

/// A root crawled once with a disabled watcher, for the tests above.
fn crawled(rc: crate::config::RootConfig) -> (RootState, Watcher) {
    let mut root = RootState::for_tests(rc);
    let mut w = Watcher::disabled();
    root.resync_all(&mut w);
    (root, w)
}
