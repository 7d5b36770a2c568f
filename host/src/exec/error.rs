//! What can go wrong while running steps, apart from a step that fails.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::step::StepFailure;

/// An executor error: the machinery failed, the run ran out of time, or the
/// user interrupted it.
///
/// A command that exits non-zero or passes its own time limit is not an
/// error at this level: it comes back as an [`Output`](super::Output), and
/// [`Output::check`](super::Output::check) turns it into
/// [`Error::StepFailed`] when the caller wants one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The native executor mounts overlays and starts containers.
    #[error("the native executor needs root (it mounts overlays and starts containers)")]
    NotRoot,

    /// The OCI runtime could not be started at all.
    #[error(
        "the OCI runtime `{runtime}` cannot be started; install it (on Debian: `apt-get install \
         runc`) or point salve at it"
    )]
    RuntimeMissing {
        /// The program salve tried.
        runtime: PathBuf,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },

    /// A workspace needs something to run on.
    #[error("a workspace needs at least one image layer")]
    NoLayers,

    /// The setup names a file that is not there.
    #[error("{what} {path}: not a regular file")]
    SetupFile {
        /// What the file is for ("CA bundle", "resolver config").
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },

    /// The starting upper dir cannot be moved into the scratch dir.
    #[error(
        "the starting upper dir {start} is on another filesystem than the scratch dir {scratch}; \
         unpack it under the scratch dir"
    )]
    CrossDevice {
        /// The starting upper dir.
        start: PathBuf,
        /// The scratch dir.
        scratch: PathBuf,
    },

    /// A host file operation; the message names the path.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// An overlay could not be mounted.
    #[error("mounting the {what} overlay at {target}")]
    Mount {
        /// Which overlay ("task", "view", "base").
        what: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// The overlay's options do not fit in one page.
    #[error(
        "the overlay options for {layers} layers are {len} bytes, over the kernel's limit of \
         {limit}; use a scratch dir with a shorter path"
    )]
    MountOptionsTooLong {
        /// How many layers were stacked.
        layers: usize,
        /// The length of the options.
        len: usize,
        /// The limit.
        limit: usize,
    },

    /// An overlay could not be unmounted.
    #[error("unmounting {target}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// The OCI bundle could not be written.
    #[error("writing the OCI bundle config {path}")]
    Bundle {
        /// The config file.
        path: PathBuf,
        /// What oci-spec said.
        #[source]
        source: oci_spec::OciSpecError,
    },

    /// The runtime failed before or around the command (not the command
    /// itself).
    #[error("{runtime} could not run `{command}`: {message}")]
    Runtime {
        /// The runtime program.
        runtime: PathBuf,
        /// The command, for people.
        command: String,
        /// What the runtime reported.
        message: String,
    },

    /// A step without a program to run.
    #[error("a step has an empty command")]
    EmptyCommand,

    /// A path inside the image that salve cannot use.
    #[error("path `{path}` in the image: {reason}")]
    ImagePath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A file operation inside the image.
    #[error("{action} `{path}` in the image")]
    InImage {
        /// What was being done ("writing", "removing", "reading").
        action: &'static str,
        /// The path inside the image.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A step asks for a user the image does not have.
    #[error("user `{spec}`: {reason}")]
    User {
        /// The user as given (`name`, `uid`, `name:group`...).
        spec: String,
        /// Why it cannot be resolved.
        reason: String,
    },

    /// Committing a task's changes failed half-way; the workspace is unusable.
    #[error("merging the task's changes at {path}")]
    Merge {
        /// The path being merged.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An earlier commit failed half-way, so the accumulated changes cannot
    /// be trusted.
    #[error("the workspace is unusable after an earlier failed commit")]
    Poisoned,

    /// The time limit of the whole run is over.
    #[error("the run's time limit of {}s is over", limit.as_secs())]
    Deadline {
        /// The limit that was set.
        limit: Duration,
    },

    /// The user interrupted the run.
    #[error("interrupted")]
    Interrupted,

    /// A step failed (from [`Output::check`](super::Output::check)).
    #[error(transparent)]
    StepFailed(#[from] Box<StepFailure>),
}
