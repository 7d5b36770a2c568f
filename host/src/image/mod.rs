//! Opening images and writing patched ones, with no Docker daemon and no BuildKit.
//!
//! [`open`] reads an OCI image layout, an OCI archive or a `docker save` tarball (a
//! [`Reference`]), picks one platform from an index, and returns an [`Image`]: its config as
//! the original JSON with typed accessors, and its layers bottom first, each able to open its
//! blob. Nothing is extracted or copied to open an image; tarballs are read in place.
//!
//! [`write()`] takes that image, the one new layer made by [`crate::layer::write`] and a
//! [`Patch`] (history comment, labels, time) and writes the patched image to a
//! [`Destination`]. Every original layer blob is copied (or hard-linked) byte for byte; only
//! the new layer, the config and the manifests are new. Outputs appear whole or not at all.
//!
//! ```no_run
//! # fn main() -> Result<(), salve::image::Error> {
//! use salve::image::{self, Patch, Platform};
//! let input: image::Reference = "oci:/var/tmp/app:1.0".parse()?;
//! let img = image::open(&input, Some(&Platform::host()))?;
//! let output: image::Destination = "oci:/tmp/app-patched".parse()?;
//! image::write(&img, None, &Patch::now("nothing changed"), &output, None)?;
//! # Ok(()) }
//! ```
//!
//! # Re-patching
//!
//! A patched image carries the labels [`BASE_DIGEST_LABEL`] (the original image's manifest
//! digest) and [`BASE_LAYERS_LABEL`] (how many layers the original had). When an opened image
//! has them and exactly one layer more, [`Image::base_layers`] are the original layers and
//! [`Image::previous_patch`] is salve's layer; [`write()`] with a new layer then replaces that
//! layer instead of stacking another one, and keeps the first patch's base digest.

mod config;
#[cfg(test)]
pub(crate) mod fixture;
mod platform;
mod read;
mod reference;
mod store;
mod write;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::{Descriptor, Digest, MediaType};

pub use self::config::Config;
pub use self::platform::Platform;
pub use self::read::open;
pub use self::reference::{Destination, Name, Reference};
use self::store::Store;
pub use self::write::{Patch, Written, check_destination, write, write_unless};
use crate::layer::Compression;

/// The config label holding the original (never patched) image's manifest digest.
pub const BASE_DIGEST_LABEL: &str = "salve.base.digest";
/// The config label holding how many layers the original image had.
pub const BASE_LAYERS_LABEL: &str = "salve.base.layers";

/// An image opened for patching: one platform's manifest, config and layers.
#[derive(Debug)]
pub struct Image {
    source: String,
    store: Arc<Store>,
    name: Option<Name>,
    digest: Digest,
    annotations: HashMap<String, String>,
    config: Config,
    layers: Vec<Layer>,
    base_layers: usize,
    base_digest: Option<Digest>,
}

impl Image {
    /// The reference the image was opened from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The image's name and tag, when the source records one.
    pub fn name(&self) -> Option<&Name> {
        self.name.as_ref()
    }

    /// The digest of the image's manifest.
    ///
    /// For a `docker save` tarball, which stores no manifest, this is the digest of the OCI
    /// manifest salve would write for the image unchanged.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The manifest's annotations.
    pub fn annotations(&self) -> &HashMap<String, String> {
        &self.annotations
    }

    /// The image configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// All layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The original image's layers, bottom first: all layers unless this image is a salve
    /// patch, in which case salve's layer on top is left out.
    pub fn base_layers(&self) -> &[Layer] {
        &self.layers[..self.base_layers]
    }

    /// The layer a previous `salve patch` added on top of [`Image::base_layers`], if any.
    pub fn previous_patch(&self) -> Option<&Layer> {
        (self.base_layers < self.layers.len()).then(|| &self.layers[self.base_layers])
    }

    /// The manifest digest of the original image: from a previous patch's label, else this
    /// image's own digest.
    pub fn base_digest(&self) -> &Digest {
        self.base_digest.as_ref().unwrap_or(&self.digest)
    }
}

/// One layer of an image, in the order the manifest lists them (bottom first).
#[derive(Debug, Clone)]
pub struct Layer {
    descriptor: Descriptor,
    diff_id: Digest,
    compression: Compression,
    foreign: bool,
    blob: Option<String>,
    store: Arc<Store>,
}

impl Layer {
    /// The digest of the blob as stored (compressed).
    pub fn digest(&self) -> &Digest {
        self.descriptor.digest()
    }

    /// The digest of the uncompressed tar stream; the key of the unpack cache.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// The media type the source gave the layer (OCI or Docker names).
    pub fn media_type(&self) -> &MediaType {
        self.descriptor.media_type()
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.descriptor.size()
    }

    /// How the blob is compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the layer is foreign / non-distributable: passed through, never fetched.
    pub fn is_foreign(&self) -> bool {
        self.foreign
    }

    /// Whether the blob is present in the source (a foreign layer's may not be).
    pub fn has_blob(&self) -> bool {
        self.blob.is_some()
    }

    /// Opens the blob as stored, compressed.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, Error> {
        let Some(name) = &self.blob else {
            return Err(Error::MissingBlob {
                source_path: self.store.path().to_owned(),
                digest: self.digest().to_string(),
            });
        };
        self.store.open(name)
    }

    /// Opens the blob decompressed: the layer's tar stream.
    pub fn open_tar(&self) -> Result<Box<dyn Read + Send>, Error> {
        let blob = self.open()?;
        crate::layer::decoder(self.compression, blob).map_err(|source| Error::Read {
            what: format!("layer {}", self.digest()),
            source,
        })
    }

    /// The descriptor to write in an OCI manifest: the source's, with OCI media types.
    pub(crate) fn oci_descriptor(&self) -> Descriptor {
        let mut descriptor = self.descriptor.clone();
        let media_type = match (self.foreign, self.compression) {
            (false, Compression::None) => MediaType::ImageLayer,
            (false, Compression::Gzip) => MediaType::ImageLayerGzip,
            (false, Compression::Zstd) => MediaType::ImageLayerZstd,
            (true, Compression::None) => MediaType::ImageLayerNonDistributable,
            (true, Compression::Gzip) => MediaType::ImageLayerNonDistributableGzip,
            (true, Compression::Zstd) => MediaType::ImageLayerNonDistributableZstd,
        };
        descriptor.set_media_type(media_type);
        descriptor
    }

    /// The store file holding the blob, when the source is a directory.
    pub(crate) fn blob_path(&self) -> Option<PathBuf> {
        Some(self.store.dir()?.join(self.blob.as_ref()?))
    }
}

/// Errors from opening and writing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `-i`/`-o` reference that does not parse.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A `--platform` that does not parse.
    #[error("invalid platform {platform:?}: expected os/arch[/variant], like linux/amd64")]
    InvalidPlatform { platform: String },
    /// A source or destination kind that comes in a later version.
    #[error("{what} is not supported yet: {hint}")]
    Unsupported { what: String, hint: &'static str },
    /// A bare path that is neither an OCI layout nor a known tarball.
    #[error(
        "{path}: not an OCI layout directory, OCI archive or docker-archive tarball ({reason})"
    )]
    UnknownFormat { path: PathBuf, reason: String },
    /// A file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The input image's files could not be read (a missing path, say).
    #[error("opening image {reference}")]
    Open {
        reference: String,
        #[source]
        source: io::Error,
    },
    /// A document salve writes could not be encoded.
    #[error("encoding JSON")]
    Json(#[from] serde_json::Error),
    /// A tarball could not be indexed.
    #[error("reading archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A member or blob could not be read.
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A document the image refers to is not in it.
    #[error("{source_path}: {name} is missing")]
    MissingFile { source_path: PathBuf, name: String },
    /// A blob the manifest refers to is not in the source.
    #[error("{source_path}: blob {digest} is missing")]
    MissingBlob {
        source_path: PathBuf,
        digest: String,
    },
    /// A JSON document is too big to be what it claims.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    /// A document has a field that is missing or wrong.
    #[error("{file}: field {field}: {reason}")]
    InvalidField {
        file: String,
        field: String,
        reason: String,
    },
    /// Content does not match the digest it is stored under.
    #[error("{what}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The index has no manifest for the requested platform.
    #[error("{source_path}: no image for platform {wanted}; it has: {available}")]
    NoPlatform {
        source_path: String,
        wanted: String,
        available: String,
    },
    /// The image's own platform is not the one requested.
    #[error("{source_path}: the image is for {found}, not {wanted}")]
    WrongPlatform {
        source_path: String,
        wanted: String,
        found: String,
    },
    /// The source holds several images and the reference did not say which.
    #[error("{source_path}: holds several images; pick one of: {available}")]
    Ambiguous {
        source_path: String,
        available: String,
    },
    /// The requested tag or name is not in the source.
    #[error("{source_path}: no image named {wanted}; it has: {available}")]
    NoSuchImage {
        source_path: String,
        wanted: String,
        available: String,
    },
    /// The output needs a tag (or a repository) that nothing provides.
    #[error("{0}")]
    NoOutputName(String),
    /// The output would overwrite the input.
    #[error("the output {0} is the input image; write somewhere else")]
    OutputIsInput(PathBuf),
    /// The run was interrupted while the output was being written; the
    /// destination is as it was.
    #[error("interrupted while writing the output; nothing was written")]
    Interrupted,
    /// An archive destination that is a directory.
    #[error("{path}: is a directory; an archive output needs a file name")]
    DestinationIsDirectory { path: PathBuf },
    /// The destination exists and is not something salve may add to.
    #[error("{path}: exists and is not an OCI layout; remove it or pick another output")]
    DestinationExists { path: PathBuf },
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::fixture::{layout, tar_of};
    use super::*;

    fn two_layers() -> Vec<Vec<u8>> {
        vec![
            tar_of(&[("etc/", b""), ("etc/a", b"1")]),
            tar_of(&[("etc/b", b"2")]),
        ]
    }

    fn oci(dir: &Path, tag: Option<&str>) -> Reference {
        Reference::OciLayout {
            path: dir.to_owned(),
            tag: tag.map(str::to_owned),
        }
    }

    fn read_all(layer: &Layer) -> Vec<u8> {
        let mut bytes = Vec::new();
        layer.open_tar().unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn opens_layouts_of_every_compression() {
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let dir = tempfile::tempdir().unwrap();
            layout(
                dir.path(),
                "1.0",
                &two_layers(),
                compression,
                json!({"variant": null}),
            );
            let image = open(&oci(dir.path(), Some("1.0")), None).unwrap();
            assert_eq!(image.layers().len(), 2);
            assert_eq!(image.layers()[0].compression(), compression);
            assert_eq!(
                read_all(&image.layers()[1]),
                two_layers()[1],
                "{compression}"
            );
            assert_eq!(image.name().unwrap().tag, "1.0");
            assert_eq!(image.config().env(), ["PATH=/usr/bin"]);
            assert_eq!(image.annotations()["org.example.kept"], "yes");
            assert!(image.previous_patch().is_none());
        }
    }

    #[test]
    fn a_missing_tag_lists_the_tags_there_are() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            dir.path(),
            "1.0",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let err = open(&oci(dir.path(), Some("2.0")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2.0") && err.contains("1.0"), "{err}");
    }

    #[test]
    fn bad_config_fields_name_the_blob_and_field() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            dir.path(),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({"config": {"Env": "x"}}),
        );
        let err = open(&oci(dir.path(), None), None).unwrap_err().to_string();
        assert!(
            err.contains("config sha256:") && err.contains("config.Env"),
            "{err}"
        );
    }

    #[test]
    fn diff_ids_must_match_the_layer_count() {
        let dir = tempfile::tempdir().unwrap();
        let extra = json!({"rootfs": {"type": "layers", "diff_ids": []}});
        layout(dir.path(), "1", &two_layers(), Compression::Gzip, extra);
        let err = open(&oci(dir.path(), None), None).unwrap_err().to_string();
        assert!(
            err.contains("rootfs.diff_ids") && err.contains("0 diff ids for 2 layers"),
            "{err}"
        );
    }

    #[test]
    fn a_tampered_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), "1", &two_layers(), Compression::Gzip, json!({}));
        let index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(dir.path().join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap();
        let path = dir.path().join("blobs/sha256").join(&digest[7..]);
        let mut bytes = fs_err::read(&path).unwrap();
        bytes.push(b' ');
        fs_err::write(&path, bytes).unwrap();
        assert!(matches!(
            open(&oci(dir.path(), None), None),
            Err(Error::DigestMismatch { .. })
        ));
    }

    /// Turns a one-image layout into an index of two platforms (amd64 and arm64/v8).
    fn multi_platform(dir: &Path) {
        let index_path = dir.join("index.json");
        let index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&index_path).unwrap()).unwrap();
        let manifest = index["manifests"][0].clone();
        let mut entries = Vec::new();
        for platform in [
            json!({"os": "linux", "architecture": "amd64"}),
            json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ] {
            let mut entry = manifest.clone();
            entry.as_object_mut().unwrap().remove("annotations");
            entry["platform"] = platform;
            entries.push(entry);
        }
        let nested = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&nested));
        fs_err::write(dir.join("blobs/sha256").join(&hex), &nested).unwrap();
        let top = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"), "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }]});
        fs_err::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();
    }

    #[test]
    fn an_index_gives_the_requested_platform_or_lists_its_platforms() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), "x", &two_layers(), Compression::Gzip, json!({}));
        multi_platform(dir.path());
        let amd64: Platform = "linux/amd64".parse().unwrap();
        assert!(open(&oci(dir.path(), Some("multi")), Some(&amd64)).is_ok());

        let riscv: Platform = "linux/riscv64".parse().unwrap();
        let err = open(&oci(dir.path(), Some("multi")), Some(&riscv))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no image for platform linux/riscv64")
                && err.contains("linux/amd64, linux/arm64/v8"),
            "{err}"
        );
    }

    #[test]
    fn a_single_image_for_another_platform_is_refused_when_one_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), "x", &two_layers(), Compression::Gzip, json!({}));
        let arm: Platform = "linux/arm64".parse().unwrap();
        let err = open(&oci(dir.path(), None), Some(&arm))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/amd64") && err.contains("linux/arm64"),
            "{err}"
        );
        assert!(
            open(&oci(dir.path(), None), None).is_ok(),
            "no --platform: taken as is"
        );
    }

    #[test]
    fn registry_and_daemon_sources_are_not_supported_yet() {
        for reference in ["docker://debian:12", "docker-daemon:debian:12", "debian:12"] {
            let err = open(&reference.parse().unwrap(), None).unwrap_err();
            assert!(
                matches!(err, Error::Unsupported { .. }),
                "{reference}: {err}"
            );
        }
    }

    fn write_and_reopen(image: &Image, new: Option<&crate::layer::NewLayer>, dest: &str) -> Image {
        let destination: Destination = dest.parse().unwrap();
        write(
            image,
            new,
            &Patch::now("test"),
            &destination,
            Some("repo/app:out"),
        )
        .unwrap();
        let path = destination.path().display().to_string();
        let reference = match destination {
            Destination::OciLayout { .. } => format!("oci:{path}:out"),
            Destination::OciArchive { .. } => format!("oci-archive:{path}"),
            Destination::DockerArchive { .. } => path,
        };
        open(&reference.parse().unwrap(), None).unwrap()
    }

    #[test]
    fn written_images_read_back_with_the_same_layers_plus_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Zstd,
            json!({}),
        );
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        let upper = dir.path().join("upper");
        fs_err::create_dir_all(upper.join("etc")).unwrap();
        fs_err::write(upper.join("etc/c"), "3").unwrap();
        let new =
            crate::layer::write(&upper, Compression::Gzip, None, &dir.path().join("new")).unwrap();

        let out = dir.path().display();
        for dest in [
            format!("oci:{out}/o"),
            format!("oci-archive:{out}/o.tar"),
            format!("docker-archive:{out}/d.tar"),
        ] {
            let back = write_and_reopen(&image, Some(&new), &dest);
            assert_eq!(back.layers().len(), 3, "{dest}");
            for (a, b) in image.layers().iter().zip(back.layers()) {
                assert_eq!(
                    (a.digest(), a.diff_id(), a.compression()),
                    (b.digest(), b.diff_id(), b.compression())
                );
            }
            assert_eq!(back.layers()[2].digest(), &new.digest);
            assert_eq!(back.name().unwrap().to_string(), "repo/app:out");
            assert_eq!(back.base_digest(), image.digest(), "{dest}");
            assert_eq!(back.previous_patch().unwrap().diff_id(), &new.diff_id);
            assert_eq!(back.config().labels()[BASE_LAYERS_LABEL], "2");
        }
        let manifest: serde_json::Value = {
            let back = open(&format!("oci:{out}/o:out").parse().unwrap(), None).unwrap();
            let hex = back.digest().digest().to_owned();
            serde_json::from_slice(
                &fs_err::read(dir.path().join("o/blobs/sha256").join(hex)).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(manifest["annotations"]["org.example.kept"], "yes");
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.digest"],
            image.digest().to_string()
        );
    }

    #[test]
    fn output_names_follow_the_tag_rules() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            dir.path(),
            "1.0",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let image = open(&oci(dir.path(), None), None).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = |s: &str| -> Destination {
            format!("oci:{}/{s}", out.path().display()).parse().unwrap()
        };
        let patch = Patch::now("t");

        assert_eq!(
            write(&image, None, &patch, &dest("a"), None)
                .unwrap()
                .name
                .tag,
            "1.0-patched"
        );
        assert_eq!(
            write(&image, None, &patch, &dest("b"), Some("fixed"))
                .unwrap()
                .name
                .tag,
            "fixed"
        );
        assert_eq!(
            write(&image, None, &patch, &dest("c:own"), Some("fixed"))
                .unwrap()
                .name
                .tag,
            "own"
        );

        // A docker-archive needs a repository, which this layout does not record.
        let docker: Destination = format!("docker-archive:{}/d.tar", out.path().display())
            .parse()
            .unwrap();
        let err = write(&image, None, &patch, &docker, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("-t NAME:1.0-patched"), "{err}");
        assert!(!out.path().join("d.tar").exists());
    }

    #[test]
    fn an_input_without_a_tag_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            dir.path(),
            "1.0",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let index_path = dir.path().join("index.json");
        let mut index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&index_path).unwrap()).unwrap();
        index["manifests"][0]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        fs_err::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        let image = open(&oci(dir.path(), None), None).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest: Destination = format!("oci:{}/o", out.path().display()).parse().unwrap();
        let err = write(&image, None, &Patch::now("t"), &dest, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pass -t"), "{err}");
    }

    #[test]
    fn a_layout_output_never_changes_its_input_layout() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            dir.path(),
            "1.0",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let index_before = fs_err::read(dir.path().join("index.json")).unwrap();
        let image = open(&oci(dir.path(), Some("1.0")), None).unwrap();
        let dest: Destination = format!("oci:{}", dir.path().display()).parse().unwrap();
        for tag in [None, Some("1.0"), Some("1.0-other")] {
            let err = write(&image, None, &Patch::now("t"), &dest, tag).unwrap_err();
            assert!(matches!(err, Error::OutputIsInput(_)), "{tag:?}: {err}");
        }
        assert_eq!(
            fs_err::read(dir.path().join("index.json")).unwrap(),
            index_before
        );

        // Another layout may hold several salve outputs, one per tag, and a
        // tag written again still names one image.
        let out = tempfile::tempdir().unwrap();
        let dest: Destination = format!("oci:{}", out.path().display()).parse().unwrap();
        write(&image, None, &Patch::now("t"), &dest, Some("a")).unwrap();
        write(&image, None, &Patch::now("t"), &dest, Some("b")).unwrap();
        let again = write(&image, None, &Patch::now("u"), &dest, Some("a")).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(out.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        let a = open(&oci(out.path(), Some("a")), None).unwrap();
        assert_eq!(a.digest(), &again.manifest_digest);
        assert!(open(&oci(out.path(), Some("b")), None).is_ok());
    }

    #[test]
    fn outputs_are_readable_by_all_like_any_image_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        let out = dir.path().join("out");
        let dest: Destination = format!("oci:{}", out.display()).parse().unwrap();
        write(&image, None, &Patch::now("t"), &dest, Some("a")).unwrap();
        write(&image, None, &Patch::now("t"), &dest, Some("b")).unwrap();
        assert_eq!(mode(&out), 0o755);
        assert_eq!(mode(&out.join("index.json")), 0o644);
        for blob in fs_err::read_dir(out.join("blobs/sha256")).unwrap() {
            let blob = blob.unwrap().path();
            assert_eq!(mode(&blob) & 0o444, 0o444, "{}", blob.display());
        }
        let archive = dir.path().join("a.tar");
        let dest: Destination = format!("oci-archive:{}", archive.display())
            .parse()
            .unwrap();
        write(&image, None, &Patch::now("t"), &dest, Some("a")).unwrap();
        assert_eq!(mode(&archive), 0o644);
    }

    #[test]
    fn an_archive_over_its_own_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        let archive = dir.path().join("a.tar");
        let dest: Destination = format!("oci-archive:{}", archive.display())
            .parse()
            .unwrap();
        write(&image, None, &Patch::now("t"), &dest, None).unwrap();
        let from_archive = open(
            &format!("oci-archive:{}", archive.display())
                .parse()
                .unwrap(),
            None,
        )
        .unwrap();
        let before = fs_err::read(&archive).unwrap();
        let err = write(&from_archive, None, &Patch::now("t"), &dest, Some("x")).unwrap_err();
        assert!(matches!(err, Error::OutputIsInput(_)), "{err}");
        assert_eq!(fs_err::read(&archive).unwrap(), before);
    }

    #[test]
    fn a_failed_write_leaves_nothing_where_the_output_should_be() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        // Corrupt a layer blob after opening: copying it fails its digest check.
        let blob = dir
            .path()
            .join("in/blobs/sha256")
            .join(image.layers()[1].digest().digest());
        let mut bytes = fs_err::read(&blob).unwrap();
        bytes[0] ^= 0xff;
        fs_err::write(&blob, bytes).unwrap();

        let out = tempfile::tempdir().unwrap();
        for dest in ["docker-archive:{}/d.tar:repo/x:1", "oci-archive:{}/o.tar"] {
            let dest = dest.replace("{}", &out.path().display().to_string());
            let dest: Destination = dest.parse().unwrap();
            let err = write(&image, None, &Patch::now("t"), &dest, None).unwrap_err();
            assert!(matches!(err, Error::DigestMismatch { .. }), "{dest}: {err}");
        }
        assert_eq!(
            fs_err::read_dir(out.path()).unwrap().count(),
            0,
            "no output, no temp files"
        );
    }

    #[test]
    fn a_failed_layout_write_leaves_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        let upper = dir.path().join("upper");
        fs_err::create_dir_all(&upper).unwrap();
        fs_err::write(upper.join("f"), "x").unwrap();
        let new =
            crate::layer::write(&upper, Compression::Gzip, None, &dir.path().join("new")).unwrap();
        fs_err::remove_file(&new.path).unwrap();

        let out = tempfile::tempdir().unwrap();
        let dest: Destination = format!("oci:{}/layout", out.path().display())
            .parse()
            .unwrap();
        let err = write(&image, Some(&new), &Patch::now("t"), &dest, None).unwrap_err();
        assert!(
            err.to_string().contains(&new.path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            fs_err::read_dir(out.path()).unwrap().count(),
            0,
            "no output, no temp dir"
        );
    }

    /// Appends a non-distributable layer, present only as a descriptor, to a fixture image.
    fn add_foreign_layer(dir: &Path) -> (String, String) {
        let put = |bytes: &[u8]| {
            let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
            fs_err::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
            (format!("sha256:{hex}"), bytes.len())
        };
        let read = |digest: &str| -> serde_json::Value {
            serde_json::from_slice(
                &fs_err::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap(),
            )
            .unwrap()
        };
        let index_path = dir.join("index.json");
        let mut index: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&index_path).unwrap()).unwrap();
        let mut manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
        let mut config = read(manifest["config"]["digest"].as_str().unwrap());

        let digest = format!("sha256:{}", "ab".repeat(32));
        let diff_id = format!("sha256:{}", "cd".repeat(32));
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(json!(diff_id));
        let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
        manifest["config"]["digest"] = json!(config_digest);
        manifest["config"]["size"] = json!(config_size);
        manifest["layers"].as_array_mut().unwrap().push(json!({
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": digest, "size": 12345, "urls": ["https://example.invalid/layer"],
        }));
        let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
        index["manifests"][0]["digest"] = json!(manifest_digest);
        index["manifests"][0]["size"] = json!(manifest_size);
        fs_err::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        (digest, diff_id)
    }

    #[test]
    fn foreign_layers_pass_through_untouched() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let (digest, diff_id) = add_foreign_layer(&dir.path().join("in"));
        let image = open(&oci(&dir.path().join("in"), None), None).unwrap();
        let foreign = &image.layers()[2];
        assert!(foreign.is_foreign() && !foreign.has_blob());
        assert!(matches!(foreign.open(), Err(Error::MissingBlob { .. })));

        let layout_out = dir.path().join("out");
        let dest = Destination::OciLayout {
            path: layout_out.clone(),
            tag: None,
        };
        let written = write(&image, None, &Patch::now("t"), &dest, None).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs_err::read(
                layout_out
                    .join("blobs/sha256")
                    .join(written.manifest_digest.digest()),
            )
            .unwrap(),
        )
        .unwrap();
        let layer = &manifest["layers"][2];
        assert_eq!(layer["digest"], digest);
        assert_eq!(layer["urls"][0], "https://example.invalid/layer");
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        );
        assert!(!layout_out.join("blobs/sha256").join(&digest[7..]).exists());

        let archive = dir.path().join("d.tar");
        let dest = Destination::DockerArchive {
            path: archive.clone(),
            name: Some("r/x:1".into()),
        };
        write(&image, None, &Patch::now("t"), &dest, None).unwrap();
        let mut tar = tar::Archive::new(fs_err::File::open(&archive).unwrap());
        let manifest_json = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
            .map(|mut e| {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                s
            })
            .unwrap();
        let docker: serde_json::Value = serde_json::from_str(&manifest_json).unwrap();
        assert_eq!(docker[0]["LayerSources"][&diff_id]["digest"], digest);
    }

    #[test]
    fn a_bare_path_is_sniffed() {
        let dir = tempfile::tempdir().unwrap();
        layout(
            &dir.path().join("in"),
            "1",
            &two_layers(),
            Compression::Gzip,
            json!({}),
        );
        let path_ref = Reference::Path(dir.path().join("in"));
        assert_eq!(open(&path_ref, None).unwrap().layers().len(), 2);
        let image = open(&path_ref, None).unwrap();
        for (dest, file) in [
            ("docker-archive:{}/d.tar:r/x:1", "d.tar"),
            ("oci-archive:{}/o.tar", "o.tar"),
        ] {
            let dest: Destination = dest
                .replace("{}", &dir.path().display().to_string())
                .parse()
                .unwrap();
            write(&image, None, &Patch::now("t"), &dest, None).unwrap();
            let sniffed = open(&Reference::Path(dir.path().join(file)), None).unwrap();
            assert_eq!(sniffed.layers().len(), 2, "{file}");
        }
        let err = open(&Reference::Path(dir.path().join("in/oci-layout")), None).unwrap_err();
        assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
    }
}
