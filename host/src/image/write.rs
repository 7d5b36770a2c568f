//! Writing a patched image: new config and manifest, original layer blobs byte for byte.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use oci_spec::image::{Descriptor, Digest, MediaType};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tracing::{debug, warn};

use super::read::sha256_digest;
use super::{BASE_DIGEST_LABEL, BASE_LAYERS_LABEL, Destination, Error, Image, Layer, Name};
use crate::layer::NewLayer;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const CREATED: &str = "org.opencontainers.image.created";
const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What a patch records in the new image.
#[derive(Debug, Clone)]
pub struct Patch {
    /// The `comment` of the history entry for the new layer ("salve: openssl 3.0.11 -> ...").
    pub comment: String,
    /// Labels to set in the config (merged over the image's own).
    pub labels: BTreeMap<String, String>,
    /// The image's new `created` time.
    pub created: DateTime<Utc>,
}

impl Patch {
    /// A patch with `comment`, no extra labels, created now.
    pub fn now(comment: impl Into<String>) -> Patch {
        Patch {
            comment: comment.into(),
            labels: BTreeMap::new(),
            created: Utc::now(),
        }
    }
}

/// What [`write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The name the image was written under.
    pub name: Name,
    /// The new manifest's digest.
    pub manifest_digest: Digest,
    /// The new config's digest (the image ID Docker shows).
    pub config_digest: Digest,
    /// How many layers the written image has.
    pub layers: usize,
    /// Bytes written to disk (blobs reused in place or hard-linked count nothing).
    pub bytes_written: u64,
}

/// Writes `image` plus `layer` (when the patch changed anything) to `destination`.
///
/// The original layer blobs are reused byte for byte (hard-linked from an OCI layout on the
/// same filesystem, else copied and checked against their digests). When `image` is itself a
/// salve patch and `layer` is given, the previous patch layer is replaced, not stacked on.
///
/// The name: the destination's own tag, else `tag` (`-t`, a `TAG` or `NAME:TAG`), else the
/// input's tag with `-patched` appended; an input without a tag needs one of the first two.
///
/// # Errors
///
/// A missing name, an output that is the input, a destination that is something else, and
/// I/O or digest errors while copying; the destination is then left as it was.
pub fn write(
    image: &Image,
    layer: Option<&NewLayer>,
    patch: &Patch,
    destination: &Destination,
    tag: Option<&str>,
) -> Result<Written, Error> {
    write_unless(image, layer, patch, destination, tag, &|| false)
}

/// [`write`], giving up with [`Error::Interrupted`] as soon as `stop` says so (it is asked
/// before each blob and before the output is put in place), leaving the destination as it
/// was.
///
/// # Errors
///
/// As [`write`], and [`Error::Interrupted`].
pub fn write_unless(
    image: &Image,
    layer: Option<&NewLayer>,
    patch: &Patch,
    destination: &Destination,
    tag: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> Result<Written, Error> {
    let name = output_name(image, destination, tag)?;
    check_path(image, destination)?;
    let output = Output::build(image, layer, patch, name)?;
    debug!(%destination, name = %output.name, manifest = %output.manifest_digest, "writing image");

    let bytes_written = match destination {
        Destination::OciLayout { path, .. } => write_layout(&output, path, stop)?,
        Destination::OciArchive { path, .. } => write_archive(&output, path, false, stop)?,
        Destination::DockerArchive { path, .. } => {
            if output
                .layers
                .iter()
                .any(|(_, d, _)| is_zstd(d.media_type()))
            {
                warn!(%destination, "the image has zstd layers: Docker before 23.0 cannot load it");
            }
            write_archive(&output, path, true, stop)?
        }
    };
    Ok(Written {
        name: output.name,
        manifest_digest: output.manifest_digest,
        config_digest: output.config_digest,
        layers: output.layers.len(),
        bytes_written,
    })
}

/// Checks, before any work, that [`write`] could write `image` to `destination`: that it has
/// a name to write under, is not the input, and is a place salve may write (a missing path
/// whose nearest existing ancestor is a directory, an OCI layout or empty directory for a
/// layout, a file or nothing for an archive).
///
/// # Errors
///
/// The same errors [`write`] would give for these.
pub fn check_destination(
    image: &Image,
    destination: &Destination,
    tag: Option<&str>,
) -> Result<(), Error> {
    output_name(image, destination, tag)?;
    check_path(image, destination)
}

/// The place half of [`check_destination`]: not the input (salve never changes its input,
/// not even to add a tag beside it), and a place salve may write.
fn check_path(image: &Image, destination: &Destination) -> Result<(), Error> {
    let (path, layout) = match destination {
        Destination::OciLayout { path, .. } => (path.as_path(), true),
        Destination::OciArchive { path, .. } | Destination::DockerArchive { path, .. } => {
            (path.as_path(), false)
        }
    };
    if same_file(path, image.store.path()) {
        return Err(Error::OutputIsInput(path.to_owned()));
    }
    match std::fs::metadata(path) {
        Ok(m) if layout && m.is_dir() => {
            let empty = fs_err::read_dir(path)?.next().is_none();
            if !empty && !path.join("oci-layout").is_file() {
                return Err(Error::DestinationExists {
                    path: path.to_owned(),
                });
            }
        }
        Ok(m) if !layout && !m.is_dir() => {}
        Ok(_) if !layout => {
            return Err(Error::DestinationIsDirectory {
                path: path.to_owned(),
            });
        }
        Ok(_) => {
            return Err(Error::DestinationExists {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The nearest ancestor that exists must be a directory.
            let mut ancestor = parent_of(path);
            while !ancestor.exists() {
                ancestor = parent_of(ancestor);
            }
            if !ancestor.is_dir() {
                let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
                return Err(with_path(e, ancestor).into());
            }
        }
        Err(e) => return Err(with_path(e, path).into()),
    }
    Ok(())
}

/// The name to write under (see [`write`]).
fn output_name(image: &Image, destination: &Destination, tag: Option<&str>) -> Result<Name, Error> {
    let own = match destination {
        Destination::OciLayout { tag, .. } | Destination::OciArchive { tag, .. } => tag.as_deref(),
        Destination::DockerArchive { name, .. } => name.as_deref(),
    };
    let mut name = match own.or(tag) {
        Some(explicit) => Name::parse(explicit)?,
        None => {
            let Some(input) = image.name() else {
                return Err(Error::NoOutputName(format!(
                    "{} has no tag to derive the output's from: pass -t TAG",
                    image.source()
                )));
            };
            Name {
                repository: input.repository.clone(),
                tag: format!("{}-patched", input.tag),
            }
        }
    };
    if name.repository.is_none() {
        name.repository = image.name().and_then(|n| n.repository.clone());
    }
    if matches!(destination, Destination::DockerArchive { .. }) && name.repository.is_none() {
        return Err(Error::NoOutputName(format!(
            "{} records no repository name, and a docker-archive needs one: pass -t NAME:{}",
            image.source(),
            name.tag
        )));
    }
    Ok(name)
}

/// A blob of the output and where its bytes come from.
enum Source<'a> {
    Bytes(Vec<u8>),
    Layer(&'a Layer),
    File(&'a Path),
}

struct Blob<'a> {
    digest: Digest,
    size: u64,
    source: Source<'a>,
}

/// Everything to write, computed before anything touches the disk.
struct Output<'a> {
    name: Name,
    config_digest: Digest,
    manifest_digest: Digest,
    manifest_size: u64,
    platform: Value,
    /// The layers' diff ids, digests and whether each blob is present (foreign ones may not).
    layers: Vec<(Digest, Descriptor, bool)>,
    blobs: Vec<Blob<'a>>,
}

impl<'a> Output<'a> {
    fn build(
        image: &'a Image,
        layer: Option<&'a NewLayer>,
        patch: &Patch,
        name: Name,
    ) -> Result<Output<'a>, Error> {
        // A new layer replaces a previous patch's; without one, every layer stays.
        let kept: &[Layer] = match layer {
            Some(_) => image.base_layers(),
            None => image.layers(),
        };
        let created = patch.created.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut labels = patch.labels.clone();
        if layer.is_some() {
            labels.insert(
                BASE_DIGEST_LABEL.to_owned(),
                image.base_digest().to_string(),
            );
            labels.insert(BASE_LAYERS_LABEL.to_owned(), kept.len().to_string());
        }
        let new_diff_id = layer.map(|l| &l.diff_id);
        let config =
            image
                .config()
                .patched(kept.len(), new_diff_id, &patch.comment, &labels, &created);
        let config_bytes = config.to_bytes();
        let config_digest = sha256_digest(&config_bytes);

        // Layer descriptors, OCI media types, the new layer last.
        let mut layers: Vec<(Digest, Descriptor, bool)> = kept
            .iter()
            .map(|l| (l.diff_id().clone(), l.oci_descriptor(), l.has_blob()))
            .collect();
        let mut blobs: Vec<Blob<'a>> = kept
            .iter()
            .filter(|l| l.has_blob())
            .map(|l| Blob {
                digest: l.digest().clone(),
                size: l.size(),
                source: Source::Layer(l),
            })
            .collect();
        if let Some(new) = layer {
            let descriptor = Descriptor::new(new.media_type.clone(), new.size, new.digest.clone());
            layers.push((new.diff_id.clone(), descriptor, true));
            blobs.push(Blob {
                digest: new.digest.clone(),
                size: new.size,
                source: Source::File(&new.path),
            });
        }

        // The manifest keeps the original's annotations and records the base image.
        let mut annotations: BTreeMap<String, String> = image
            .annotations()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        annotations.insert(CREATED.to_owned(), created);
        if layer.is_some() {
            annotations.insert(
                BASE_DIGEST_ANNOTATION.to_owned(),
                image.base_digest().to_string(),
            );
        }
        let config_descriptor = Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest.clone(),
        );
        let manifest_bytes = manifest(
            &config_descriptor,
            layers.iter().map(|l| l.1.clone()),
            Some(&annotations),
        )?;
        let manifest_digest = sha256_digest(&manifest_bytes);
        let manifest_size = manifest_bytes.len() as u64;

        let mut platform = json!({"os": config.os(), "architecture": config.architecture()});
        if let Some(variant) = config.variant() {
            platform["variant"] = Value::String(variant.to_owned());
        }
        blobs.push(Blob {
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            source: Source::Bytes(config_bytes),
        });
        blobs.push(Blob {
            digest: manifest_digest.clone(),
            size: manifest_size,
            source: Source::Bytes(manifest_bytes),
        });
        Ok(Output {
            name,
            config_digest,
            manifest_digest,
            manifest_size,
            platform,
            layers,
            blobs,
        })
    }

    /// The index.json entry for the manifest, named by its tag.
    fn index_entry(&self) -> Value {
        let mut annotations = json!({ REF_NAME: self.name.tag });
        if self.name.repository.is_some() {
            annotations[CONTAINERD_NAME] = Value::String(self.name.to_string());
        }
        json!({
            "mediaType": MediaType::ImageManifest.to_string(),
            "digest": self.manifest_digest.to_string(),
            "size": self.manifest_size,
            "annotations": annotations,
            "platform": self.platform,
        })
    }

    /// The docker-archive `manifest.json`.
    fn docker_manifest(&self) -> Value {
        let path = |d: &Digest| format!("blobs/sha256/{}", d.digest());
        let mut entry = json!({
            "Config": path(&self.config_digest),
            "RepoTags": [self.name.to_string()],
            "Layers": self.layers.iter().map(|l| path(l.1.digest())).collect::<Vec<_>>(),
        });
        let foreign: serde_json::Map<String, Value> = self
            .layers
            .iter()
            .filter(|(_, d, _)| d.urls().is_some() || is_foreign(d.media_type()))
            .filter_map(|(diff_id, d, _)| {
                Some((diff_id.to_string(), serde_json::to_value(d).ok()?))
            })
            .collect();
        if !foreign.is_empty() {
            entry["LayerSources"] = Value::Object(foreign);
        }
        json!([entry])
    }
}

fn is_zstd(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd
    )
}

fn is_foreign(media_type: &MediaType) -> bool {
    matches!(
        media_type,
        MediaType::ImageLayerNonDistributable
            | MediaType::ImageLayerNonDistributableGzip
            | MediaType::ImageLayerNonDistributableZstd
    )
}

/// The bytes of an OCI image manifest. Keys are sorted, so the same image gives the same bytes.
pub(crate) fn manifest(
    config: &Descriptor,
    layers: impl Iterator<Item = Descriptor>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>, Error> {
    let layers = layers
        .map(|l| serde_json::to_value(&l))
        .collect::<Result<Vec<_>, _>>()?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageManifest.to_string(),
        "config": serde_json::to_value(config)?,
        "layers": layers,
    });
    if let Some(annotations) = annotations.filter(|a| !a.is_empty()) {
        manifest["annotations"] = serde_json::to_value(annotations)?;
    }
    Ok(serde_json::to_vec(&manifest)?)
}

/// Writes (or adds to) an OCI layout directory; returns the bytes written.
/// Adds to an existing layout, else makes one (`check_path` has vetted `path`).
fn write_layout(output: &Output, path: &Path, stop: &dyn Fn() -> bool) -> Result<u64, Error> {
    if path.join("oci-layout").is_file() {
        add_to_layout(output, path, stop)
    } else {
        new_layout(output, path, stop)
    }
}

/// Builds the layout in a hidden sibling directory, then renames it into place.
fn new_layout(output: &Output, path: &Path, stop: &dyn Fn() -> bool) -> Result<u64, Error> {
    let parent = parent_of(path);
    fs_err::create_dir_all(parent)?;
    let temp = tempfile::Builder::new()
        .prefix(".salve-")
        .tempdir_in(parent)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a directory in {}: {e}", parent.display()),
            )
        })?;
    let blobs = temp.path().join("blobs/sha256");
    fs_err::create_dir_all(&blobs)?;

    let mut written = 0;
    for blob in &output.blobs {
        unless(stop)?;
        written += place_blob(blob, &blobs)?;
    }
    fs_err::write(temp.path().join("oci-layout"), OCI_LAYOUT)?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": [output.index_entry()],
    }))?;
    fs_err::write(temp.path().join("index.json"), &index)?;
    written += (OCI_LAYOUT.len() + index.len()) as u64;
    // A temporary directory is private (0700); the output is not.
    fs_err::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
    sync_dir(temp.path())?;

    unless(stop)?;
    let kept = temp.keep();
    if let Err(e) = fs_err::rename(&kept, path) {
        let _ = fs_err::remove_dir_all(&kept);
        return Err(e.into());
    }
    sync_dir(parent)?;
    Ok(written)
}

/// Adds the image to an existing layout: new blobs first, then index.json swapped atomically.
///
/// Existing blobs are never rewritten (they are named by digest), so an interrupted run
/// leaves at most unreferenced blobs; the index keeps naming only complete images.
fn add_to_layout(output: &Output, path: &Path, stop: &dyn Fn() -> bool) -> Result<u64, Error> {
    let index_path = path.join("index.json");
    let mut index: serde_json::Map<String, Value> =
        serde_json::from_slice(&fs_err::read(&index_path)?).map_err(|e| Error::InvalidField {
            file: index_path.display().to_string(),
            field: "(document)".to_owned(),
            reason: e.to_string(),
        })?;
    let mut manifests = match index.remove("manifests") {
        Some(Value::Array(manifests)) => manifests,
        _ => Vec::new(),
    };
    let tag = output.name.tag.as_str();
    let names_tag = |m: &Value| m["annotations"][REF_NAME].as_str() == Some(tag);

    let blobs = path.join("blobs/sha256");
    fs_err::create_dir_all(&blobs)?;
    let mut written = 0;
    for blob in &output.blobs {
        unless(stop)?;
        if !blobs.join(blob.digest.digest()).is_file() {
            written += place_blob(blob, &blobs)?;
        }
    }
    sync_dir(&blobs)?;

    // The same tag now names the new image; every other entry stays.
    manifests.retain(|m| !names_tag(m));
    manifests.push(output.index_entry());
    index.insert("manifests".to_owned(), Value::Array(manifests));
    let bytes = serde_json::to_vec(&index)?;
    unless(stop)?;
    replace_file(&index_path, &bytes)?;
    Ok(written + bytes.len() as u64)
}

/// Writes one blob into `dir` under its digest; returns the bytes written.
fn place_blob(blob: &Blob, dir: &Path) -> Result<u64, Error> {
    let target = dir.join(blob.digest.digest());

    // An original layer from a layout on the same filesystem is hard-linked: same bytes, no
    // copy. Any failure (another filesystem, permissions) falls back to copying.
    if let Source::Layer(layer) = &blob.source
        && let Some(from) = layer.blob_path()
        && std::fs::hard_link(&from, &target).is_ok()
    {
        debug!(from = %from.display(), "hard-linked layer blob");
        return Ok(0);
    }

    let mut temp = tempfile::Builder::new()
        .prefix(".salve-")
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a file in {}: {e}", dir.display()),
            )
        })?;
    copy_checked(blob, temp.as_file_mut(), &target)?;
    readable(&temp).map_err(|e| with_path(e, temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| with_path(e, temp.path()))?;
    temp.persist(&target)
        .map_err(|e| with_path(e.error, &target))?;
    Ok(blob.size)
}

/// Copies a blob's bytes to `out` (which becomes `path`), checking its size and digest on
/// the way.
fn copy_checked(blob: &Blob, out: &mut dyn Write, path: &Path) -> Result<(), Error> {
    let reader: Box<dyn Read + '_> = match &blob.source {
        Source::Bytes(bytes) => Box::new(bytes.as_slice()),
        Source::Layer(layer) => layer.open()?,
        Source::File(path) => Box::new(fs_err::File::open(path)?),
    };
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
        count: 0,
        read_failed: false,
    };
    io::copy(&mut hashing, out).map_err(|e| copy_error(&hashing, blob, e, path))?;
    check(&hashing, blob)
}

/// A failed copy of a blob: reading its source, or writing the output at `path` (a full
/// disk).
fn copy_error(hashing: &HashingReader<'_>, blob: &Blob, source: io::Error, path: &Path) -> Error {
    if hashing.read_failed {
        Error::Read {
            what: format!("blob {}", blob.digest),
            source,
        }
    } else {
        with_path(source, path).into()
    }
}

fn check(hashing: &HashingReader<'_>, blob: &Blob) -> Result<(), Error> {
    let actual = super::read::digest_of(hashing.hasher.clone());
    if actual != blob.digest || hashing.count != blob.size {
        return Err(Error::DigestMismatch {
            what: format!(
                "blob {} ({} bytes, expected {})",
                blob.digest, hashing.count, blob.size
            ),
            expected: blob.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

struct HashingReader<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Sha256,
    count: u64,
    /// Whether an error came from the source (else it came from where the bytes went).
    read_failed: bool,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.read_failed = true)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Writes an OCI archive (or a docker-archive, which is the same plus `manifest.json`) to
/// `path`, which `check_path` has vetted.
fn write_archive(
    output: &Output,
    path: &Path,
    docker: bool,
    stop: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let parent = parent_of(path);
    fs_err::create_dir_all(parent)?;
    let temp = tempfile::Builder::new()
        .prefix(".salve-")
        .tempfile_in(parent)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a file in {}: {e}", parent.display()),
            )
        })?;

    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, temp.as_file()));
    let failed = |e: io::Error| with_path(e, path);
    append_bytes(&mut tar, "oci-layout", OCI_LAYOUT).map_err(failed)?;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, io::empty())
            .map_err(failed)?;
    }
    for blob in &output.blobs {
        unless(stop)?;
        append_blob(&mut tar, blob, path)?;
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::ImageIndex.to_string(),
        "manifests": [output.index_entry()],
    }))?;
    append_bytes(&mut tar, "index.json", &index).map_err(failed)?;
    if docker {
        let manifest = serde_json::to_vec(&output.docker_manifest())?;
        append_bytes(&mut tar, "manifest.json", &manifest).map_err(failed)?;
    }
    let buffered = tar.into_inner().map_err(failed)?;
    buffered.into_inner().map_err(|e| failed(e.into_error()))?;
    temp.as_file().sync_all().map_err(failed)?;
    let written = temp.as_file().metadata().map_err(failed)?.len();
    readable(&temp).map_err(failed)?;

    unless(stop)?;
    temp.persist(path).map_err(|e| with_path(e.error, path))?;
    sync_dir(parent)?;
    Ok(written)
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(bytes.len() as u64);
    tar.append_data(&mut header, name, bytes)
}

fn append_blob<W: Write>(tar: &mut tar::Builder<W>, blob: &Blob, path: &Path) -> Result<(), Error> {
    let reader: Box<dyn Read + '_> = match &blob.source {
        Source::Bytes(bytes) => Box::new(bytes.as_slice()),
        Source::Layer(layer) => layer.open()?,
        Source::File(path) => Box::new(fs_err::File::open(path)?),
    };
    // The header promises `size` bytes; `take` keeps a longer blob from breaking the archive
    // and the check below catches a shorter or different one.
    let mut hashing = HashingReader {
        inner: Box::new(reader.take(blob.size)),
        hasher: Sha256::new(),
        count: 0,
        read_failed: false,
    };
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(blob.size);
    let name = format!("blobs/sha256/{}", blob.digest.digest());
    tar.append_data(&mut header, &name, &mut hashing)
        .map_err(|e| copy_error(&hashing, blob, e, path))?;
    check(&hashing, blob)
}

/// Replaces `path` with `bytes` through a temporary file and a rename.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = parent_of(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".salve-")
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a file in {}: {e}", dir.display()),
            )
        })?;
    temp.write_all(bytes)
        .map_err(|e| with_path(e, temp.path()))?;
    readable(&temp).map_err(|e| with_path(e, temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| with_path(e, temp.path()))?;
    temp.persist(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// Makes a temporary file (created 0600) readable by all, as the output it becomes.
fn readable(temp: &tempfile::NamedTempFile) -> io::Result<()> {
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// [`Error::Interrupted`] once `stop` says so.
fn unless(stop: &dyn Fn() -> bool) -> Result<(), Error> {
    if stop() {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs_err::canonicalize(a), fs_err::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Flushes a directory's entries, so a rename survives a crash.
fn sync_dir(path: &Path) -> Result<(), Error> {
    fs_err::File::open(path)?.sync_all()?;
    Ok(())
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
}
