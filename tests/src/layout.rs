//! Reading an image's files: an OCI image layout or a docker-archive.
//!
//! This is the test bed's own reader, independent of salve's `image` module
//! on purpose: the validator and the re-scan judge what salve writes, so
//! they must not share its parsing. It reads only the fields the checks need
//! into small serde types instead of a full OCI model (such as `oci-spec`),
//! and keeps the raw bytes so digests are computed over what is on disk.
//!
//! A docker-archive is unpacked into a temporary directory first. Archives
//! from Docker 25 and later are also OCI layouts and are read as such.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tempfile::TempDir;

/// An image whose files cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read (the I/O error names it).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A JSON file does not parse or misses a field.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said (it names the field).
        #[source]
        source: serde_json::Error,
    },
    /// The structure is wrong in a way the JSON types cannot say.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        problem: String,
    },
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// One layer of an image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob's digest as the manifest states it; `None` in legacy
    /// docker-archives, whose layers are named by directory instead.
    pub digest: Option<String>,
    /// The blob's size as the manifest states it.
    pub size: Option<u64>,
    /// The blob's media type (empty in legacy docker-archives).
    pub media_type: String,
    /// How the blob is compressed.
    pub compression: Compression,
    /// Where the blob is on disk.
    pub path: PathBuf,
}

impl Layer {
    /// Opens the layer's uncompressed tar stream.
    pub fn open(&self) -> Result<Box<dyn Read>, Error> {
        let file = BufReader::new(fs_err::File::open(&self.path)?);
        Ok(match self.compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::Decoder::with_buffer(file)?),
        })
    }
}

/// One platform image: a manifest, its config and its layers.
#[derive(Debug)]
pub struct Image {
    /// Where the manifest is (a blob, or `manifest.json` of a legacy archive).
    pub manifest_path: PathBuf,
    /// The manifest's digest and size as its parent descriptor states them;
    /// `None` for a legacy docker-archive.
    pub manifest_descriptor: Option<Descriptor>,
    /// The manifest's media type, when it states one.
    pub manifest_media_type: Option<String>,
    /// The config's digest as the manifest states it.
    pub config_digest: String,
    /// The config's size as the manifest states it.
    pub config_size: Option<u64>,
    /// Where the config is on disk.
    pub config_path: PathBuf,
    /// The config's raw bytes.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: Config,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// Names the image is known by (`org.opencontainers.image.ref.name` or
    /// the archive's `RepoTags`).
    pub names: Vec<String>,
}

/// The image config fields the test bed reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per build step.
    #[serde(default)]
    pub history: Vec<History>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sha256 of each uncompressed layer, bottom first.
    pub diff_ids: Vec<String>,
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Deserialize)]
pub struct History {
    /// Whether the step made no layer.
    #[serde(default)]
    pub empty_layer: bool,
    /// The command of the step.
    #[serde(default)]
    pub created_by: Option<String>,
    /// A comment on the step.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The content's length in bytes.
    pub size: u64,
    /// Annotations, such as the reference name.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Which kind of file an image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A directory with `oci-layout` and `index.json`.
    OciLayout,
    /// A tarball made by `docker save`.
    DockerArchive,
}

/// An opened image file: every platform image it holds.
#[derive(Debug)]
pub struct Opened {
    /// What kind of file it was.
    pub format: Format,
    /// The directory the files are read from.
    pub root: PathBuf,
    /// The images, in index order.
    pub images: Vec<Image>,
    _unpacked: Option<TempDir>,
}

impl Opened {
    /// The only image, or the one whose name is `name`.
    pub fn image(&self, name: Option<&str>) -> Result<&Image, Error> {
        let invalid = |problem: String| Error::Invalid {
            path: self.root.clone(),
            problem,
        };
        match name {
            Some(name) => self
                .images
                .iter()
                .find(|image| {
                    image
                        .names
                        .iter()
                        .any(|n| n == name || n.ends_with(&format!(":{name}")))
                })
                .ok_or_else(|| invalid(format!("no image named {name:?}"))),
            None if self.images.len() == 1 => Ok(&self.images[0]),
            None => Err(invalid(format!(
                "holds {} images; name one",
                self.images.len()
            ))),
        }
    }
}

/// Opens an OCI layout directory or a docker-archive file.
pub fn open(path: &Path) -> Result<Opened, Error> {
    if path.is_dir() {
        return Ok(Opened {
            format: Format::OciLayout,
            root: path.to_owned(),
            images: read_oci_layout(path)?,
            _unpacked: None,
        });
    }

    // A docker-archive: unpack it, then read whichever form it holds.
    let unpacked = tempfile::Builder::new()
        .prefix("salve-testbed-archive-")
        .tempdir()?;
    let mut archive = tar::Archive::new(BufReader::new(fs_err::File::open(path)?));
    archive.unpack(unpacked.path()).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("unpacking {}: {error}", path.display()),
        )
    })?;
    let root = unpacked.path().to_owned();
    let images = if root.join("index.json").is_file() && root.join("oci-layout").is_file() {
        read_oci_layout(&root)?
    } else {
        read_legacy_archive(&root)?
    };
    Ok(Opened {
        format: Format::DockerArchive,
        root,
        images,
        _unpacked: Some(unpacked),
    })
}

/// The path of a blob in an OCI layout.
pub fn blob_path(root: &Path, digest: &str) -> Result<PathBuf, Error> {
    match digest.split_once(':') {
        Some((algorithm, hex))
            if !algorithm.is_empty()
                && !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && algorithm.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(root.join("blobs").join(algorithm).join(hex))
        }
        _ => Err(Error::Invalid {
            path: root.join("index.json"),
            problem: format!("digest {digest:?} is not ALGORITHM:HEX"),
        }),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(T, Vec<u8>), Error> {
    let bytes = fs_err::read(path)?;
    let value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    Ok((value, bytes))
}

fn read_oci_layout(root: &Path) -> Result<Vec<Image>, Error> {
    let (marker, _): (serde_json::Value, _) = read_json(&root.join("oci-layout"))?;
    if marker
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(Error::Invalid {
            path: root.join("oci-layout"),
            problem: "field `imageLayoutVersion` is missing".to_owned(),
        });
    }

    let mut images = Vec::new();
    let (index, _): (Index, _) = read_json(&root.join("index.json"))?;
    collect_manifests(root, &root.join("index.json"), &index, &mut images, 0)?;
    Ok(images)
}

fn collect_manifests(
    root: &Path,
    index_path: &Path,
    index: &Index,
    images: &mut Vec<Image>,
    depth: usize,
) -> Result<(), Error> {
    let invalid = |problem: String| Error::Invalid {
        path: index_path.to_owned(),
        problem,
    };
    if index.schema_version != 2 {
        return Err(invalid(format!(
            "field `schemaVersion` is {}, not 2",
            index.schema_version
        )));
    }
    if depth > 4 {
        return Err(invalid("indexes nest more than 4 deep".to_owned()));
    }

    for descriptor in &index.manifests {
        let path = blob_path(root, &descriptor.digest)?;
        match descriptor.media_type.as_str() {
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json" => {
                let (nested, _): (Index, _) = read_json(&path)?;
                collect_manifests(root, &path, &nested, images, depth + 1)?;
            }
            "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json" => {
                images.push(read_manifest(root, &path, descriptor)?);
            }
            other => return Err(invalid(format!("manifest media type {other:?} is unknown"))),
        }
    }
    Ok(())
}

fn read_manifest(root: &Path, path: &Path, descriptor: &Descriptor) -> Result<Image, Error> {
    let (manifest, _): (Manifest, _) = read_json(path)?;
    if manifest.schema_version != 2 {
        return Err(Error::Invalid {
            path: path.to_owned(),
            problem: format!(
                "field `schemaVersion` is {}, not 2",
                manifest.schema_version
            ),
        });
    }

    let config_path = blob_path(root, &manifest.config.digest)?;
    let (config, config_bytes) = read_json(&config_path)?;
    let layers = manifest
        .layers
        .iter()
        .map(|layer| {
            Ok(Layer {
                digest: Some(layer.digest.clone()),
                size: Some(layer.size),
                compression: compression_of(&layer.media_type, path)?,
                media_type: layer.media_type.clone(),
                path: blob_path(root, &layer.digest)?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let names = descriptor
        .annotations
        .get("org.opencontainers.image.ref.name")
        .into_iter();

    Ok(Image {
        manifest_path: path.to_owned(),
        manifest_descriptor: Some(descriptor.clone()),
        manifest_media_type: manifest.media_type,
        config_digest: manifest.config.digest.clone(),
        config_size: Some(manifest.config.size),
        config_path,
        config_bytes,
        config,
        layers,
        names: names.cloned().collect(),
    })
}

fn compression_of(media_type: &str, manifest: &Path) -> Result<Compression, Error> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(Compression::Zstd),
        other => Err(Error::Invalid {
            path: manifest.to_owned(),
            problem: format!("layer media type {other:?} is unknown"),
        }),
    }
}

fn read_legacy_archive(root: &Path) -> Result<Vec<Image>, Error> {
    let manifest_path = root.join("manifest.json");
    let (entries, _): (Vec<ArchiveEntry>, _) = read_json(&manifest_path)?;
    let member = |name: &str| -> Result<PathBuf, Error> {
        let relative = Path::new(name);
        if relative.is_absolute() || relative.components().any(|c| c.as_os_str() == "..") {
            return Err(Error::Invalid {
                path: manifest_path.clone(),
                problem: format!("member {name:?} leaves the archive"),
            });
        }
        Ok(root.join(relative))
    };

    let mut images = Vec::new();
    for entry in entries {
        let config_path = member(&entry.config)?;
        let (config, config_bytes) = read_json(&config_path)?;
        // Legacy archives name the config by its digest: `<hex>.json`.
        let config_digest = format!("sha256:{}", entry.config.trim_end_matches(".json"));
        let layers = entry
            .layers
            .iter()
            .map(|name| {
                Ok(Layer {
                    digest: None,
                    size: None,
                    media_type: String::new(),
                    compression: Compression::None,
                    path: member(name)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        images.push(Image {
            manifest_path: manifest_path.clone(),
            manifest_descriptor: None,
            manifest_media_type: None,
            config_digest,
            config_size: None,
            config_path,
            config_bytes,
            config,
            layers,
            names: entry.repo_tags.unwrap_or_default(),
        });
    }
    Ok(images)
}

/// Reads one layer's tar entries in order, and returns its diff id (the
/// sha256 of the whole uncompressed stream, end-of-archive padding included).
pub fn walk(
    layer: &Layer,
    mut visit: impl FnMut(&mut tar::Entry<'_, HashingReader<Box<dyn Read>>>) -> io::Result<()>,
) -> Result<String, Error> {
    let context = |error: io::Error| {
        io::Error::new(
            error.kind(),
            format!("reading layer {}: {error}", layer.path.display()),
        )
    };

    let mut archive = tar::Archive::new(HashingReader::new(layer.open()?));
    for entry in archive.entries().map_err(context)? {
        let mut entry = entry.map_err(context)?;
        visit(&mut entry).map_err(context)?;
    }

    // The tar reader stops at the end-of-archive marker; the diff id covers
    // the padding after it too.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(context)?;
    Ok(rest.digest())
}

/// A reader that hashes what passes through it with sha256.
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    length: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: sha2::Digest::new(),
            length: 0,
        }
    }

    /// `sha256:<hex>` of everything read so far.
    pub fn digest(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(sha2::Digest::finalize(self.hasher.clone()))
        )
    }

    /// How many bytes were read so far.
    pub fn length(&self) -> u64 {
        self.length
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..read]);
        self.length += read as u64;
        Ok(read)
    }
}

/// `sha256:<hex>` and length of a file's bytes.
pub fn file_digest(path: &Path) -> Result<(String, u64), Error> {
    let mut reader = HashingReader::new(BufReader::new(fs_err::File::open(path)?));
    io::copy(&mut reader, &mut io::sink()).map_err(|error| {
        io::Error::new(error.kind(), format!("reading {}: {error}", path.display()))
    })?;
    Ok((reader.digest(), reader.length()))
}
