//! chartd: keeps directories of generated chart images inside their limits.
//!
//! Data flows one way: config → watcher/scan → index → eviction → control socket → CLI.

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

fn generate_assets(out: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(out)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(out.join("chartd.1"), page)?;
    for (shell, file) in [
        (clap_complete::Shell::Bash, "chartd.bash"),
        (clap_complete::Shell::Zsh, "_chartd"),
        (clap_complete::Shell::Fish, "chartd.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "chartd", &mut buf);
        std::fs::write(out.join(file), buf)?;
    }
    Ok(())
}

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
        Command::GenerateAssets { out } => match generate_assets(out) {
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
