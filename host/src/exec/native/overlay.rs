//! Overlay mounts that unmount themselves.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};
use tracing::{debug, warn};

use crate::exec::Error;

/// The kernel copies mount options into one page.
const OPTIONS_LIMIT: usize = 4095;

/// Features that would let overlayfs record changes outside the upper dir's
/// plain files (directory renames as redirects, metadata-only copy-ups, an
/// inode index): a change must be an ordinary entry of the upper dir to
/// become a layer. With them off, renaming a directory that comes from a
/// lower layer fails with EXDEV, and `mv` and installers fall back to a copy.
const PLAIN_UPPER: &str = "redirect_dir=off,index=off,metacopy=off";

/// An upper dir is scratch until its task is committed, which happens after
/// the unmount, from the page cache; a crash discards it anyway. Without
/// this, every unmount syncs the whole filesystem under the upper dir, which
/// took seconds on a busy disk in the step bench.
const NO_SYNC: &str = "volatile";

/// A mounted overlay, unmounted on drop.
#[derive(Debug)]
pub(super) struct Overlay {
    target: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// Mounts `lowers` (topmost first) at `target`, read-write over
    /// `upper` = (upper dir, work dir) when given, else read-only.
    ///
    /// # Errors
    ///
    /// [`Error::MountOptionsTooLong`] when the paths do not fit the kernel's
    /// limit, [`Error::Mount`] when the kernel refuses.
    pub(super) fn mount(
        what: &'static str,
        target: &Path,
        lowers: &[PathBuf],
        upper: Option<(PathBuf, PathBuf)>,
    ) -> Result<Overlay, Error> {
        let options = options(what, target, lowers, upper.as_ref())?;
        let flags = if upper.is_some() {
            MountFlags::empty()
        } else {
            MountFlags::RDONLY
        };
        debug!(what, target = %target.display(), layers = lowers.len(), "mounting overlay");
        rustix::mount::mount("overlay", target, "overlay", flags, options.as_c_str()).map_err(
            |errno| Error::Mount {
                what,
                target: target.to_owned(),
                source: errno.into(),
            },
        )?;
        Ok(Overlay {
            target: target.to_owned(),
            mounted: true,
        })
    }

    /// The mount point.
    pub(super) fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting failure (drop only logs it).
    pub(super) fn unmount(mut self) -> Result<(), Error> {
        self.mounted = false;
        unmount(&self.target)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted
            && let Err(error) = unmount(&self.target)
        {
            warn!(target = %self.target.display(), %error, "overlay left mounted");
        }
    }
}

/// Unmounts `target`; when it is busy (a process still has a file open in
/// it), detaches it so that it goes away once the last user lets go.
pub(super) fn unmount(target: &Path) -> Result<(), Error> {
    let result = match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Err(rustix::io::Errno::BUSY) => {
            debug!(target = %target.display(), "mount busy, detaching it");
            rustix::mount::unmount(target, UnmountFlags::DETACH)
        }
        other => other,
    };
    result.map_err(|errno| Error::Unmount {
        target: target.to_owned(),
        source: errno.into(),
    })
}

fn options(
    what: &'static str,
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<&(PathBuf, PathBuf)>,
) -> Result<CString, Error> {
    let upper_paths = upper.into_iter().flat_map(|(upper, work)| [upper, work]);
    for path in lowers.iter().chain(upper_paths) {
        // Overlay options are split at commas and lower dirs at colons.
        if path
            .as_os_str()
            .as_bytes()
            .iter()
            .any(|b| b":,\\".contains(b))
        {
            let source = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has a ':', ',' or '\\' in its path", path.display()),
            );
            return Err(Error::Mount {
                what,
                target: target.to_owned(),
                source,
            });
        }
    }

    let mut options = b"lowerdir=".to_vec();
    for (i, lower) in lowers.iter().enumerate() {
        if i > 0 {
            options.push(b':');
        }
        options.extend(lower.as_os_str().as_bytes());
    }
    if let Some((upper, work)) = upper {
        options.extend(b",upperdir=");
        options.extend(upper.as_os_str().as_bytes());
        options.extend(b",workdir=");
        options.extend(work.as_os_str().as_bytes());
        options.push(b',');
        options.extend(NO_SYNC.as_bytes());
    }
    options.push(b',');
    options.extend(PLAIN_UPPER.as_bytes());

    if options.len() > OPTIONS_LIMIT {
        let (layers, len) = (lowers.len(), options.len());
        return Err(Error::MountOptionsTooLong {
            layers,
            len,
            limit: OPTIONS_LIMIT,
        });
    }
    CString::new(options).map_err(|_| {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte");
        Error::Mount {
            what,
            target: target.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_lowers_top_first_and_turn_off_redirects() {
        let lowers = [PathBuf::from("/s/l/1"), PathBuf::from("/s/l/0")];
        let upper = (PathBuf::from("/s/t/u"), PathBuf::from("/s/t/w"));
        let options = options("task", Path::new("/m"), &lowers, Some(&upper)).unwrap();
        assert_eq!(
            options.to_str().unwrap(),
            "lowerdir=/s/l/1:/s/l/0,upperdir=/s/t/u,workdir=/s/t/w,volatile,redirect_dir=off,\
             index=off,metacopy=off"
        );
    }

    #[test]
    fn options_refuse_separators_in_paths_and_pages_overflow() {
        let lowers = [PathBuf::from("/scratch,x/l/0")];
        let error = options("view", Path::new("/m"), &lowers, None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("mounting the view overlay at /m"),
            "{error}"
        );

        let lowers: Vec<_> = (0..400)
            .map(|n| PathBuf::from(format!("/scratch/l/{n:08}")))
            .collect();
        let error = options("view", Path::new("/m"), &lowers, None).unwrap_err();
        assert!(
            matches!(error, Error::MountOptionsTooLong { layers: 400, .. }),
            "{error}"
        );
    }
}
