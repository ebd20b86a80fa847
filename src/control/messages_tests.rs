//! The typed messages round-trip, and what clients encode is what the daemon decodes.
//!
//! May touch: nothing (pure).

use super::*;
use crate::control::protocol::{decode, Incoming};
use crate::control::Request;

#[test]
fn every_client_request_is_accepted_by_the_decoder() {
    let requests = [
        ClientRequest::Status,
        ClientRequest::Metrics,
        ClientRequest::Reload,
        ClientRequest::Groups {
            root: Some("/srv/c".into()),
            top: Some(3),
            sort: SortKey::Age,
        },
        ClientRequest::Groups {
            root: None,
            top: None,
            sort: SortKey::Bytes,
        },
        ClientRequest::List {
            group: "AAPL_1d".into(),
            root: None,
        },
        ClientRequest::Cleanup { dry_run: true },
        ClientRequest::Purge {
            group: Some("g".into()),
            all: false,
            confirm: false,
            dry_run: true,
            root: None,
            include_young: false,
        },
        ClientRequest::Purge {
            group: Some("RELIANCE_*".into()),
            all: false,
            confirm: false,
            dry_run: false,
            root: None,
            include_young: true,
        },
        ClientRequest::Purge {
            group: None,
            all: true,
            confirm: true,
            dry_run: false,
            root: Some("/r".into()),
            include_young: false,
        },
    ];
    for req in requests {
        let line = serde_json::to_string(&req).unwrap();
        let back: ClientRequest = serde_json::from_str(&line).unwrap();
        assert_eq!(back, req);
        match (decode(line.as_bytes()), &req) {
            (Ok(Incoming::Status), ClientRequest::Status)
            | (Ok(Incoming::Metrics), ClientRequest::Metrics)
            | (Ok(Incoming::Reload), ClientRequest::Reload) => {}
            (
                Ok(Incoming::Owner(Request::Groups { top, .. })),
                ClientRequest::Groups { top: t, .. },
            ) => {
                assert_eq!(top.map(|n| n as u64), *t)
            }
            (
                Ok(Incoming::Owner(Request::List { group, .. })),
                ClientRequest::List { group: g, .. },
            ) => {
                assert_eq!(&group, g)
            }
            (
                Ok(Incoming::Owner(Request::Cleanup { dry_run })),
                ClientRequest::Cleanup { dry_run: d },
            ) => {
                assert_eq!(dry_run, *d)
            }
            (
                Ok(Incoming::Owner(Request::Purge {
                    dry_run,
                    group,
                    include_young,
                    ..
                })),
                ClientRequest::Purge {
                    dry_run: d,
                    group: g,
                    include_young: y,
                    ..
                },
            ) => {
                assert_eq!((&group, dry_run, include_young), (g, *d, *y))
            }
            (other, _) => panic!("{line} decoded as {other:?}"),
        }
    }
}

#[test]
fn replies_decode_and_errors_are_told_apart() {
    let line = r#"{"ok":true,"reloaded":true,"message":"config reloaded: 1 root(s)"}"#;
    let r: ReloadReply = decode_reply(line).unwrap();
    assert!(r.reloaded);
    assert_eq!(
        decode_reply::<ReloadReply>(r#"{"ok":false,"error":"nope"}"#),
        Err(ReplyError::Daemon("nope".into()))
    );
    assert!(matches!(
        decode_reply::<ReloadReply>("HTTP/1.1 400"),
        Err(ReplyError::NotChartd(_))
    ));
    // A renamed field is a loud mismatch, not a silent "-".
    assert!(matches!(
        decode_reply::<ReloadReply>(r#"{"ok":true,"reloaded":true,"msg":"x"}"#),
        Err(ReplyError::Mismatch(_))
    ));
}

#[test]
fn dry_run_figures_come_from_the_would_fields() {
    let line = r#"{"ok":true,"would_remove":3,"would_free_bytes":1085691,"skipped":0,"files":[],"dry_run":true,"skipped_in_grace":0}"#;
    let d: DeletionReply = decode_reply(line).unwrap();
    assert_eq!((d.count(), d.bytes()), (3, 1_085_691));
    let line = r#"{"ok":true,"files_removed":2,"bytes_freed":10,"skipped":1,"files":[{"path":"/r/a.png","bytes":5,"age_hours":1.5,"reason":"purge"}],"dry_run":false}"#;
    let d: DeletionReply = decode_reply(line).unwrap();
    assert_eq!(
        (d.count(), d.bytes(), d.files[0].reason.as_str()),
        (2, 10, "purge")
    );
    let m = fields(&d);
    assert!(!m.contains_key("would_remove") && m.contains_key("files_removed"));
}

#[test]
fn alert_levels_are_nagios_codes() {
    assert_eq!(AlertLevel::Ok.code(), 0);
    assert_eq!(AlertLevel::Warning.code(), 1);
    assert_eq!(AlertLevel::Critical.code(), 2);
    assert_eq!(
        serde_json::to_string(&AlertLevel::Warning).unwrap(),
        "\"warning\""
    );
}
