//! Committing a task: moving the changes in its upper dir into the
//! accumulated upper dir, so that the accumulated dir over the image layers
//! shows exactly what the task's upper over both showed.
//!
//! Entries are renamed, not copied (both dirs are in the workspace, on one
//! filesystem), so a commit costs a walk of the task's changes only. The
//! rules, for each entry of the task's upper dir:
//!
//! - a whiteout removes what the accumulated dir has there, and stays a
//!   whiteout only if the image layers still show something at that path;
//! - a file, symlink or device replaces whatever was there;
//! - an opaque dir replaces whatever was there, and stays opaque only if
//!   the layers have something to hide at that path;
//! - a plain dir merges into an accumulated dir, or replaces a whiteout or
//!   non-dir, becoming opaque if that hid something of the layers.
//!
//! Overlayfs' private xattrs (origin, impure...) are dropped on the way, and
//! whiteouts are re-created rather than moved, since overlayfs may make them
//! hard links of one shared inode.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::metadata::{self, DirAttrs, Kind};
use crate::exec::Error;

/// Moves the changes in `upper` into `acc`; `below` is a read-only view of
/// the layers beneath `acc`.
///
/// # Errors
///
/// [`Error::Merge`] naming the entry that could not be moved. The
/// accumulated dir is then half-merged and must not be used again.
pub(super) fn merge(upper: &Path, acc: &Path, below: &Below) -> Result<(), Error> {
    Merge { below }.dir(upper, acc, Path::new(""), false)
}

/// Answers "do the image layers show anything at this path?".
pub(super) struct Below {
    root: OwnedFd,
}

impl Below {
    /// Opens the root of a read-only view of the layers.
    pub(super) fn open(view: &Path) -> Result<Below, Error> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(view, flags, Mode::empty())
            .map_err(|errno| merge_error(view, errno.into()))?;
        Ok(Below { root })
    }

    /// Whether the view has an entry at exactly `rel` (no symlink on the way
    /// is followed: layers shadow each other path by path).
    fn has(&self, rel: &Path) -> io::Result<bool> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
        match rustix::fs::openat2(&self.root, rel, flags, Mode::empty(), resolve) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                Ok(false)
            }
            Err(errno) => Err(errno.into()),
        }
    }
}

struct Merge<'a> {
    below: &'a Below,
}

impl Merge<'_> {
    /// Merges the entries of `from` into `to`. `hidden` says that the layers
    /// are already hidden at `rel` (by an opaque or replacing dir above), so
    /// nothing under it needs a whiteout or an opaque mark.
    fn dir(&self, from: &Path, to: &Path, rel: &Path, hidden: bool) -> Result<(), Error> {
        for entry in fs_err::read_dir(from)? {
            let name = entry?.file_name();
            self.entry(&from.join(&name), &to.join(&name), &rel.join(&name), hidden)?;
        }
        Ok(())
    }

    fn entry(&self, from: &Path, to: &Path, rel: &Path, hidden: bool) -> Result<(), Error> {
        let at = |source| merge_error(rel, source);
        let Some(new) = metadata::kind(from).map_err(at)? else {
            return Ok(());
        };
        let old = metadata::kind(to).map_err(at)?;
        let shows_below =
            |rel| -> Result<bool, Error> { Ok(!hidden && self.below.has(rel).map_err(at)?) };

        match (new, old) {
            (Kind::Whiteout, _) => {
                remove_any(to, old).map_err(at)?;
                if shows_below(rel)? {
                    metadata::make_whiteout(to).map_err(at)?;
                }
            }
            (Kind::Other, _) => {
                remove_any(to, old).map_err(at)?;
                fs_err::rename(from, to)?;
                metadata::strip_overlay_xattrs(to, false).map_err(at)?;
            }
            (Kind::OpaqueDir, _) => {
                remove_any(to, old).map_err(at)?;
                fs_err::rename(from, to)?;
                clean_tree(to, shows_below(rel)?).map_err(at)?;
            }
            (Kind::Dir, Some(Kind::Dir | Kind::OpaqueDir)) => {
                let attrs = DirAttrs::read(from).map_err(at)?;
                self.dir(from, to, rel, hidden || old == Some(Kind::OpaqueDir))?;
                attrs.apply(to).map_err(at)?;
            }
            (Kind::Dir, None) if !shows_below(rel)? => {
                // Nothing beneath to merge with: the whole tree moves at once.
                fs_err::rename(from, to)?;
                clean_tree(to, false).map_err(at)?;
            }
            (Kind::Dir, None) => {
                let attrs = DirAttrs::read(from).map_err(at)?;
                fs_err::create_dir(to)?;
                self.dir(from, to, rel, hidden)?;
                attrs.apply(to).map_err(at)?;
            }
            (Kind::Dir, Some(Kind::Whiteout | Kind::Other)) => {
                // The old entry hid the layers' namesake; the new dir must too.
                let opaque = shows_below(rel)?;
                let attrs = DirAttrs::read(from).map_err(at)?;
                remove_any(to, old).map_err(at)?;
                fs_err::create_dir(to)?;
                self.dir(from, to, rel, true)?;
                if opaque {
                    metadata::set_opaque(to).map_err(at)?;
                }
                attrs.apply(to).map_err(at)?;
            }
        }
        Ok(())
    }
}

/// Removes the entry at `path`, of the given kind, if any.
fn remove_any(path: &Path, kind: Option<Kind>) -> io::Result<()> {
    match kind {
        None => Ok(()),
        Some(Kind::Dir | Kind::OpaqueDir) => fs_err::remove_dir_all(path),
        Some(Kind::Whiteout | Kind::Other) => fs_err::remove_file(path),
    }
}

/// Readies a tree that moved in whole: below its root the layers are hidden,
/// so whiteouts and opaque marks mean nothing there and go, as do
/// overlayfs' private xattrs everywhere. The root keeps its opaque mark only
/// if `keep_opaque`.
fn clean_tree(root: &Path, keep_opaque: bool) -> io::Result<()> {
    metadata::strip_overlay_xattrs(root, keep_opaque)?;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let meta = fs_err::symlink_metadata(&path)?;
            if metadata::is_whiteout(&meta) {
                fs_err::remove_file(&path)?;
                continue;
            }
            metadata::strip_overlay_xattrs(&path, false)?;
            if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(())
}

fn merge_error(path: &Path, source: io::Error) -> Error {
    Error::Merge {
        path: PathBuf::from("/").join(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;
    use crate::exec::native::overlay::Overlay;
    use crate::exec::native::testing::{Tree, root_or_skip};

    /// Three layer dirs (`lower` at the bottom, `acc`, then a task's
    /// `upper`) whose upper is filled by doing real work through overlayfs.
    struct Stack {
        dir: tempfile::TempDir,
    }

    impl Stack {
        fn new() -> Stack {
            let dir = tempfile::tempdir().unwrap();
            for sub in [
                "lower", "acc", "upper", "work", "task", "pad", "before", "after",
            ] {
                fs::create_dir(dir.path().join(sub)).unwrap();
            }
            Stack { dir }
        }

        fn path(&self, sub: &str) -> PathBuf {
            self.dir.path().join(sub)
        }

        /// Mounts the task overlay (upper over acc over lower), lets `work`
        /// change it, unmounts.
        fn task(&self, work: impl FnOnce(&Path)) {
            let lowers = [self.path("acc"), self.path("lower")];
            let upper = Some((self.path("upper"), self.path("work")));
            let mount = Overlay::mount("task", &self.path("task"), &lowers, upper).unwrap();
            work(mount.path());
            mount.unmount().unwrap();
        }

        /// What a container would see: the given layers stacked, read-only.
        fn view(&self, at: &str, lowers: &[&str]) -> Overlay {
            let mut lowers: Vec<_> = lowers.iter().map(|sub| self.path(sub)).collect();
            lowers.push(self.path("pad"));
            Overlay::mount("view", &self.path(at), &lowers, None).unwrap()
        }

        /// Merges the task into acc and checks that nothing visible changed.
        fn merge_and_compare(&self) {
            let before = self.view("before", &["upper", "acc", "lower"]);
            let expected = Tree::read(before.path());
            before.unmount().unwrap();

            let below = self.view("after", &["lower"]);
            merge(
                &self.path("upper"),
                &self.path("acc"),
                &Below::open(below.path()).unwrap(),
            )
            .unwrap();
            below.unmount().unwrap();

            let after = self.view("after", &["acc", "lower"]);
            assert_eq!(
                Tree::read(after.path()),
                expected,
                "the view changed in the merge"
            );
            after.unmount().unwrap();
        }

        fn acc(&self) -> Tree {
            Tree::read(&self.path("acc"))
        }
    }

    fn write(path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn whiteouts_stay_only_where_the_layers_show_something() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/etc/only-lower"), "l");
        write(stack.path("lower/etc/both"), "l");
        write(stack.path("acc/etc/both"), "a");
        write(stack.path("acc/etc/only-acc"), "a");

        stack.task(|root| {
            for name in ["only-lower", "both", "only-acc"] {
                fs::remove_file(root.join("etc").join(name)).unwrap();
            }
        });
        stack.merge_and_compare();

        let acc = stack.acc();
        assert_eq!(acc.kind("etc/only-lower"), Some("whiteout"));
        assert_eq!(acc.kind("etc/both"), Some("whiteout"));
        assert_eq!(
            acc.kind("etc/only-acc"),
            None,
            "nothing below to hide: no whiteout"
        );
    }

    #[test]
    fn new_files_and_dirs_move_in_and_merge_with_existing_dirs() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/usr/lib/python3/old.py"), "old");
        write(stack.path("acc/usr/lib/python3/earlier.py"), "earlier task");

        stack.task(|root| {
            write(root.join("usr/lib/python3/new.py"), "new");
            write(root.join("usr/lib/python3/pkg/__init__.py"), "pkg");
            write(root.join("opt/app/bin/run"), "run");
            symlink("../lib/python3/new.py", root.join("usr/lib/python3/link")).unwrap();
        });
        stack.merge_and_compare();

        let acc = stack.acc();
        assert_eq!(
            acc.content("usr/lib/python3/earlier.py"),
            Some("earlier task")
        );
        assert_eq!(acc.content("usr/lib/python3/new.py"), Some("new"));
        assert_eq!(acc.content("usr/lib/python3/pkg/__init__.py"), Some("pkg"));
        assert_eq!(acc.content("opt/app/bin/run"), Some("run"));
        assert_eq!(acc.kind("usr/lib/python3/link"), Some("symlink"));
        assert_eq!(
            acc.kind("usr/lib/python3/old.py"),
            None,
            "untouched lower files stay below"
        );
        assert!(
            !acc.is_opaque("usr/lib/python3"),
            "a merging dir is not opaque"
        );
        assert!(
            acc.overlay_xattrs().is_empty(),
            "{:?}",
            acc.overlay_xattrs()
        );
    }

    #[test]
    fn a_dir_recreated_over_the_layers_becomes_opaque_only_if_it_hides_something() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/srv/www/old.html"), "old");
        write(stack.path("acc/srv/cache/entry"), "from an earlier task");

        stack.task(|root| {
            fs::remove_dir_all(root.join("srv/www")).unwrap();
            write(root.join("srv/www/new.html"), "new");
            fs::remove_dir_all(root.join("srv/cache")).unwrap();
            write(root.join("srv/cache/fresh"), "fresh");
        });
        stack.merge_and_compare();

        let acc = stack.acc();
        assert!(acc.is_opaque("srv/www"), "hides the layers' old.html");
        assert_eq!(acc.content("srv/www/new.html"), Some("new"));
        assert!(
            !acc.is_opaque("srv/cache"),
            "only acc had srv/cache: nothing below to hide"
        );
        assert_eq!(acc.content("srv/cache/entry"), None);
        assert_eq!(acc.content("srv/cache/fresh"), Some("fresh"));
    }

    #[test]
    fn a_dir_created_where_acc_has_a_whiteout_hides_the_layers() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/var/lib/thing/file"), "lower");
        fs::create_dir_all(stack.path("acc/var/lib")).unwrap();
        metadata::make_whiteout(&stack.path("acc/var/lib/thing")).unwrap();

        stack.task(|root| write(root.join("var/lib/thing/other"), "task"));
        stack.merge_and_compare();

        let acc = stack.acc();
        assert_eq!(acc.kind("var/lib/thing"), Some("dir"));
        assert!(
            acc.is_opaque("var/lib/thing"),
            "must keep hiding the layers' file"
        );
        assert_eq!(acc.content("var/lib/thing/other"), Some("task"));
    }

    #[test]
    fn replacing_kinds_and_changing_modes_carry_over() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/data/was-dir/inner"), "x");
        write(stack.path("lower/data/was-file"), "x");
        write(stack.path("acc/data/acc-dir/inner"), "x");

        stack.task(|root| {
            let data = root.join("data");
            fs::remove_dir_all(data.join("was-dir")).unwrap();
            fs::write(data.join("was-dir"), "now a file").unwrap();
            fs::remove_file(data.join("was-file")).unwrap();
            fs::create_dir(data.join("was-file")).unwrap();
            fs::remove_dir_all(data.join("acc-dir")).unwrap();
            fs::write(data.join("acc-dir"), "file over acc dir").unwrap();
            fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        });
        stack.merge_and_compare();

        let acc = stack.acc();
        assert_eq!(acc.content("data/was-dir"), Some("now a file"));
        assert_eq!(acc.kind("data/was-file"), Some("dir"));
        assert!(
            acc.is_opaque("data/was-file"),
            "hides the layers' file of the same name"
        );
        assert_eq!(acc.content("data/acc-dir"), Some("file over acc dir"));
        assert_eq!(acc.mode("data"), Some(0o700));
    }

    #[test]
    fn inside_an_opaque_acc_dir_no_whiteouts_are_needed() {
        if !root_or_skip("mounting overlays") {
            return;
        }
        let stack = Stack::new();
        write(stack.path("lower/app/x"), "lower");
        write(stack.path("acc/app/x"), "acc");
        metadata::set_opaque(&stack.path("acc/app")).unwrap();

        stack.task(|root| fs::remove_file(root.join("app/x")).unwrap());
        stack.merge_and_compare();

        assert_eq!(
            stack.acc().kind("app/x"),
            None,
            "the opaque dir already hides lower/app/x"
        );
    }
}
