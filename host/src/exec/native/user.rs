//! Turning a step's user (`name`, `uid`, `name:group`...) into ids, from the
//! image's own `/etc/passwd` and `/etc/group`, as Docker does.
//!
//! OCI runtimes take numeric ids only, so the names are resolved here.

use crate::exec::Error;

/// The ids a step's process runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of the image's groups that list the user.
    pub additional_gids: Vec<u32>,
}

/// Resolves `spec` (root when `None` or empty) against the image's passwd
/// and group files (`None` when the image has none).
///
/// A numeric uid needs no passwd entry (its group is then 0); a name must
/// have one. A group part, name or number, replaces the primary group.
pub(super) fn resolve(
    spec: Option<&str>,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Ids, Error> {
    let spec = spec.filter(|spec| !spec.is_empty()).unwrap_or("0");
    let fail = |reason: String| Error::User {
        spec: spec.to_owned(),
        reason,
    };
    let (user, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };

    // The user: a passwd entry by name, or a number with or without one.
    let passwd = passwd.unwrap_or("");
    let by_name = || records(passwd).find(|fields| fields[0] == user);
    let entry = match user.parse::<u32>() {
        Ok(uid) => records(passwd)
            .find(|fields| fields[2].parse() == Ok(uid))
            .or_else(by_name),
        Err(_) => by_name(),
    };
    let (uid, mut gid, name) = match (entry, user.parse::<u32>()) {
        (Some(fields), _) => {
            let uid = fields[2]
                .parse()
                .map_err(|_| fail(bad_field("passwd", "uid", &fields)))?;
            let gid = fields[3]
                .parse()
                .map_err(|_| fail(bad_field("passwd", "gid", &fields)))?;
            (uid, gid, Some(fields[0]))
        }
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => return Err(fail("no such user in the image's /etc/passwd".into())),
    };

    // The group part, if any, replaces the primary group.
    let group = group.unwrap_or("");
    if let Some(wanted) = group_part {
        let entry = records(group).find(|fields| fields[0] == wanted);
        gid = match (entry, wanted.parse::<u32>()) {
            (_, Ok(gid)) => gid,
            (Some(fields), Err(_)) => fields[2]
                .parse()
                .map_err(|_| fail(bad_field("group", "gid", &fields)))?,
            (None, Err(_)) => return Err(fail("no such group in the image's /etc/group".into())),
        };
    }

    // Supplementary groups: every group that lists the user by name.
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for fields in records(group) {
            let listed = fields
                .get(3)
                .is_some_and(|members| members.split(',').any(|m| m == name));
            if let (true, Ok(extra)) = (listed, fields[2].parse::<u32>())
                && extra != gid
                && !additional_gids.contains(&extra)
            {
                additional_gids.push(extra);
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

/// The colon-separated records of a passwd or group file with at least the
/// fields both have (name, password, id, and a fourth).
fn records(file: &str) -> impl Iterator<Item = Vec<&str>> {
    file.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| line.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 4)
}

fn bad_field(file: &str, field: &str, fields: &[&str]) -> String {
    format!(
        "the image's /etc/{file} has an invalid {field} for `{}`",
        fields[0]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          broken:x:zz:0::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:app,daemon\nstaff:x:50:app\napp:x:1000:\nweb:x:33:\n";

    fn ids(spec: Option<&str>) -> Result<Ids, Error> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn no_user_means_root() {
        let root = Ids {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        assert_eq!(ids(None).unwrap(), root);
        assert_eq!(ids(Some("")).unwrap(), root);
        assert_eq!(
            resolve(None, None, None).unwrap(),
            root,
            "images without /etc/passwd"
        );
    }

    #[test]
    fn names_take_their_primary_and_supplementary_groups() {
        let app = ids(Some("app")).unwrap();
        assert_eq!(
            app,
            Ids {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![4, 50]
            }
        );
        assert_eq!(
            ids(Some("1000")).unwrap(),
            app,
            "a known uid is the same user"
        );
    }

    #[test]
    fn group_part_replaces_the_primary_group() {
        assert_eq!(ids(Some("app:web")).unwrap().gid, 33);
        assert_eq!(
            ids(Some("app:4")).unwrap(),
            Ids {
                uid: 1000,
                gid: 4,
                additional_gids: vec![50]
            }
        );
        assert_eq!(
            ids(Some("4242:4242")).unwrap(),
            Ids {
                uid: 4242,
                gid: 4242,
                additional_gids: vec![]
            }
        );
    }

    #[test]
    fn unknown_numeric_uid_runs_with_group_zero() {
        assert_eq!(
            ids(Some("4242")).unwrap(),
            Ids {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
    }

    #[test]
    fn unknown_names_and_broken_entries_are_errors_naming_the_user() {
        let error = ids(Some("nobody")).unwrap_err().to_string();
        assert_eq!(
            error,
            "user `nobody`: no such user in the image's /etc/passwd"
        );
        let error = ids(Some("app:nogroup")).unwrap_err().to_string();
        assert_eq!(
            error,
            "user `app:nogroup`: no such group in the image's /etc/group"
        );
        let error = ids(Some("broken")).unwrap_err().to_string();
        assert_eq!(
            error,
            "user `broken`: the image's /etc/passwd has an invalid uid for `broken`"
        );
    }
}
