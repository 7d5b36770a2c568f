//! Turning the changes of a run into one new image layer.
//!
//! The executor runs plan steps on an overlay mount whose upper directory collects every
//! change. [`write`] turns that upper directory into one layer blob:
//!
//! - added and changed files, directories, symlinks and hard links, with their modes (setuid
//!   included), numeric owners (empty owner names), mtimes and xattrs;
//! - overlayfs whiteouts (0/0 character devices) become OCI `.wh.NAME` entries, and opaque
//!   directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry;
//! - entries are in sorted order, so the same upper directory gives the same bytes;
//! - the blob is compressed with gzip (the default), zstd, or not at all.
//!
//! The blob is written under a temporary name and renamed to its digest when complete.
//! The executor should mount the overlay with `redirect_dir=off,metacopy=off,index=off` so
//! the upper directory holds whole files only; salve's own `trusted.overlay.*` attributes are
//! never copied into the layer.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{Digest, MediaType};
use sha2::{Digest as _, Sha256};
use tracing::debug;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, the most widely understood (the default for new layers).
    #[default]
    Gzip,
    /// zstd: smaller and faster, understood by containerd, Docker 23+ and Podman.
    Zstd,
}

impl Compression {
    /// Recognises a blob's compression from its first bytes (at least 4 for zstd).
    pub fn sniff(prefix: &[u8]) -> Compression {
        match prefix {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The OCI media type of a layer with this compression.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" | "uncompressed" => Ok(Compression::None),
            _ => Err(Error::InvalidCompression(s.to_owned())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Wraps a blob reader so it yields the uncompressed tar stream.
pub fn decoder<'a>(
    compression: Compression,
    blob: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let buffered = io::BufReader::with_capacity(256 << 10, blob);
    Ok(match compression {
        Compression::None => Box::new(buffered),
        // MultiGzDecoder: gzip members may be concatenated (pigz, some registries).
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// A layer blob written by [`write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    /// Digest of the blob as written (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar stream (goes into the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// OCI media type matching the compression.
    pub media_type: MediaType,
    /// Where the blob is: `<out_dir>/<hex of digest>`.
    pub path: PathBuf,
    /// How many tar entries the layer has (0: the run changed nothing).
    pub entries: usize,
}

/// Errors from building a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unknown `--compression` value.
    #[error("unknown compression {0:?}: expected gzip, zstd or none")]
    InvalidCompression(String),
    /// Walking or reading the upper directory, or writing the blob.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Walking the upper directory.
    #[error("walking {path}")]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    /// An entry the layer cannot hold (a socket, or a device that is not a whiteout).
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: &'static str },
    /// Writing one entry into the tar stream.
    #[error("adding {path} to the layer")]
    Entry {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes the changes in the overlay upper directory `upper` as one layer blob in `out_dir`.
///
/// `mtime_ceiling` (seconds since the epoch) clamps every entry's mtime to at most that time,
/// as `tar --clamp-mtime` does, so that the same changes made at different times give the
/// same bytes (salve passes `SOURCE_DATE_EPOCH`, or the image's own creation time).
///
/// # Errors
///
/// Unreadable entries, sockets and device nodes other than whiteouts, and I/O errors while
/// writing; nothing is left in `out_dir` then.
pub fn write(
    upper: &Path,
    compression: Compression,
    mtime_ceiling: Option<u64>,
    out_dir: &Path,
) -> Result<NewLayer, Error> {
    fs_err::create_dir_all(out_dir)?;
    let temp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(out_dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a temporary file in {}: {e}", out_dir.display()),
            )
        })?;

    // tar -> diff id hasher -> compressor -> digest hasher -> file.
    let blob = HashingWriter::new(BufWriter::with_capacity(256 << 10, temp.as_file()));
    let encoder = Encoder::new(compression, blob)?;
    let mut tar = tar::Builder::new(HashingWriter::new(encoder));
    let entries = append_tree(&mut tar, upper, mtime_ceiling)?;
    let tarred = tar.into_inner().map_err(|e| with_path(e, temp.path()))?;
    let (diff_id, encoder) = tarred.finish();
    let blob = encoder.finish().map_err(|e| with_path(e, temp.path()))?;
    let (digest, buffered) = blob.finish();
    buffered
        .into_inner()
        .map_err(|e| with_path(e.into_error(), temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| with_path(e, temp.path()))?;
    let size = temp
        .as_file()
        .metadata()
        .map(|m| m.len())
        .map_err(|e| with_path(e, temp.path()))?;

    // Named by digest, so writing the same layer twice is harmless.
    let path = out_dir.join(hex_of(&digest));
    temp.persist(&path).map_err(|e| with_path(e.error, &path))?;
    debug!(upper = %upper.display(), %digest, %diff_id, size, entries, %compression, "wrote layer");
    Ok(NewLayer {
        digest,
        diff_id,
        size,
        media_type: compression.media_type(),
        path,
        entries,
    })
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
}

fn hex_of(digest: &Digest) -> &str {
    digest.digest()
}

/// Appends every entry below `upper`, depth first with names sorted bytewise.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    upper: &Path,
    mtime_ceiling: Option<u64>,
) -> Result<usize, Error> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut count = 0;
    let walk = walkdir::WalkDir::new(upper)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|source| Error::Walk {
            path: upper.to_owned(),
            source,
        })?;
        let name = entry
            .path()
            .strip_prefix(upper)
            .unwrap_or(entry.path())
            .to_owned();
        let metadata = entry.metadata().map_err(|source| Error::Walk {
            path: entry.path().to_owned(),
            source,
        })?;
        count += append_entry(
            tar,
            entry.path(),
            &name,
            &metadata,
            mtime_ceiling,
            &mut links,
        )?;
    }
    Ok(count)
}

/// Appends one upper-dir entry; returns how many tar entries it became.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    metadata: &std::fs::Metadata,
    mtime_ceiling: Option<u64>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<usize, Error> {
    let failed = |source: io::Error| Error::Entry {
        path: path.to_owned(),
        source,
    };
    let file_type = metadata.file_type();
    let mut header = header_from(metadata, mtime_ceiling);

    // An overlayfs whiteout (0/0 character device) is an OCI `.wh.NAME` file.
    if file_type.is_char_device() && metadata.rdev() == 0 {
        let file_name = name.file_name().unwrap_or_default();
        let mut wh_name = std::ffi::OsString::from(".wh.");
        wh_name.push(file_name);
        let whiteout = name.with_file_name(wh_name);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        tar.append_data(&mut header, &whiteout, io::empty())
            .map_err(failed)?;
        return Ok(1);
    }
    if file_type.is_char_device() || file_type.is_block_device() || file_type.is_socket() {
        return Err(Error::Unsupported {
            path: path.to_owned(),
            reason: "device nodes and sockets cannot go into a layer",
        });
    }

    append_xattrs(tar, path).map_err(failed)?;
    if file_type.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        let mut dir_name = name.as_os_str().to_owned();
        dir_name.push("/");
        tar.append_data(&mut header, dir_name, io::empty())
            .map_err(failed)?;
        if is_opaque(path) {
            let mut opaque = header_from(metadata, mtime_ceiling);
            opaque.set_entry_type(tar::EntryType::Regular);
            opaque.set_mode(0o644);
            opaque.set_size(0);
            tar.append_data(&mut opaque, name.join(".wh..wh..opq"), io::empty())
                .map_err(failed)?;
            return Ok(2);
        }
        return Ok(1);
    }
    if file_type.is_symlink() {
        let target = fs_err::read_link(path)?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, name, &target)
            .map_err(failed)?;
        return Ok(1);
    }
    if file_type.is_fifo() {
        header.set_entry_type(tar::EntryType::Fifo);
        header.set_size(0);
        tar.append_data(&mut header, name, io::empty())
            .map_err(failed)?;
        return Ok(1);
    }

    // A regular file: the first of several hard links carries the data, the rest link to it.
    if metadata.nlink() > 1 {
        let key = (metadata.dev(), metadata.ino());
        if let Some(first) = links.get(&key) {
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            tar.append_link(&mut header, name, first).map_err(failed)?;
            return Ok(1);
        }
        links.insert(key, name.to_owned());
    }
    header.set_entry_type(tar::EntryType::Regular);
    let file = fs_err::File::open(path)?;
    tar.append_data(&mut header, name, file).map_err(failed)?;
    Ok(1)
}

/// A header with the entry's mode, numeric owner (no names) and mtime (clamped).
fn header_from(metadata: &std::fs::Metadata, mtime_ceiling: Option<u64>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(metadata.mode() & 0o7777);
    header.set_uid(u64::from(metadata.uid()));
    header.set_gid(u64::from(metadata.gid()));
    let mtime = u64::try_from(metadata.mtime()).unwrap_or(0);
    header.set_mtime(mtime_ceiling.map_or(mtime, |ceiling| mtime.min(ceiling)));
    header.set_size(metadata.len());
    header
}

/// Whether overlayfs marked the directory opaque (it hides the lower layers' content).
fn is_opaque(path: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut value), Ok(1) if value[0] == b'y')
}

/// Writes the entry's xattrs as a PAX header, leaving out overlayfs's own.
fn append_xattrs<W: Write>(tar: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let names = list_xattrs(path)?;
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for name in names {
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let value = get_xattr(path, &name)?;
        records.push((format!("SCHILY.xattr.{name}"), value));
    }
    if records.is_empty() {
        return Ok(());
    }
    records.sort();
    tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

fn list_xattrs(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(path, &mut buf) {
            Ok(n) => {
                return Ok(buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("listing xattrs of {}: {e}", path.display()),
                ));
            }
        }
    }
}

fn get_xattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("reading xattr {name} of {}: {e}", path.display()),
                ));
            }
        }
    }
}

/// A writer that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The sha256 digest of everything written, and the inner writer.
    pub(crate) fn finish(self) -> (Digest, W) {
        let hex = hex::encode(self.hasher.finalize());
        // A sha256 hex string is always a valid digest.
        let digest = Digest::try_from(format!("sha256:{hex}")).unwrap_or_else(|_| unreachable!());
        (digest, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor chosen by [`Compression`].
enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(compression: Compression, inner: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            // No file name and mtime 0 in the gzip header: same input, same bytes.
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(inner, flate2::Compression::default()),
            ),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Reads a layer blob back as (name, type, mode, uid, link target, data, xattrs).
    fn entries(
        layer: &NewLayer,
        compression: Compression,
    ) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let blob = fs_err::File::open(&layer.path).unwrap();
        let mut archive = tar::Archive::new(decoder(compression, blob).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                let kind = e.header().entry_type();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
                    data = e.link_name_bytes().unwrap().into_owned();
                } else {
                    e.read_to_end(&mut data).unwrap();
                }
                (name, kind, mode, data)
            })
            .collect()
    }

    fn upper() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs_err::create_dir_all(root.join("etc/app")).unwrap();
        fs_err::write(root.join("etc/app/b.conf"), "b").unwrap();
        fs_err::write(root.join("etc/app/a.conf"), "a").unwrap();
        fs_err::write(root.join("etc/zz"), "z").unwrap();
        std::os::unix::fs::symlink("app/a.conf", root.join("etc/link")).unwrap();
        fs_err::hard_link(root.join("etc/zz"), root.join("etc/zz2")).unwrap();
        let bin = root.join("usr/bin");
        fs_err::create_dir_all(&bin).unwrap();
        fs_err::write(bin.join("tool"), "#!/bin/sh").unwrap();
        fs_err::set_permissions(bin.join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        dir
    }

    #[test]
    fn entries_are_sorted_with_modes_links_and_data() {
        let upper = upper();
        let out = tempfile::tempdir().unwrap();
        let layer = write(upper.path(), Compression::Gzip, None, out.path()).unwrap();
        let got = entries(&layer, Compression::Gzip);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/app/",
                "etc/app/a.conf",
                "etc/app/b.conf",
                "etc/link",
                "etc/zz",
                "etc/zz2",
                "usr/",
                "usr/bin/",
                "usr/bin/tool"
            ]
        );
        let find = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(find("etc/link").1, tar::EntryType::Symlink);
        assert_eq!(find("etc/link").3, b"app/a.conf");
        assert_eq!(find("etc/zz2").1, tar::EntryType::Link);
        assert_eq!(find("etc/zz2").3, b"etc/zz");
        assert_eq!(find("etc/app/b.conf").3, b"b");
        assert_eq!(find("usr/bin/tool").2, 0o4755, "setuid bit kept");
        assert_eq!(layer.entries, 10);
        assert_eq!(layer.path, out.path().join(layer.digest.digest()));
        assert_eq!(layer.size, fs_err::metadata(&layer.path).unwrap().len());
    }

    #[test]
    fn owners_are_numeric_without_names() {
        let upper = upper();
        let out = tempfile::tempdir().unwrap();
        let layer = write(upper.path(), Compression::None, None, out.path()).unwrap();
        let mut archive = tar::Archive::new(fs_err::File::open(&layer.path).unwrap());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().username_bytes().unwrap_or_default(), b"");
            assert_eq!(entry.header().groupname_bytes().unwrap_or_default(), b"");
        }
    }

    #[test]
    fn the_same_upper_dir_gives_the_same_bytes() {
        let upper = upper();
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let a = write(
                upper.path(),
                compression,
                None,
                tempfile::tempdir().unwrap().path(),
            )
            .unwrap();
            let b = write(
                upper.path(),
                compression,
                None,
                tempfile::tempdir().unwrap().path(),
            )
            .unwrap();
            assert_eq!(a.digest, b.digest, "{compression}");
            assert_eq!(a.diff_id, b.diff_id, "{compression}");
        }
    }

    #[test]
    fn diff_id_is_the_same_for_every_compression() {
        let upper = upper();
        let out = tempfile::tempdir().unwrap();
        let gzip = write(upper.path(), Compression::Gzip, None, out.path()).unwrap();
        let zstd = write(upper.path(), Compression::Zstd, None, out.path()).unwrap();
        let none = write(upper.path(), Compression::None, None, out.path()).unwrap();
        assert_eq!(gzip.diff_id, zstd.diff_id);
        assert_eq!(gzip.diff_id, none.diff_id);
        assert_eq!(none.digest, none.diff_id);
        assert_ne!(gzip.digest, zstd.digest);
        assert_eq!(zstd.media_type, MediaType::ImageLayerZstd);
        let bytes = fs_err::read(&zstd.path).unwrap();
        assert_eq!(Compression::sniff(&bytes), Compression::Zstd);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_oci_entries() {
        if !is_root() {
            assert!(
                std::env::var("SALVE_CI").map_or(true, |v| v != "1"),
                "SALVE_CI=1: this test needs root"
            );
            eprintln!("skipped: making 0/0 char devices and trusted.* xattrs needs root");
            return;
        }
        let upper = tempfile::tempdir().unwrap();
        let root = upper.path();
        fs_err::create_dir_all(root.join("etc/opq")).unwrap();
        fs_err::write(root.join("etc/opq/kept"), "k").unwrap();
        rustix::fs::setxattr(
            root.join("etc/opq"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::setxattr(
            root.join("etc"),
            "trusted.overlay.impure",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let layer = write(root, Compression::Gzip, None, out.path()).unwrap();
        let names: Vec<String> = entries(&layer, Compression::Gzip)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/.wh.gone",
                "etc/opq/",
                "etc/opq/.wh..wh..opq",
                "etc/opq/kept"
            ]
        );

        // No overlayfs attribute leaks into the layer.
        let blob = fs_err::File::open(&layer.path).unwrap();
        let mut archive = tar::Archive::new(decoder(Compression::Gzip, blob).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if let Some(pax) = entry.pax_extensions().unwrap() {
                for record in pax {
                    assert!(!record.unwrap().key().unwrap().contains("overlay"));
                }
            }
        }
    }

    #[test]
    fn xattrs_other_than_overlayfs_ones_are_kept() {
        let upper = upper();
        let tool = upper.path().join("usr/bin/tool");
        if rustix::fs::setxattr(&tool, "user.salve", b"v", rustix::fs::XattrFlags::empty()).is_err()
        {
            eprintln!("skipped: the temp filesystem has no user xattrs");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let layer = write(upper.path(), Compression::None, None, out.path()).unwrap();
        let mut archive = tar::Archive::new(fs_err::File::open(&layer.path).unwrap());
        let mut found = false;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path_bytes().as_ref() == b"usr/bin/tool" {
                let pax = entry.pax_extensions().unwrap().unwrap();
                found = pax.into_iter().any(|r| {
                    let r = r.unwrap();
                    r.key().unwrap() == "SCHILY.xattr.user.salve" && r.value_bytes() == b"v"
                });
            }
        }
        assert!(found, "user.salve xattr missing from the layer");
    }

    #[test]
    fn compression_parses_and_sniffs() {
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd);
        assert!("lz4".parse::<Compression>().is_err());
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"usr/"), Compression::None);
    }

    #[test]
    fn mtimes_are_clamped_to_the_ceiling_and_older_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("new"), "n").unwrap();
        std::fs::write(dir.path().join("old"), "o").unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(dir.path().join("old"))
            .unwrap();
        old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(500))
            .unwrap();
        let out = tempfile::tempdir().unwrap();

        let layer = write(dir.path(), Compression::None, Some(1_000), out.path()).unwrap();

        let blob = fs_err::File::open(&layer.path).unwrap();
        let mut archive = tar::Archive::new(blob);
        let mtimes: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                (name, e.header().mtime().unwrap())
            })
            .collect();
        assert_eq!(
            mtimes,
            vec![("new".to_string(), 1_000), ("old".to_string(), 500)]
        );
    }
}
