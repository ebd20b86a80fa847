//! The directory handles deletion and refresh go through: both ways of resolving beneath the
//! root refuse what they must, and `O_PATH` handles queue no inotify events.

use super::*;
use rustix::fs::inotify;
use std::fs;

fn tree() -> (tempfile::TempDir, RootDir) {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("root/a/b")).unwrap();
    fs::write(t.path().join("root/a/b/chart.png"), b"x").unwrap();
    fs::create_dir(t.path().join("outside")).unwrap();
    fs::write(t.path().join("outside/keep.png"), b"x").unwrap();
    std::os::unix::fs::symlink(t.path().join("outside"), t.path().join("root/a/link")).unwrap();
    let root = RootDir::open_nofollow(&t.path().join("root")).unwrap();
    (t, root)
}

#[test]
fn both_resolutions_open_directories_and_refuse_symlinks_and_dotdot() {
    let (_t, root) = tree();
    for mode in [OFlags::RDONLY, OFlags::PATH] {
        for walk in [false, true] {
            let open = |c: &[&str]| {
                if walk {
                    root.walk_beneath(c, mode)
                } else {
                    root.open_beneath(c, mode)
                }
            };
            let fd = open(&["a", "b"]).unwrap();
            assert_eq!(stat_at(&fd, OsStr::new("chart.png")).unwrap().size, 1);
            assert!(
                open(&["a", "link"]).is_err(),
                "symlink followed ({mode:?}, walk {walk})"
            );
            assert!(
                open(&["..", "outside"]).is_err(),
                "escaped ({mode:?}, walk {walk})"
            );
            assert!(open(&["a", "missing"]).is_err());
        }
    }
}

#[test]
fn deletion_through_an_o_path_handle() {
    let (t, root) = tree();
    let fd = root.open_dir_path(&["a", "b"]).unwrap();
    let m = stat_at(&fd, OsStr::new("chart.png")).unwrap();
    let expect = Expect {
        ino: m.ino,
        size: m.size,
        mtime_ns: m.mtime_ns,
    };
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), expect).unwrap();
    assert!(matches!(r, DeleteOutcome::Deleted { .. }), "{r:?}");
    assert!(!t.path().join("root/a/b/chart.png").exists());
    assert!(t.path().join("outside/keep.png").exists());
}

/// The reason `open_dir_path` exists: opening for reading queues IN_OPEN on the directory's
/// watch (notify asks for IN_OPEN), an `O_PATH` open queues nothing.
#[test]
fn o_path_handles_queue_no_inotify_events() {
    let (t, root) = tree();
    let ino =
        inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    inotify::add_watch(&ino, t.path().join("root/a/b"), inotify::WatchFlags::OPEN).unwrap();
    let count = || {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut r = inotify::Reader::new(&ino, &mut buf);
        let mut n = 0;
        while r.next().is_ok() {
            n += 1;
        }
        n
    };
    drop(root.open_dir_path(&["a", "b"]).unwrap());
    assert_eq!(count(), 0, "an O_PATH open queued an event");
    drop(root.open_dir(&["a", "b"]).unwrap());
    assert!(
        count() > 0,
        "the watch saw nothing: the test proves nothing"
    );
}
