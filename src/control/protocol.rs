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
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        match decode(line.as_bytes()) {
            Ok(i) => panic!("{line} decoded as {i:?}"),
            Err(e) => e,
        }
    }

    fn ok(line: &str) -> Incoming {
        decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn simple_commands() {
        assert!(matches!(ok(r#"{"cmd":"status"}"#), Incoming::Status));
        assert!(matches!(ok("{\"cmd\":\"metrics\"}\r"), Incoming::Metrics));
        assert!(matches!(ok(r#"  {"cmd": "reload"}  "#), Incoming::Reload));
        assert!(!ok(r#"{"cmd":"status"}"#).needs_admin());
        assert!(ok(r#"{"cmd":"reload"}"#).needs_admin());
    }

    #[test]
    fn groups_fields() {
        match ok(r#"{"cmd":"groups","top":5,"sort":"age","root":"/srv/charts"}"#) {
            Incoming::Owner(Request::Groups { root, top, sort }) => {
                assert_eq!(root, Some(PathBuf::from("/srv/charts")));
                assert_eq!(top, Some(5));
                assert_eq!(sort, GroupSort::Age);
            }
            other => panic!("{other:?}"),
        }
        match ok(r#"{"cmd":"groups","top":null,"sort":null}"#) {
            Incoming::Owner(Request::Groups {
                root: None,
                top: None,
                sort: GroupSort::Bytes,
            }) => {}
            other => panic!("{other:?}"),
        }
        for (s, want) in [
            ("bytes", GroupSort::Bytes),
            ("files", GroupSort::Files),
            ("name", GroupSort::Name),
        ] {
            match ok(&format!(r#"{{"cmd":"groups","sort":"{s}"}}"#)) {
                Incoming::Owner(Request::Groups { sort, .. }) => assert_eq!(sort, want),
                other => panic!("{other:?}"),
            }
        }
        assert!(!ok(r#"{"cmd":"groups"}"#).needs_admin());
    }

    #[test]
    fn list_and_cleanup_and_purge() {
        match ok(r#"{"cmd":"list","group":"EURUSD_1h"}"#) {
            Incoming::Owner(Request::List { root: None, group }) => assert_eq!(group, "EURUSD_1h"),
            other => panic!("{other:?}"),
        }
        let i = ok(r#"{"cmd":"cleanup","dry_run":true}"#);
        assert!(i.needs_admin());
        assert!(matches!(
            i,
            Incoming::Owner(Request::Cleanup { dry_run: true })
        ));
        assert!(matches!(
            ok(r#"{"cmd":"cleanup"}"#),
            Incoming::Owner(Request::Cleanup { dry_run: false })
        ));
        match ok(r#"{"cmd":"purge","group":"s-123","dry_run":true}"#) {
            Incoming::Owner(Request::Purge {
                root: None,
                group: Some(g),
                dry_run: true,
                include_young: false,
            }) => assert_eq!(g, "s-123"),
            other => panic!("{other:?}"),
        }
        match ok(r#"{"cmd":"purge","all":true,"confirm":true,"root":"/r"}"#) {
            Incoming::Owner(Request::Purge {
                root: Some(r),
                group: None,
                dry_run: false,
                include_young: false,
            }) => assert_eq!(r, PathBuf::from("/r")),
            other => panic!("{other:?}"),
        }
        // A glob of groups, with the files inside grace too.
        match ok(r#"{"cmd":"purge","group":"RELIANCE_*","include_young":true}"#) {
            Incoming::Owner(Request::Purge {
                group: Some(g),
                include_young: true,
                dry_run: false,
                ..
            }) => assert_eq!(g, "RELIANCE_*"),
            other => panic!("{other:?}"),
        }
        assert!(err(r#"{"cmd":"purge","group":"g","include_young":"yes"}"#)
            .starts_with("field \"include_young\" must be true or false"));
        assert!(err(r#"{"cmd":"purge","group":"*/x"}"#).contains("'/'"));
        // A group with `all: false` is just a group purge.
        assert!(matches!(
            ok(r#"{"cmd":"purge","group":"g","all":false}"#),
            Incoming::Owner(Request::Purge { group: Some(_), .. })
        ));
        assert_eq!(ok(r#"{"cmd":"purge","group":"g"}"#).name(), "purge");
    }

    #[test]
    fn malformed_requests() {
        assert!(err("").starts_with("empty request"));
        assert!(err(" \t ").starts_with("empty request"));
        assert!(err("{\"cmd\":").starts_with("invalid JSON"));
        assert!(err("status").starts_with("invalid JSON"));
        assert!(err(r#"{"cmd":"status"} {"cmd":"status"}"#).starts_with("invalid JSON"));
        assert!(err("[1,2]").contains("must be a JSON object"));
        assert!(err("42").contains("the number 42"));
        assert!(err(r#""status""#).contains("not a string"));
        assert!(err("{}").starts_with("missing field \"cmd\""));
        assert!(err(r#"{"cmd":7}"#).starts_with("field \"cmd\" must be a string, not the number 7"));
        assert!(err(r#"{"cmd":null}"#).contains("not null"));
        assert!(decode(&[0xff, 0xfe, b'{']).is_err());
        assert!(decode(&vec![b' '; MAX_LINE + 1])
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn unknown_cmd_names_the_valid_ones() {
        assert_eq!(
            err(r#"{"cmd":"x"}"#),
            "unknown cmd \"x\"; valid: status, groups, list, cleanup, purge, reload, metrics"
        );
        assert!(err(r#"{"cmd":""}"#).starts_with("unknown cmd \"\""));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(err(r#"{"cmd":"status","verbose":true}"#)
            .contains("status takes no fields besides \"cmd\"; unknown field \"verbose\""));
        assert_eq!(
            err(r#"{"cmd":"purge","group":"g","dryrun":true}"#),
            "unknown field \"dryrun\" for purge; it takes: group, all, confirm, dry_run, root, include_young"
        );
    }

    #[test]
    fn wrong_field_types_name_the_field() {
        assert!(err(r#"{"cmd":"groups","top":"5"}"#)
            .starts_with("field \"top\" must be a non-negative integer"));
        assert!(err(r#"{"cmd":"groups","top":-1}"#).starts_with("field \"top\""));
        assert!(err(r#"{"cmd":"groups","top":1.5}"#).starts_with("field \"top\""));
        assert!(err(r#"{"cmd":"groups","top":0}"#).starts_with("field \"top\" must be at least 1"));
        assert!(err(r#"{"cmd":"groups","sort":"size"}"#).contains("valid: bytes, files, age, name"));
        assert!(err(r#"{"cmd":"groups","sort":1}"#).starts_with("field \"sort\" must be a string"));
        assert!(err(r#"{"cmd":"groups","root":""}"#).starts_with("field \"root\" is empty"));
        assert!(err(r#"{"cmd":"groups","root":["/"]}"#)
            .starts_with("field \"root\" must be a string, not an array"));
        assert!(err(r#"{"cmd":"groups","root":"/a\u0000b"}"#).contains("NUL"));
        assert!(err(r#"{"cmd":"cleanup","dry_run":"yes"}"#)
            .starts_with("field \"dry_run\" must be true or false"));
        assert!(err(r#"{"cmd":"cleanup","dry_run":1}"#).starts_with("field \"dry_run\""));
        assert!(err(r#"{"cmd":"purge","all":"true","confirm":true}"#).starts_with("field \"all\""));
        assert!(err(r#"{"cmd":"purge","all":true,"confirm":1}"#).starts_with("field \"confirm\""));
        assert!(err(r#"{"cmd":"list","group":{}}"#)
            .starts_with("field \"group\" must be a string, not an object"));
    }

    #[test]
    fn purge_combinations() {
        assert!(err(r#"{"cmd":"purge"}"#).starts_with("purge needs a \"group\""));
        assert!(err(r#"{"cmd":"purge","dry_run":true}"#).starts_with("purge needs a \"group\""));
        assert!(err(r#"{"cmd":"purge","all":false}"#).starts_with("purge needs a \"group\""));
        assert!(err(r#"{"cmd":"purge","all":true}"#).contains("add \"confirm\": true"));
        assert!(
            err(r#"{"cmd":"purge","all":true,"confirm":false}"#).contains("add \"confirm\": true")
        );
        assert!(
            err(r#"{"cmd":"purge","all":true,"confirm":true,"group":"g"}"#).contains("not both")
        );
        assert!(err(r#"{"cmd":"purge","group":"../etc"}"#).contains("'/'"));
        assert!(err(r#"{"cmd":"list"}"#).starts_with("list needs a \"group\""));
    }

    #[test]
    fn group_names() {
        for good in [
            "EURUSD_1h",
            "s-123",
            "..hidden",
            "a..b",
            "...",
            "ünïcode",
            " spaced ",
        ] {
            validate_group(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        for bad in [
            "", ".", "..", "../etc", "a/b", "/", "/etc", "a/../b", "a\0b", "g/",
        ] {
            assert!(validate_group(bad).is_err(), "{bad:?} accepted");
        }
        for bad in [r#""""#, r#"".""#, r#""..""#, r#""../etc""#, r#""a\u0000""#] {
            assert!(
                err(&format!(r#"{{"cmd":"list","group":{bad}}}"#)).contains("group name"),
                "{bad}"
            );
            assert!(
                err(&format!(r#"{{"cmd":"purge","group":{bad}}}"#)).contains("group name"),
                "{bad}"
            );
        }
    }

    #[test]
    fn encoding() {
        let mut m = Map::new();
        m.insert("x".into(), 1.into());
        let line = encode_ok(m);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v, serde_json::json!({"ok": true, "x": 1}));
        let v: Value = serde_json::from_slice(&encode_error("bad \"thing\"\nhere")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok": false, "error": "bad \"thing\"\nhere"})
        );
        assert_eq!(encode_error("x").iter().filter(|b| **b == b'\n').count(), 1);
    }

    /// A poor man's fuzz run: mutations of valid requests and random bytes never panic.
    #[test]
    fn never_panics() {
        let seeds: [&[u8]; 6] = [
            br#"{"cmd":"purge","all":true,"confirm":true,"root":"/r","dry_run":false}"#,
            br#"{"cmd":"groups","top":18446744073709551615,"sort":"name"}"#,
            br#"{"cmd":"list","group":"a","root":"/x"}"#,
            br#"{"cmd":"status"}"#,
            br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]"#,
            br#"{"cmd":"groups","top":1e400}"#,
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input = seeds[(rand() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..(rand() % 4) {
                let at = (rand() as usize) % (input.len() + 1);
                match rand() % 3 {
                    0 if at < input.len() => input[at] = rand() as u8,
                    1 => input.insert(at, b"{}[]\":,0\\u"[(rand() % 10) as usize]),
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = decode(&input);
        }
        let deep = "[".repeat(100_000);
        assert!(decode(deep.as_bytes()).is_err());
        let deep = "[".repeat(60_000);
        assert!(decode(deep.as_bytes()).is_err());
    }
}
