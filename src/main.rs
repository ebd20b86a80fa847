#![allow(dead_code)]
mod cli;
mod config;
mod control;
mod fsops;
mod index;
mod stats;
fn main() {}
