//! Opening an image: finding its manifest, config and layers in a layout or tarball.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tracing::debug;

use super::config::Config;
use super::store::Store;
use super::{BASE_DIGEST_LABEL, BASE_LAYERS_LABEL, Error, Image, Layer, Name, Platform, Reference};
use crate::layer::Compression;

/// The largest JSON document (index, manifest, config) salve reads.
const JSON_LIMIT: u64 = 16 << 20;

const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Opens the image `reference` points to.
///
/// `platform` picks the manifest from an index (None: the host's platform); for a
/// single-platform image it is checked only when given. An index without that platform is an
/// error listing the platforms it has.
///
/// # Errors
///
/// Unsupported transports (registry, daemon), unreadable or malformed files, missing blobs,
/// a missing platform or tag: each names the file and field at fault.
pub fn open(reference: &Reference, platform: Option<&Platform>) -> Result<Image, Error> {
    open_any(reference, platform).map_err(|e| match e {
        Error::Io(source) => Error::Open {
            reference: reference.to_string(),
            source,
        },
        other => other,
    })
}

fn open_any(reference: &Reference, platform: Option<&Platform>) -> Result<Image, Error> {
    let source = reference.to_string();
    match reference {
        Reference::OciLayout { path, tag } => {
            let store = Arc::new(Store::Dir(path.clone()));
            open_layout(source, store, tag.as_deref(), platform)
        }
        Reference::OciArchive { path, tag } => {
            let store = Arc::new(Store::tar(path)?);
            open_layout(source, store, tag.as_deref(), platform)
        }
        Reference::DockerArchive { path, name } => {
            let store = Arc::new(Store::tar(path)?);
            open_docker_archive(source, store, name.as_deref(), platform)
        }
        Reference::Path(path) => open_sniffed(source, path, platform),
        Reference::Registry(name) => Err(Error::Unsupported {
            what: format!("pulling {name} from a registry"),
            hint: "use `skopeo copy docker://NAME oci:DIR:TAG` and pass oci:DIR:TAG",
        }),
        Reference::Daemon(name) => Err(Error::Unsupported {
            what: format!("reading {name} from a Docker daemon"),
            hint: "use `docker save NAME -o FILE` and pass docker-archive:FILE",
        }),
    }
}

fn open_sniffed(source: String, path: &Path, platform: Option<&Platform>) -> Result<Image, Error> {
    let unknown = |reason: &str| Error::UnknownFormat {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let metadata = fs_err::metadata(path)?;
    if metadata.is_dir() {
        if !path.join("oci-layout").is_file() {
            return Err(unknown("a directory without an oci-layout file"));
        }
        return open_layout(
            source,
            Arc::new(Store::Dir(path.to_owned())),
            None,
            platform,
        );
    }
    let store = Arc::new(Store::tar(path).map_err(|_| unknown("not a tar file"))?);
    if store.contains("manifest.json") {
        debug!(path = %path.display(), "sniffed a docker-archive");
        return open_docker_archive(source, store, None, platform);
    }
    if store.contains("oci-layout") && store.contains("index.json") {
        debug!(path = %path.display(), "sniffed an OCI archive");
        return open_layout(source, store, None, platform);
    }
    Err(unknown("a tarball without manifest.json or oci-layout"))
}

/// Parses JSON into `T`, naming the file and the failing field in errors.
fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| Error::InvalidField {
        file: what.to_owned(),
        field: match e.path().to_string().as_str() {
            "." => "(document)".to_owned(),
            path => path.to_owned(),
        },
        reason: e.inner().to_string(),
    })
}

/// The store name of a blob: `blobs/<algorithm>/<hex>`, for sha256 digests only.
fn blob_name(digest: &Digest, what: &str) -> Result<String, Error> {
    match digest.algorithm() {
        oci_spec::image::DigestAlgorithm::Sha256 => Ok(format!("blobs/sha256/{}", digest.digest())),
        other => Err(Error::InvalidField {
            file: what.to_owned(),
            field: "digest".to_owned(),
            reason: format!("digest algorithm {other} is not supported (sha256 only)"),
        }),
    }
}

/// Reads a JSON blob and checks its bytes against its digest.
fn read_blob(store: &Store, descriptor: &Descriptor, what: &str) -> Result<Vec<u8>, Error> {
    let name = blob_name(descriptor.digest(), what)?;
    if !store.contains(&name) {
        return Err(Error::MissingBlob {
            source_path: store.path().to_owned(),
            digest: descriptor.digest().to_string(),
        });
    }
    let bytes = store.read(&name, JSON_LIMIT)?;
    let actual = sha256_digest(&bytes);
    if actual != *descriptor.digest() {
        return Err(Error::DigestMismatch {
            what: store.describe(&name),
            expected: descriptor.digest().to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> Digest {
    digest_of(Sha256::new_with_prefix(bytes))
}

/// The digest a finished hasher computed.
pub(crate) fn digest_of(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    // 64 lowercase hex digits after `sha256:` are always a valid digest.
    Digest::try_from(format!("sha256:{hex}")).unwrap_or_else(|_| unreachable!())
}

fn open_layout(
    source: String,
    store: Arc<Store>,
    tag: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Image, Error> {
    // The oci-layout marker, then index.json.
    let layout: serde_json::Value = parse_json(
        &store.read("oci-layout", JSON_LIMIT)?,
        &store.describe("oci-layout"),
    )?;
    if !layout
        .get("imageLayoutVersion")
        .is_some_and(|v| v.is_string())
    {
        return Err(Error::InvalidField {
            file: store.describe("oci-layout"),
            field: "imageLayoutVersion".to_owned(),
            reason: "missing".to_owned(),
        });
    }
    let index_what = store.describe("index.json");
    let index: ImageIndex = parse_json(&store.read("index.json", JSON_LIMIT)?, &index_what)?;

    // Pick the entry by tag (or the only one), then the platform's manifest.
    let (descriptor, name) = select_tagged(&source, index.manifests(), tag, platform)?;
    let descriptor = resolve(&store, &source, &descriptor, platform)?;

    let what = format!("manifest {} in {source}", descriptor.digest());
    let manifest: ImageManifest = parse_json(&read_blob(&store, &descriptor, &what)?, &what)?;
    let config_what = format!("config {} in {source}", manifest.config().digest());
    let config = Config::parse(
        &read_blob(&store, manifest.config(), &config_what)?,
        &config_what,
    )?;
    check_platform(&source, &config, platform)?;

    let layers = layout_layers(&store, &manifest, &config, &config_what)?;
    let annotations = manifest.annotations().clone().unwrap_or_default();
    Ok(finish(
        source,
        store,
        name,
        descriptor.digest().clone(),
        annotations,
        config,
        layers,
    ))
}

/// The index entry for `tag`, or the only entry; with the name it records.
///
/// An index.json that lists one manifest per platform and no tags is treated as an index.
fn select_tagged(
    source: &str,
    manifests: &[Descriptor],
    tag: Option<&str>,
    platform: Option<&Platform>,
) -> Result<(Descriptor, Option<Name>), Error> {
    let annotation =
        |d: &Descriptor, key: &str| d.annotations().as_ref().and_then(|a| a.get(key)).cloned();
    let name_of = |d: &Descriptor| {
        let ref_name = annotation(d, REF_NAME)?;
        let mut name = Name::parse(&ref_name).ok()?;
        if name.repository.is_none() {
            let full = annotation(d, CONTAINERD_NAME).and_then(|n| Name::parse(&n).ok());
            name.repository = full.and_then(|n| n.repository);
        }
        Some(name)
    };
    let tags = || {
        let tags: Vec<String> = manifests
            .iter()
            .filter_map(|d| annotation(d, REF_NAME))
            .collect();
        if tags.is_empty() {
            "(no tags)".to_owned()
        } else {
            tags.join(", ")
        }
    };

    match tag {
        Some(tag) => {
            let found = manifests.iter().find(|d| {
                annotation(d, REF_NAME).is_some_and(|r| r == tag || r.ends_with(&format!(":{tag}")))
            });
            let descriptor = found.ok_or_else(|| Error::NoSuchImage {
                source_path: source.to_owned(),
                wanted: tag.to_owned(),
                available: tags(),
            })?;
            Ok((descriptor.clone(), name_of(descriptor)))
        }
        None => match manifests {
            [] => Err(Error::InvalidField {
                file: format!("index.json in {source}"),
                field: "manifests".to_owned(),
                reason: "the index lists no image".to_owned(),
            }),
            [only] => Ok((only.clone(), name_of(only))),
            _ => {
                let tagged = manifests
                    .iter()
                    .filter(|d| annotation(d, REF_NAME).is_some());
                if tagged.count() == 0 && manifests.iter().all(|d| d.platform().is_some()) {
                    return Ok((select_platform(source, manifests, platform)?, None));
                }
                Err(Error::Ambiguous {
                    source_path: source.to_owned(),
                    available: tags(),
                })
            }
        },
    }
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex)
        || matches!(media_type, MediaType::Other(m) if m == DOCKER_MANIFEST_LIST)
}

/// Follows index descriptors down to one image manifest for `platform`.
fn resolve(
    store: &Store,
    source: &str,
    descriptor: &Descriptor,
    platform: Option<&Platform>,
) -> Result<Descriptor, Error> {
    let mut descriptor = descriptor.clone();
    // Nested indexes are legal; a bound keeps a hostile loop of indexes finite.
    for _ in 0..8 {
        if !is_index(descriptor.media_type()) {
            check_manifest_type(source, &descriptor)?;
            return Ok(descriptor);
        }
        let what = format!("index {} in {source}", descriptor.digest());
        let index: ImageIndex = parse_json(&read_blob(store, &descriptor, &what)?, &what)?;
        descriptor = select_platform(source, index.manifests(), platform)?;
    }
    Err(Error::InvalidField {
        file: source.to_owned(),
        field: "manifests".to_owned(),
        reason: "indexes nest more than 8 deep".to_owned(),
    })
}

fn check_manifest_type(source: &str, descriptor: &Descriptor) -> Result<(), Error> {
    match descriptor.media_type() {
        MediaType::ImageManifest => Ok(()),
        MediaType::Other(m) if m == DOCKER_MANIFEST => Ok(()),
        other => Err(Error::InvalidField {
            file: format!("descriptor {} in {source}", descriptor.digest()),
            field: "mediaType".to_owned(),
            reason: format!("{other} is not an image manifest"),
        }),
    }
}

/// The manifest of an index for `platform` (the host's when None).
fn select_platform(
    source: &str,
    manifests: &[Descriptor],
    platform: Option<&Platform>,
) -> Result<Descriptor, Error> {
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    let candidates: Vec<(&Descriptor, Platform)> = manifests
        .iter()
        .filter_map(|d| Some((d, Platform::from(d.platform().as_ref()?))))
        .collect();
    if let Some((descriptor, found)) = candidates.iter().find(|(_, p)| wanted.matches(p)) {
        debug!(%wanted, %found, digest = %descriptor.digest(), "picked platform from index");
        return Ok((*descriptor).clone());
    }
    let mut available: Vec<String> = candidates.iter().map(|(_, p)| p.to_string()).collect();
    available.sort();
    available.dedup();
    Err(Error::NoPlatform {
        source_path: source.to_owned(),
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "(none)".to_owned()
        } else {
            available.join(", ")
        },
    })
}

fn check_platform(source: &str, config: &Config, wanted: Option<&Platform>) -> Result<(), Error> {
    let Some(wanted) = wanted else { return Ok(()) };
    let found = Platform {
        os: config.os().to_owned(),
        architecture: config.architecture().to_owned(),
        variant: config.variant().map(str::to_owned),
    };
    match wanted.matches(&found) {
        true => Ok(()),
        false => Err(Error::WrongPlatform {
            source_path: source.to_owned(),
            wanted: wanted.to_string(),
            found: found.to_string(),
        }),
    }
}

/// Pairs the manifest's layer descriptors with the config's diff ids.
fn layout_layers(
    store: &Arc<Store>,
    manifest: &ImageManifest,
    config: &Config,
    config_what: &str,
) -> Result<Vec<Layer>, Error> {
    if manifest.layers().len() != config.diff_ids().len() {
        return Err(Error::InvalidField {
            file: config_what.to_owned(),
            field: "rootfs.diff_ids".to_owned(),
            reason: format!(
                "{} diff ids for {} layers in the manifest",
                config.diff_ids().len(),
                manifest.layers().len()
            ),
        });
    }
    manifest
        .layers()
        .iter()
        .zip(config.diff_ids())
        .enumerate()
        .map(|(i, (descriptor, diff_id))| {
            let what = format!("manifest layers[{i}]");
            let (compression, foreign) =
                layer_kind(descriptor.media_type()).ok_or_else(|| Error::InvalidField {
                    file: what.clone(),
                    field: "mediaType".to_owned(),
                    reason: format!(
                        "{} is not a layer type salve knows",
                        descriptor.media_type()
                    ),
                })?;
            let name = blob_name(descriptor.digest(), &what)?;
            let present = store.contains(&name);
            if !present && !foreign {
                return Err(Error::MissingBlob {
                    source_path: store.path().to_owned(),
                    digest: descriptor.digest().to_string(),
                });
            }
            Ok(Layer {
                descriptor: descriptor.clone(),
                diff_id: diff_id.clone(),
                compression,
                foreign,
                blob: present.then_some(name),
                store: Arc::clone(store),
            })
        })
        .collect()
}

/// The compression of a layer media type, and whether it is foreign / non-distributable.
fn layer_kind(media_type: &MediaType) -> Option<(Compression, bool)> {
    Some(match media_type {
        MediaType::ImageLayer => (Compression::None, false),
        MediaType::ImageLayerGzip => (Compression::Gzip, false),
        MediaType::ImageLayerZstd => (Compression::Zstd, false),
        MediaType::ImageLayerNonDistributable => (Compression::None, true),
        MediaType::ImageLayerNonDistributableGzip => (Compression::Gzip, true),
        MediaType::ImageLayerNonDistributableZstd => (Compression::Zstd, true),
        MediaType::Other(m) => match m.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => (Compression::Gzip, false),
            "application/vnd.docker.image.rootfs.diff.tar" => (Compression::None, false),
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                (Compression::Gzip, true)
            }
            "application/vnd.docker.image.rootfs.foreign.diff.tar" => (Compression::None, true),
            _ => return None,
        },
        _ => return None,
    })
}

/// One entry of a docker-archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
    #[serde(default)]
    layer_sources: Option<HashMap<Digest, Descriptor>>,
}

fn open_docker_archive(
    source: String,
    store: Arc<Store>,
    wanted: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Image, Error> {
    let what = store.describe("manifest.json");
    let entries: Vec<ArchiveEntry> = parse_json(&store.read("manifest.json", JSON_LIMIT)?, &what)?;

    // The entry with the wanted name, or the only one.
    let tags = |entries: &[ArchiveEntry]| {
        let tags: Vec<String> = entries
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .collect();
        if tags.is_empty() {
            "(no names)".to_owned()
        } else {
            tags.join(", ")
        }
    };
    let entry = match (wanted, entries.as_slice()) {
        (Some(wanted), _) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == wanted))
            .ok_or_else(|| Error::NoSuchImage {
                source_path: source.clone(),
                wanted: wanted.to_owned(),
                available: tags(&entries),
            })?,
        (None, [only]) => only,
        (None, []) => {
            return Err(Error::InvalidField {
                file: what,
                field: "(document)".to_owned(),
                reason: "the archive lists no image".to_owned(),
            });
        }
        (None, _) => {
            return Err(Error::Ambiguous {
                source_path: source,
                available: tags(&entries),
            });
        }
    };
    let name = match wanted {
        Some(wanted) => Name::parse(wanted).ok(),
        None => entry
            .repo_tags
            .iter()
            .flatten()
            .find_map(|t| Name::parse(t).ok()),
    };

    // The config, then each layer: its compression is sniffed, since the archive has no
    // media types; an uncompressed blob's digest is its diff id (checked when it is read).
    let config_bytes = store.read(&entry.config, JSON_LIMIT)?;
    let config_what = store.describe(&entry.config);
    let config = Config::parse(&config_bytes, &config_what)?;
    check_platform(&source, &config, platform)?;
    if entry.layers.len() != config.diff_ids().len() {
        return Err(Error::InvalidField {
            file: config_what,
            field: "rootfs.diff_ids".to_owned(),
            reason: format!(
                "{} diff ids for {} layers in manifest.json",
                config.diff_ids().len(),
                entry.layers.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (path, diff_id) in entry.layers.iter().zip(config.diff_ids()) {
        layers.push(archive_layer(
            &store,
            path,
            diff_id,
            entry.layer_sources.as_ref(),
        )?);
    }

    // The manifest digest: that of the OCI manifest describing the same image.
    let config_descriptor = Descriptor::new(
        MediaType::ImageConfig,
        config_bytes.len() as u64,
        sha256_digest(&config_bytes),
    );
    let manifest = super::write::manifest(
        &config_descriptor,
        layers.iter().map(Layer::oci_descriptor),
        None,
    )?;
    let digest = sha256_digest(&manifest);
    Ok(finish(
        source,
        store,
        name,
        digest,
        HashMap::new(),
        config,
        layers,
    ))
}

fn archive_layer(
    store: &Arc<Store>,
    path: &str,
    diff_id: &Digest,
    sources: Option<&HashMap<Digest, Descriptor>>,
) -> Result<Layer, Error> {
    // A foreign layer is described by LayerSources, keyed by its diff id.
    if let Some(descriptor) = sources.and_then(|s| s.get(diff_id)) {
        let (compression, _) =
            layer_kind(descriptor.media_type()).unwrap_or((Compression::Gzip, true));
        let present = store.contains(path);
        return Ok(Layer {
            descriptor: descriptor.clone(),
            diff_id: diff_id.clone(),
            compression,
            foreign: true,
            blob: present.then(|| path.to_owned()),
            store: Arc::clone(store),
        });
    }

    let size = store.size(path)?;
    let mut magic = [0u8; 4];
    let mut blob = store.open(path)?;
    let read = read_prefix(&mut blob, &mut magic).map_err(|source| Error::Read {
        what: store.describe(path),
        source,
    })?;
    let compression = Compression::sniff(&magic[..read]);
    // Docker 25+ names blobs by digest; older archives need the diff id or a hash.
    let named = path
        .strip_prefix("blobs/sha256/")
        .and_then(|hex| Digest::try_from(format!("sha256:{hex}")).ok());
    let digest = match (named, compression) {
        (Some(digest), _) => digest,
        (None, Compression::None) => diff_id.clone(),
        (None, _) => hash_stream(store.open(path)?, &store.describe(path))?,
    };
    let media_type = compression.media_type();
    Ok(Layer {
        descriptor: Descriptor::new(media_type, size, digest),
        diff_id: diff_id.clone(),
        compression,
        foreign: false,
        blob: Some(path.to_owned()),
        store: Arc::clone(store),
    })
}

fn read_prefix(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn hash_stream(mut reader: Box<dyn Read + Send>, what: &str) -> Result<Digest, Error> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Read {
                    what: what.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(digest_of(hasher))
}

/// Builds the image, recognising a previous salve patch from its labels.
fn finish(
    source: String,
    store: Arc<Store>,
    name: Option<Name>,
    digest: Digest,
    annotations: HashMap<String, String>,
    config: Config,
    layers: Vec<Layer>,
) -> Image {
    let labels = config.labels();
    let base_digest = labels
        .get(BASE_DIGEST_LABEL)
        .and_then(|d| Digest::try_from(d.as_str()).ok());
    let base_count = labels
        .get(BASE_LAYERS_LABEL)
        .and_then(|n| n.parse::<usize>().ok());
    let (base_layers, base_digest) = match (base_digest, base_count) {
        (Some(base), Some(count)) if count + 1 == layers.len() => {
            debug!(%base, count, "image is a salve patch; its top layer is the previous patch");
            (count, Some(base))
        }
        (Some(_), Some(count)) => {
            debug!(
                count,
                layers = layers.len(),
                "salve labels, but layers were added on top; \
                   treating the whole image as the base"
            );
            (layers.len(), None)
        }
        _ => (layers.len(), None),
    };
    Image {
        source,
        store,
        name,
        digest,
        annotations,
        config,
        layers,
        base_layers,
        base_digest,
    }
}
