//! Host-side file operations inside a mounted image, resolved the way the
//! image itself would resolve them.
//!
//! Paths are resolved with `openat2(RESOLVE_IN_ROOT)`: the kernel treats the
//! image root as `/`, so an absolute symlink in the image (`/etc/alternatives/x
//! -> /usr/bin/x`) resolves inside the image and `..` cannot climb out of it.
//! cap-std's resolution would refuse such absolute symlinks instead, which
//! real images are full of; it is used for the leaf operations once the
//! parent dir is open. Writes go through the task's overlay, so overlayfs
//! itself records them in the upper dir (copy-ups, whiteouts).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

use crate::exec::Error;

/// The root of a mounted image tree.
pub(super) struct Rootfs {
    root: OwnedFd,
}

impl Rootfs {
    /// Opens the root dir of a mounted image.
    pub(super) fn open(dir: &Path) -> Result<Rootfs, Error> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(dir, flags, Mode::empty()).map_err(|errno| {
            io::Error::new(errno.kind(), format!("opening {}: {errno}", dir.display()))
        })?;
        Ok(Rootfs { root })
    }

    /// Reads up to `limit` bytes of the file at `path`, or `None` when there
    /// is no such file.
    pub(super) fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let names = components(path)?;
        let at = in_image("reading", path);
        let file = match self.resolve(&names, OFlags::RDONLY) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(errno) => return Err(at(errno.into())),
        };
        let mut contents = Vec::new();
        file.take(limit).read_to_end(&mut contents).map_err(at)?;
        Ok(Some(contents))
    }

    /// Writes `contents` to a new file at `path`, owned by root with `mode`,
    /// creating missing parent dirs (root, 0755). A file or symlink already
    /// there is replaced, not written through; a dir there is an error.
    pub(super) fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), Error> {
        let names = components(path)?;
        let Some((name, parents)) = names.split_last() else {
            return Err(Error::ImagePath {
                path: path.into(),
                reason: "is the image root",
            });
        };
        let at = in_image("writing", path);
        let parent = self
            .create_dirs(parents)
            .map_err(|errno| at(errno.into()))?;

        match rustix::fs::statat(&parent, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
                return Err(at(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "a directory is there",
                )));
            }
            Ok(_) => rustix::fs::unlinkat(&parent, *name, AtFlags::empty())
                .map_err(|errno| at(errno.into()))?,
            Err(Errno::NOENT) => {}
            Err(errno) => return Err(at(errno.into())),
        }

        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let fd = rustix::fs::openat(&parent, *name, flags | OFlags::CLOEXEC, mode)
            .map_err(|errno| at(errno.into()))?;
        // Owner first: chown clears set-id bits, which the mode may carry. The
        // mode is set again because the umask trimmed it at creation.
        rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT)).map_err(|e| at(e.into()))?;
        rustix::fs::fchmod(&fd, mode).map_err(|errno| at(errno.into()))?;
        File::from(fd).write_all(contents).map_err(at)?;
        Ok(())
    }

    /// Removes the file or directory tree at `path` (a symlink itself, not its
    /// target). Returns whether there was anything to remove.
    pub(super) fn remove(&self, path: &str) -> Result<bool, Error> {
        let names = components(path)?;
        let Some((name, parents)) = names.split_last() else {
            return Err(Error::ImagePath {
                path: path.into(),
                reason: "is the image root",
            });
        };
        let at = in_image("removing", path);
        let parent = match self.resolve(parents, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => cap_std::fs::Dir::from_std_file(File::from(fd)),
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
            Err(errno) => return Err(at(errno.into())),
        };

        match parent.symlink_metadata(name) {
            Ok(meta) if meta.is_dir() => parent.remove_dir_all(name).map_err(at)?,
            Ok(_) => parent.remove_file(name).map_err(at)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(at(error)),
        }
        Ok(true)
    }

    /// Opens `names` joined, resolved inside the image.
    fn resolve(&self, names: &[&str], flags: OFlags) -> Result<OwnedFd, Errno> {
        let path = if names.is_empty() {
            ".".to_owned()
        } else {
            names.join("/")
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        rustix::fs::openat2(
            &self.root,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
    }

    /// Opens the dir `names`, creating what is missing of it, one level at a
    /// time so that each level is resolved inside the image again.
    fn create_dirs(&self, names: &[&str]) -> Result<OwnedFd, Errno> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        match self.resolve(names, flags) {
            Err(Errno::NOENT) => {}
            other => return other,
        }
        let Some((name, parents)) = names.split_last() else {
            return self.resolve(names, flags);
        };
        let parent = self.create_dirs(parents)?;
        match rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => return Err(errno),
        }
        self.resolve(names, flags)
    }
}

/// The names of an absolute path inside the image; `.` and empty names are
/// dropped, `..` is refused.
pub(super) fn components(path: &str) -> Result<Vec<&str>, Error> {
    let refuse = |reason| {
        Err(Error::ImagePath {
            path: path.into(),
            reason,
        })
    };
    if !path.starts_with('/') {
        return refuse("is not absolute");
    }
    if path.contains('\0') {
        return refuse("holds a NUL byte");
    }
    let names: Vec<_> = path
        .split('/')
        .filter(|name| !name.is_empty() && *name != ".")
        .collect();
    if names.contains(&"..") {
        return refuse("has a `..` component");
    }
    Ok(names)
}

fn in_image(action: &'static str, path: &str) -> impl Fn(io::Error) -> Error {
    move |source| Error::InImage {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::*;
    use crate::exec::native::testing::root_or_skip;

    fn image() -> (tempfile::TempDir, tempfile::TempDir, Rootfs) {
        let host = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        fs::create_dir_all(image.path().join("usr/share/doc")).unwrap();
        fs::create_dir_all(image.path().join("etc")).unwrap();
        symlink("/usr/share", image.path().join("share")).unwrap();
        symlink(host.path(), image.path().join("etc/escape")).unwrap();
        symlink("../../../..", image.path().join("usr/share/doc/up")).unwrap();
        let rootfs = Rootfs::open(image.path()).unwrap();
        (host, image, rootfs)
    }

    #[test]
    fn paths_must_be_absolute_and_without_dot_dot() {
        assert_eq!(
            components("/etc//apt/./sources.list").unwrap(),
            ["etc", "apt", "sources.list"]
        );
        assert!(
            components("etc/passwd")
                .unwrap_err()
                .to_string()
                .contains("is not absolute")
        );
        let error = components("/etc/../../x").unwrap_err().to_string();
        assert_eq!(
            error,
            "path `/etc/../../x` in the image: has a `..` component"
        );
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_image() {
        let (_host, image, rootfs) = image();
        rootfs
            .write_file("/share/doc/note", b"hello", 0o640)
            .unwrap();

        let written = image.path().join("usr/share/doc/note");
        assert_eq!(fs::read(&written).unwrap(), b"hello");
        let meta = fs::metadata(&written).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o640, 0, 0)
        );
        assert_eq!(rootfs.read("/share/doc/note", 3).unwrap().unwrap(), b"hel");
    }

    #[test]
    fn symlinks_pointing_out_of_the_image_stay_inside_it() {
        let (host, image, rootfs) = image();
        let error = rootfs
            .write_file("/etc/escape/planted", b"x", 0o644)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("writing `/etc/escape/planted`"),
            "{error}"
        );

        let rerooted = image.path().join(host.path().strip_prefix("/").unwrap());
        fs::create_dir_all(&rerooted).unwrap();
        rootfs
            .write_file("/etc/escape/planted", b"x", 0o644)
            .unwrap();
        rootfs
            .write_file("/usr/share/doc/up/planted-too", b"x", 0o644)
            .unwrap();

        assert_eq!(
            fs::read_dir(host.path()).unwrap().count(),
            0,
            "nothing written on the host"
        );
        assert!(
            rerooted.join("planted").exists(),
            "the link's target was re-rooted in the image"
        );
        assert!(
            image.path().join("planted-too").exists(),
            "`..` stops at the image root"
        );
    }

    #[test]
    fn writing_over_a_symlink_replaces_the_link_not_its_target() {
        let (_host, image, rootfs) = image();
        fs::write(image.path().join("etc/real"), "keep").unwrap();
        symlink("real", image.path().join("etc/link")).unwrap();

        rootfs.write_file("/etc/link", b"new", 0o644).unwrap();
        assert_eq!(
            fs::read_to_string(image.path().join("etc/real")).unwrap(),
            "keep"
        );
        assert!(
            fs::symlink_metadata(image.path().join("etc/link"))
                .unwrap()
                .is_file()
        );

        let error = rootfs.write_file("/usr/share", b"x", 0o644).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("writing `/usr/share` in the image"),
            "{error}"
        );
    }

    #[test]
    fn missing_parents_are_created_owned_by_root() {
        if !root_or_skip("chown to root") {
            return;
        }
        let (_host, image, rootfs) = image();
        rootfs
            .write_file("/opt/app/conf.d/x.conf", b"x", 0o600)
            .unwrap();
        let dir = fs::metadata(image.path().join("opt/app/conf.d")).unwrap();
        assert!(dir.is_dir());
        assert_eq!((dir.uid(), dir.gid()), (0, 0));
    }

    #[test]
    fn remove_takes_trees_and_links_but_never_what_links_point_to() {
        let (host, image, rootfs) = image();
        fs::write(host.path().join("precious"), "keep").unwrap();
        fs::create_dir_all(image.path().join("var/cache/apt/archives")).unwrap();
        fs::write(image.path().join("var/cache/apt/archives/a.deb"), "deb").unwrap();

        assert!(rootfs.remove("/var/cache/apt").unwrap());
        assert!(!image.path().join("var/cache/apt").exists());
        assert!(
            rootfs.remove("/etc/escape").unwrap(),
            "the link itself goes"
        );
        assert!(host.path().join("precious").exists());
        assert!(!rootfs.remove("/var/cache/apt").unwrap(), "already gone");
        assert!(!rootfs.remove("/no/such/dir/file").unwrap());
        assert!(rootfs.remove("/").is_err());
    }
}
