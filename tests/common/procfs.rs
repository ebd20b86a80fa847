//! What `/proc` says about a process: CPU time, memory fields, open descriptors, the watches
//! of its inotify fd (read here independently of chartd's own reader, which it checks).
//!
//! May touch: nothing; it only reads `/proc`. A process that has gone reads as zeros (the
//! callers compare samples, and a vanished daemon fails their other checks).

use std::fs;
use std::path::Path;
use std::time::Duration;

/// utime + stime of a process, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields count from after the last ')'.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state is field 3, so utime (14) and stime (15) are at indices 11 and 12.
    get(11) + get(12)
}

/// [`cpu_ticks`] in seconds (10 ms resolution; USER_HZ is 100 on every Linux this runs on).
pub fn cpu_secs(pid: i32) -> f64 {
    cpu_ticks(pid) as f64 / 100.0
}

/// CPU seconds the process used over `quiet`.
pub fn cpu_over(pid: i32, quiet: Duration) -> f64 {
    let a = cpu_ticks(pid);
    std::thread::sleep(quiet);
    (cpu_ticks(pid) - a) as f64 / 100.0
}

/// A `/proc/PID/status` field in KiB (e.g. `VmRSS`).
pub fn proc_status_kib(pid: i32, field: &str) -> u64 {
    kib_field(Path::new(&format!("/proc/{pid}/status")), field)
}

/// A `Key:   123 kB` field of a `/proc` file such as `/proc/PID/status` or `/proc/meminfo`;
/// 0 if the file or the field is missing.
pub fn kib_field(path: &Path, field: &str) -> u64 {
    let s = fs::read_to_string(path).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Whether the process runs (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = s.rsplit_once(')').map(|x| x.1.trim_start()).unwrap_or("");
    !state.is_empty() && !state.starts_with('Z') && !state.starts_with('X')
}

/// chartd's inotify fd and its watches as the kernel lists them: (wd, inode) of every
/// `inotify wd:` line of `/proc/PID/fdinfo/FD`.
pub fn inotify_watches(pid: i32) -> (i32, Vec<(i32, u64)>) {
    for e in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let Ok(t) = fs::read_link(e.path()) else {
            continue;
        };
        if !t.to_string_lossy().contains("inotify") {
            continue;
        }
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let wds = info
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap_or_else(|| panic!("no {k} in {l:?}"))
                };
                // Both in hex (the kernel prints `wd:%x ino:%lx`).
                let wd = i32::from_str_radix(field("wd:"), 16);
                let ino = u64::from_str_radix(field("ino:"), 16);
                match (wd, ino) {
                    (Ok(wd), Ok(ino)) => (wd, ino),
                    _ => panic!("unexpected {l:?} in /proc/{pid}/fdinfo/{fd}:\n{info}"),
                }
            })
            .collect();
        return (fd, wds);
    }
    panic!("chartd ({pid}) has no inotify fd");
}
