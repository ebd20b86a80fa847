//! Just enough of `/etc/group` and `/etc/passwd` to resolve the socket's group and to check
//! `control.admin_group` membership, without a dependency on libc's NSS.
//!
//! Only the local files are read: groups that exist only in LDAP/SSSD are not found; the error
//! messages say so, and `control.admin_uids` / a numeric gid work regardless.
//!
//! May touch: `/etc/group` and `/etc/passwd`, read-only (through `read`); the lookups are pure over
//! the text.

use std::path::Path;

pub const GROUP_FILE: &str = "/etc/group";
pub const PASSWD_FILE: &str = "/etc/passwd";

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    /// User names listed as supplementary members.
    pub members: Vec<String>,
}

/// Finds a group by name (or by number, for a config that says `group: "998"`).
pub fn group_by_name(content: &str, name: &str) -> Option<Group> {
    let numeric = name.parse::<u32>().ok();
    groups(content).find(|g| g.name == name || Some(g.gid) == numeric)
}

/// Finds a group by gid.
pub fn group_by_gid(content: &str, gid: u32) -> Option<Group> {
    groups(content).find(|g| g.gid == gid)
}

/// The login name of `uid` from `/etc/passwd` content.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut it = line.split(':');
        let name = it.next()?;
        let _password = it.next()?;
        let u = it.next()?.trim().parse::<u32>().ok()?;
        (u == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// Whether the user `uid` with primary group `gid` belongs to `group`.
pub fn is_member(group: &Group, uid: u32, gid: u32, passwd: &str) -> bool {
    if group.gid == gid {
        return true;
    }
    match user_name(passwd, uid) {
        Some(name) => group.members.contains(&name),
        None => false,
    }
}

/// Reads a system file; a missing or unreadable one reads as empty (nothing is found in it,
/// and the caller's "does not exist" message points at the cause).
pub fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn groups(content: &str) -> impl Iterator<Item = Group> + '_ {
    content.lines().filter_map(|line| {
        let line = line.trim_end();
        if line.starts_with('#') || line.starts_with('+') || line.starts_with('-') {
            return None; // comments and NIS compat entries
        }
        let mut it = line.split(':');
        let name = it.next()?;
        let _password = it.next()?;
        let gid = it.next()?.trim().parse::<u32>().ok()?;
        let members = it
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        (!name.is_empty()).then(|| Group {
            name: name.to_string(),
            gid,
            members,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str =
        "root:x:0:\n# comment\nadm:x:4:syslog,alice\ncharts:x:998:bob, carol\nbroken line\n+nis\n";
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:1002:998::/:/bin/sh\n";

    #[test]
    fn finds_groups_by_name_and_number() {
        let g = group_by_name(GROUP, "charts").unwrap();
        assert_eq!(g.gid, 998);
        assert_eq!(g.members, vec!["bob", "carol"]);
        assert_eq!(group_by_name(GROUP, "998").unwrap().name, "charts");
        assert!(group_by_name(GROUP, "nope").is_none());
        assert!(group_by_name(GROUP, "nis").is_none());
        assert_eq!(group_by_gid(GROUP, 4).unwrap().name, "adm");
    }

    #[test]
    fn membership_by_primary_gid_or_member_list() {
        let g = group_by_name(GROUP, "charts").unwrap();
        assert!(is_member(&g, 1001, 1001, PASSWD)); // bob: listed
        assert!(is_member(&g, 4242, 998, PASSWD)); // unknown uid, primary gid matches
        assert!(!is_member(&g, 1000, 1000, PASSWD)); // alice: not listed
        assert!(!is_member(&g, 4242, 1, PASSWD)); // unknown uid, other gid
        assert_eq!(user_name(PASSWD, 1002).as_deref(), Some("carol"));
    }
}
