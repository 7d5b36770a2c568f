//! Finding and removing what a killed salve left in its scratch dir.
//!
//! Each workspace holds an exclusive `flock` on its `lock` file for as long
//! as it lives; the kernel drops the lock when the process dies, however it
//! dies. A workspace dir whose lock can be taken therefore belongs to no
//! one: its containers are deleted, its mounts detached, and it is removed.
//! The lock file is locked under a temporary name and renamed into place,
//! so a sweeper never sees an unlocked `lock` of a live workspace.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use rustix::fs::FlockOperation;
use tracing::{debug, warn};

use super::{MOUNT_POINTS, WORKSPACE_PREFIX, overlay, runc};
use crate::exec::Error;

/// A workspace dir without a lock file is abandoned after this long (its
/// creator died before locking it, so nothing was mounted in it yet).
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// Takes the lock of a new workspace dir.
pub(super) fn lock(dir: &Path) -> Result<File, Error> {
    let staged = dir.join("lock.new");
    let file = fs_err::File::create(&staged)?;
    rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|errno| {
        io::Error::new(
            errno.kind(),
            format!("locking {}: {errno}", staged.display()),
        )
    })?;
    fs_err::rename(&staged, dir.join("lock"))?;
    Ok(file.into_parts().0)
}

/// Cleans up the abandoned workspaces in `scratch`; returns how many.
///
/// Called by [`Workspace::new`](super::Workspace::new) for its scratch dir;
/// also usable on its own (`salve` could offer it as a command).
pub fn sweep(scratch: &Path, runtime: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_workspace = entry
            .file_name()
            .to_string_lossy()
            .starts_with(WORKSPACE_PREFIX);
        if is_workspace && abandoned(&dir) {
            match clean(&dir, runtime) {
                Ok(()) => swept += 1,
                Err(error) => warn!(dir = %dir.display(), %error, "abandoned workspace left as is"),
            }
        }
    }
    swept
}

/// Whether no live process owns the workspace `dir`.
fn abandoned(dir: &Path) -> bool {
    match File::open(dir.join("lock")) {
        Ok(file) => rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok(),
        Err(_) => std::fs::metadata(dir)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > UNLOCKED_GRACE)),
    }
}

/// Deletes the containers, detaches the mounts and removes the dir.
fn clean(dir: &Path, runtime: &Path) -> Result<(), Error> {
    debug!(dir = %dir.display(), "sweeping abandoned workspace");
    runc::delete_all(runtime, &dir.join(super::RUNC_STATE));

    let tasks = std::fs::read_dir(dir.join(super::TASKS))
        .into_iter()
        .flatten()
        .flatten();
    let task_mounts = tasks.map(|task| task.path().join(super::MERGED));
    let mounts = task_mounts.chain(MOUNT_POINTS.iter().map(|name| dir.join(name)));
    for mount in mounts {
        match overlay::unmount(&mount) {
            Ok(()) => debug!(mount = %mount.display(), "detached"),
            Err(Error::Unmount { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
            Err(error) => return Err(error),
        }
    }
    fs_err::remove_dir_all(dir)?;
    Ok(())
}
