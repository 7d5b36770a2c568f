//! The overlayfs conventions on disk (whiteouts, opaque dirs, private
//! xattrs) and copying a directory's attributes.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

/// The xattr namespace overlayfs keeps for itself in upper and lower dirs.
const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";

/// Marks a directory whose lower namesakes are hidden.
pub(super) const OPAQUE: &str = "trusted.overlay.opaque";

/// How overlayfs shows an entry in a layer dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A 0/0 character device: the name is deleted.
    Whiteout,
    /// A directory that replaces, rather than merges with, what is below.
    OpaqueDir,
    /// A directory that merges with what is below.
    Dir,
    /// Anything else (file, symlink, device, fifo, socket).
    Other,
}

/// The kind of the entry at `path`, or `None` when there is none.
pub(super) fn kind(path: &Path) -> io::Result<Option<Kind>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(kind_of(path, &meta)?))
}

/// The kind of an entry whose metadata is at hand.
pub(super) fn kind_of(path: &Path, meta: &Metadata) -> io::Result<Kind> {
    if is_whiteout(meta) {
        Ok(Kind::Whiteout)
    } else if meta.is_dir() {
        Ok(if is_opaque(path)? {
            Kind::OpaqueDir
        } else {
            Kind::Dir
        })
    } else {
        Ok(Kind::Other)
    }
}

/// Whether the metadata is that of an overlayfs whiteout.
pub(super) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory at `path` is marked opaque.
pub(super) fn is_opaque(path: &Path) -> io::Result<bool> {
    let mut value = [0u8; 8];
    match rustix::fs::lgetxattr(path, OPAQUE, &mut value[..]) {
        Ok(len) => Ok(&value[..len] == b"y"),
        Err(rustix::io::Errno::NODATA) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Marks the directory at `path` opaque.
pub(super) fn set_opaque(path: &Path) -> io::Result<()> {
    rustix::fs::lsetxattr(path, OPAQUE, b"y", XattrFlags::empty())?;
    Ok(())
}

/// Creates a whiteout at `path`.
pub(super) fn make_whiteout(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}

/// The extended attributes of `path` (not following a symlink), names and
/// values.
pub(super) fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = rustix::fs::llistxattr_query(path)?;
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size];
    let len = rustix::fs::llistxattr(path, &mut names[..])?;
    names.truncate(len);

    let mut attrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|name| !name.is_empty()) {
        let name = OsStr::from_bytes(name);
        let size = rustix::fs::lgetxattr_query(path, name)?;
        let mut value = vec![0u8; size];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(len);
        attrs.push((name.as_bytes().to_vec(), value));
    }
    Ok(attrs)
}

/// Removes the xattrs overlayfs writes for itself (origin, impure, nlink...)
/// from `path`, keeping the opaque mark only when `keep_opaque` says so.
pub(super) fn strip_overlay_xattrs(path: &Path, keep_opaque: bool) -> io::Result<()> {
    for (name, _) in xattrs(path)? {
        if !name.starts_with(OVERLAY_PREFIX) || (keep_opaque && name == OPAQUE.as_bytes()) {
            continue;
        }
        rustix::fs::lremovexattr(path, OsStr::from_bytes(&name))?;
    }
    Ok(())
}

/// The attributes of a directory that a copy of it must have: owner, mode,
/// xattrs (overlayfs' own excepted) and times.
pub(super) struct DirAttrs {
    meta: Metadata,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl DirAttrs {
    /// Reads the attributes of `from`, before anything changes it.
    pub(super) fn read(from: &Path) -> io::Result<DirAttrs> {
        let meta = fs::symlink_metadata(from)?;
        let xattrs = xattrs(from)?
            .into_iter()
            .filter(|(name, _)| !name.starts_with(OVERLAY_PREFIX));
        Ok(DirAttrs {
            meta,
            xattrs: xattrs.collect(),
        })
    }

    /// Gives them to the directory `to`, whose overlayfs xattrs stay.
    ///
    /// Times go last: callers that fill `to` must apply after filling it.
    pub(super) fn apply(&self, to: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(to, Some(self.meta.uid()), Some(self.meta.gid()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(self.meta.mode() & 0o7777))?;

        for (name, _) in xattrs(to)? {
            let keep =
                name.starts_with(OVERLAY_PREFIX) || self.xattrs.iter().any(|(n, _)| *n == name);
            if !keep {
                rustix::fs::lremovexattr(to, OsStr::from_bytes(&name))?;
            }
        }
        for (name, value) in &self.xattrs {
            rustix::fs::lsetxattr(to, OsStr::from_bytes(name), value, XattrFlags::empty())?;
        }
        copy_times(&self.meta, to)
    }
}

/// Gives the directory `to` the attributes of the directory `from` now.
pub(super) fn copy_dir_attrs(from: &Path, to: &Path) -> io::Result<()> {
    DirAttrs::read(from)?.apply(to)
}

/// Sets the access and modification times of `to` (not following a
/// symlink) to those in `meta`.
pub(super) fn copy_times(meta: &Metadata, to: &Path) -> io::Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}
