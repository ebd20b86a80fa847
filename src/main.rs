#![allow(dead_code)] // until the daemon (main branch) calls the control server and client
mod cli;
mod config;
mod control;
mod stats;
fn main() {}
