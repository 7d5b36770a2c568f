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
use std::rc::Rc;

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
    /// Layers are independent directories, so up to as many as there are cores are unpacked
    /// at once; decompression is single-threaded per layer.
    ///
    /// # Errors
    ///
    /// The first layer (in image order) that cannot be unpacked, named by its digest.
    pub fn unpack_layers(&self, layers: &[Layer]) -> Result<Vec<PathBuf>, Error> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(layers.len());
        if workers <= 1 {
            return layers
                .iter()
                .map(|layer| self.unpack_layer(layer))
                .collect();
        }

        // Workers take the next layer by index; results land in image order.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<PathBuf, Error>>>> =
            layers.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(layer) = layers.get(i) else { break };
                        let result = self.unpack_layer(layer);
                        let failed = result.is_err();
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(result);
                        }
                        if failed {
                            // Later layers are not needed once one fails.
                            next.store(layers.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let mut dirs = Vec::with_capacity(layers.len());
        for slot in results {
            match slot.into_inner().ok().flatten() {
                Some(result) => dirs.push(result?),
                None => {
                    return Err(io::Error::other("a layer was skipped after another failed").into());
                }
            }
        }
        Ok(dirs)
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
        if let Err(e) = unpacker.apply(&mut entry) {
            return Err(e.for_entry(&String::from_utf8_lossy(&entry.path_bytes())));
        }
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
    parent: Option<(Vec<u8>, Rc<Dir>)>,
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
                let dir = open_dir_fd(&parent_dir, b".")?;
                rustix::fs::fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())?;
            } else if hidden.starts_with(b".wh.") {
                debug!(entry = %String::from_utf8_lossy(&path), "skipping aufs metadata");
                return Ok(());
            } else {
                if matches!(hidden, b"" | b"." | b"..") {
                    return Err(EntryError::Refused(
                        "a whiteout must name a file in its directory",
                    ));
                }
                let device = rustix::fs::makedev(0, 0);
                replacing(&parent_dir, hidden, || {
                    rustix::fs::mknodat(
                        &parent_dir,
                        hidden,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        device,
                    )
                })?;
            }
            self.stats.entries += 1;
            return Ok(());
        }

        let parent_dir = self.parent_dir(parent)?;
        match kind {
            tar::EntryType::Directory => {
                // An existing directory is merged into; anything else is replaced.
                let mode = Mode::from_raw_mode(0o755);
                if let Err(rustix::io::Errno::EXIST) = rustix::fs::mkdirat(&parent_dir, name, mode)
                {
                    clear(&parent_dir, name, true)?;
                    match rustix::fs::mkdirat(&parent_dir, name, mode) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
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
                let flags = OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::WRONLY
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let mode = Mode::from_raw_mode(0o600);
                let fd = replacing(&parent_dir, name, || {
                    rustix::fs::openat(&parent_dir, name, flags, mode)
                })?;
                let mut file = std::fs::File::from(fd);
                self.stats.bytes += copy_sparse(entry, &mut file)?;
                set_meta_fd(&file, &meta)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(EntryError::Refused("a symlink without a target"))?;
                replacing(&parent_dir, name, || {
                    rustix::fs::symlinkat(target.as_ref(), &parent_dir, name)
                })?;
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
                let source_dir = match target_parent {
                    [] => self.root.try_clone()?,
                    _ => self
                        .root
                        .open_dir(OsStr::from_bytes(target_parent))
                        .map_err(refuse_escape)?,
                };
                replacing(&parent_dir, name, || {
                    rustix::fs::linkat(
                        &source_dir,
                        target_name,
                        &parent_dir,
                        name,
                        AtFlags::empty(),
                    )
                })?;
            }
            tar::EntryType::Fifo => {
                replacing(&parent_dir, name, || {
                    let mode = Mode::from_raw_mode(0o600);
                    rustix::fs::mknodat(&parent_dir, name, FileType::Fifo, mode, 0)
                })?;
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
    fn parent_dir(&mut self, parent: &[u8]) -> Result<Rc<Dir>, EntryError> {
        if let Some((cached, dir)) = &self.parent
            && cached == parent
        {
            return Ok(Rc::clone(dir));
        }
        let dir = match parent {
            [] => self.root.try_clone()?,
            _ => {
                let path = OsStr::from_bytes(parent);
                match self.root.open_dir(path) {
                    Ok(dir) => dir,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.root.create_dir_all(path).map_err(refuse_escape)?;
                        self.root.open_dir(path).map_err(refuse_escape)?
                    }
                    Err(e) => return Err(refuse_escape(e)),
                }
            }
        };
        let dir = Rc::new(dir);
        self.parent = Some((parent.to_vec(), Rc::clone(&dir)));
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
            let dir = match split(&path) {
                None => open_dir_fd(&self.root, b"."),
                Some(([], leaf)) => open_dir_fd(&self.root, leaf),
                // A later entry may have replaced the directory: then there is nothing to set.
                Some((parent, leaf)) => {
                    match self.root.open_dir_nofollow(OsStr::from_bytes(parent)) {
                        Ok(parent) => open_dir_fd(&parent, leaf),
                        Err(_) => continue,
                    }
                }
            };
            let dir = match dir {
                Ok(dir) => dir,
                Err(EntryError::Io(e)) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.for_entry(&name)),
            };
            set_meta_fd(&dir, &meta).map_err(|e| e.for_entry(&name))?;
        }
        Ok(())
    }
}

/// Opens `name` below `parent` as a directory fd that metadata calls accept (cap-std's
/// handles are `O_PATH`), never following a final symlink.
fn open_dir_fd(parent: &Dir, name: &[u8]) -> Result<std::os::fd::OwnedFd, EntryError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            Err(EntryError::Io(io::ErrorKind::NotFound.into()))
        }
        Err(e) => Err(e.into()),
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

/// Runs `create`; when `name` is taken (an earlier entry of the layer), removes that and
/// runs it again. Trying first saves a `stat` per entry in the common case.
fn replacing<T>(
    parent: &Dir,
    name: &[u8],
    mut create: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T, EntryError> {
    match create() {
        Err(rustix::io::Errno::EXIST) => {
            clear(parent, name, false)?;
            Ok(create()?)
        }
        other => Ok(other?),
    }
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
    // An empty numeric field reads as 0, as GNU tar does; one that does not fit is refused.
    let number = |value: io::Result<u64>| {
        u32::try_from(value.unwrap_or(0))
            .map_err(|_| EntryError::Refused("an owner or mode out of range"))
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
            // PAX owners override the header's (ids past its octal field's 2^21).
            let decimal = || {
                std::str::from_utf8(record.value_bytes())
                    .ok()
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .ok_or(EntryError::Refused("a PAX owner out of range"))
            };
            match record.key_bytes() {
                b"uid" => meta.uid = decimal()?,
                b"gid" => meta.gid = decimal()?,
                _ => {}
            }
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
    let mut buf = vec![0u8; CHUNK];
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

/// The copy buffer size, and the size of the zero block chunks are compared with.
const CHUNK: usize = 128 << 10;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

fn is_zero(bytes: &[u8]) -> bool {
    // A slice comparison is a memcmp: fast in every build profile.
    bytes.len() <= CHUNK && bytes == &ZEROS[..bytes.len()]
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::image::fixture;
    use crate::layer::Compression;

    /// Skips a test that needs root, unless SALVE_CI=1 says skipping is a failure.
    macro_rules! needs_root {
        () => {
            if !rustix::process::geteuid().is_root() {
                assert!(
                    std::env::var("SALVE_CI").map_or(true, |v| v != "1"),
                    "SALVE_CI=1: this test needs root"
                );
                eprintln!("skipped: unpacking needs root (chown, mknod, trusted.* xattrs)");
                return;
            }
        };
    }

    /// A tar stream written header by header, so names and links can be anything.
    struct Evil(tar::Builder<Vec<u8>>);

    impl Evil {
        fn new() -> Evil {
            Evil(tar::Builder::new(Vec::new()))
        }

        fn raw(
            mut self,
            name: &[u8],
            kind: tar::EntryType,
            data: &[u8],
            link: &[u8],
            pax: &[(&str, &[u8])],
        ) -> Evil {
            if !pax.is_empty() {
                self.0
                    .append_pax_extensions(pax.iter().map(|(k, v)| (*k, *v)))
                    .unwrap();
            }
            let mut header = tar::Header::new_gnu();
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn file(self, name: &str, data: &[u8]) -> Evil {
            self.raw(name.as_bytes(), tar::EntryType::Regular, data, b"", &[])
        }

        fn dir(self, name: &str) -> Evil {
            self.raw(name.as_bytes(), tar::EntryType::Directory, b"", b"", &[])
        }

        fn symlink(self, name: &str, target: &str) -> Evil {
            self.raw(
                name.as_bytes(),
                tar::EntryType::Symlink,
                b"",
                target.as_bytes(),
                &[],
            )
        }

        fn hardlink(self, name: &str, target: &str) -> Evil {
            self.raw(
                name.as_bytes(),
                tar::EntryType::Link,
                b"",
                target.as_bytes(),
                &[],
            )
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    /// A layer directory next to an "outside" directory that must never change.
    struct Sandbox {
        _dir: tempfile::TempDir,
        tree: PathBuf,
        outside: PathBuf,
        before: Vec<(PathBuf, Vec<u8>)>,
    }

    impl Sandbox {
        fn new() -> Sandbox {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            let outside = dir.path().join("outside");
            fs_err::create_dir_all(&tree).unwrap();
            fs_err::create_dir_all(&outside).unwrap();
            fs_err::write(outside.join("secret"), "keep").unwrap();
            let mut sandbox = Sandbox {
                _dir: dir,
                tree,
                outside,
                before: Vec::new(),
            };
            sandbox.before = sandbox.snapshot();
            sandbox
        }

        /// Every path, type, mode, content and xattr list below the outside directory.
        fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
            let mut seen = Vec::new();
            for entry in walkdir::WalkDir::new(&self.outside).sort_by_file_name() {
                let entry = entry.unwrap();
                let meta = entry.path().symlink_metadata().unwrap();
                let mut state = format!("{:o} {} ", meta.mode(), meta.nlink()).into_bytes();
                if meta.is_file() {
                    state.extend(fs_err::read(entry.path()).unwrap());
                }
                let mut names = vec![0u8; 4096];
                let n = rustix::fs::llistxattr(entry.path(), &mut names).unwrap_or(0);
                state.extend(&names[..n]);
                seen.push((entry.path().to_owned(), state));
            }
            seen
        }

        fn unpack(&self, tar_bytes: Vec<u8>) -> Result<Stats, LayerError> {
            let result = tar(tar_bytes.as_slice(), &self.tree);
            assert_eq!(
                self.snapshot(),
                self.before,
                "something outside the tree changed"
            );
            assert!(!self.outside.parent().unwrap().join("escape").exists());
            result
        }
    }

    fn assert_refused(result: Result<Stats, LayerError>, entry: &str) {
        match result {
            Err(LayerError::Refused { entry: e, reason }) => {
                assert_eq!(e, entry, "refused the wrong entry ({reason})")
            }
            other => panic!("expected {entry:?} to be refused, got {other:?}"),
        }
    }

    // The hostile-layer suite: each crafted layer is refused or handled, and nothing outside
    // the tree changes (checked by Sandbox::unpack).

    #[test]
    fn hostile_dotdot_name_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        assert_refused(
            s.unpack(Evil::new().file("../escape", b"x").bytes()),
            "../escape",
        );
    }

    #[test]
    fn hostile_dotdot_inside_a_name_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new().dir("a/").file("a/../../escape", b"x").bytes();
        assert_refused(s.unpack(evil), "a/../../escape");
    }

    #[test]
    fn hostile_absolute_name_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let name = format!("{}/secret", s.outside.display());
        assert_refused(s.unpack(Evil::new().file(&name, b"pwned").bytes()), &name);
    }

    #[test]
    fn hostile_write_through_relative_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("link", "../outside")
            .file("link/secret", b"pwned")
            .bytes();
        assert_refused(s.unpack(evil), "link/secret");
    }

    #[test]
    fn hostile_write_through_absolute_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let target = s.outside.display().to_string();
        let evil = Evil::new()
            .symlink("link", &target)
            .file("link/new", b"pwned")
            .bytes();
        assert_refused(s.unpack(evil), "link/new");
    }

    #[test]
    fn hostile_write_through_a_chain_of_symlinks_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("a", "b")
            .symlink("b", "c/../../outside")
            .dir("c/")
            .file("a/secret", b"pwned")
            .bytes();
        assert_refused(s.unpack(evil), "a/secret");
    }

    #[test]
    fn hostile_directory_through_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("link", "../outside")
            .dir("link/sub/")
            .bytes();
        assert_refused(s.unpack(evil), "link/sub/");
    }

    #[test]
    fn hostile_hardlink_with_dotdot_target_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new().hardlink("h", "../outside/secret").bytes();
        assert_refused(s.unpack(evil), "h");
    }

    #[test]
    fn hostile_hardlink_with_absolute_target_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let target = s.outside.join("secret").display().to_string();
        assert_refused(s.unpack(Evil::new().hardlink("h", &target).bytes()), "h");
    }

    #[test]
    fn hostile_hardlink_through_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("l", "../outside")
            .hardlink("h", "l/secret")
            .bytes();
        assert_refused(s.unpack(evil), "h");
    }

    #[test]
    fn hostile_file_replacing_a_symlink_does_not_write_through_it() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("evil", "../outside/secret")
            .file("evil", b"mine")
            .bytes();
        s.unpack(evil).unwrap();
        let meta = s.tree.join("evil").symlink_metadata().unwrap();
        assert!(meta.is_file());
        assert_eq!(fs_err::read(s.tree.join("evil")).unwrap(), b"mine");
    }

    #[test]
    fn hostile_file_replacing_a_hardlink_does_not_write_through_it() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .file("f", b"first")
            .hardlink("h", "f")
            .file("h", b"second")
            .bytes();
        s.unpack(evil).unwrap();
        assert_eq!(fs_err::read(s.tree.join("f")).unwrap(), b"first");
        assert_eq!(fs_err::read(s.tree.join("h")).unwrap(), b"second");
    }

    #[test]
    fn hostile_directory_replacing_a_symlink_becomes_a_real_directory() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("d", "../outside")
            .dir("d/")
            .file("d/secret", b"mine")
            .bytes();
        s.unpack(evil).unwrap();
        assert!(s.tree.join("d").symlink_metadata().unwrap().is_dir());
        assert_eq!(fs_err::read(s.tree.join("d/secret")).unwrap(), b"mine");
    }

    #[test]
    fn hostile_symlink_replacing_a_directory_is_not_written_through() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .dir("d/")
            .file("d/f", b"x")
            .symlink("d", "../outside")
            .file("d/secret", b"pwned")
            .bytes();
        assert_refused(s.unpack(evil), "d/secret");
    }

    #[test]
    fn hostile_whiteout_of_dotdot_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        assert_refused(s.unpack(Evil::new().file(".wh...", b"").bytes()), ".wh...");
    }

    #[test]
    fn hostile_whiteout_of_dot_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        assert_refused(
            s.unpack(Evil::new().dir("d/").file("d/.wh..", b"").bytes()),
            "d/.wh..",
        );
    }

    #[test]
    fn hostile_whiteout_through_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("l", "../outside")
            .file("l/.wh.secret", b"")
            .bytes();
        assert_refused(s.unpack(evil), "l/.wh.secret");
    }

    #[test]
    fn hostile_opaque_marker_through_symlink_out_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("l", "../outside")
            .file("l/.wh..wh..opq", b"")
            .bytes();
        assert_refused(s.unpack(evil), "l/.wh..wh..opq");
    }

    #[test]
    fn hostile_device_nodes_are_skipped() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .dir("dev/")
            .raw(b"dev/sda", tar::EntryType::Block, b"", b"", &[])
            .raw(b"dev/mem", tar::EntryType::Char, b"", b"", &[])
            .file("dev/ok", b"ok")
            .bytes();
        let stats = s.unpack(evil).unwrap();
        assert_eq!(stats.entries, 2, "only the directory and the file count");
        assert!(!s.tree.join("dev/sda").exists() && !s.tree.join("dev/mem").exists());
        assert!(s.tree.join("dev/ok").is_file());
    }

    #[test]
    fn hostile_overlay_opaque_xattr_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let pax: &[(&str, &[u8])] = &[("SCHILY.xattr.trusted.overlay.opaque", b"y")];
        let evil = Evil::new()
            .raw(b"etc/", tar::EntryType::Directory, b"", b"", pax)
            .bytes();
        assert_refused(s.unpack(evil), "etc/");
    }

    #[test]
    fn hostile_overlay_redirect_xattr_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let pax: &[(&str, &[u8])] = &[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")];
        let evil = Evil::new()
            .raw(b"x", tar::EntryType::Regular, b"", b"", pax)
            .bytes();
        assert_refused(s.unpack(evil), "x");
    }

    #[test]
    fn hostile_pax_path_with_dotdot_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let pax: &[(&str, &[u8])] = &[("path", b"../escape")];
        let evil = Evil::new()
            .raw(b"harmless", tar::EntryType::Regular, b"x", b"", pax)
            .bytes();
        assert_refused(s.unpack(evil), "../escape");
    }

    #[test]
    fn hostile_long_pax_name_with_dotdot_is_refused() {
        needs_root!();
        let s = Sandbox::new();
        let long = format!("{}/../../../escape", "d".repeat(150));
        let pax: &[(&str, &[u8])] = &[("path", long.as_bytes())];
        let evil = Evil::new()
            .raw(b"harmless", tar::EntryType::Regular, b"x", b"", pax)
            .bytes();
        assert_refused(s.unpack(evil), &long);
    }

    #[test]
    fn hostile_hardlink_to_a_missing_file_is_an_error_naming_the_entry() {
        needs_root!();
        let s = Sandbox::new();
        match s.unpack(Evil::new().hardlink("h", "nothing/here").bytes()) {
            Err(LayerError::Entry { entry, .. }) => assert_eq!(entry, "h"),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn hostile_truncated_stream_is_an_error_not_a_panic() {
        needs_root!();
        let s = Sandbox::new();
        let mut bytes = Evil::new().file("big", &[7u8; 4096]).bytes();
        bytes.truncate(1024);
        assert!(matches!(
            s.unpack(bytes),
            Err(LayerError::Tar(_) | LayerError::Entry { .. })
        ));
    }

    #[test]
    fn hostile_symlink_targets_are_stored_not_followed() {
        needs_root!();
        let s = Sandbox::new();
        let evil = Evil::new()
            .symlink("passwd", "/etc/passwd")
            .symlink("up", "../../..")
            .bytes();
        s.unpack(evil).unwrap();
        assert_eq!(
            fs_err::read_link(s.tree.join("passwd")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs_err::read_link(s.tree.join("up")).unwrap(),
            Path::new("../../..")
        );
    }

    // What a layer holds survives unpacking, in the overlay lower-dir form.

    #[test]
    fn whiteouts_become_overlay_char_devices_and_opaque_xattrs() {
        needs_root!();
        let s = Sandbox::new();
        let layer = Evil::new()
            .dir("etc/")
            .file("etc/.wh.gone", b"")
            .dir("var/")
            .file("var/.wh..wh..opq", b"")
            .file("var/kept", b"k")
            .bytes();
        s.unpack(layer).unwrap();
        let gone = s.tree.join("etc/gone").symlink_metadata().unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &gone.file_type()
        ));
        assert_eq!(gone.rdev(), 0);
        let mut value = [0u8; 1];
        let n = rustix::fs::lgetxattr(s.tree.join("var"), "trusted.overlay.opaque", &mut value);
        assert_eq!((n.ok(), value[0]), (Some(1), b'y'));
        assert!(s.tree.join("var/kept").is_file());
        assert!(!s.tree.join("etc/.wh.gone").exists());
    }

    #[test]
    fn owners_modes_setuid_mtimes_links_and_xattrs_are_kept() {
        needs_root!();
        let s = Sandbox::new();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o1777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(0);
        builder
            .append_data(&mut header, "tmp/", io::empty())
            .unwrap();
        // An owner past the header's octal field, as PAX records carry it.
        builder
            .append_pax_extensions([("uid", &b"3000000"[..]), ("gid", &b"3000001"[..])])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o640);
        header.set_size(0);
        builder
            .append_data(&mut header, "tmp/big-owner", io::empty())
            .unwrap();
        builder
            .append_pax_extensions([("SCHILY.xattr.user.salve", &b"v"[..])])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o4755);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_mtime(1_500_000_000);
        header.set_size(3);
        builder
            .append_data(&mut header, "tmp/su", &b"bin"[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        builder
            .append_link(&mut header, "tmp/su2", "tmp/su")
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_uid(42);
        header.set_gid(42);
        header.set_size(0);
        builder.append_link(&mut header, "tmp/sl", "su").unwrap();
        s.unpack(builder.into_inner().unwrap()).unwrap();

        let su = fs_err::metadata(s.tree.join("tmp/su")).unwrap();
        assert_eq!(
            (su.uid(), su.gid(), su.mode() & 0o7777),
            (1234, 5678, 0o4755)
        );
        assert_eq!(su.mtime(), 1_500_000_000);
        assert_eq!(su.nlink(), 2, "tmp/su2 is a hard link to tmp/su");
        let tmp = fs_err::metadata(s.tree.join("tmp")).unwrap();
        assert_eq!((tmp.mode() & 0o7777, tmp.mtime()), (0o1777, 1_600_000_000));
        let big = fs_err::metadata(s.tree.join("tmp/big-owner")).unwrap();
        assert_eq!((big.uid(), big.gid()), (3_000_000, 3_000_001));
        let sl = s.tree.join("tmp/sl").symlink_metadata().unwrap();
        assert_eq!((sl.uid(), sl.gid()), (42, 42));
        let mut value = [0u8; 4];
        if let Ok(n) = rustix::fs::getxattr(s.tree.join("tmp/su"), "user.salve", &mut value) {
            assert_eq!(&value[..n], b"v");
        } else {
            eprintln!("note: the temp filesystem has no user xattrs; xattr check skipped");
        }
    }

    #[test]
    fn sparse_and_large_files_keep_their_size_and_holes() {
        needs_root!();
        let s = Sandbox::new();
        // A 9 GiB sparse file (beyond the 8 GiB octal size limit) with data at both ends.
        let source = tempfile::NamedTempFile::new().unwrap();
        let size: u64 = 9 << 30;
        let mut file = source.reopen().unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::Start(size - 4)).unwrap();
        file.write_all(b"tail").unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        builder.sparse(true);
        builder.append_path_with_name(source.path(), "big").unwrap();
        let bytes = builder.into_inner().unwrap();
        assert!(bytes.len() < 1 << 20, "the tar itself is sparse");

        s.unpack(bytes).unwrap();
        let big = fs_err::metadata(s.tree.join("big")).unwrap();
        assert_eq!(big.len(), size);
        assert!(
            big.blocks() * 512 < 64 << 20,
            "holes stay holes: {} blocks",
            big.blocks()
        );
        let mut f = fs_err::File::open(s.tree.join("big")).unwrap();
        let mut buf = [0u8; 4];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"head");
        f.seek(SeekFrom::Start(size - 4)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"tail");
    }

    fn image_with(layers: &[Vec<u8>], compression: Compression) -> (tempfile::TempDir, Image) {
        let dir = tempfile::tempdir().unwrap();
        fixture::layout(dir.path(), "1", layers, compression, serde_json::json!({}));
        let reference = crate::image::Reference::OciLayout {
            path: dir.path().into(),
            tag: None,
        };
        let image = crate::image::open(&reference, None).unwrap();
        (dir, image)
    }

    #[test]
    fn cache_unpacks_each_layer_once_bottom_first() {
        needs_root!();
        let layers = vec![
            fixture::tar_of(&[("a/", b""), ("a/one", b"1")]),
            fixture::tar_of(&[("a/", b""), ("a/two", b"2")]),
        ];
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let (dir, image) = image_with(&layers, compression);
            let cache_root = tempfile::tempdir().unwrap();
            let cache = LayerCache::new(cache_root.path()).unwrap();
            let dirs = cache.unpack(&image).unwrap();
            assert_eq!(dirs.len(), 2);
            assert_eq!(dirs[0], cache.path(image.layers()[0].diff_id()));
            assert_eq!(fs_err::read(dirs[0].join("a/one")).unwrap(), b"1");
            assert_eq!(fs_err::read(dirs[1].join("a/two")).unwrap(), b"2");
            assert_eq!(
                dirs[1]
                    .strip_prefix(cache.layers_dir())
                    .unwrap()
                    .as_os_str()
                    .len(),
                64
            );

            // With the blobs gone, a second run still succeeds: it read nothing.
            fs_err::remove_dir_all(dir.path().join("blobs")).unwrap();
            assert_eq!(cache.unpack(&image).unwrap(), dirs, "{compression}");
        }
    }

    #[test]
    fn a_layer_whose_content_does_not_match_its_diff_id_is_not_cached() {
        needs_root!();
        let (dir, image) = image_with(&[fixture::tar_of(&[("f", b"1")])], Compression::None);
        // Same length, other content, stored under the original digest.
        let blob = dir
            .path()
            .join("blobs/sha256")
            .join(image.layers()[0].digest().digest());
        let forged = fixture::tar_of(&[("f", b"2")]);
        fs_err::write(&blob, &forged).unwrap();

        let cache_root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(cache_root.path()).unwrap();
        let err = cache.unpack(&image).unwrap_err();
        let message = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            message.contains(&image.layers()[0].digest().to_string()),
            "{message}"
        );
        assert!(message.contains("diff id"), "{message}");
        assert!(!cache.contains(image.layers()[0].diff_id()));
        assert_eq!(
            fs_err::read_dir(cache_root.path().join("layers/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_bad_layer_among_several_is_the_one_named() {
        needs_root!();
        let layers: Vec<Vec<u8>> = (0..4)
            .map(|i| fixture::tar_of(&[(&format!("f{i}"), b"x")]))
            .collect();
        let (dir, image) = image_with(&layers, Compression::None);
        let bad = &image.layers()[2];
        let blob = dir.path().join("blobs/sha256").join(bad.digest().digest());
        fs_err::write(&blob, fixture::tar_of(&[("f2", b"y")])).unwrap();

        let cache_root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(cache_root.path()).unwrap();
        let err = cache.unpack(&image).unwrap_err().to_string();
        assert_eq!(err, format!("unpacking layer {}", bad.digest()));
        assert!(cache.contains(image.layers()[0].diff_id()));
        assert!(!cache.contains(bad.diff_id()));
    }

    #[test]
    fn leftovers_of_dead_processes_are_removed() {
        needs_root!();
        let root = tempfile::tempdir().unwrap();
        let stale = root.path().join("layers/tmp/999999999-abc");
        fs_err::create_dir_all(stale.join("half")).unwrap();
        let live = root
            .path()
            .join(format!("layers/tmp/{}-xyz", std::process::id()));
        fs_err::create_dir_all(&live).unwrap();
        LayerCache::new(root.path()).unwrap();
        assert!(!stale.exists());
        assert!(live.exists(), "a running process's unpack is left alone");
    }

    #[test]
    fn into_dir_unpacks_a_single_layer_for_the_previous_patch() {
        needs_root!();
        let layer = Evil::new()
            .dir("etc/")
            .file("etc/.wh.old", b"")
            .file("etc/new", b"n")
            .bytes();
        let (_dir, image) = image_with(&[layer], Compression::Gzip);
        let upper = tempfile::tempdir().unwrap();
        let stats = into_dir(&image.layers()[0], &upper.path().join("upper")).unwrap();
        assert_eq!(stats.entries, 3);
        assert_eq!(stats.bytes, 1);
        let old = upper
            .path()
            .join("upper/etc/old")
            .symlink_metadata()
            .unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &old.file_type()
        ));
    }

    #[test]
    fn directory_permissions_do_not_block_their_own_content() {
        needs_root!();
        let s = Sandbox::new();
        let mut evil = Evil::new().dir("ro/");
        evil = evil.file("ro/f", b"x");
        s.unpack(evil.bytes()).unwrap();
        let mode = fs_err::metadata(s.tree.join("ro"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
