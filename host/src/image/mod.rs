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
//! let output: image::Destination = "docker-archive:/tmp/app.tar".parse()?;
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
pub use self::write::{Patch, Written, write};
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
        wanted: Platform,
        available: String,
    },
    /// The image's own platform is not the one requested.
    #[error("{source_path}: the image is for {found}, not {wanted}")]
    WrongPlatform {
        source_path: String,
        wanted: Platform,
        found: Platform,
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
    /// The destination exists and is not something salve may add to.
    #[error("{path}: exists and is not an OCI layout; remove it or pick another output")]
    DestinationExists { path: PathBuf },
}
