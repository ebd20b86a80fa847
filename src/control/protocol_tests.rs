//! Tests of the wire format (`protocol.rs`): what `decode` accepts and refuses (commands,
//! field types, `purge`'s combinations, group names, unknown fields, over-long and malformed
//! lines) and what the encoders write.
//!
//! May touch: nothing outside its values (pure over bytes).

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
    assert!(err(r#"{"cmd":"purge","all":true,"confirm":false}"#).contains("add \"confirm\": true"));
    assert!(err(r#"{"cmd":"purge","all":true,"confirm":true,"group":"g"}"#).contains("not both"));
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

/// The typed encoder writes what the `Value` one writes for the same reply (key order aside):
/// one line, `ok: true` beside the reply's fields, nested values and nulls kept.
#[test]
fn typed_encoding_matches_the_value_encoding() {
    #[derive(serde::Serialize)]
    struct R {
        a: u64,
        b: Option<f64>,
        c: Vec<String>,
        d: Option<u8>,
    }
    let r = R {
        a: 7,
        b: Some(0.5),
        c: vec!["x\ny".into()],
        d: None,
    };
    let typed = encode_reply(&r);
    assert_eq!(typed.iter().filter(|b| **b == b'\n').count(), 1);
    assert_eq!(typed.last(), Some(&b'\n'));
    let a: Value = serde_json::from_slice(&typed).unwrap();
    let b: Value =
        serde_json::from_slice(&encode_ok(crate::control::messages::fields(&r))).unwrap();
    assert_eq!(a, b);
    assert_eq!(a["ok"], true);
    assert_eq!(a["d"], Value::Null);
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
