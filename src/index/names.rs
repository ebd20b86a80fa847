//! A byte arena for file and directory names.
//!
//! A million `Box<str>` names cost a 16-byte fat pointer plus a malloc chunk each (~48 bytes);
//! here a name costs its bytes plus a 5-byte [`NameRef`]. Removed names leave garbage behind;
//! the owner compacts the arena when garbage outweighs live bytes, so the cost stays
//! proportional to what is indexed (amortised O(1) per removal).
//!
//! May touch: nothing but its own byte arena (pure).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Where a name lives in the arena. Linux names are at most 255 bytes (NAME_MAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed)]
pub struct NameRef {
    off: u32,
    len: u8,
}

impl NameRef {
    pub const EMPTY: NameRef = NameRef { off: 0, len: 0 };
}

#[derive(Debug, Default)]
pub struct Names {
    bytes: Vec<u8>,
    garbage: usize,
}

impl Names {
    /// Stores `name`. Names longer than 255 bytes cannot exist on Linux; they are truncated
    /// defensively (and would then simply not match on disk).
    pub fn push(&mut self, name: &OsStr) -> NameRef {
        let b = name.as_bytes();
        let len = b.len().min(u8::MAX as usize);
        let off = self.bytes.len();
        if off + len > u32::MAX as usize {
            // Live names past 4 GiB even after a compaction (see `Index::make_room_for_name`):
            // an offset must never wrap onto another name. The empty name matches no file on
            // disk, so such an entry is simply never acted on.
            return NameRef::EMPTY;
        }
        self.bytes.extend_from_slice(&b[..len]);
        NameRef {
            off: off as u32,
            len: len as u8,
        }
    }

    pub fn get(&self, r: NameRef) -> &OsStr {
        let (off, len) = (r.off as usize, r.len as usize);
        OsStr::from_bytes(self.bytes.get(off..off + len).unwrap_or_default())
    }

    /// Whether `name` can be stored without the offset passing `u32::MAX`.
    pub fn fits(&self, name: &OsStr) -> bool {
        self.bytes.len() + name.len().min(u8::MAX as usize) <= u32::MAX as usize
    }

    /// Marks a name as no longer used.
    pub fn release(&mut self, r: NameRef) {
        self.garbage += r.len as usize;
    }

    /// Whether a compaction would pay off (garbage above half the arena, and worth a pass).
    pub fn wants_compaction(&self) -> bool {
        self.garbage > 1 << 20 && self.garbage * 2 > self.bytes.len()
    }

    /// Rewrites the arena with only the names `live` yields, updating each reference in place.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a mut NameRef>) {
        let mut fresh = Vec::with_capacity(self.bytes.len() - self.garbage);
        for r in live {
            let (off, len) = (r.off as usize, r.len as usize);
            let new_off = fresh.len();
            fresh.extend_from_slice(self.bytes.get(off..off + len).unwrap_or_default());
            r.off = new_off as u32;
        }
        self.bytes = fresh;
        self.garbage = 0;
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}
