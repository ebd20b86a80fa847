//! Following a victim through a deletion, from the inotify events of its directory, so that
//! every deleter is measured to the same point, the space freed:
//!
//! - chartd (since the airtight deletion, `src/fsops/delete.rs`) takes a victim off its name
//!   with a rename to a private name `.chartd-evict.*` in the same directory (`IN_MOVED_FROM`
//!   of the name, `IN_MOVED_TO` of the private name, one cookie), checks it, then unlinks the
//!   private name (`IN_DELETE`);
//! - a deleter that unlinks directly (older chartd builds, the harness's reference reactors)
//!   gives one `IN_DELETE` of the name.
//!
//! A victim is *off its name* at the first of `IN_MOVED_FROM` / `IN_DELETE` of its name, and
//! *gone* at the `IN_DELETE` of the private name it was moved to, or of its own name. The
//! watches need `IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO`.
//!
//! May touch: nothing (bookkeeping over events read elsewhere).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_DELETE: u32 = 0x200;
pub const IN_Q_OVERFLOW: u32 = 0x4000;

/// The name a private name `.chartd-evict.PID.N=NAME` carries: the library's own parser, so
/// the harness follows exactly the names chartd makes.
fn carried(name: &[u8]) -> Option<&[u8]> {
    chartd::fsops::carried_name(OsStr::from_bytes(name)).map(OsStrExt::as_bytes)
}

/// Whether `name` is one of chartd's private names (the library's own test).
pub fn is_private(name: &[u8]) -> bool {
    chartd::fsops::is_private_name(OsStr::from_bytes(name))
}

/// What one event meant for the victims, identified by `K`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Seen<K> {
    /// The victim's name is gone (renamed away or unlinked).
    pub off_name: Option<K>,
    /// The victim's inode is unlinked: the space is freed.
    pub gone: Option<K>,
    /// A deletion or rename event that matches no victim.
    pub unknown: bool,
}

/// Victims between `IN_MOVED_FROM` and the `IN_DELETE` of their private name.
#[derive(Default)]
pub struct Tracker<K> {
    /// Cookie of an `IN_MOVED_FROM` of a victim → the victim.
    moving: HashMap<u32, K>,
    /// (watch, private name) → the victim now under that name.
    private: HashMap<(i32, Vec<u8>), K>,
}

impl<K: Copy> Tracker<K> {
    pub fn new() -> Tracker<K> {
        Tracker {
            moving: HashMap::new(),
            private: HashMap::new(),
        }
    }

    /// One event; `victim` names the victim a (watch, name) is, if any.
    pub fn on_event(
        &mut self,
        wd: i32,
        mask: u32,
        cookie: u32,
        name: &[u8],
        victim: impl Fn(i32, &[u8]) -> Option<K>,
    ) -> Seen<K> {
        let mut s = Seen {
            off_name: None,
            gone: None,
            unknown: false,
        };
        if mask & IN_MOVED_FROM != 0 {
            match victim(wd, name) {
                Some(k) => {
                    self.moving.insert(cookie, k);
                    s.off_name = Some(k);
                }
                None => s.unknown = !is_private(name),
            }
        } else if mask & IN_MOVED_TO != 0 {
            if let Some(k) = self.moving.remove(&cookie) {
                if is_private(name) {
                    self.private.insert((wd, name.to_vec()), k);
                }
            }
        } else if mask & IN_DELETE != 0 {
            if let Some(k) = self.private.remove(&(wd, name.to_vec())) {
                s.gone = Some(k);
            } else if let Some(k) = carried(name).and_then(|n| victim(wd, n)) {
                // Its MOVED events not watched (or lost): the private name carries the name.
                s.gone = Some(k);
            } else if let Some(k) = victim(wd, name) {
                s.off_name = Some(k);
                s.gone = Some(k);
            } else {
                s.unknown = true;
            }
        }
        s
    }

    /// Victims moved to a private name and not unlinked (yet).
    pub fn pending(&self) -> usize {
        self.private.len() + self.moving.len()
    }
}
