//! The `chartd` binary: parses the command line and calls into the library (`src/lib.rs`).
//!
//! May touch: the command line and the exit code; everything else through the library.

use chartd::cli::{Cli, Command};
use chartd::{assets, check_config, clean_once, client, config, daemon};
use clap::Parser;

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
        Command::CheckConfig { config, explain } => check_config::run(config.as_deref(), *explain),
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
        Command::Top { target } => client::top::run(target),
        other => client::main(other),
    };
    std::process::exit(code);
}
