//! `chartd check-config [--config FILE] [--explain]`: validates the config and prints the
//! effective configuration as YAML (or, with `--explain`, each value with its source), then,
//! as YAML comments, which retention rule each existing group follows; warnings go to stderr.
//! Exit status 0 when the config is valid, 1 when it is not.
//!
//! May touch: the config file and the environment (through `config`), and each root's first
//! level, read-only (through `rules::describe_groups`); stdout and stderr.

use crate::config::{self, CliOverrides};
use std::path::Path;

pub fn run(path: Option<&Path>, explain: bool) -> i32 {
    match config::load(path, &CliOverrides::default()) {
        Ok(config) => {
            if explain {
                print!("{}", config::explain_text(&config));
            } else {
                print!("{}", config.to_yaml());
            }
            print!("{}", crate::rules::describe_groups(&config.roots));
            for w in &config.warnings {
                eprintln!("chartd: warning: {w}");
            }
            0
        }
        Err(e) => {
            eprintln!("chartd: {e}");
            1
        }
    }
}
