//! The wire format: one JSON object per line each way.
//!
//! [`decode`] turns one request line into an [`Incoming`] or a message for the client. It is a
//! pure function over bytes (no I/O, no allocation beyond the parsed value) and never panics, so
//! it can be fuzzed as is. Everything a client sends is checked here, before anything reaches the
//! index owner: field types, the combinations `purge` accepts, and group names (which the owner
//! joins onto a root path, so a `../etc` must never get that far).
//!
//! Unknown fields are refused rather than ignored: a typo such as `"dryrun": true` in a `purge`
//! must not silently turn a rehearsal into a real deletion.
//!
//! May touch: nothing outside its arguments (pure over bytes).

use super::{GroupSort, Request};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The longest request line accepted (without its newline). Requests are a few dozen bytes; the
/// cap bounds what one connection can make the daemon buffer.
pub const MAX_LINE: usize = 64 * 1024;

/// The commands, in the order error messages list them.
pub const COMMANDS: [&str; 7] = [
    "status", "groups", "list", "cleanup", "purge", "reload", "metrics",
];

/// A decoded, validated request.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// Answered from the latest snapshot.
    Status,
    /// Answered from the latest snapshot.
    Metrics,
    /// Sent to the supervisor.
    Reload,
    /// Sent to the index owner.
    Owner(Request),
}

impl Incoming {
    /// The `cmd` this came from (for logs and permission messages).
    pub fn name(&self) -> &'static str {
        match self {
            Incoming::Status => "status",
            Incoming::Metrics => "metrics",
            Incoming::Reload => "reload",
            Incoming::Owner(Request::Groups { .. }) => "groups",
            Incoming::Owner(Request::List { .. }) => "list",
            Incoming::Owner(Request::Cleanup { .. }) => "cleanup",
            Incoming::Owner(Request::Purge { .. }) => "purge",
        }
    }

    /// Whether only admins may run it: everything that deletes files or changes the daemon.
    /// A dry run is still refused to non-admins: it reveals nothing `list` does not, but an
    /// operator who is allowed the rehearsal and then denied the real thing is worse off.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Incoming::Reload
                | Incoming::Owner(Request::Cleanup { .. })
                | Incoming::Owner(Request::Purge { .. })
        )
    }
}

/// Decodes one request line (without the trailing newline; a trailing `\r` is tolerated).
pub fn decode(line: &[u8]) -> Result<Incoming, String> {
    if line.len() > MAX_LINE {
        return Err(too_long());
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "empty request; send one JSON object per line, e.g. {{\"cmd\": \"status\"}} (valid cmds: {})",
            COMMANDS.join(", ")
        ));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        format!("invalid JSON ({e}); send one JSON object per line, e.g. {{\"cmd\": \"status\"}}")
    })?;
    let Value::Object(obj) = value else {
        return Err(format!(
            "a request must be a JSON object with a \"cmd\" field, e.g. {{\"cmd\": \"status\"}}, not {}",
            kind(&value)
        ));
    };
    let cmd = match obj.get("cmd") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "field \"cmd\" must be a string, not {}; valid: {}",
                kind(other),
                COMMANDS.join(", ")
            ))
        }
        None => {
            return Err(format!(
                "missing field \"cmd\"; valid: {}",
                COMMANDS.join(", ")
            ))
        }
    };
    let fields = Fields { obj: &obj, cmd };
    match cmd {
        "status" => fields.only(&[]).map(|()| Incoming::Status),
        "metrics" => fields.only(&[]).map(|()| Incoming::Metrics),
        "reload" => fields.only(&[]).map(|()| Incoming::Reload),
        "groups" => {
            fields.only(&["root", "top", "sort"])?;
            let top = match fields.uint("top")? {
                Some(0) => return Err("field \"top\" must be at least 1".to_string()),
                Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                None => None,
            };
            let sort = match fields.string("sort")? {
                None | Some("bytes") => GroupSort::Bytes,
                Some("files") => GroupSort::Files,
                Some("age") => GroupSort::Age,
                Some("name") => GroupSort::Name,
                Some(other) => {
                    return Err(format!(
                        "field \"sort\": unknown order {other:?}; valid: bytes, files, age, name"
                    ))
                }
            };
            Ok(Incoming::Owner(Request::Groups {
                root: fields.root()?,
                top,
                sort,
            }))
        }
        "list" => {
            fields.only(&["group", "root"])?;
            let group = fields
                .group()?
                .ok_or("list needs a \"group\" field (see `groups` for the names)")?;
            Ok(Incoming::Owner(Request::List {
                root: fields.root()?,
                group,
            }))
        }
        "cleanup" => {
            fields.only(&["dry_run"])?;
            Ok(Incoming::Owner(Request::Cleanup {
                dry_run: fields.bool("dry_run")?.unwrap_or(false),
            }))
        }
        "purge" => {
            fields.only(&[
                "group",
                "all",
                "confirm",
                "dry_run",
                "root",
                "include_young",
            ])?;
            let group = fields.group()?;
            let all = fields.bool("all")?.unwrap_or(false);
            let confirm = fields.bool("confirm")?.unwrap_or(false);
            match (&group, all) {
                (Some(_), true) => {
                    return Err(
                        "purge takes either \"group\" or \"all\": true, not both".to_string()
                    )
                }
                (None, false) => {
                    return Err(
                        "purge needs a \"group\", or \"all\": true with \"confirm\": true to purge every managed file"
                            .to_string(),
                    )
                }
                (None, true) if !confirm => {
                    return Err(
                        "purge with \"all\": true deletes every managed file of the root; add \"confirm\": true to do it"
                            .to_string(),
                    )
                }
                _ => {}
            }
            Ok(Incoming::Owner(Request::Purge {
                root: fields.root()?,
                group,
                dry_run: fields.bool("dry_run")?.unwrap_or(false),
                include_young: fields.bool("include_young")?.unwrap_or(false),
            }))
        }
        other => Err(format!(
            "unknown cmd {other:?}; valid: {}",
            COMMANDS.join(", ")
        )),
    }
}

/// The message for a line over [`MAX_LINE`] (the server closes the connection after it).
pub fn too_long() -> String {
    format!("request line longer than {MAX_LINE} bytes; closing the connection")
}

/// Checks a group name before it is joined onto a root: a group is one directory name directly
/// under the root, so anything that could name another place is refused.
pub fn validate_group(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("group name is empty; see `chartd groups` for the names".to_string());
    }
    if name.contains('\0') {
        return Err("group name contains a NUL byte".to_string());
    }
    if name.contains('/') {
        return Err(format!(
            "group name {name:?} contains '/'; a group is one directory directly under a root"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!(
            "group name {name:?} is not a directory under the root"
        ));
    }
    Ok(())
}

/// `{"ok": true, ...fields}` as one line, newline included.
pub fn encode_ok(mut fields: Map<String, Value>) -> Vec<u8> {
    fields.insert("ok".to_string(), Value::Bool(true));
    line(Value::Object(fields))
}

/// `{"ok": true, ...reply}` as one line, newline included, serialized straight from the typed
/// reply: `status` is the request monitoring repeats, and building a `Value` tree first (a
/// sorted map per object) cost about a fifth of its round trip.
pub fn encode_reply<T: serde::Serialize>(reply: &T) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Envelope<'a, T> {
        ok: bool,
        #[serde(flatten)]
        reply: &'a T,
    }
    let mut out = serde_json::to_vec(&Envelope { ok: true, reply }).unwrap_or_else(|_| {
        br#"{"ok":false,"error":"internal error: unencodable reply"}"#.to_vec()
    });
    out.push(b'\n');
    out
}

/// `{"ok": false, "error": message}` as one line, newline included.
pub fn encode_error(message: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("ok".to_string(), Value::Bool(false));
    m.insert("error".to_string(), Value::String(message.to_string()));
    line(Value::Object(m))
}

fn line(v: Value) -> Vec<u8> {
    // Serializing a Value cannot fail (keys are strings, no non-finite floats survive
    // `Value::from`), but a fallback line is cheaper than a panic path.
    let mut out = serde_json::to_vec(&v).unwrap_or_else(|_| {
        br#"{"ok":false,"error":"internal error: unencodable reply"}"#.to_vec()
    });
    out.push(b'\n');
    out
}

/// Typed access to the request's fields, with messages that name the field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    cmd: &'a str,
}

impl<'a> Fields<'a> {
    /// Refuses fields `cmd` does not take (besides `cmd` itself).
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        for key in self.obj.keys() {
            if key != "cmd" && !allowed.contains(&key.as_str()) {
                return Err(if allowed.is_empty() {
                    format!(
                        "{} takes no fields besides \"cmd\"; unknown field {key:?}",
                        self.cmd
                    )
                } else {
                    format!(
                        "unknown field {key:?} for {}; it takes: {}",
                        self.cmd,
                        allowed.join(", ")
                    )
                });
            }
        }
        Ok(())
    }

    /// An optional field; JSON `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("field {key:?} must be a string, not {}", kind(v))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(format!(
                "field {key:?} must be true or false, not {}",
                kind(v)
            )),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                format!(
                    "field {key:?} must be a non-negative integer, not {}",
                    kind(v)
                )
            }),
        }
    }

    fn group(&self) -> Result<Option<String>, String> {
        match self.string("group")? {
            None => Ok(None),
            Some(g) => validate_group(g).map(|()| Some(g.to_string())),
        }
    }

    /// A root as configured; the owner matches it against its roots.
    fn root(&self) -> Result<Option<PathBuf>, String> {
        match self.string("root")? {
            None => Ok(None),
            Some("") => Err(
                "field \"root\" is empty; give a root path as configured (see `chartd status`)"
                    .to_string(),
            ),
            Some(r) if r.contains('\0') => Err("field \"root\" contains a NUL byte".to_string()),
            Some(r) => Ok(Some(PathBuf::from(r))),
        }
    }
}

/// A JSON value's kind, for `must be a string, not <kind>` messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
