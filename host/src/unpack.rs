//! Unpacking image layers into directories, cached by diff id.
//!
//! Each layer is unpacked on its own into `<cache>/layers/sha256/<diff id hex>`, in the form
//! overlayfs reads as a **lower dir**: an OCI whiteout `.wh.NAME` becomes a 0/0 character
//! device `NAME`, and an opaque marker `.wh..wh..opq` becomes the xattr
//! `trusted.overlay.opaque=y` on its directory. The root filesystem of an image is the
//! overlay of its layer directories, **bottom first** in the order [`LayerCache::unpack`]
//! returns them (overlayfs's `lowerdir=` lists the top one first: reverse the list).
//!
//! A layer is unpacked into a temporary directory and renamed into place when complete, so
//! an interrupted run is never mistaken for a cached layer, and a second run on the same
//! image unpacks nothing. The tar stream is checked against the diff id while it is read.
//!
//! Layers are hostile input. Every entry is created relative to a directory handle opened
//! with cap-std (which refuses any path that resolves outside the layer directory), leaf
//! operations use `*at` calls that never follow a final symlink, and the following are
//! refused with an error naming the layer and the entry: absolute names, `..` components,
//! hard links to anything outside the layer or not yet in it, whiteouts of `.` or `..`,
//! writes through a symlink that leads out, and `trusted.overlay.*` xattrs (which would
//! steer the overlay). Device nodes are skipped with a warning: the sandbox brings its own
//! `/dev`, and a 0/0 one would read as a whiteout.
//!
//! The tar crate's own `unpack` is not used: it joins path strings and knows nothing of
//! whiteouts, and the overlay form above is salve's own.
//!
//! Unpacking needs root (owners, setuid bits and whiteout devices cannot be made otherwise).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;
use oci_spec::image::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::process::{Gid, Uid};
use sha2::{Digest as _, Sha256};
use tracing::{debug, warn};

use crate::image::{self, Image, Layer};

/// A cache of unpacked layers under one root directory.
#[derive(Debug, Clone)]
pub struct LayerCache {
    layers: PathBuf,
    temp: PathBuf,
}

/// What unpacking one layer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tar entries applied (whiteouts included, skipped device nodes not).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Errors from unpacking layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller is not root.
    #[error(
        "unpacking layers needs root: owners, setuid bits and whiteout devices cannot be made \
         otherwise; run salve as root"
    )]
    NotRoot,
    /// Setting up or reading the cache.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A layer could not be unpacked.
    #[error("unpacking layer {layer}")]
    Layer {
        layer: String,
        #[source]
        source: LayerError,
    },
}

/// Why one layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry that would leave the layer or steer the overlay.
    #[error("entry {entry:?} refused: {reason}")]
    Refused { entry: String, reason: &'static str },
    /// Applying one entry.
    #[error("entry {entry:?}")]
    Entry {
        entry: String,
        #[source]
        source: io::Error,
    },
    /// The tar stream is broken.
    #[error("reading the tar stream")]
    Tar(#[source] io::Error),
    /// The blob could not be opened.
    #[error(transparent)]
    Blob(#[from] image::Error),
    /// The uncompressed stream does not match the diff id.
    #[error("content has diff id {actual}, expected {expected}")]
    DiffIdMismatch { expected: String, actual: String },
    /// The target directory could not be prepared.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl LayerCache {
    /// Opens (creating it if needed) the cache at `root`.
    ///
    /// Leftovers of runs that were killed mid-unpack are removed.
    ///
    /// # Errors
    ///
    /// [`Error::NotRoot`] when not running as root; I/O errors creating the directories.
    pub fn new(root: impl Into<PathBuf>) -> Result<LayerCache, Error> {
        require_root()?;
        let root = root.into();
        let cache = LayerCache {
            layers: root.join("layers/sha256"),
            temp: root.join("layers/tmp"),
        };
        fs_err::create_dir_all(&cache.layers)?;
        fs_err::create_dir_all(&cache.temp)?;
        cache.remove_stale()?;
        Ok(cache)
    }

    /// The directory holding one directory per layer, named by diff id hex.
    ///
    /// Overlay mount options are limited to one page: mount from this directory (as the
    /// working directory) with the bare hex names as `lowerdir=` entries to keep them short.
    pub fn layers_dir(&self) -> &Path {
        &self.layers
    }

    /// Where the layer with `diff_id` is (or would be) unpacked.
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(diff_id.digest())
    }

    /// Whether the layer with `diff_id` is unpacked already.
    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    /// Unpacks every layer of `image`; returns their directories, bottom first.
    ///
    /// # Errors
    ///
    /// The first layer that cannot be unpacked, named by its digest.
    pub fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>, Error> {
        self.unpack_layers(image.layers())
    }

    /// Unpacks `layers` (for a re-patch: [`Image::base_layers`]); returns their directories in
    /// the same order.
    ///
    /// # Errors
    ///
    /// The first layer that cannot be unpacked, named by its digest.
    pub fn unpack_layers(&self, layers: &[Layer]) -> Result<Vec<PathBuf>, Error> {
        layers
            .iter()
            .map(|layer| self.unpack_layer(layer))
            .collect()
    }

    /// Unpacks one layer unless it is cached; returns its directory.
    ///
    /// # Errors
    ///
    /// An unreadable blob, a refused entry, or a diff id mismatch, naming the layer.
    pub fn unpack_layer(&self, layer: &Layer) -> Result<PathBuf, Error> {
        let target = self.path(layer.diff_id());
        if target.is_dir() {
            debug!(layer = %layer.digest(), "layer is cached");
            return Ok(target);
        }

        // Unpack under a temporary name that says which process owns it.
        let temp = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(&self.temp)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("creating a directory in {}: {e}", self.temp.display()),
                )
            })?;
        let stats = into_dir(layer, temp.path())?;
        debug!(layer = %layer.digest(), entries = stats.entries, bytes = stats.bytes, "unpacked layer");

        // Another process may have finished the same layer first; theirs is as good as ours.
        let unpacked = temp.keep();
        match std::fs::rename(&unpacked, &target) {
            Ok(()) => Ok(target),
            Err(_) if target.is_dir() => {
                fs_err::remove_dir_all(&unpacked)?;
                Ok(target)
            }
            Err(e) => {
                let _ = fs_err::remove_dir_all(&unpacked);
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "renaming {} to {}: {e}",
                        unpacked.display(),
                        target.display()
                    ),
                )
                .into())
            }
        }
    }

    /// Removes temporary directories whose process is gone.
    fn remove_stale(&self) -> Result<(), Error> {
        for entry in fs_err::read_dir(&self.temp)? {
            let entry = entry?;
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                debug!(path = %entry.path().display(), "removing an interrupted unpack");
                fs_err::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

fn require_root() -> Result<(), Error> {
    match rustix::process::geteuid().is_root() {
        true => Ok(()),
        false => Err(Error::NotRoot),
    }
}

/// Unpacks one layer into `dir`, which must be empty or absent (the previous-patch case:
/// the layer becomes the starting upper dir of a new run).
///
/// # Errors
///
/// [`Error::NotRoot`], an unreadable blob, a refused entry or a diff id mismatch.
pub fn into_dir(layer: &Layer, dir: &Path) -> Result<Stats, Error> {
    require_root()?;
    let failed = |source: LayerError| Error::Layer {
        layer: layer.digest().to_string(),
        source,
    };
    let stream = layer.open_tar().map_err(|e| failed(e.into()))?;
    fs_err::create_dir_all(dir)?;
    let mut hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };
    let mut buffered = io::BufReader::with_capacity(256 << 10, &mut hashing);
    let stats = tar(&mut buffered, dir).map_err(failed)?;

    // The tar end marker may be followed by padding, which the diff id covers too.
    io::copy(&mut buffered, &mut io::sink()).map_err(|e| failed(LayerError::Tar(e)))?;
    drop(buffered);
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if actual != layer.diff_id().to_string() {
        return Err(failed(LayerError::DiffIdMismatch {
            expected: layer.diff_id().to_string(),
            actual,
        }));
    }
    Ok(stats)
}

/// Applies the tar stream `stream` to `dir` in the overlay lower-dir form (see the module).
///
/// # Errors
///
/// The first refused entry, an I/O error applying an entry, or a broken stream.
pub fn tar(stream: impl Read, dir: &Path) -> Result<Stats, LayerError> {
    let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority())
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", dir.display())))?;
    let mut unpacker = Unpacker {
        root,
        parent: None,
        dirs: HashMap::new(),
        stats: Stats::default(),
    };

    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(LayerError::Tar)? {
        let mut entry = entry.map_err(LayerError::Tar)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        unpacker.apply(&mut entry).map_err(|e| e.for_entry(&name))?;
    }
    unpacker.finish_dirs()?;
    Ok(unpacker.stats)
}

/// An error applying one entry, before it is given the entry's name.
enum EntryError {
    Refused(&'static str),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

impl From<rustix::io::Errno> for EntryError {
    fn from(e: rustix::io::Errno) -> Self {
        EntryError::Io(e.into())
    }
}

impl EntryError {
    fn for_entry(self, name: &str) -> LayerError {
        match self {
            EntryError::Refused(reason) => LayerError::Refused {
                entry: name.to_owned(),
                reason,
            },
            EntryError::Io(source) => LayerError::Entry {
                entry: name.to_owned(),
                source,
            },
        }
    }
}

/// Owner, mode, time and xattrs of an entry, applied after its content.
#[derive(Debug, Clone)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker {
    root: Dir,
    /// The directory of the previous entry, kept open: entries come grouped by directory.
    parent: Option<(Vec<u8>, Dir)>,
    /// Directories whose metadata is applied last, so adding children does not disturb it.
    dirs: HashMap<Vec<u8>, Meta>,
    stats: Stats,
}

impl Unpacker {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EntryError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let path = clean(&entry.path_bytes())?;
        let meta = meta_of(entry)?;

        // The root itself (`./`): only its metadata.
        let Some((parent, name)) = split(&path) else {
            if kind.is_dir() {
                self.dirs.insert(Vec::new(), meta);
                self.stats.entries += 1;
            }
            return Ok(());
        };

        // Whiteouts: `.wh..wh..opq` marks the directory opaque, `.wh.NAME` hides NAME.
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let parent_dir = self.parent_dir(parent)?;
            if hidden == b".wh..opq" {
                rustix::fs::fsetxattr(
                    &parent_dir,
                    "trusted.overlay.opaque",
                    b"y",
                    XattrFlags::empty(),
                )?;
            } else if hidden.starts_with(b".wh.") {
                debug!(entry = %String::from_utf8_lossy(&path), "skipping aufs metadata");
                return Ok(());
            } else {
                if matches!(hidden, b"" | b"." | b"..") {
                    return Err(EntryError::Refused(
                        "a whiteout must name a file in its directory",
                    ));
                }
                clear(&parent_dir, hidden, false)?;
                let device = rustix::fs::makedev(0, 0);
                rustix::fs::mknodat(
                    &parent_dir,
                    hidden,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    device,
                )?;
            }
            self.stats.entries += 1;
            return Ok(());
        }

        let parent_dir = self.parent_dir(parent)?;
        match kind {
            tar::EntryType::Directory => {
                clear(&parent_dir, name, true)?;
                match rustix::fs::mkdirat(&parent_dir, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                self.dirs.insert(path.clone(), meta);
                if self
                    .parent
                    .as_ref()
                    .is_some_and(|(p, _)| p.starts_with(&path))
                {
                    self.parent = None;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                clear(&parent_dir, name, false)?;
                let flags = OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::WRONLY
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&parent_dir, name, flags, Mode::from_raw_mode(0o600))?;
                let mut file = std::fs::File::from(fd);
                self.stats.bytes += copy_sparse(entry, &mut file)?;
                set_meta_fd(&file, &meta)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(EntryError::Refused("a symlink without a target"))?;
                clear(&parent_dir, name, false)?;
                rustix::fs::symlinkat(target.as_ref(), &parent_dir, name)?;
                let (uid, gid) = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
                rustix::fs::chownat(&parent_dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                let times = timestamps(meta.mtime);
                rustix::fs::utimensat(&parent_dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(EntryError::Refused("a hard link without a target"))?;
                let target = clean(&target)?;
                let Some((target_parent, target_name)) = split(&target) else {
                    return Err(EntryError::Refused("a hard link to the layer's root"));
                };
                let source_dir = self.root.open_dir(OsStr::from_bytes(target_parent))?;
                clear(&parent_dir, name, false)?;
                rustix::fs::linkat(
                    &source_dir,
                    target_name,
                    &parent_dir,
                    name,
                    AtFlags::empty(),
                )?;
            }
            tar::EntryType::Fifo => {
                clear(&parent_dir, name, false)?;
                rustix::fs::mknodat(
                    &parent_dir,
                    name,
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )?;
                let (uid, gid) = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
                rustix::fs::chownat(&parent_dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::chmodat(
                    &parent_dir,
                    name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                warn!(entry = %String::from_utf8_lossy(&path), "skipping a device node: the sandbox provides /dev");
                return Ok(());
            }
            other => {
                debug!(entry = %String::from_utf8_lossy(&path), kind = ?other, "skipping an entry of an unknown type");
                return Ok(());
            }
        }
        self.stats.entries += 1;
        Ok(())
    }

    /// Opens (creating as needed) the directory `parent`, never leaving the layer.
    fn parent_dir(&mut self, parent: &[u8]) -> Result<Dir, EntryError> {
        if let Some((cached, dir)) = &self.parent
            && cached == parent
        {
            return Ok(dir.try_clone()?);
        }
        let dir = match parent {
            [] => self.root.try_clone()?,
            _ => {
                let path = OsStr::from_bytes(parent);
                if let Err(e) = self.root.create_dir_all(path) {
                    return Err(refuse_escape(e));
                }
                self.root.open_dir(path).map_err(refuse_escape)?
            }
        };
        self.parent = Some((parent.to_vec(), dir.try_clone()?));
        Ok(dir)
    }

    /// Applies directory metadata, deepest first so parents' mtimes stay as recorded.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        self.parent = None;
        let mut dirs: Vec<(Vec<u8>, Meta)> = self.dirs.drain().collect();
        dirs.sort_by_key(|(path, _)| {
            std::cmp::Reverse(
                path.iter().filter(|b| **b == b'/').count() + usize::from(!path.is_empty()),
            )
        });
        for (path, meta) in dirs {
            let name = String::from_utf8_lossy(&path).into_owned();
            let dir = match path.is_empty() {
                true => self.root.try_clone(),
                // A later entry may have replaced the directory: then there is nothing to set.
                false => match self.root.open_dir_nofollow(OsStr::from_bytes(&path)) {
                    Ok(dir) => Ok(dir),
                    Err(_) => continue,
                },
            };
            let dir = dir.map_err(|source| LayerError::Entry {
                entry: name.clone(),
                source,
            })?;
            set_meta_fd(&dir, &meta).map_err(|e| e.for_entry(&name))?;
        }
        Ok(())
    }
}

/// Turns cap-std's "outside the filesystem" into a refusal.
fn refuse_escape(e: io::Error) -> EntryError {
    if e.kind() == io::ErrorKind::PermissionDenied || e.to_string().contains("outside") {
        EntryError::Refused("its path goes through a link that leads outside the layer")
    } else {
        EntryError::Io(e)
    }
}

/// The entry name as components joined by `/`, or a refusal for absolute and `..` names.
fn clean(raw: &[u8]) -> Result<Vec<u8>, EntryError> {
    if raw.starts_with(b"/") {
        return Err(EntryError::Refused(
            "absolute names are not allowed in a layer",
        ));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(EntryError::Refused("`..` is not allowed in a layer")),
            part if part.contains(&0) => return Err(EntryError::Refused("a NUL byte in a name")),
            part => parts.push(part),
        }
    }
    Ok(parts.join(&b'/'))
}

/// Splits a cleaned path into its parent and last component; None for the root.
fn split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[][..], path),
    })
}

/// Removes what is at `name` before an entry replaces it; a directory stays for a directory.
fn clear(parent: &Dir, name: &[u8], keep_dir: bool) -> Result<(), EntryError> {
    let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        if !keep_dir {
            parent.remove_dir_all(OsStr::from_bytes(name))?;
        }
        return Ok(());
    }
    rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
    Ok(())
}

/// Reads an entry's owner, mode, mtime and xattrs from its headers.
fn meta_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, EntryError> {
    let header = entry.header();
    let number = |value: io::Result<u64>| {
        value
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(EntryError::Refused("an owner, mode or time out of range"))
    };
    let mut meta = Meta {
        uid: number(header.uid())?,
        gid: number(header.gid())?,
        mode: number(header.mode().map(u64::from))? & 0o7777,
        mtime: header
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for record in pax {
            let record = record?;
            let Some(name) = record.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                return Err(EntryError::Refused(
                    "overlayfs xattrs would steer the overlay",
                ));
            }
            meta.xattrs.push((name, record.value_bytes().to_vec()));
        }
    }
    Ok(meta)
}

/// Sets owner, then mode (chown clears setuid bits), then xattrs (chown clears file
/// capabilities), then times, on an open file or directory.
fn set_meta_fd(fd: impl AsFd, meta: &Meta) -> Result<(), EntryError> {
    rustix::fs::fchown(
        &fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))?;
    for (name, value) in &meta.xattrs {
        match rustix::fs::fsetxattr(&fd, name.as_str(), value, XattrFlags::empty()) {
            Ok(()) => {}
            // A filesystem without that xattr namespace: the file is still usable.
            Err(e @ (rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM)) => {
                warn!(xattr = %name, error = %e, "the cache filesystem refused an xattr; skipped");
            }
            Err(e) => return Err(e.into()),
        }
    }
    rustix::fs::futimens(&fd, &timestamps(meta.mtime))?;
    Ok(())
}

fn timestamps(mtime: i64) -> Timestamps {
    let time = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// Copies file content, leaving holes where whole blocks are zero (sparse files stay sparse).
fn copy_sparse(from: &mut impl Read, to: &mut std::fs::File) -> io::Result<u64> {
    let mut buf = vec![0u8; 128 << 10];
    let mut total = 0u64;
    let mut pending_hole = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        if n == buf.len() && is_zero(chunk) {
            to.seek(SeekFrom::Current(n as i64))?;
            pending_hole = true;
        } else {
            to.write_all(chunk)?;
            pending_hole = false;
        }
        total += n as u64;
    }
    if pending_hole {
        to.set_len(total)?;
    }
    Ok(total)
}

fn is_zero(bytes: &[u8]) -> bool {
    // OR-ing fixed-size words has no early exit, so it vectorizes; zero chunks are rare.
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let folded = words.fold(0u64, |acc, w| {
        acc | u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
    });
    folded == 0 && rest.iter().all(|b| *b == 0)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
