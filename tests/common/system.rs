//! The machine around the tests: whether they run as root, sysctls set for one test and
//! restored, private namespaces, and how long the stress tests run.
//!
//! May touch: the `/proc/sys` files a caller sets through [`Sysctl`], restored on drop, and the
//! owner of the paths a caller hands to uid 65534 ([`chown_to_nobody`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    rustix_uid() == 0
}

fn rustix_uid() -> u32 {
    // `id -u`, as the harness always did (the effective uid, as the tests' skips expect).
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// Hands `path` and everything below it to uid/gid 65534 (`chown -R`; needs root).
pub fn chown_to_nobody(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Whether private user and mount namespaces work here (root and `unshare`).
pub fn have_unshare() -> bool {
    is_root()
        && Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// `CHARTD_STRESS=full` selects the long versions of the stress tests; anything else (CI)
/// the short ones.
pub fn full() -> bool {
    std::env::var("CHARTD_STRESS").is_ok_and(|v| v == "full")
}

/// `short` in CI, `long` with `CHARTD_STRESS=full`.
pub fn scale(short: usize, long: usize) -> usize {
    if full() {
        long
    } else {
        short
    }
}

/// Restores a sysctl (a `/proc/sys` file) when dropped, even if the test fails.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    pub fn set(path: &str, value: &str) -> Sysctl {
        let old = fs::read_to_string(path).unwrap().trim().to_string();
        fs::write(path, value).unwrap();
        Sysctl {
            path: path.into(),
            old,
        }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, &self.old);
    }
}
