//! The mount points a step needs, provided by a thin extra lower layer on
//! top of the image so that the runtime never creates one in the task's
//! upper dir.
//!
//! An OCI runtime creates a bind mount's destination when it is missing, and
//! whatever it creates lands in the upper dir, that is in the new layer.
//! Images often lack `/etc/resolv.conf` (Docker mounts one at run time), and
//! never have salve's own `/.salve`. So each task's overlay gets one more
//! lower layer, on top, holding an empty stand-in for every destination.
//! Its dirs copy the owner, mode, xattrs and times of the image's dirs of
//! the same name: when a step writes into `/etc`, overlayfs copies `/etc` up
//! from this layer, and the copy must look like the image's own.

use std::path::Path;

use tracing::debug;

use super::metadata;
use crate::exec::{CA_BUNDLE, Error, STAGING_DIR};

/// Which optional mount points a step wants.
#[derive(Clone, Copy, Debug)]
pub(super) struct Wanted {
    pub resolv_conf: bool,
    pub ca_bundle: bool,
}

/// Fills `dir` with stand-ins for the mount points, modelled on the image
/// tree at `image`. Returns whether `/etc/resolv.conf` can be mounted: not
/// when the image's `/etc` is not a directory, since a stand-in `/etc` would
/// then hide the image's own.
pub(super) fn build(dir: &Path, image: &Path, wanted: Wanted) -> Result<bool, Error> {
    let mut dirs = vec!["proc", "sys", "dev", &STAGING_DIR[1..]];
    let mut files = Vec::new();
    if wanted.ca_bundle {
        files.push(&CA_BUNDLE[1..]);
    }

    let etc = fs_err::symlink_metadata(image.join("etc"));
    let resolv_conf = wanted.resolv_conf && etc.as_ref().map_or(true, |meta| meta.is_dir());
    if resolv_conf {
        dirs.push("etc");
        files.push("etc/resolv.conf");
    } else if wanted.resolv_conf {
        debug!("the image's /etc is not a directory: no resolv.conf is mounted");
    }

    for name in &dirs {
        fs_err::create_dir_all(dir.join(name))?;
    }
    for name in &files {
        fs_err::write(dir.join(name), b"")?;
    }

    // Attributes last, deepest first, so that creating entries does not
    // change a dir's times after they were copied.
    let mut all: Vec<&str> = dirs.iter().flat_map(|name| ancestors(name)).collect();
    all.sort_by_key(|name| std::cmp::Reverse(name.len()));
    all.dedup();
    for name in all.into_iter().chain([""]) {
        let theirs = image.join(name);
        let dir_there = fs_err::symlink_metadata(&theirs).is_ok_and(|meta| meta.is_dir());
        if dir_there {
            metadata::copy_dir_attrs(&theirs, &dir.join(name)).map_err(|source| {
                std::io::Error::new(
                    source.kind(),
                    format!("copying the attributes of {}: {source}", theirs.display()),
                )
            })?;
        }
    }
    Ok(resolv_conf)
}

/// `a/b/c` gives `a/b/c`, `a/b`, `a`.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(name);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.rsplit_once('/').map(|(parent, _)| parent);
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;
    use crate::exec::native::testing::Tree;

    #[test]
    fn stand_ins_copy_the_image_dirs_and_add_what_is_missing() {
        let image = tempfile::tempdir().unwrap();
        fs::create_dir(image.path().join("etc")).unwrap();
        fs::write(image.path().join("etc/hostname"), "x").unwrap();
        fs::set_permissions(image.path().join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        let scaffold = tempfile::tempdir().unwrap();

        let wanted = Wanted {
            resolv_conf: true,
            ca_bundle: true,
        };
        assert!(build(scaffold.path(), image.path(), wanted).unwrap());

        let tree = Tree::read(scaffold.path());
        assert_eq!(
            tree.paths(),
            [
                ".salve",
                ".salve/ca-certificates.crt",
                ".salve/staging",
                "dev",
                "etc",
                "etc/resolv.conf",
                "proc",
                "sys"
            ]
        );
        assert_eq!(tree.mode("etc"), Some(0o750));
        let mtime = |path: &Path| {
            let meta = fs::metadata(path).unwrap();
            (meta.mtime(), meta.mtime_nsec())
        };
        assert_eq!(
            mtime(&scaffold.path().join("etc")),
            mtime(&image.path().join("etc"))
        );
        assert_eq!(tree.content("etc/resolv.conf"), Some(""));
    }

    #[test]
    fn no_resolv_conf_stand_in_when_etc_is_a_symlink() {
        let image = tempfile::tempdir().unwrap();
        symlink("usr/etc", image.path().join("etc")).unwrap();
        let scaffold = tempfile::tempdir().unwrap();

        let wanted = Wanted {
            resolv_conf: true,
            ca_bundle: false,
        };
        assert!(!build(scaffold.path(), image.path(), wanted).unwrap());
        assert_eq!(
            Tree::read(scaffold.path()).paths(),
            [".salve", ".salve/staging", "dev", "proc", "sys"]
        );
    }
}
