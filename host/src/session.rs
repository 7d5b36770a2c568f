//! One run of salve over one image: the image opened, its layers unpacked,
//! a workspace over them, and at the end the new layer and image written.
//!
//! `salve patch` and `salve run` both go through a [`Session`]. When the
//! image is itself a salve patch, the session starts from the original
//! layers with the previous patch's changes as the workspace's starting
//! point, so the result again has exactly one patch layer.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::exec::native::Workspace;
use crate::exec::{self, ImageEnv, Interrupt, Setup, Upper};
use crate::image::{self, Destination, Image, Patch, Platform, Reference, Written};
use crate::layer::{self, Compression, NewLayer};
use crate::plugin::ImageContext;
use crate::unpack::{self, LayerCache};

/// Why a session could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or writing the image.
    #[error(transparent)]
    Image(#[from] image::Error),
    /// Unpacking its layers.
    #[error(transparent)]
    Unpack(#[from] unpack::Error),
    /// Setting up or running the workspace.
    #[error(transparent)]
    Exec(#[from] exec::Error),
    /// Building the new layer.
    #[error("building the patch layer: {0}")]
    Layer(#[from] layer::Error),
    /// Scratch space.
    #[error("preparing scratch space in {path}: {source}")]
    Scratch {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// An image opened for a run, with its layers unpacked.
#[derive(Debug)]
pub struct Session {
    image: Image,
    layers: Vec<PathBuf>,
    scratch: PathBuf,
    previous: Option<(tempfile::TempDir, PathBuf)>,
    blobs: Vec<tempfile::TempDir>,
}

impl Session {
    /// Opens `reference` (the platform from an index: `platform`, else the
    /// host's) and unpacks its original layers into the cache under
    /// `cache_dir`; a previous salve patch is unpacked as the starting
    /// changes.
    ///
    /// # Errors
    ///
    /// The image cannot be opened or a layer cannot be unpacked (each names
    /// the file or layer); not running as root.
    pub fn open(
        reference: &Reference,
        platform: Option<&Platform>,
        cache_dir: &Path,
    ) -> Result<Session, Error> {
        let platform = platform.cloned().unwrap_or_else(Platform::host);
        let image = image::open(reference, Some(&platform))?;
        let cache = LayerCache::new(cache_dir)?;
        let layers = cache.unpack_layers(image.base_layers())?;

        let scratch = cache_dir.join("run");
        let scratch_err = |source| Error::Scratch {
            path: scratch.clone(),
            source,
        };
        fs_err::create_dir_all(&scratch).map_err(scratch_err)?;
        let previous = match image.previous_patch() {
            Some(patch) => {
                let dir = tempfile::tempdir_in(&scratch).map_err(scratch_err)?;
                let upper = dir.path().join("upper");
                unpack::into_dir(patch, &upper)?;
                tracing::info!(
                    "{} is a salve patch: starting from its base layers",
                    image.source()
                );
                Some((dir, upper))
            }
            None => None,
        };
        Ok(Session {
            image,
            layers,
            scratch,
            previous,
            blobs: Vec::new(),
        })
    }

    /// The image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The defaults for the image's steps: its `Env` and `WorkingDir`, the
    /// host's network, CA bundle, resolver config and proxy variables, and
    /// `SOURCE_DATE_EPOCH` (see [`Session::epoch`]) so that installers that
    /// honour it (pip's bytecode compilation) write the same bytes each time.
    pub fn setup(&self) -> Setup {
        let config = self.image.config();
        let mut setup = Setup::from_host(ImageEnv::new(config.env(), config.working_dir()));
        setup.env.push((
            "SOURCE_DATE_EPOCH".into(),
            self.epoch().timestamp().to_string(),
        ));
        setup
    }

    /// The time a patch records: `SOURCE_DATE_EPOCH` when set, else the
    /// original image's own `created` time, else the Unix epoch. It is the
    /// new config's `created`, the ceiling of the new layer's mtimes and the
    /// steps' `SOURCE_DATE_EPOCH`, so the same image patched the same way
    /// gives the same digest.
    pub fn epoch(&self) -> DateTime<Utc> {
        let from_env = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        let from_image = || {
            self.image
                .config()
                .raw()
                .get("created")
                .and_then(|v| v.as_str())
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        from_env.or_else(from_image).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// What plugins are told about the image.
    pub fn context(&self) -> ImageContext {
        let config = self.image.config();
        let env = config
            .env()
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        ImageContext {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().unwrap_or_default().to_string(),
            env,
            working_dir: config.working_dir().unwrap_or("/").to_string(),
            user: config.user().unwrap_or_default().to_string(),
        }
    }

    /// A workspace over the layers (and the previous patch's changes, the
    /// first time it is called).
    ///
    /// # Errors
    ///
    /// As [`Workspace::new`].
    pub fn workspace(&mut self, setup: Setup) -> Result<Workspace, Error> {
        let start = self.previous.as_ref().map(|(_, upper)| upper.clone());
        let workspace = Workspace::new(&self.layers, start, &self.scratch, setup)?;
        Ok(workspace)
    }

    /// Turns the changes into one layer, in the session's scratch space;
    /// `None` when nothing changed.
    ///
    /// # Errors
    ///
    /// Reading the changes or writing the blob failed.
    pub fn layer(
        &mut self,
        upper: &Upper,
        compression: Compression,
    ) -> Result<Option<NewLayer>, Error> {
        let blobs = tempfile::tempdir_in(&self.scratch).map_err(|source| Error::Scratch {
            path: self.scratch.clone(),
            source,
        })?;
        let ceiling = u64::try_from(self.epoch().timestamp()).ok();
        let new_layer = layer::write(upper.path(), compression, ceiling, blobs.path())?;
        self.blobs.push(blobs);
        Ok((new_layer.entries > 0).then_some(new_layer))
    }

    /// Checks before any work that the result can be written to
    /// `destination` (see [`image::check_destination`]).
    ///
    /// # Errors
    ///
    /// It cannot: no name, the input itself, a path salve may not write.
    pub fn check_destination(
        &self,
        destination: &Destination,
        tag: Option<&str>,
    ) -> Result<(), Error> {
        Ok(image::check_destination(&self.image, destination, tag)?)
    }

    /// Writes the image plus `layer` (if any) to `destination`, giving up
    /// if `interrupt` is raised before the output is in place.
    ///
    /// # Errors
    ///
    /// Writing failed or was interrupted; the destination is then left as
    /// it was.
    pub fn write(
        &self,
        layer: Option<&NewLayer>,
        patch: &Patch,
        destination: &Destination,
        tag: Option<&str>,
        interrupt: &Interrupt,
    ) -> Result<Written, Error> {
        let stop = || interrupt.is_triggered();
        Ok(image::write_unless(
            &self.image,
            layer,
            patch,
            destination,
            tag,
            &stop,
        )?)
    }
}
