//! The chartd binary as a command-line client, as the first-hour tests run it
//! (`tests/first_hour.rs`, `tests/first_hour_cli.rs`): in a working directory with the replaced
//! system's variables cleared, or against one test daemon's socket; its output as text.
//!
//! May touch: the working directory it is given and what the command it runs touches (the
//! tests pass the arguments); it changes nothing itself.

use super::daemon::Daemon;
use super::runner::{BIN, CHART_VARS};
use std::path::Path;
use std::process::{Command, Output};

pub const KIB: u64 = 1024;

/// Runs the binary with the replaced system's variables cleared, in `cwd`.
pub fn chartd(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    for v in CHART_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("CHART_GRACE_SECONDS");
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn cli(d: &Daemon, args: &[&str]) -> Output {
    let mut a: Vec<&str> = args.to_vec();
    let sock = d.socket.to_str().unwrap().to_string();
    a.extend(["--socket", &sock]);
    chartd(&a, d.dir.path(), &[])
}
