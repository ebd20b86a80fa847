//! What a result is about: the machine (CPU, kernel, OS, memory, the bench file system), the
//! commit measured, and the UTC date, for the JSON results and the line above the table.
//!
//! May touch: nothing; it reads `/proc`, `/etc/os-release` and runs `git` / `findmnt`.

use crate::common::kib_field;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;

/// The repository, for `git` (the commit measured) and for where results are written.
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

pub fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(MANIFEST_DIR)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let base = std::env::var("CHARTD_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let fstype = sh("findmnt", &["-no", "FSTYPE", "-T", &base]);
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "os": os,
        "cpus": thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "mem_total_kb": kib_field(Path::new("/proc/meminfo"), "MemTotal"),
        "bench_fs": fstype,
        "max_user_watches_default": fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").ok().map(|s| s.trim().to_string()),
    })
}

/// UTC date and time, from the Unix epoch (days-to-civil, H. Hinnant).
pub fn utc(ts: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (ts / 86400) as i64;
    let secs = ts % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}
