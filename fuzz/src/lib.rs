//! The chartd modules the fuzz targets exercise, compiled from the daemon's own source files.
//!
//! chartd is a binary crate (no `lib.rs`), so there is no library to link against. Rather
//! than give the main crate a library target (which would change its layout and compile it
//! twice), this crate includes the source files by path:
//!
//! * `config`: the whole `src/config/` module. It refers to nothing outside itself (no
//!   `crate::` paths), so its `mod.rs` is included as is and finds its submodules (`file.rs`,
//!   `units.rs`, ...) next to it. Its `#[cfg(test)]` modules are not compiled here.
//! * `control`: only `protocol.rs` (the request decoder, pure) and `request.rs` (the plain
//!   data types it builds, `Request` and `GroupSort`), which it reaches as `super::...`;
//!   the rest of `src/control/` (server, sockets, reports) needs the daemon and is left out.
//!
//! If one of these files starts using a `crate::` path or a new dependency, this crate stops
//! compiling and says which; then add the module here (or the dependency to Cargo.toml).

#![allow(dead_code)] // the daemon uses what the targets do not

#[path = "../../src/config/mod.rs"]
pub mod config;

pub mod control; // src/control.rs: protocol.rs and request.rs only
