mod cli;
mod config;
fn main() {}
