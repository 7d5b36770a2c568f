//! Random access to the files of an image source: a directory, or a tarball read in place.
//!
//! A tarball is indexed once (names to byte ranges, headers only) and its members are then read
//! with positioned reads, so a multi-gigabyte `docker save` file is never extracted or copied.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Error;

/// Files of an image source, named by their path relative to the source's root.
#[derive(Debug)]
pub(crate) enum Store {
    /// A directory (an OCI layout); names are joined below it.
    Dir(PathBuf),
    /// A tarball; names are looked up in its index.
    Tar {
        path: PathBuf,
        file: Arc<std::fs::File>,
        members: HashMap<String, Member>,
    },
}

/// Where a tarball member's data lies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    offset: u64,
    size: u64,
}

impl Store {
    /// Indexes the regular files of the tarball at `path`.
    ///
    /// Symbolic links between members (older `docker save` links identical layers) are
    /// followed once; anything else that is not a regular file is left out.
    pub(crate) fn tar(path: &Path) -> Result<Store, Error> {
        let file = fs_err::File::open(path)?;
        let (file, _) = file.into_parts();
        let broken = |source: io::Error| Error::Archive {
            path: path.to_owned(),
            source,
        };

        let mut members = HashMap::new();
        let mut links = Vec::new();
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries_with_seek().map_err(broken)? {
            let entry = entry.map_err(broken)?;
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let member = Member {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    };
                    members.insert(name, member);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        links.push((name, String::from_utf8_lossy(&target).into_owned()));
                    }
                }
                _ => {}
            }
        }
        for (name, target) in links {
            if let Some(member) = resolve_link(&members, &name, &target) {
                members.insert(name, member);
            }
        }
        Ok(Store::Tar {
            path: path.to_owned(),
            file: Arc::new(file),
            members,
        })
    }

    /// Whether the source has a file at `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Store::Dir(root) => root.join(name).is_file(),
            Store::Tar { members, .. } => members.contains_key(&normalize(name)),
        }
    }

    /// Opens the file at `name` for reading.
    pub(crate) fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, Error> {
        match self {
            Store::Dir(root) => Ok(Box::new(fs_err::File::open(root.join(name))?)),
            Store::Tar {
                path,
                file,
                members,
            } => {
                let member = members
                    .get(&normalize(name))
                    .ok_or_else(|| Error::MissingFile {
                        source_path: path.clone(),
                        name: name.to_owned(),
                    })?;
                Ok(Box::new(MemberReader {
                    file: Arc::clone(file),
                    position: member.offset,
                    remaining: member.size,
                }))
            }
        }
    }

    /// Reads the whole file at `name`, refusing files over `limit` bytes (JSON documents only).
    pub(crate) fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.open(name)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Read {
                what: self.describe(name),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: self.describe(name),
                limit,
            });
        }
        Ok(bytes)
    }

    /// The size in bytes of the file at `name`.
    pub(crate) fn size(&self, name: &str) -> Result<u64, Error> {
        match self {
            Store::Dir(root) => Ok(fs_err::metadata(root.join(name))?.len()),
            Store::Tar { path, members, .. } => members
                .get(&normalize(name))
                .map(|m| m.size)
                .ok_or_else(|| Error::MissingFile {
                    source_path: path.clone(),
                    name: name.to_owned(),
                }),
        }
    }

    /// The directory this store reads from, when it is one.
    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            Store::Dir(root) => Some(root),
            Store::Tar { .. } => None,
        }
    }

    /// The file or directory behind this store.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Store::Dir(root) => root,
            Store::Tar { path, .. } => path,
        }
    }

    /// `name` with the store's path, for messages.
    pub(crate) fn describe(&self, name: &str) -> String {
        format!("{} in {}", name, self.path().display())
    }
}

/// Strips `./` prefixes and repeated slashes so `./blobs//x` and `blobs/x` are one name.
fn normalize(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves a link target relative to the link's directory, within the archive's names only.
fn resolve_link(members: &HashMap<String, Member>, name: &str, target: &str) -> Option<Member> {
    let mut parts: Vec<&str> = match target.starts_with('/') {
        true => Vec::new(),
        false => name.split('/').collect(),
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    members.get(&parts.join("/")).copied()
}

/// Reads one member of a tarball with positioned reads, so readers can share the file.
struct MemberReader {
    file: Arc<std::fs::File>,
    position: u64,
    remaining: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.position)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive is truncated",
            ));
        }
        self.position += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(entries: &[(&str, &[u8])], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        for (name, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, target).unwrap();
        }
        builder.finish().unwrap();
        file
    }

    #[test]
    fn tar_members_are_read_in_place_by_normalized_name() {
        let file = tarball(&[("./a/b.json", b"{}"), ("c", b"hello")], &[]);
        let store = Store::tar(file.path()).unwrap();
        assert_eq!(store.read("a/b.json", 10).unwrap(), b"{}");
        assert_eq!(store.read("./c", 10).unwrap(), b"hello");
        assert_eq!(store.size("c").unwrap(), 5);
        assert!(store.contains("a//b.json"));
        assert!(matches!(store.open("nope"), Err(Error::MissingFile { .. })));
    }

    #[test]
    fn tar_symlinks_between_members_are_followed() {
        let file = tarball(
            &[("x/layer.tar", b"data")],
            &[("y/layer.tar", "../x/layer.tar")],
        );
        let store = Store::tar(file.path()).unwrap();
        assert_eq!(store.read("y/layer.tar", 10).unwrap(), b"data");
    }

    #[test]
    fn reading_refuses_files_over_the_limit() {
        let file = tarball(&[("big", &[b'x'; 100])], &[]);
        let store = Store::tar(file.path()).unwrap();
        assert!(matches!(
            store.read("big", 99),
            Err(Error::TooLarge { limit: 99, .. })
        ));
    }
}
