mod cli;
mod config;
mod control;
mod stats;
fn main() {}
