//! What the benchmark changes on the machine, and undoing it: the daemons it started (killed
//! by PID at exit or on SIGINT/SIGTERM/SIGHUP), `fs.inotify.max_user_watches` (raised for the
//! run, restored), the page cache (`--cold` drops it) and a private tmpfs (unmounted).
//!
//! May touch: the PIDs registered here (only daemons this process spawned), the sysctl files
//! it raised, `/proc/sys/vm/drop_caches`, and the tmpfs mount points it mounted.

use crate::util::{err, Res};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;

static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SYSCTL_RESTORE: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
static MOUNTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The lists stay usable after a panic elsewhere: cleanup must still find what to undo.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a daemon this process spawned, so that a signal or the end of the run kills it.
pub fn register_child(pid: i32) {
    locked(&CHILDREN).push(pid);
}

/// Forgets a daemon that has exited (its PID may be reused by another process).
pub fn forget_child(pid: i32) {
    locked(&CHILDREN).retain(|&p| p != pid);
}

pub fn cleanup_everything() {
    if let Ok(mut c) = CHILDREN.lock() {
        for pid in c.drain(..) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
    if let Ok(mut s) = SYSCTL_RESTORE.lock() {
        for (path, val) in s.drain(..).rev() {
            match fs::write(&path, &val) {
                Ok(()) => eprintln!("restored {} = {}", path.display(), val.trim()),
                Err(e) => eprintln!("could not restore {}: {e}", path.display()),
            }
        }
    }
    unmount_all();
}

pub fn install_signal_cleanup() -> Res<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut sigs =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(err("signals"))?;
    thread::spawn(move || {
        if let Some(s) = sigs.forever().next() {
            eprintln!("\nsignal {s}: cleaning up");
            cleanup_everything();
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Raises a sysctl for the run; restores it on drop (and on a signal, through `cleanup_everything`).
pub struct SysctlGuard;

impl SysctlGuard {
    pub fn raise_at_least(path: &str, want: u64) -> Res<Option<SysctlGuard>> {
        let p = PathBuf::from(path);
        let cur = fs::read_to_string(&p).map_err(err(path))?;
        let v: u64 = cur.trim().parse().map_err(err(path))?;
        if v >= want {
            return Ok(None);
        }
        locked(&SYSCTL_RESTORE).push((p.clone(), cur.clone()));
        fs::write(&p, format!("{want}\n")).map_err(err(path))?;
        eprintln!("raised {path} from {} to {want} for this run", cur.trim());
        Ok(Some(SysctlGuard))
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = SYSCTL_RESTORE.lock() {
            for (path, val) in s.drain(..).rev() {
                if fs::write(&path, &val).is_ok() {
                    eprintln!("restored {} = {}", path.display(), val.trim());
                }
            }
        }
    }
}

pub fn drop_caches() -> Res<()> {
    rustix::fs::sync();
    fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(err("drop_caches (needs root)"))
}

/// A private tmpfs for the figures that need more file creations per second than the disk
/// gives (overshoot at 10k files/s, throughput ≥ 50k files/s); unmounted on drop and on signals.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path) -> Res<Tmpfs> {
        fs::create_dir_all(path).map_err(err("tmpfs dir"))?;
        let _ = Command::new("umount")
            .arg(path)
            .stderr(Stdio::null())
            .status();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=8g,nr_inodes=4m,mode=0755",
                "chartd-bench",
            ])
            .arg(path)
            .status()
            .map_err(err("mount"))?;
        if !st.success() {
            return Err(format!(
                "mount tmpfs on {} failed (needs root)",
                path.display()
            ));
        }
        locked(&MOUNTS).push(path.to_path_buf());
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

fn unmount_all() {
    if let Ok(mut m) = MOUNTS.lock() {
        for p in m.drain(..) {
            let _ = Command::new("umount").arg(&p).status();
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(mut m) = MOUNTS.lock() {
            m.retain(|p| p != &self.path);
        }
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
