//! `chartd status`, `groups`, `list`, `cleanup`, `purge`, `reload`, `metrics`: one request to the
//! daemon's control socket, the answer printed for a human (or raw with `--json`).
//!
//! Blocking std I/O with timeouts: one request does not need a runtime, and a hung daemon must
//! not hang the operator's shell.
//!
//! Exit codes: 0 ok; 1 the daemon answered with an error; 2 usage (bad flags, unreadable
//! `--config`); 3 the daemon could not be reached or gave no usable answer.

mod render;
pub mod top;

use crate::cli::{Command, Target};
use crate::control::{accounts, protocol};
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const EXIT_OK: i32 = 0;
pub const EXIT_DAEMON_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;

/// Answers from the snapshot are instant; anything slower means the daemon is stuck.
const QUICK: Duration = Duration::from_secs(10);
/// `groups`/`list` wait for the index owner, which gives up after 60 s with an explanation;
/// wait a little longer so that the explanation arrives.
const OWNER: Duration = Duration::from_secs(70);
/// A cleanup or purge of a large tree deletes many files before answering.
const DELETION: Duration = Duration::from_secs(30 * 60);

/// Runs a client subcommand and returns the process exit code. Other subcommands (`run`,
/// `check-config`, ...) are not the client's: they return 2 with a message.
pub fn main(cmd: &Command) -> i32 {
    let (request, target, format, wait) = match build(cmd) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chartd: {e}");
            return EXIT_USAGE;
        }
    };
    let socket = match resolve_socket(target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chartd: {e}");
            return EXIT_USAGE;
        }
    };
    let line = match exchange(&socket.path, &request, wait) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("chartd: {}", unreachable_message(&socket, &e));
            return EXIT_UNREACHABLE;
        }
    };
    let answer: Map<String, Value> = match serde_json::from_str(&line) {
        Ok(Value::Object(m)) => m,
        _ => {
            eprintln!(
                "chartd: {} answered something that is not a chartd reply ({:?}); is --socket pointing at chartd?",
                socket.path.display(),
                line.chars().take(80).collect::<String>()
            );
            return EXIT_UNREACHABLE;
        }
    };
    let ok = answer.get("ok") == Some(&Value::Bool(true));
    if format == Format::Json {
        println!("{}", line.trim_end());
        return if ok { EXIT_OK } else { EXIT_DAEMON_ERROR };
    }
    if !ok {
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        eprintln!("chartd: {error}");
        return EXIT_DAEMON_ERROR;
    }
    let style = render::Style::detect();
    let text = match format {
        Format::Status => render::status(&answer, &style),
        Format::Groups => render::groups(&answer, &style),
        Format::List => render::list(&answer, &style),
        Format::Deletion => render::deletion(&answer),
        Format::Reload => render::reload(&answer),
        Format::Metrics => answer
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Format::Json => String::new(), // printed raw above
    };
    let mut out = io::stdout().lock();
    // A closed pipe (`chartd list g | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    EXIT_OK
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Status,
    Groups,
    List,
    Deletion,
    Reload,
    Metrics,
}

/// The request line, where to send it, how to print the answer, and how long to wait.
fn build(cmd: &Command) -> Result<(Value, &Target, Format, Duration), String> {
    let pick = |json: bool, f: Format| if json { Format::Json } else { f };
    let root = |r: &Option<PathBuf>| {
        r.as_ref()
            .map(|p| Value::String(p.to_string_lossy().into_owned()))
    };
    Ok(match cmd {
        Command::Status { json, target } => (
            json!({"cmd": "status"}),
            target,
            pick(*json, Format::Status),
            QUICK,
        ),
        Command::Groups {
            top,
            sort,
            root: r,
            json,
            target,
        } => {
            if !["bytes", "files", "age", "name"].contains(&sort.as_str()) {
                return Err(format!(
                    "invalid --sort {sort:?}; valid: bytes, files, age, name"
                ));
            }
            if *top == Some(0) {
                return Err("--top must be at least 1".to_string());
            }
            let mut req = json!({"cmd": "groups", "sort": sort});
            set(&mut req, "top", top.map(Value::from));
            set(&mut req, "root", root(r));
            (req, target, pick(*json, Format::Groups), OWNER)
        }
        Command::List {
            group,
            root: r,
            json,
            target,
        } => {
            protocol::validate_group(group)?;
            let mut req = json!({"cmd": "list", "group": group});
            set(&mut req, "root", root(r));
            (req, target, pick(*json, Format::List), OWNER)
        }
        Command::Cleanup {
            dry_run,
            json,
            target,
        } => (
            json!({"cmd": "cleanup", "dry_run": dry_run}),
            target,
            pick(*json, Format::Deletion),
            DELETION,
        ),
        Command::Purge {
            group,
            all,
            yes,
            dry_run,
            root: r,
            json,
            target,
        } => {
            let mut req = json!({"cmd": "purge", "dry_run": dry_run});
            match (group, all) {
                (Some(g), false) => {
                    protocol::validate_group(g)?;
                    set(&mut req, "group", Some(g.as_str().into()));
                }
                (None, true) => {
                    // A rehearsal deletes nothing, so it needs no confirmation.
                    if !yes && !dry_run {
                        return Err(
                            "purge --all deletes every managed file of the root; add --yes to confirm (or try --dry-run first)"
                                .to_string(),
                        );
                    }
                    set(&mut req, "all", Some(true.into()));
                    set(&mut req, "confirm", Some(true.into()));
                }
                _ => return Err("purge takes a GROUP or --all, not both".to_string()),
            }
            set(&mut req, "root", root(r));
            (req, target, pick(*json, Format::Deletion), DELETION)
        }
        Command::Reload { json, target } => (
            json!({"cmd": "reload"}),
            target,
            pick(*json, Format::Reload),
            Duration::from_secs(60),
        ),
        Command::Metrics { target } => (json!({"cmd": "metrics"}), target, Format::Metrics, QUICK),
        _ => {
            return Err(
                "not a client command (status, groups, list, cleanup, purge, reload, metrics)"
                    .to_string(),
            )
        }
    })
}

fn set(req: &mut Value, key: &str, value: Option<Value>) {
    if let (Value::Object(m), Some(v)) = (req, value) {
        m.insert(key.to_string(), v);
    }
}

/// The socket path, and how it was chosen (for the "not reachable" message).
#[derive(Debug)]
struct Socket {
    path: PathBuf,
    origin: String,
}

/// `--socket`; else the `socket:` of `--config FILE`; else that of the system config when it is
/// readable (the daemon started without `--config` reads it too); else the built-in rule, except
/// that an existing system socket wins over the unprivileged fallback, since a non-root operator
/// usually wants the system daemon.
fn resolve_socket(target: &Target) -> Result<Socket, String> {
    if let Some(path) = &target.socket {
        return Ok(Socket {
            path: path.clone(),
            origin: "--socket".into(),
        });
    }
    if let Some(file) = &target.config {
        return crate::config::load(Some(file), &Default::default())
            .map(|c| Socket {
                path: c.socket,
                origin: format!("socket: in {}", file.display()),
            })
            .map_err(|e| format!("cannot take the socket path from --config: {e}"));
    }
    let system_config = Path::new(crate::config::DEFAULT_CONFIG_PATH);
    let mut note = String::new();
    if system_config.exists() {
        match crate::config::load(None, &Default::default()) {
            Ok(c) => {
                return Ok(Socket {
                    path: c.socket,
                    origin: format!("socket: in {}", system_config.display()),
                })
            }
            Err(e) => note = format!("; {} was not usable: {e}", system_config.display()),
        }
    }
    let default = crate::config::default_socket_path();
    let system = Path::new("/run/chartd/chartd.sock");
    if !default.exists() && default != system && system.exists() {
        return Ok(Socket {
            path: system.to_path_buf(),
            origin: format!("the system socket{note}"),
        });
    }
    Ok(Socket {
        path: default,
        origin: format!("the default path{note}"),
    })
}

/// Sends one request and reads one answer line.
fn exchange(path: &Path, request: &Value, wait: Duration) -> io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_write_timeout(Some(QUICK))?;
    stream.set_read_timeout(Some(wait))?;
    let mut line = request.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    if BufReader::new(stream).read_line(&mut answer)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without answering",
        ));
    }
    Ok(answer)
}

/// What went wrong reaching the daemon, and what to check.
fn unreachable_message(socket: &Socket, e: &io::Error) -> String {
    let path = socket.path.display();
    let head = format!(
        "cannot reach the chartd daemon at {path} ({}): {e}",
        socket.origin
    );
    let hint = match e.kind() {
        io::ErrorKind::NotFound => {
            "no socket there. Is chartd running? Check `systemctl status chartd`. If its config sets another socket:, pass --socket PATH or --config FILE".to_string()
        }
        io::ErrorKind::ConnectionRefused => {
            "the socket exists but nothing listens on it: chartd has stopped or crashed. Check `systemctl status chartd` and `journalctl -u chartd`".to_string()
        }
        io::ErrorKind::PermissionDenied => match socket_group(&socket.path) {
            Some(group) => format!(
                "you may not connect. The socket is for its owner and group {group:?}: join it (`sudo usermod -aG {group} $USER`, then log in again) or use sudo"
            ),
            None => "you may not connect. Join the socket's group (see `ls -l` of the socket and control.group in the config), or use sudo".to_string(),
        },
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "the daemon did not answer in time; it may be overloaded or stuck. Check `systemctl status chartd` and `journalctl -u chartd`".to_string()
        }
        _ => "check `systemctl status chartd` and `journalctl -u chartd`".to_string(),
    };
    format!("{head}\n  {hint}")
}

/// The name (or number) of the socket file's group, when it can be looked at.
fn socket_group(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(path).map(|m| m.gid()).ok()?;
    Some(
        match accounts::group_by_gid(&accounts::read(accounts::GROUP_FILE), gid) {
            Some(g) => g.name,
            None => gid.to_string(),
        },
    )
}

#[cfg(test)]
mod tests;
