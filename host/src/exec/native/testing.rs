//! Helpers for the native executor's tests.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::metadata;

/// Whether the test can run: it needs root for `reason`. Without root it
/// says why it skips, unless `SALVE_CI=1`, where a skip would hide a gap and
/// the test fails instead.
pub(crate) fn root_or_skip(reason: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("SALVE_CI").is_none_or(|ci| ci != "1"),
        "{reason} needs root"
    );
    eprintln!("skipped: {reason} needs root");
    false
}

/// One entry of a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    /// File content or symlink target.
    pub data: Option<Vec<u8>>,
    pub opaque: bool,
    /// Overlayfs' private xattrs other than the opaque mark.
    pub overlay_xattrs: Vec<String>,
}

/// Everything under a directory (its root excluded), by relative path, to
/// compare two trees or look at one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tree(pub BTreeMap<PathBuf, Entry>);

impl Tree {
    pub(crate) fn read(root: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let kind = if metadata::is_whiteout(&meta) {
                    "whiteout"
                } else if meta.is_dir() {
                    dirs.push(path.clone());
                    "dir"
                } else if meta.is_file() {
                    "file"
                } else if meta.file_type().is_symlink() {
                    "symlink"
                } else {
                    "other"
                };
                let data = match kind {
                    "file" => Some(fs::read(&path).unwrap()),
                    "symlink" => Some(fs::read_link(&path).unwrap().into_os_string().into_vec()),
                    _ => None,
                };
                let overlay_xattrs = metadata::xattrs(&path)
                    .unwrap()
                    .into_iter()
                    .map(|(name, _)| String::from_utf8_lossy(&name).into_owned())
                    .filter(|name| name.starts_with("trusted.overlay.") && name != metadata::OPAQUE)
                    .collect();
                let entry = Entry {
                    kind,
                    mode: meta.permissions().mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                    data,
                    opaque: kind == "dir" && metadata::is_opaque(&path).unwrap(),
                    overlay_xattrs,
                };
                entries.insert(path.strip_prefix(root).unwrap().to_path_buf(), entry);
            }
        }
        Tree(entries)
    }

    pub(crate) fn kind(&self, path: &str) -> Option<&'static str> {
        self.0.get(Path::new(path)).map(|entry| entry.kind)
    }

    pub(crate) fn content(&self, path: &str) -> Option<&str> {
        let entry = self.0.get(Path::new(path))?;
        (entry.kind == "file").then(|| std::str::from_utf8(entry.data.as_deref()?).ok())?
    }

    pub(crate) fn mode(&self, path: &str) -> Option<u32> {
        self.0.get(Path::new(path)).map(|entry| entry.mode)
    }

    pub(crate) fn is_opaque(&self, path: &str) -> bool {
        self.0
            .get(Path::new(path))
            .is_some_and(|entry| entry.opaque)
    }

    /// Paths that carry overlayfs' private xattrs.
    pub(crate) fn overlay_xattrs(&self) -> Vec<(&Path, &str)> {
        self.0
            .iter()
            .flat_map(|(path, entry)| {
                entry
                    .overlay_xattrs
                    .iter()
                    .map(move |name| (path.as_path(), name.as_str()))
            })
            .collect()
    }

    /// The relative paths, for readable assertions.
    pub(crate) fn paths(&self) -> Vec<String> {
        self.0
            .keys()
            .map(|path| path.display().to_string())
            .collect()
    }
}
