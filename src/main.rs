//! chartd: keeps directories of generated chart images inside their limits.
//!
//! Data flows one way: config → watcher/scan → index → eviction → control socket → CLI.

mod affinity;
mod assets;
mod clean_once;
mod cli;
mod client;
mod commands;
mod config;
mod control;
mod crawl;
mod daemon;
mod evict;
mod fsops;
mod index;
mod logging;
mod owner;
mod policy;
mod root;
mod scan;
mod stats;
mod watcher;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Run {
            config,
            dry_run,
            socket,
        } => daemon::run(
            config.clone(),
            config::CliOverrides {
                dry_run: *dry_run,
                socket: socket.clone(),
            },
        ),
        Command::CheckConfig { config } => config::check_config_main(config.as_deref()),
        Command::Clean {
            once: _,
            dry_run,
            config,
        } => clean_once::run(config.as_deref(), *dry_run),
        Command::GenerateAssets { out } => match assets::generate(out) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("chartd: cannot write assets to {}: {e}", out.display());
                1
            }
        },
        other => client::main(other),
    };
    std::process::exit(code);
}
