//! What a client may ask of the index owner, as decoded by [`protocol`](super::protocol).
//!
//! Plain data in a file of its own, with no `crate::` paths. (The fuzz crate once compiled
//! `protocol.rs` against it by `#[path]`; it now links the library, and
//! `fuzz/fuzz_targets/request.rs` fuzzes `protocol::decode` through it.)
//!
//! May touch: nothing (plain data).

use std::path::PathBuf;

/// How `groups` are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSort {
    Bytes,
    Files,
    /// Oldest file first.
    Age,
    Name,
}

/// A request the index owner answers.
#[derive(Debug, Clone)]
pub enum Request {
    /// Per-group totals. `root`: only that root (as configured); `top`: the N first after sorting.
    Groups {
        root: Option<PathBuf>,
        top: Option<usize>,
        sort: GroupSort,
    },
    /// The files of one group (already validated: no `/`, `..`, NUL, not empty).
    List {
        root: Option<PathBuf>,
        group: String,
    },
    /// Enforce every limit now and resync the index.
    Cleanup { dry_run: bool },
    /// Delete every managed file of the groups `group` names, or of the whole root when
    /// `group` is `None` (the server has checked `all: true` + `confirm: true`). `group` is a
    /// group name or a glob of group names (validated like a name: no `/`, `..`, NUL; the
    /// owner compiles the glob). `include_young`: files inside `grace` go too.
    Purge {
        root: Option<PathBuf>,
        group: Option<String>,
        dry_run: bool,
        include_young: bool,
    },
}
