//! The benchmark's own inotify watcher (a separate instance from chartd's), on a thread that
//! blocks in read(2) and timestamps every event the moment read returns: how the reaction phase
//! sees a deletion the instant the kernel reports it.
//!
//! May touch: the directories it is asked to watch (read-only) and its wake-up directory,
//! where it creates and removes one file to unblock its thread at drop.

use crate::util::{err, now_ns, Res};
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

pub struct Evt {
    pub t: Instant,
    pub wd: i32,
    pub mask: u32,
    pub cookie: u32,
    pub name: Vec<u8>,
}

pub struct Watcher {
    pub fd: Arc<OwnedFd>,
    pub rx: mpsc::Receiver<Evt>,
    pub stop: Arc<AtomicBool>,
    pub wake_dir: PathBuf,
    pub thread: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn new(wake_dir: &Path) -> Res<Watcher> {
        use rustix::fs::inotify;
        fs::create_dir_all(wake_dir).map_err(err("wake dir"))?;
        let fd = Arc::new(inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?);
        inotify::add_watch(&*fd, wake_dir, inotify::WatchFlags::CREATE)
            .map_err(err("inotify_add_watch"))?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (fd2, stop2) = (fd.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 256 * 1024];
            let mut r = inotify::Reader::new(fd2.as_fd(), &mut buf);
            loop {
                let ev = match r.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                };
                let e = Evt {
                    t: Instant::now(),
                    wd: ev.wd(),
                    mask: ev.events().bits(),
                    cookie: ev.cookie(),
                    name: ev
                        .file_name()
                        .map(|n| n.to_bytes().to_vec())
                        .unwrap_or_default(),
                };
                if tx.send(e).is_err() {
                    return;
                }
                if stop2.load(Ordering::Acquire) && r.is_buffer_empty() {
                    return;
                }
            }
        });
        Ok(Watcher {
            fd,
            rx,
            stop,
            wake_dir: wake_dir.to_path_buf(),
            thread: Some(thread),
        })
    }

    pub fn add(&self, path: &Path, flags: rustix::fs::inotify::WatchFlags) -> Res<i32> {
        rustix::fs::inotify::add_watch(&*self.fd, path, flags)
            .map_err(|e| format!("inotify_add_watch {}: {e}", path.display()))
    }

    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let p = self.wake_dir.join(format!("wake-{}", now_ns()));
        let _ = fs::File::create(&p);
        let _ = fs::remove_file(&p);
        if let Some(t) = self.thread.take() {
            // Drain so the thread is never blocked on the channel.
            while !t.is_finished() {
                self.drain();
                thread::sleep(Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}
