//! `control::protocol::decode` on arbitrary bytes: it must never panic, and whatever it
//! accepts must satisfy the checks the index owner relies on (group names cannot leave the
//! root, roots are non-empty and NUL-free, `top` is at least 1).
//!
//! The properties are checked on the JSON object the line holds, given only that `decode`
//! accepted it, so the target depends on nothing of the daemon but `decode` itself (and the
//! line limit): however the decoded request types change, this target does not. Touches
//! nothing: `decode` is pure.
#![no_main]

use chartd::control::protocol::{decode, MAX_LINE};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use std::path::Path;

/// A field as the decoder reads it: JSON `null` counts as absent.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn check_root(root: &Value) {
    let r = root.as_str();
    assert!(
        r.is_some_and(|r| !r.is_empty() && !r.contains('\0')),
        "accepted root {root}"
    );
}

/// A group is one directory name directly under the root: non-empty, no NUL, no `/`, not `.`
/// or `..` (the rules the owner relies on, stated here independently of the decoder's own
/// `validate_group`, so that a bug there cannot hide itself).
fn check_group(group: &Value) {
    let Some(g) = group.as_str() else {
        panic!("accepted non-string group {group}");
    };
    assert!(
        !g.is_empty() && !g.contains('\0') && !g.contains('/') && g != "." && g != "..",
        "accepted group {g:?}"
    );
    // Joined onto a root, it names a directory directly under that root.
    let joined = Path::new("/root").join(g);
    assert_eq!(joined.parent(), Some(Path::new("/root")), "group {g:?}");
}

fuzz_target!(|data: &[u8]| {
    if decode(data).is_err() {
        return;
    }
    assert!(data.len() <= MAX_LINE);
    // Only a JSON object can be a request.
    let value = serde_json::from_slice::<Value>(data.strip_suffix(b"\r").unwrap_or(data));
    let Ok(Value::Object(obj)) = value else {
        panic!("accepted a line that is not a JSON object");
    };
    if let Some(root) = field(&obj, "root") {
        check_root(root);
    }
    if let Some(group) = field(&obj, "group") {
        check_group(group);
    }
    if let Some(top) = field(&obj, "top") {
        assert!(top.as_u64().is_some_and(|t| t >= 1), "accepted top {top}");
    }
});
