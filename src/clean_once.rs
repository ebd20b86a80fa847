//! `chartd clean --once`: crawl every root, enforce every limit once, print what was (or
//! would be) removed, exit. For cron users, and for trying a policy before running the daemon.
//!
//! May touch: the config (through `config::load`), each configured root through `RootState` (one
//! crawl, one unlimited or dry-run eviction pass), stdout and stderr; no watches, no socket, no
//! root lock.

use crate::config::{self, CliOverrides};
use crate::evict::Pass;
use crate::root::{Progress, RootState};
use crate::watcher::Watcher;
use std::path::Path;
use std::sync::Arc;

pub fn run(config_path: Option<&Path>, dry_run: bool) -> i32 {
    let cfg = match config::load(config_path, &CliOverrides::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chartd: {e}");
            return 1;
        }
    };
    if !cfg.cleanup_enabled && !dry_run {
        eprintln!("chartd: cleanup_enabled is false: nothing is deleted (use --dry-run to see what would be)");
        return 1;
    }
    let progress = Arc::new(Progress::default());
    let mut watcher = Watcher::disabled();
    let (mut files, mut bytes, mut failed) = (0u64, 0u64, false);
    let verb = if dry_run { "would remove" } else { "removed" };
    for rc in &cfg.roots {
        let mut root = match RootState::new(rc.clone(), true, cfg.resync_interval, progress.clone())
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("chartd: {e}");
                return 1;
            }
        };
        // A dry run deletes nothing, leftovers of interrupted deletions included.
        root.resync_all_with(&mut watcher, !dry_run);
        if let Some(why) = &root.degraded {
            eprintln!("chartd: {why}");
            failed = true;
            continue;
        }
        let mut pass = Pass::new(dry_run, true);
        pass.unlimited();
        root.enforce(&mut watcher, &mut pass);
        for r in &pass.removals {
            println!(
                "{verb} {} ({} bytes, age {}, reason {})",
                r.path.display(),
                r.bytes,
                humantime::format_duration(std::time::Duration::from_secs(r.age.as_secs())),
                r.reason.as_str()
            );
        }
        if root.counters.errors > 0 {
            failed = true;
        }
        files += pass.files;
        bytes += pass.bytes;
        // A dry run leaves the index as it is, so what would remain is the total minus what
        // would go; after a real pass the index already holds only what remains.
        let (left_files, left_bytes, left) = if dry_run {
            (
                root.index.total_files.saturating_sub(pass.files),
                root.index.total_bytes.saturating_sub(pass.bytes),
                "would remain; nothing was deleted",
            )
        } else {
            (root.index.total_files, root.index.total_bytes, "remain")
        };
        println!(
            "{}: {verb} {} files, {} bytes; {left_files} files ({left_bytes} bytes) {left}",
            rc.path.display(),
            pass.files,
            pass.bytes,
        );
    }
    if cfg.roots.len() > 1 {
        println!("total: {verb} {files} files, {bytes} bytes");
    }
    i32::from(failed)
}
