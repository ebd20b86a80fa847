//! Files for chartd to govern: sparse files with chosen sizes and mtimes, application-style
//! writes, walks of the managed files on disk, and canaries that must survive.
//!
//! May touch: only the paths it is given (and their parent directories, which it creates).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Creates (truncating) a sparse file of `size` bytes at `path`, with `mtime` if given. The
/// parent must exist. One open, one `ftruncate`, one close: cheap enough for trees of a million
/// files, and what the benchmark's writers do too.
pub fn sparse_file(path: &Path, size: u64, mtime: Option<SystemTime>) -> Result<(), String> {
    let f = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(size)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(t) = mtime {
        f.set_modified(t)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Creates a file of `size` bytes (sparse) with its mtime `age` in the past.
pub fn file(path: &Path, size: u64, age: Duration) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    sparse_file(path, size, Some(SystemTime::now() - age)).unwrap();
}

/// Writes a file the way an application does (write, close), with real data.
pub fn write_file(path: &Path, size: usize) {
    // chartd may prune the directory (emptied by eviction) between the mkdir and the write,
    // as it may for any application: retry as one would.
    for _ in 0..5 {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        match fs::write(path, vec![7u8; size]) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => return r.unwrap(),
        }
    }
    panic!("cannot write {}", path.display());
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// Managed files under `root` by a plain walk: (count, bytes) of files matching `*.png`.
pub fn walk_png(root: &Path) -> (u64, u64) {
    let files = disk_png(root);
    (files.len() as u64, files.values().sum())
}

/// Managed (`*.png`) files on disk under `root`: relative path → size. chartd's private names
/// (a file kept off its name, see README "Deleting safely": `.chartd-evict.PID.N=b7.png`) are
/// never managed nor counted, so they are left out.
pub fn disk_png(root: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file()
                && e.path().extension().is_some_and(|x| x == "png")
                && !chartd::fsops::is_private_name(&e.file_name())
            {
                if let Ok(m) = e.metadata() {
                    let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, m.len());
                }
            }
        }
    }
    out
}

/// A file that must survive: checked by content and inode.
pub struct Canary {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub ino: u64,
}

impl Canary {
    /// Creates the canary (an old file, so any age or size rule would pick it first).
    pub fn plant(path: &Path, age: Duration) -> Canary {
        use std::os::unix::fs::MetadataExt;
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).unwrap();
        }
        let content = format!("canary {}\n", path.display()).into_bytes();
        fs::write(path, &content).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        let ino = fs::metadata(path).unwrap().ino();
        Canary {
            path: path.to_path_buf(),
            content,
            ino,
        }
    }

    /// `Err` with what is wrong, if the canary was deleted, replaced or changed.
    pub fn check(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        if m.ino() != self.ino || !m.is_file() {
            return Err(format!(
                "{}: replaced (inode {} != {})",
                self.path.display(),
                m.ino(),
                self.ino
            ));
        }
        let c = fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if c != self.content {
            return Err(format!("{}: content changed", self.path.display()));
        }
        Ok(())
    }
}

/// Asserts every canary is intact; returns how many were checked.
pub fn check_canaries(c: &[Canary]) -> usize {
    let bad: Vec<String> = c.iter().filter_map(|c| c.check().err()).collect();
    assert!(
        bad.is_empty(),
        "{} canaries lost: {:?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
    c.len()
}

/// The control tests' small tree: three groups (`AAPL_1d` 4 charts, `MSFT_1h` 3, `sess-42` 2)
/// of 100 KiB charts, 1, 2, 3, … hours old.
pub fn three_groups(root: &Path) {
    for (g, n) in [("AAPL_1d", 4), ("MSFT_1h", 3), ("sess-42", 2)] {
        for i in 0..n {
            file(
                &root.join(format!("{g}/c{i}.png")),
                100 * 1024,
                hours(1 + i),
            );
        }
    }
}
