//! `chartd status`, `groups`, `list`, `cleanup`, `purge`, `reload`, `metrics`: one request to the
//! daemon's control socket, the answer printed for a human (or raw with `--json`).
//!
//! Blocking std I/O with timeouts: one request does not need a runtime, and a hung daemon must
//! not hang the operator's shell.
//!
//! Exit codes: 0 ok; 1 the daemon answered with an error; 2 usage (bad flags, unreadable
//! `--config`); 3 the daemon could not be reached or gave no usable answer.
//!
//! May touch: the control socket (one blocking request with timeouts), the config and environment
//! (only to find the socket), `/etc/group` (for an error message), stdout and stderr; never a root
//! or the daemon's state.

mod format;
mod render;
pub mod top;

use crate::cli::{Command, Target};
use crate::control::messages::{
    decode_reply, ClientRequest, DeletionReply, GroupsReply, ListReply, MetricsReply, ReloadReply,
    ReplyError, StatusReply,
};
use crate::control::{accounts, protocol};
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
    let plan = match build(cmd) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chartd: {e}");
            return EXIT_USAGE;
        }
    };
    let json = plan.format == Format::Json;
    let mut socket = match resolve_socket(plan.target) {
        Ok(s) => s,
        Err(e) => return fail(json, EXIT_USAGE, &e),
    };
    let line = match exchange_any(&mut socket, &plan.request, plan.wait) {
        Ok(line) => line,
        Err(e) => return fail(json, EXIT_UNREACHABLE, &unreachable_message(&socket, &e)),
    };
    let text = match render_reply(plan.format, &line) {
        Ok(text) => text,
        Err(ReplyError::Daemon(e)) => {
            if json {
                println!("{}", line.trim_end());
            }
            eprintln!("chartd: {e}");
            return EXIT_DAEMON_ERROR;
        }
        Err(ReplyError::NotChartd(e)) => {
            let msg = format!(
                "{} answered something that is not a chartd reply ({e}: {:?}); is --socket pointing at chartd?",
                socket.path.display(),
                line.chars().take(80).collect::<String>()
            );
            return fail(json, EXIT_UNREACHABLE, &msg);
        }
        Err(ReplyError::Mismatch(e)) => {
            let msg = format!(
                "the daemon at {} sent a reply this client does not understand ({e}); are the daemon and the client the same chartd version (`chartd --version`, `systemctl restart chartd` after an upgrade)?",
                socket.path.display()
            );
            return fail(json, EXIT_UNREACHABLE, &msg);
        }
    };
    let mut out = io::stdout().lock();
    // A closed pipe (`chartd list g | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if plan.check {
        // Nagios style: 0 ok, 1 warning, 2 critical (the worst root).
        return decode_reply::<StatusReply>(&line)
            .map(|s| {
                s.roots
                    .iter()
                    .map(|r| i32::from(r.alert.code()))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(EXIT_UNREACHABLE);
    }
    EXIT_OK
}

/// Prints a client-side failure; with `--json` also as a JSON error object on stdout, so that
/// a script reading stdout gets an answer whatever happened.
fn fail(json: bool, code: i32, message: &str) -> i32 {
    if json {
        let reply = serde_json::json!({"ok": false, "error": message, "exit_code": code});
        println!("{reply}");
    }
    eprintln!("chartd: {message}");
    code
}

/// Decodes the reply into its type and renders it (raw JSON for `--json`, once it decoded).
fn render_reply(format: Format, line: &str) -> Result<String, ReplyError> {
    let style = render::Style::detect();
    Ok(match format {
        Format::Json => {
            decode_reply::<serde_json::Value>(line)?;
            format!("{}\n", line.trim_end())
        }
        Format::Status => render::status(&decode_reply(line)?, &style),
        Format::Groups => render::groups(&decode_reply::<GroupsReply>(line)?, &style),
        Format::List => render::list(&decode_reply::<ListReply>(line)?, &style),
        Format::Deletion => render::deletion(&decode_reply::<DeletionReply>(line)?),
        Format::Reload => render::reload(&decode_reply::<ReloadReply>(line)?),
        Format::Metrics => decode_reply::<MetricsReply>(line)?.text,
    })
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

/// One client command, ready to send.
#[derive(Debug)]
struct Plan<'a> {
    request: ClientRequest,
    target: &'a Target,
    format: Format,
    wait: Duration,
    /// `status --check`: exit 1 / 2 on warning / critical.
    check: bool,
}

/// A `--root` as the daemon knows it: absolute, resolved against the working directory (the
/// daemon resolves relative config paths the same way), without following symlinks.
fn absolute_root(r: &Option<PathBuf>) -> Result<Option<String>, String> {
    let Some(p) = r else { return Ok(None) };
    let abs = std::path::absolute(p)
        .map_err(|e| format!("--root {}: cannot resolve it: {e}", p.display()))?;
    // Make `./output/charts/` and `output/charts` name the same root.
    let abs: PathBuf = abs.components().collect();
    Ok(Some(abs.to_string_lossy().into_owned()))
}

/// The request, where to send it, how to print the answer, and how long to wait.
fn build(cmd: &Command) -> Result<Plan<'_>, String> {
    let pick = |json: bool, f: Format| if json { Format::Json } else { f };
    let plan = |request, target, format, wait| Plan {
        request,
        target,
        format,
        wait,
        check: false,
    };
    Ok(match cmd {
        Command::Status {
            json,
            check,
            target,
        } => Plan {
            check: *check,
            ..plan(
                ClientRequest::Status,
                target,
                pick(*json, Format::Status),
                QUICK,
            )
        },
        Command::Groups {
            top,
            sort,
            root,
            json,
            target,
        } => {
            if *top == Some(0) {
                return Err("--top must be at least 1".to_string());
            }
            let req = ClientRequest::Groups {
                root: absolute_root(root)?,
                top: top.map(|n| n as u64),
                sort: *sort,
            };
            plan(req, target, pick(*json, Format::Groups), OWNER)
        }
        Command::List {
            group,
            root,
            json,
            target,
        } => {
            protocol::validate_group(group)?;
            let req = ClientRequest::List {
                group: group.clone(),
                root: absolute_root(root)?,
            };
            plan(req, target, pick(*json, Format::List), OWNER)
        }
        Command::Cleanup {
            dry_run,
            json,
            target,
        } => plan(
            ClientRequest::Cleanup { dry_run: *dry_run },
            target,
            pick(*json, Format::Deletion),
            DELETION,
        ),
        Command::Purge {
            group,
            all,
            yes,
            dry_run,
            include_young,
            root,
            json,
            target,
        } => {
            let group = match (group, all) {
                (Some(g), false) => {
                    protocol::validate_group(g)?;
                    Some(g.clone())
                }
                (None, true) => {
                    // A rehearsal deletes nothing, so it needs no confirmation.
                    if !yes && !dry_run {
                        return Err(
                            "purge --all deletes every managed file of the root; add --yes to confirm (or try --dry-run first)"
                                .to_string(),
                        );
                    }
                    None
                }
                _ => return Err("purge takes a GROUP or --all, not both".to_string()),
            };
            let req = ClientRequest::Purge {
                all: group.is_none(),
                confirm: group.is_none(),
                group,
                dry_run: *dry_run,
                root: absolute_root(root)?,
                include_young: *include_young,
            };
            plan(req, target, pick(*json, Format::Deletion), DELETION)
        }
        Command::Reload { json, target } => plan(
            ClientRequest::Reload,
            target,
            pick(*json, Format::Reload),
            Duration::from_secs(60),
        ),
        Command::Metrics { target } => plan(ClientRequest::Metrics, target, Format::Metrics, QUICK),
        _ => {
            return Err(
                "not a client command (status, groups, list, cleanup, purge, reload, metrics)"
                    .to_string(),
            )
        }
    })
}

/// The socket path, how it was chosen (for the "not reachable" message), and where else a
/// daemon may listen when the path came from the built-in rule rather than from the operator.
#[derive(Debug)]
struct Socket {
    path: PathBuf,
    origin: String,
    others: Vec<PathBuf>,
}

/// The packaged daemon's socket.
const SYSTEM_SOCKET: &str = "/run/chartd/chartd.sock";

/// `--socket`; else the `socket:` of `--config FILE`; else that of the system config when it is
/// readable (the daemon started without `--config` reads it too); else the built-in rule, with
/// the system socket as a second try: a non-root operator without the system config usually
/// wants the packaged daemon, and may not even be able to see `/run/chartd` (mode 0750).
fn resolve_socket(target: &Target) -> Result<Socket, String> {
    if let Some(path) = &target.socket {
        return Ok(Socket {
            path: path.clone(),
            origin: "--socket".into(),
            others: Vec::new(),
        });
    }
    if let Some(file) = &target.config {
        return crate::config::load(Some(file), &Default::default())
            .map(|c| Socket {
                path: c.socket,
                origin: format!("socket: in {}", file.display()),
                others: Vec::new(),
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
                    others: Vec::new(),
                })
            }
            Err(e) => note = format!("; {} was not usable: {e}", system_config.display()),
        }
    }
    Ok(discover(
        crate::config::default_socket_path(),
        Path::new(SYSTEM_SOCKET),
        &note,
    ))
}

/// The built-in rule's path first when a daemon is there, else the system socket first; the
/// other one is tried next (see [`connect_any`]).
fn discover(default: PathBuf, system: &Path, note: &str) -> Socket {
    if default == system {
        return Socket {
            path: default,
            origin: format!("the default path{note}"),
            others: Vec::new(),
        };
    }
    if default.exists() {
        Socket {
            path: default,
            origin: format!("the default path for your user{note}"),
            others: vec![system.to_path_buf()],
        }
    } else {
        Socket {
            path: system.to_path_buf(),
            origin: format!(
                "the system socket{note}; {} was tried too",
                default.display()
            ),
            others: vec![default],
        }
    }
}

/// Sends the request to the socket, then to its alternatives while nothing is there at all.
/// The error kept is the most telling one: "permission denied" on the system socket says more
/// than "no such file" for a per-user path.
fn exchange_any(
    socket: &mut Socket,
    request: &ClientRequest,
    wait: Duration,
) -> io::Result<String> {
    let first = match exchange(&socket.path, request, wait) {
        Ok(line) => return Ok(line),
        Err(e) => e,
    };
    if first.kind() != io::ErrorKind::NotFound {
        return Err(first);
    }
    for other in std::mem::take(&mut socket.others) {
        match exchange(&other, request, wait) {
            Ok(line) => return Ok(line),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                socket.origin = format!("{}; tried after {}", socket.origin, socket.path.display());
                socket.path = other;
                return Err(e);
            }
        }
    }
    Err(first)
}

/// Sends one request and reads one answer line.
fn exchange(path: &Path, request: &ClientRequest, wait: Duration) -> io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_write_timeout(Some(QUICK))?;
    stream.set_read_timeout(Some(wait))?;
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
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
    let kind = std::fs::metadata(&socket.path).map(|m| m.file_type());
    if let Ok(t) = &kind {
        use std::os::unix::fs::FileTypeExt;
        if t.is_dir() {
            return format!(
                "{head}\n  {path} is a directory, not a socket: pass the socket file itself, e.g. --socket {}",
                socket.path.join("chartd.sock").display()
            );
        }
        if !t.is_socket() {
            return format!(
                "{head}\n  {path} is not a socket (a regular file or device): pass the socket: path of the daemon's config"
            );
        }
    }
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
