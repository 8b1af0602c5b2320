//! `USER[:GROUP]` resolution against the image's `/etc/passwd` and `/etc/group`, with
//! docker's rules: numbers need no entry, names must exist, members of groups get them as
//! supplementary groups.

use crate::error::Error;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd` (`/` when the user has no entry).
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolve `user` (`""`, `NAME`, `UID`, `NAME:GROUP`, `UID:GID`…) given the image's passwd
/// and group files (`None` when the image has none).
pub fn resolve(user: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Identity, Error> {
    let err = |reason: String| Error::User {
        spec: user.to_owned(),
        reason,
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd.and_then(|p| {
        passwd_entries(p).find(|e| match u.parse::<u32>() {
            Ok(n) => e.uid == n,
            Err(_) => e.name == u,
        })
    });
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name), e.home.to_owned()),
        (None, Ok(n)) => (n, 0, None, "/".to_owned()),
        (None, Err(_)) => {
            return Err(err(format!(
                "no user named {u:?} in the image's /etc/passwd"
            )));
        }
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .and_then(|text| group_entries(text).find(|(n, _, _)| *n == g).map(|e| e.1))
                .ok_or_else(|| err(format!("no group named {g:?} in the image's /etc/group")))?,
        };
    }
    // Like containerd, the primary group leads the supplementary list.
    let mut additional_gids = vec![gid];
    if let (Some(name), Some(text)) = (name, group) {
        for (_, id, members) in group_entries(text) {
            if members.contains(&name) && !additional_gids.contains(&id) {
                additional_gids.push(id);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:user\nuser:x:1000:\naudio:x:29:other,user\n";

    #[test]
    fn names_numbers_and_groups_resolve_like_docker() {
        let r = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let u = resolve("user", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1000, 1000, vec![1000, 10, 29])
        );
        let n = resolve("4242", Some(PASSWD), None).unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 0, "/"));
        let g = resolve("user:wheel", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((g.uid, g.gid), (1000, 10));
        let ng = resolve("1000:77", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((ng.uid, ng.gid), (1000, 77));
    }

    #[test]
    fn unknown_user_or_group_names_the_input() {
        let e = resolve("ghost", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghost") && e.contains("/etc/passwd"), "{e}");
        let e = resolve("user:nogroup", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nogroup") && e.contains("/etc/group"), "{e}");
        assert!(resolve("user", None, None).is_err());
    }
}
