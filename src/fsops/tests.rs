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
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), expect, || true).unwrap();
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

fn expect_of(fd: &OwnedFd, name: &str) -> Expect {
    let m = stat_at(fd, OsStr::new(name)).unwrap();
    Expect {
        ino: m.ino,
        size: m.size,
        mtime_ns: m.mtime_ns,
    }
}

fn private_names_in(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".chartd-evict."))
        .collect()
}

/// The deletion window of issue #7 (item 6): the decision was about the old chart, and a
/// fresh one took its name (renamed over it, or rewritten in place with O_TRUNC) before the
/// deletion: the fresh chart must survive, under its name, and nothing private is left.
#[test]
fn a_chart_replaced_after_the_decision_is_kept() {
    let (t, root) = tree();
    let dir = t.path().join("root/a/b");
    let fd = root.open_dir_path(&["a", "b"]).unwrap();
    // Renamed over.
    let old = expect_of(&fd, "chart.png");
    fs::write(dir.join("tmp.png"), b"fresh chart").unwrap();
    fs::rename(dir.join("tmp.png"), dir.join("chart.png")).unwrap();
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), old, || true).unwrap();
    assert!(matches!(r, DeleteOutcome::Changed(_)), "{r:?}");
    assert_eq!(fs::read(dir.join("chart.png")).unwrap(), b"fresh chart");
    // Rewritten in place (same inode, new size and mtime), as matplotlib's savefig does.
    let old = expect_of(&fd, "chart.png");
    std::thread::sleep(std::time::Duration::from_millis(5));
    fs::write(dir.join("chart.png"), b"regenerated, longer chart").unwrap();
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), old, || true).unwrap();
    assert!(matches!(r, DeleteOutcome::Changed(_)), "{r:?}");
    assert_eq!(
        fs::read(dir.join("chart.png")).unwrap(),
        b"regenerated, longer chart"
    );
    assert!(private_names_in(&dir).is_empty());
    // Positive control: with the right identity it goes, and nothing private is left.
    let now = expect_of(&fd, "chart.png");
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), now, || true).unwrap();
    assert!(matches!(r, DeleteOutcome::Deleted { .. }), "{r:?}");
    assert!(!dir.join("chart.png").exists());
    assert!(private_names_in(&dir).is_empty());
}

/// A writer's `flock` keeps the file, and a symlink at the name is never followed.
#[test]
fn locked_files_and_symlinks_are_not_deleted() {
    let (t, root) = tree();
    let dir = t.path().join("root/a/b");
    let fd = root.open_dir_path(&["a", "b"]).unwrap();
    let e = expect_of(&fd, "chart.png");
    let f = fs::File::open(dir.join("chart.png")).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared).unwrap();
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), e, || true).unwrap();
    assert_eq!(r, DeleteOutcome::Locked);
    assert!(dir.join("chart.png").exists());
    drop(f);
    std::os::unix::fs::symlink(t.path().join("outside/keep.png"), dir.join("link.png")).unwrap();
    let outside = stat_path(&t.path().join("outside/keep.png")).unwrap();
    let e = Expect {
        ino: outside.ino,
        size: outside.size,
        mtime_ns: outside.mtime_ns,
    };
    let r = delete_file(&root, &fd, OsStr::new("link.png"), e, || true).unwrap();
    assert!(matches!(r, DeleteOutcome::Changed(_)), "{r:?}");
    assert!(t.path().join("outside/keep.png").exists());
    assert!(private_names_in(&dir).is_empty());
}

#[test]
fn leftovers_are_only_private_regular_files() {
    let (t, root) = tree();
    let dir = t.path().join("root/a/b");
    let fd = root.open_dir_path(&["a", "b"]).unwrap();
    fs::write(dir.join(".chartd-evict.1.0"), b"x").unwrap();
    let m = stat_at(&fd, OsStr::new(".chartd-evict.1.0")).unwrap();
    let c = stat_at(&fd, OsStr::new("chart.png")).unwrap();
    assert!(!remove_leftover(&root, &fd, OsStr::new("chart.png"), c.ino).unwrap());
    assert!(remove_leftover(&root, &fd, OsStr::new(".chartd-evict.1.0"), m.ino).unwrap());
    assert!(dir.join("chart.png").exists());
    assert!(!dir.join(".chartd-evict.1.0").exists());
}

/// A directory renamed out of the root after its fd was opened: the fd follows it, so the
/// deletion checks, right before the unlink, that the directory is still beneath the root
/// (the model test found a chart deleted 7 ms after its group was moved away).
#[test]
fn a_directory_moved_out_of_the_root_loses_nothing() {
    let (t, root) = tree();
    let fd = root.open_dir_path(&["a", "b"]).unwrap();
    let dir_ino = stat_fd(&fd).unwrap().ino;
    let e = expect_of(&fd, "chart.png");
    fs::rename(t.path().join("root/a/b"), t.path().join("outside/b")).unwrap();
    let beneath = || {
        root.open_dir_path(&["a", "b"])
            .and_then(|fd| stat_fd(&fd))
            .is_ok_and(|m| m.ino == dir_ino)
    };
    let r = delete_file(&root, &fd, OsStr::new("chart.png"), e, beneath).unwrap();
    assert_eq!(r, DeleteOutcome::Gone);
    assert!(t.path().join("outside/b/chart.png").exists());
    assert!(private_names_in(&t.path().join("outside/b")).is_empty());
}

/// Only the exact form chartd makes is private: anything else that merely looks like it is
/// somebody's file, never a leftover to remove.
#[test]
fn private_names_are_exactly_the_form_chartd_makes() {
    for n in [
        ".chartd-evict.1.0",
        ".chartd-evict.12345.1",
        ".chartd-evict.4242.ff0a",
    ] {
        assert!(is_private_name(OsStr::new(n)), "{n}");
    }
    for n in [
        ".chartd-evict.",
        ".chartd-evict",
        ".chartd-evictX",
        "chartd-evict.1.0",
        ".chartd-evict.png",
        ".chartd-evict.notes.txt",
        ".chartd-evict.12345.1.csv",
        ".chartd-evict.12345.",
        ".chartd-evict..1",
        ".chartd-evict.12.zz",
        ".chartd-evict.12.FF",
        ".chartd-evict.x1.1",
    ] {
        assert!(!is_private_name(OsStr::new(n)), "{n}");
    }
    // What chartd makes is private, whatever its pid and counter.
    for _ in 0..3 {
        assert!(is_private_name(&delete::private_name()));
    }
}
