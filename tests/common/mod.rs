//! The dev harness: starts the real `chartd` binary, talks to it over its control socket, builds
//! files and trees for it, and reads `/proc` about it. One harness for two users: the
//! integration tests (`mod common;` in `tests/*.rs`, which all `use common::*`) and the
//! benchmark (`benches/chartd_bench/main.rs` includes this file by `#[path]`).
//!
//! May touch: the temporary directories and files it is given or creates, the chartd processes
//! it starts (signalled by PID, never by name), `/proc` of any PID, and sysctls that it
//! restores on drop. It never edits anything of the repository.
//!
//! Modules: [`runner`] (config text, spawning, readiness, requests, stopping; `Result`-based so
//! the benchmark can report errors), [`daemon`] (the tests' `Daemon`, which panics with the log
//! on failure), [`files`] (files, walks and canaries), [`procfs`] (CPU, memory, fds, inotify watches of a
//! process), [`system`] (root, sysctls, namespaces, stress scale); [`client_cmd`] (the binary run
//! as a client, for the first-hour tests; not re-exported: `use common::client_cmd::...`).

// Each test target (and the bench) uses a different part of the harness: the rest is dead code
// there, and the re-exports below that it does not use are unused imports.
#![allow(dead_code, unused_imports)]

pub mod client_cmd;
pub mod daemon;
pub mod files;
pub mod procfs;
pub mod runner;
pub mod system;

pub use daemon::*;
pub use files::*;
pub use procfs::*;
pub use runner::*;
pub use system::*;
