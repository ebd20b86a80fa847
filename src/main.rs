// The daemon, watcher and control parts are developed on other branches; this branch only
// wires `check-config`, so most types are not used yet.
#![allow(dead_code)]

mod cli;
mod client;
mod config;
mod control;
mod stats;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig { config } => config::check_config_main(config.as_deref()),
        ref cmd @ (Command::Status { .. }
        | Command::Groups { .. }
        | Command::List { .. }
        | Command::Cleanup { .. }
        | Command::Purge { .. }
        | Command::Reload { .. }
        | Command::Metrics { .. }) => client::main(cmd),
        _ => {
            eprintln!("chartd: not implemented in this branch");
            2
        }
    };
    std::process::exit(code);
}
