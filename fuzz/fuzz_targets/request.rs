//! `control::protocol::decode` on arbitrary bytes: it must never panic, and whatever it
//! accepts must satisfy the checks the index owner relies on (group names cannot leave the
//! root, roots are non-empty and NUL-free, `top` is at least 1).
#![no_main]

use chartd_fuzz::control::protocol::{decode, validate_group, Incoming, MAX_LINE};
use chartd_fuzz::control::Request;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn check_root(root: &Option<std::path::PathBuf>) {
    if let Some(r) = root {
        let bytes = r.as_os_str().as_encoded_bytes();
        assert!(!bytes.is_empty() && !bytes.contains(&0), "bad root {r:?}");
    }
}

fn check_group(g: &str) {
    assert!(validate_group(g).is_ok(), "accepted group {g:?}");
    // Joined onto a root, it names a directory directly under that root.
    let joined = Path::new("/root").join(g);
    assert_eq!(joined.parent(), Some(Path::new("/root")), "group {g:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(incoming) = decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_LINE);
    // Only a JSON object can be a request.
    assert!(
        serde_json::from_slice::<serde_json::Value>(data.strip_suffix(b"\r").unwrap_or(data))
            .map(|v| v.is_object())
            .unwrap_or(false)
    );
    let _ = (incoming.name(), incoming.needs_admin());
    if let Incoming::Owner(req) = &incoming {
        match req {
            Request::Groups { root, top, .. } => {
                check_root(root);
                assert_ne!(*top, Some(0));
            }
            Request::List { root, group } => {
                check_root(root);
                check_group(group);
            }
            Request::Cleanup { .. } => {}
            Request::Purge { root, group, .. } => {
                check_root(root);
                if let Some(g) = group {
                    check_group(g);
                }
            }
        }
    }
});
