//! A read-only view of an image's files.
//!
//! Inside a plugin the image root is preopened at `/`; in native tests any
//! directory stands in for it. Paths given to [`Image`] are image paths:
//! absolute or relative, they always start at the image root.
//!
//! Symbolic links are resolved the way they would be inside the image, not
//! on the host: an absolute target starts again at the image root and `..`
//! never climbs above it. (The WASI sandbox refuses absolute links outright,
//! and images are full of them, such as `/etc/alternatives/*`.)

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::Error;

/// Links followed while resolving one path before giving up (as Linux).
const MAX_LINK_HOPS: usize = 40;

/// The kind of a directory entry, without following links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (devices, sockets, fifos).
    Other,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's image path, without a leading slash.
    pub path: String,
    /// The last component.
    pub name: String,
    /// What it is, links not followed.
    pub kind: EntryKind,
}

/// Limits for [`Image::find`].
#[derive(Clone, Debug)]
pub struct Find<'a> {
    /// Glob of the file names to report (`*` and `?`).
    pub name: &'a str,
    /// How many directory levels below the start to descend.
    pub max_depth: usize,
    /// Directory names never entered (`node_modules`, `proc`).
    pub skip_dirs: &'a [&'a str],
}

/// A read-only view of an image's files.
#[derive(Clone, Debug)]
pub struct Image {
    root: PathBuf,
    /// Image paths already seen to exist and not be links. The image does
    /// not change while a plugin reads it, so [`Image::resolve`] need not
    /// look at them again: every call resolves its whole path, and in the
    /// sandbox each look is a call to the host.
    plain: RefCell<HashSet<String>>,
}

impl Image {
    /// The image a plugin runs against: the root preopened at `/`.
    pub fn preopened() -> Image {
        Image::at("/")
    }

    /// A directory standing in for an image, for native tests.
    pub fn at(root: impl Into<PathBuf>) -> Image {
        Image {
            root: root.into(),
            plain: RefCell::default(),
        }
    }

    /// Splits an image path into its components, dropping `.` and empties.
    fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
        path.split('/').filter(|c| !c.is_empty() && *c != ".")
    }

    /// The host path for an already resolved image path.
    fn host_path(&self, resolved: &str) -> PathBuf {
        let mut p = self.root.clone();
        for c in Self::components(resolved) {
            p.push(c);
        }
        p
    }

    /// Resolves every symbolic link in `path` inside the image and returns
    /// the canonical image path, without a leading slash. A path whose last
    /// component does not exist resolves to itself.
    ///
    /// # Errors
    ///
    /// Too many links, or an unreadable link.
    pub fn resolve(&self, path: &str) -> Result<String, Error> {
        let mut pending: Vec<String> = Self::components(path).rev().map(String::from).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let joined = done.join("/");
            if self.plain.borrow().contains(&joined) {
                continue;
            }
            let here = self.host_path(&joined);
            let Ok(meta) = std::fs::symlink_metadata(&here) else {
                // Missing: the rest cannot be links; keep it as written.
                continue;
            };
            if !meta.file_type().is_symlink() {
                self.plain.borrow_mut().insert(joined);
                continue;
            }
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(Error::Failed(format!(
                    "resolving /{path}: too many levels of links"
                )));
            }
            let target = crate::host::read_link(self, &format!("/{}", done.join("/")))
                .map_err(|e| Error::Failed(format!("reading link {e}")))?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(Self::components(&target).rev().map(String::from));
        }
        Ok(done.join("/"))
    }

    /// The host path of an image path, links resolved inside the image.
    ///
    /// # Errors
    ///
    /// As [`Image::resolve`].
    pub fn locate(&self, path: &str) -> Result<PathBuf, Error> {
        Ok(self.host_path(&self.resolve(path)?))
    }

    /// Reads a whole file.
    ///
    /// # Errors
    ///
    /// The file is missing or unreadable; the message names it.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        let host = self.locate(path)?;
        std::fs::read(&host).map_err(|e| Error::Failed(format!("reading /{}: {e}", trim(path))))
    }

    /// Reads a whole file as UTF-8 text (invalid bytes replaced).
    ///
    /// # Errors
    ///
    /// As [`Image::read`].
    pub fn read_to_string(&self, path: &str) -> Result<String, Error> {
        let bytes = self.read(path)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Reads a file if it exists; `None` when it does not.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read.
    pub fn read_optional(&self, path: &str) -> Result<Option<String>, Error> {
        if self.is_file(path) {
            self.read_to_string(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// True if the path exists (links followed).
    pub fn exists(&self, path: &str) -> bool {
        self.locate(path).map(|p| p.exists()).unwrap_or(false)
    }

    /// True if the path is a regular file (links followed).
    pub fn is_file(&self, path: &str) -> bool {
        self.locate(path).map(|p| p.is_file()).unwrap_or(false)
    }

    /// True if the path is a directory (links followed).
    pub fn is_dir(&self, path: &str) -> bool {
        self.locate(path).map(|p| p.is_dir()).unwrap_or(false)
    }

    /// True if the path itself is a symbolic link.
    pub fn is_symlink(&self, path: &str) -> bool {
        let parent = parent_of(path);
        let name = Self::components(path).last().unwrap_or("");
        self.locate(parent)
            .ok()
            .and_then(|p| std::fs::symlink_metadata(p.join(name)).ok())
            .is_some_and(|m| m.file_type().is_symlink())
    }

    /// The entries of a directory, sorted by name. A missing directory has
    /// none.
    ///
    /// # Errors
    ///
    /// The directory exists but cannot be listed.
    pub fn read_dir(&self, path: &str) -> Result<Vec<Entry>, Error> {
        let resolved = self.resolve(path)?;
        let host = self.host_path(&resolved);
        if !host.is_dir() {
            return Ok(Vec::new());
        }
        let listing = std::fs::read_dir(&host)
            .map_err(|e| Error::Failed(format!("listing /{resolved}: {e}")))?;
        let mut entries = Vec::new();
        for item in listing {
            let item = item.map_err(|e| Error::Failed(format!("listing /{resolved}: {e}")))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let kind = match item.file_type() {
                Ok(t) if t.is_symlink() => EntryKind::Symlink,
                Ok(t) if t.is_dir() => EntryKind::Dir,
                Ok(t) if t.is_file() => EntryKind::File,
                _ => EntryKind::Other,
            };
            let path = if resolved.is_empty() {
                name.clone()
            } else {
                format!("{resolved}/{name}")
            };
            entries.push(Entry { path, name, kind });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Image paths matching a glob, sorted. Each `/`-separated segment may
    /// use `*` and `?`; a segment of `**` matches any number of directories
    /// (at most 12, links to directories not followed there).
    ///
    /// ```
    /// # use salve_plugin_sdk::image::Image;
    /// let image = Image::at("/nonexistent");
    /// assert!(image.glob("usr/lib/python3*/site-packages/*.dist-info").unwrap().is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// A directory on the way cannot be listed.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let segments: Vec<&str> = Self::components(pattern).collect();
        let mut found = Vec::new();
        self.glob_from(String::new(), &segments, 0, &mut found)?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    fn glob_from(
        &self,
        base: String,
        segments: &[&str],
        depth: usize,
        found: &mut Vec<String>,
    ) -> Result<(), Error> {
        let Some((first, rest)) = segments.split_first() else {
            found.push(base);
            return Ok(());
        };
        let join = |name: &str| {
            if base.is_empty() {
                name.to_string()
            } else {
                format!("{base}/{name}")
            }
        };
        if *first == "**" {
            // Zero directories, then one more level at a time.
            self.glob_from(base.clone(), rest, depth, found)?;
            if depth >= 12 {
                return Ok(());
            }
            for entry in self.read_dir(&base)? {
                if entry.kind == EntryKind::Dir {
                    self.glob_from(join(&entry.name), segments, depth + 1, found)?;
                }
            }
            return Ok(());
        }
        if !has_wildcard(first) {
            let next = join(first);
            if rest.is_empty() {
                if self.exists(&next) || self.is_symlink(&next) {
                    found.push(next);
                }
                return Ok(());
            }
            if self.is_dir(&next) {
                self.glob_from(next, rest, depth, found)?;
            }
            return Ok(());
        }
        for entry in self.read_dir(&base)? {
            if !wildcard_match(first, &entry.name) {
                continue;
            }
            let next = join(&entry.name);
            if rest.is_empty() {
                found.push(next);
            } else if self.is_dir(&next) {
                self.glob_from(next, rest, depth, found)?;
            }
        }
        Ok(())
    }

    /// Files whose name matches `find.name` under `start`, sorted, without
    /// following links to directories.
    ///
    /// # Errors
    ///
    /// A directory cannot be listed.
    pub fn find(&self, start: &str, find: &Find<'_>) -> Result<Vec<String>, Error> {
        let mut found = Vec::new();
        let mut stack = vec![(self.resolve(start)?, 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            for entry in self.read_dir(&dir)? {
                match entry.kind {
                    EntryKind::Dir => {
                        if depth < find.max_depth && !find.skip_dirs.contains(&entry.name.as_str())
                        {
                            stack.push((entry.path.clone(), depth + 1));
                        }
                    }
                    EntryKind::File | EntryKind::Symlink => {
                        if wildcard_match(find.name, &entry.name) {
                            found.push(entry.path);
                        }
                    }
                    EntryKind::Other => {}
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The root this view reads from (the preopen, or a test directory).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The parent of an image path (`a/b/c` gives `a/b`; `c` gives ``).
pub fn parent_of(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// An image path without its leading and trailing slashes.
pub fn trim(path: &str) -> &str {
    path.trim_matches('/')
}

fn has_wildcard(segment: &str) -> bool {
    segment.contains(['*', '?'])
}

/// Matches a name against a glob of `*` (any run) and `?` (one character).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last star.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Image) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/python3.11/site-packages/idna-3.3.dist-info"))
            .unwrap();
        std::fs::write(
            root.join("usr/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA"),
            "Name: idna\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/python3.11", root.join("etc/py")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", root.join("usr/lib/escape")).unwrap();
        let image = Image::at(root);
        (dir, image)
    }

    #[test]
    fn absolute_links_resolve_inside_the_image() {
        let (_dir, image) = tree();
        assert_eq!(
            image.resolve("/etc/py/site-packages").unwrap(),
            "usr/lib/python3.11/site-packages"
        );
        assert!(image.is_dir("etc/py/site-packages/idna-3.3.dist-info"));
    }

    #[test]
    fn resolving_again_answers_the_same_from_what_it_has_seen() {
        let (_dir, image) = tree();
        for _ in 0..2 {
            assert_eq!(
                image
                    .resolve("etc/py/site-packages/idna-3.3.dist-info")
                    .unwrap(),
                "usr/lib/python3.11/site-packages/idna-3.3.dist-info"
            );
            assert_eq!(image.resolve("usr/lib/escape/x").unwrap(), "etc/x");
        }
        assert!(image.plain.borrow().contains("usr/lib/python3.11"));
        assert!(
            !image.plain.borrow().contains("etc/py"),
            "links are never remembered as plain"
        );
    }

    #[test]
    fn dot_dot_in_links_stops_at_the_image_root() {
        let (_dir, image) = tree();
        assert_eq!(image.resolve("usr/lib/escape").unwrap(), "etc");
        assert_eq!(image.resolve("../../etc/../usr").unwrap(), "usr");
    }

    #[test]
    fn glob_matches_segments_and_double_star() {
        let (_dir, image) = tree();
        assert_eq!(
            image
                .glob("usr/lib/python3*/site-packages/*.dist-info/METADATA")
                .unwrap(),
            vec!["usr/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA"]
        );
        assert_eq!(
            image.glob("**/METADATA").unwrap(),
            vec!["usr/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA"]
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("python3*", "python3.11"));
        assert!(wildcard_match("*.dist-info", "a-1.dist-info"));
        assert!(!wildcard_match("*.dist-info", "a-1.egg-info"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
    }
}
