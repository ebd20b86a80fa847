//! Phase `reaction`: a writer's close() → chartd's unlink of the victim that pays for it, on a
//! live tree, next to a minimal inotify reactor doing the same job in the same run. With two
//! variants (a baseline binary, or rules against none) the samples are cut into blocks, one
//! daemon per variant per block, the variants taking turns; the tree is restored after each.
//!
//! May touch: the live tree's new-file directory and victims (the live phase repairs them), its
//! scratch directory (reference files), and nothing of the daemon but its status.

use crate::compare::{block, row, row_pct, turn_order, Better};
use crate::daemon::Daemon;
use crate::floor::{delete, open_dir, Protocol};
use crate::inotify::{Evt, Watcher};
use crate::live::{restore, start_live, LiveVariant, NEW_DIR};
use crate::opts::Opts;
use crate::tree::{make_file, Tree, CHARTS};
use crate::util::{err, pct, stats, Res};
use crate::victim::Tracker;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// A minimal reactor, the reference for reaction latency: on IN_CLOSE_WRITE of `w<i>.png` in
/// `dir` it deletes `v<i>.png` there by `proto` (a plain unlink, or the airtight protocol,
/// `floor::delete`). The floor any inotify-driven deleter using that protocol pays on this
/// machine right now (two inotify wake-ups, the deletion, and reading the events the deletion
/// itself queues: see `CLEANER_WATCH`).
pub fn start_reactor(dir: &Path, proto: Protocol) -> Res<(thread::JoinHandle<()>, PathBuf)> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).map_err(err("inotify"))?;
    inotify::add_watch(&fd, dir, CLEANER_WATCH).map_err(err("inotify_add_watch"))?;
    let dfd = open_dir(dir)?;
    let h = thread::spawn(move || {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut r = inotify::Reader::new(fd.as_fd(), &mut buf);
        let mut seq = 0;
        loop {
            let Ok(ev) = r.next() else { return };
            if !ev.events().contains(inotify::ReadFlags::CLOSE_WRITE) {
                continue; // its own deletions' events: read, as a cleaner reads them
            }
            let Some(name) = ev.file_name() else { continue };
            let name = name.to_string_lossy();
            if name == "stop" {
                return;
            }
            if let Some(i) = name.strip_prefix('w') {
                seq += 1;
                let _ = delete(&dfd, std::ffi::OsStr::new(&format!("v{i}")), proto, seq);
            }
        }
    });
    Ok((h, dir.join("stop")))
}

/// What a reference reactor watches its directory for: what an inotify-driven cleaner that
/// keeps an index must watch (creations, writes, closes, renames, deletions), so that it is
/// woken by its own deletions' events as chartd is (one IN_DELETE for a plain unlink; the
/// rename's IN_MOVED_FROM / IN_MOVED_TO and the IN_DELETE of the private name for the airtight
/// protocol). Not IN_OPEN, which notify adds and chartd ignores.
pub const CLEANER_WATCH: rustix::fs::inotify::WatchFlags =
    rustix::fs::inotify::WatchFlags::CLOSE_WRITE
        .union(rustix::fs::inotify::WatchFlags::CREATE)
        .union(rustix::fs::inotify::WatchFlags::MODIFY)
        .union(rustix::fs::inotify::WatchFlags::MOVED_FROM)
        .union(rustix::fs::inotify::WatchFlags::MOVED_TO)
        .union(rustix::fs::inotify::WatchFlags::DELETE);

/// One reference reactor of the phase, shared by every block.
struct RefReactor {
    proto: Protocol,
    dir: PathBuf,
    wd: i32,
    next: usize,
    /// All its samples (ms), in the order taken.
    ms: Vec<f64>,
    handle: Option<(thread::JoinHandle<()>, PathBuf)>,
}

/// What one variant's samples measured; latencies in ms, one vector per block.
#[derive(Default)]
pub struct ReactionRuns {
    /// close() → the victim unlinked (IN_DELETE of its private name, or of its name).
    pub gone_ms: Vec<Vec<f64>>,
    /// close() → the victim's name gone (IN_MOVED_FROM, or IN_DELETE of the name).
    pub off_name_ms: Vec<Vec<f64>>,
    /// open(O_CREAT) → the victim unlinked (not clamped: chartd may evict before close(), as
    /// soon as the new file's size is written).
    pub create_ms: Vec<Vec<f64>>,
    /// The reference reactors' samples taken next to each block of this variant (plain
    /// unlink, airtight), one vector per block.
    pub ref_plain_ms: Vec<Vec<f64>>,
    pub ref_airtight_ms: Vec<Vec<f64>>,
    /// Whether this variant's deletions went through a private name (the airtight protocol):
    /// which reference is the floor of its protocol.
    pub airtight: bool,
    pub early: usize,
    pub missed: usize,
    pub files_removed: u64,
}

/// The reaction samples of every variant, and the reference reactor's, interleaved with them.
pub struct Reaction {
    pub runs: Vec<ReactionRuns>,
    /// The plain-unlink reference reactor, every sample.
    pub reference_ms: Vec<f64>,
    /// The airtight reference reactor, every sample.
    pub reference_airtight_ms: Vec<f64>,
}

/// The reference reactor and the harness's watcher, shared by every block.
struct Ctx<'a> {
    w: Watcher,
    refs: Vec<RefReactor>,
    new_dir: &'a Path,
    new_seq: usize,
}

/// Waits (up to 5 s) for the victim (`wd`, `name`) to be off its name and gone; returns the
/// times of both, and whether it went through a private name.
fn wait_gone(w: &Watcher, wd: i32, name: &[u8]) -> Option<(Instant, Instant, bool)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut t = Tracker::new();
    let mut off = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e: Evt = w.rx.recv_timeout(left).ok()?;
        let s = t.on_event(e.wd, e.mask, e.cookie, &e.name, |ewd, n| {
            (ewd == wd && n == name).then_some(())
        });
        if s.off_name.is_some() {
            off.get_or_insert(e.t);
        }
        if s.gone.is_some() {
            let private = crate::victim::is_private(&e.name);
            return Some((off.unwrap_or(e.t), e.t, private));
        }
    }
}

/// `count` samples against daemon `d`: each writes a file of the next victim's size into the
/// new-file directory and times its `close()` to the victim's deletion; then the same against
/// the reference reactor. The victims are the first `count` of `order`.
fn samples(
    tree: &Tree,
    d: &Daemon,
    order: &[u32],
    count: usize,
    c: &mut Ctx,
    r: &mut ReactionRuns,
) -> Res<()> {
    use rustix::fs::inotify::WatchFlags;
    let (mut gone, mut off, mut create) = (Vec::new(), Vec::new(), Vec::new());
    let mut refs = [Vec::new(), Vec::new()];
    for &v in &order[..count] {
        // chartd
        let v = v as usize;
        let flags = WatchFlags::DELETE | WatchFlags::MOVED_FROM | WatchFlags::MOVED_TO;
        let wd = c.w.add(&tree.dir_path(v / 4), flags)?;
        c.w.drain();
        let size = tree.size(v);
        let t_create = Instant::now();
        let p = c.new_dir.join(format!("n{:06}.png", c.new_seq));
        c.new_seq += 1;
        let f = fs::File::create(p).map_err(err("write"))?;
        f.set_len(size).map_err(err("set_len"))?;
        let t_close = Instant::now();
        drop(f);
        match wait_gone(&c.w, wd, CHARTS[v % 4].as_bytes()) {
            Some((t_off, t, private)) => {
                if t < t_close {
                    r.early += 1;
                }
                r.airtight |= private;
                let since = |t: Instant| t.saturating_duration_since(t_close).as_secs_f64() * 1e3;
                gone.push(since(t));
                off.push(since(t_off));
                create.push((t - t_create).as_secs_f64() * 1e3);
            }
            None => {
                r.missed += 1;
                if r.missed > 5 {
                    return Err(format!(
                        "victim {} not deleted within 5 s (more than 5 misses); chartd log:\n{}",
                        tree.file_path(v).display(),
                        d.log_tail()
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(3));
        // the reference reactors, each deleting a file of the same size its own way
        for (k, rf) in c.refs.iter_mut().enumerate() {
            c.w.drain();
            let j = rf.next;
            rf.next += 1;
            let f = fs::File::create(rf.dir.join(format!("w{j}.png"))).map_err(err("write"))?;
            f.set_len(size).map_err(err("set_len"))?;
            let t_close = Instant::now();
            drop(f);
            if let Some((_, t, _)) = wait_gone(&c.w, rf.wd, format!("v{j}.png").as_bytes()) {
                let ms = (t - t_close).as_secs_f64() * 1e3;
                rf.ms.push(ms);
                refs[k].push(ms);
            }
            thread::sleep(Duration::from_millis(3));
        }
    }
    r.ref_plain_ms.push(std::mem::take(&mut refs[0]));
    r.ref_airtight_ms.push(std::mem::take(&mut refs[1]));
    r.gone_ms.push(gone);
    r.off_name_ms.push(off);
    r.create_ms.push(create);
    Ok(())
}

/// `--reaction-n` samples per variant, in blocks (one daemon per variant per block, the
/// variants taking turns; the tree restored after each daemon), each sample followed by one of
/// the reference reactor.
pub fn reaction(o: &Opts, tree: &Tree, variants: &[LiveVariant]) -> Res<Reaction> {
    use rustix::fs::inotify::WatchFlags;
    let samples = o.reaction_n.min(tree.n / 4);
    let blocks = if variants.len() > 1 {
        o.reaction_blocks.min(samples)
    } else {
        1
    };
    let scratch = o
        .base
        .join("scratch")
        .join(format!("{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let w = Watcher::new(&scratch.join("wake-r"))?;
    let mut refs = Vec::new();
    for proto in [Protocol::Plain, Protocol::Airtight] {
        let dir = scratch.join(match proto {
            Protocol::Plain => "ref",
            Protocol::Airtight => "ref-airtight",
        });
        fs::create_dir_all(&dir).map_err(err("ref dir"))?;
        for j in 0..samples * variants.len() {
            make_file(&dir.join(format!("v{j}.png")), 1, None)?;
        }
        let handle = start_reactor(&dir, proto)?;
        let wd = w.add(&dir, WatchFlags::DELETE)?;
        refs.push(RefReactor {
            proto,
            dir,
            wd,
            next: 0,
            ms: Vec::new(),
            handle: Some(handle),
        });
    }
    let new_dir = tree.root.join(NEW_DIR);
    let mut c = Ctx {
        w,
        refs,
        new_dir: &new_dir,
        new_seq: 0,
    };
    let mut runs: Vec<ReactionRuns> = variants.iter().map(|_| ReactionRuns::default()).collect();
    let r = (|| -> Res<()> {
        for b in 0..blocks {
            let count = samples / blocks + usize::from(b < samples % blocks);
            for k in turn_order(b, variants.len()) {
                let v = &variants[k];
                let d = start_live(o, tree, &v.v)?;
                let r = samples_in(tree, &d, v, count, &mut c, &mut runs[k]);
                d.stop()?;
                restore(tree, v.order[..count].iter().map(|&i| i as usize))?;
                r?;
            }
        }
        Ok(())
    })();
    for rf in &mut c.refs {
        if let Some((h, stop)) = rf.handle.take() {
            let _ = fs::File::create(&stop);
            let _ = h.join();
        }
    }
    drop(c.w);
    let _ = fs::remove_dir_all(&scratch);
    r?;
    for (v, r) in variants.iter().zip(&runs) {
        let all = r.gone_ms.concat();
        eprintln!(
            "  [{}] {}: reaction close→gone p50/p99 {:.3}/{:.3} ms (off its name {:.3}/{:.3} ms); {} evicted before close, {} missed",
            tree.n,
            v.v.label,
            pct(&all, 50.0),
            pct(&all, 99.0),
            pct(&r.off_name_ms.concat(), 50.0),
            pct(&r.off_name_ms.concat(), 99.0),
            r.early,
            r.missed
        );
    }
    for rf in &c.refs {
        eprintln!(
            "  [{}] reference reactor ({}) p50/p99 {:.3}/{:.3} ms",
            tree.n,
            rf.proto.label(),
            pct(&rf.ms, 50.0),
            pct(&rf.ms, 99.0)
        );
    }
    let mut refs = c.refs.into_iter();
    let (plain, airtight) = (refs.next(), refs.next());
    Ok(Reaction {
        runs,
        reference_ms: plain.map(|r| r.ms).unwrap_or_default(),
        reference_airtight_ms: airtight.map(|r| r.ms).unwrap_or_default(),
    })
}

/// One block of one variant; its daemon's removals counted.
fn samples_in(
    tree: &Tree,
    d: &Daemon,
    v: &LiveVariant,
    count: usize,
    c: &mut Ctx,
    r: &mut ReactionRuns,
) -> Res<()> {
    samples(tree, d, &v.order, count, c, r)?;
    r.files_removed += d.status()?["files_removed"].as_u64().unwrap_or(0);
    Ok(())
}

/// Comparison rows of variant 0 against variant 1.
pub fn reaction_rows(x: &Reaction, bound: Option<f64>) -> Vec<Value> {
    let (a, b) = (&x.runs[0], &x.runs[1]);
    let (ea, eb) = (a.early as f64, b.early as f64);
    vec![
        row(
            "reaction: victims unlinked before the writer's close() (counted as 0)",
            "n",
            Better::Lower,
            None,
            (ea, &[ea]),
            (eb, &[eb]),
        ),
        row_pct(
            "reaction: close() → victim unlinked, p50",
            50.0,
            bound,
            &a.gone_ms,
            &b.gone_ms,
        ),
        row_pct(
            "reaction: close() → victim unlinked, p99",
            99.0,
            bound,
            &a.gone_ms,
            &b.gone_ms,
        ),
        row_pct(
            "reaction: open() → victim unlinked, p50",
            50.0,
            None,
            &a.create_ms,
            &b.create_ms,
        ),
        over_floor(
            "reaction over the floor of its protocol: close() → victim unlinked, p50 ÷ the same-run reference reactor deleting the same way, p50",
            50.0,
            bound,
            a,
            b,
        ),
        over_floor(
            "reaction over the floor of its protocol, p99 ÷ p99",
            99.0,
            None,
            a,
            b,
        ),
        row_pct(
            "reaction: close() → victim off its name, p50",
            50.0,
            None,
            &a.off_name_ms,
            &b.off_name_ms,
        ),
        row_pct(
            "reaction: close() → victim off its name, p99",
            99.0,
            None,
            &a.off_name_ms,
            &b.off_name_ms,
        ),
    ]
}

/// The reaction percentile `p` of each variant divided by that of the reference reactor that
/// deletes the way the variant does (plain unlink or airtight, seen from its events), per
/// block (paired: the reference's samples were taken between the variant's) and pooled. What
/// this ratio compares between two builds is each one's cost over the floor of its own
/// deletion protocol on this machine in this run.
fn over_floor(
    figure: &str,
    p: f64,
    bound: Option<f64>,
    a: &ReactionRuns,
    b: &ReactionRuns,
) -> Value {
    fn refs(r: &ReactionRuns) -> &Vec<Vec<f64>> {
        if r.airtight {
            &r.ref_airtight_ms
        } else {
            &r.ref_plain_ms
        }
    }
    let per = |r: &ReactionRuns| -> Vec<f64> {
        r.gone_ms
            .iter()
            .zip(refs(r))
            .filter(|(g, f)| !g.is_empty() && !f.is_empty())
            .map(|(g, f)| pct(g, p) / pct(f, p))
            .collect()
    };
    let pooled = |r: &ReactionRuns| pct(&r.gone_ms.concat(), p) / pct(&refs(r).concat(), p);
    let (pa, pb) = (per(a), per(b));
    row(
        figure,
        "x",
        Better::Lower,
        bound,
        (pooled(a), &pa),
        (pooled(b), &pb),
    )
}

/// `out["reaction"]`: this build's figures (and the comparison with the baseline, if any).
pub fn reaction_json(tree: &Tree, variants: &[LiveVariant], x: &Reaction, out: &mut Value) {
    let r = &x.runs[0];
    out["reaction"] = json!({
        "indexed_files": tree.n,
        "close_to_gone_ms": stats(&r.gone_ms.concat()),
        "close_to_off_name_ms": stats(&r.off_name_ms.concat()),
        "create_to_gone_ms": stats(&r.create_ms.concat()),
        "reference_reactor_ms": stats(&x.reference_ms),
        "reference_reactor_airtight_ms": stats(&x.reference_airtight_ms),
        "airtight": r.airtight,
        "evicted_before_close": r.early,
        "missed": r.missed,
        "files_removed": r.files_removed,
        "blocks": r.gone_ms.len(),
    });
    if variants.len() > 1 {
        out["compare"]["reaction"] = block(
            &variants[0].v.label,
            &variants[1].v.label,
            reaction_rows(x, Some(1.10)),
        );
    }
}
