//! Stands in for `src/control/mod.rs` of the daemon, with only the two files the request
//! decoder needs; `protocol.rs` reaches the request types as `super::{GroupSort, Request}`.

#[path = "../../src/control/protocol.rs"]
pub mod protocol;
#[path = "../../src/control/request.rs"]
mod request;

pub use request::{GroupSort, Request};
