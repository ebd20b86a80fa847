// The daemon, watcher and control parts are developed on other branches; this branch only
// wires `check-config`, so most types are not used yet.
#![allow(dead_code)]

mod cli;
mod config;
mod control;
mod stats;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig { config } => config::check_config_main(config.as_deref()),
        _ => {
            eprintln!("chartd: not implemented in this branch");
            2
        }
    };
    std::process::exit(code);
}
