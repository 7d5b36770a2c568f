//! Running plan steps inside the image's own userland, on copy-on-write
//! snapshots whose changes become the new layer.
//!
//! # Model
//!
//! An [`Executor`] is one run over one image. It keeps the changes of the
//! tasks committed so far (the *accumulated upper dir*) and runs each task
//! on a fresh snapshot of the image plus those changes:
//!
//! - [`Executor::task`] opens a snapshot; on it the caller runs commands
//!   ([`Task::run`]) and writes or removes files ([`Task::write_file`],
//!   [`Task::remove`]), with a staging dir for fetched artifacts
//!   ([`Task::staging_dir`], seen by commands at [`STAGING_DIR`]);
//! - [`Task::commit`] folds the snapshot's changes into the accumulated
//!   ones, [`Task::abort`] (or dropping the task) throws them away, so a
//!   failed task leaves nothing behind and the others still land;
//! - [`Executor::probe`] runs one command on a snapshot that is always
//!   thrown away, for plugins that must ask the image something;
//! - [`Executor::view`] is a read-only directory of the image as the steps
//!   see it so far, for the plugins' `detect`;
//! - [`Executor::finish`] hands over the accumulated changes as an
//!   [`Upper`]: a directory in overlayfs form (whiteouts are 0/0 character
//!   devices, replaced directories carry `trusted.overlay.opaque=y`) that
//!   [`layer`](crate::layer) turns into the new layer.
//!
//! Commands run as the image's root unless the step names a user, in the
//! image's `Env` and `WorkingDir`, with the host's network unless
//! [`Network::None`], under a time limit per step and optionally one for
//! the whole run ([`Setup`]). For the length of a step only, the host's
//! resolver config is mounted at `/etc/resolv.conf`, a CA bundle at
//! [`CA_BUNDLE`] (named by `SSL_CERT_FILE`, `PIP_CERT`,
//! `NODE_EXTRA_CA_CERTS` and the other [`CA_VARS`]), and the host's proxy
//! variables are passed in. None of it reaches the new layer.
//!
//! # Executors
//!
//! [`native::Workspace`] needs root and an OCI runtime, and no daemon: each
//! snapshot is an overlay mount whose lower dirs are the unpacked layers and
//! the accumulated changes, and whose upper dir collects the task's
//! changes; each command is one `runc run` on it.
//!
//! A Docker executor fits the same traits without host mounts: a snapshot
//! is a container created from the image committed so far (`docker commit`
//! after each committed task, the container removed on abort); `run` is an
//! exec in it; `write_file` and `remove` go through the archive API; the
//! staging dir is copied in before each run; `view` is the export of the
//! current snapshot; `finish` rebuilds the upper dir from `docker diff`
//! against the original image, fetching added and changed paths with the
//! archive API and writing whiteouts for deleted ones.
//!
//! # Cleanup
//!
//! Every resource is held by a guard: mounts, containers and scratch dirs
//! go on every path out, errors, timeouts and panics included. For Ctrl-C
//! the CLI raises the run's [`Interrupt`]: the running step is killed
//! within a tenth of a second and the guards clean up as the
//! [`Error::Interrupted`] unwinds. What a process killed outright (SIGKILL)
//! leaves behind is swept by the next workspace created in the same scratch
//! dir, see [`native::sweep`].

mod capture;
mod error;
pub mod native;
mod setup;
mod step;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use error::Error;
pub use setup::{
    CA_VARS, DEFAULT_STEP_TIMEOUT, Deadline, ImageEnv, Interrupt, Network, PROXY_VARS, Setup,
    host_ca_bundle, proxy_from_env,
};
pub use step::{Exit, Output, RunSpec, STDERR_KEEP, STDOUT_KEEP, StepFailure, TAIL_LINES};

/// Where commands see the staging dir of fetched artifacts.
pub const STAGING_DIR: &str = "/.salve/staging";

/// Where commands see the run's CA bundle, when it has one.
pub const CA_BUNDLE: &str = "/.salve/ca-certificates.crt";

/// One run over one image: snapshots for tasks, a read-only view, and the
/// accumulated changes at the end.
pub trait Executor {
    /// The image as the steps see it so far (its layers plus the committed
    /// tasks), read-only, valid while borrowed.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a commit that failed half-way.
    fn view(&self) -> Result<&Path, Error>;

    /// Opens a snapshot for one task.
    ///
    /// # Errors
    ///
    /// When the snapshot cannot be set up (mounts, scratch space).
    fn task(&mut self) -> Result<Box<dyn Task + '_>, Error>;

    /// Runs one command on a snapshot that is thrown away afterwards.
    ///
    /// # Errors
    ///
    /// As [`Task::run`]; a command that fails is an [`Output`], not an
    /// error.
    fn probe(&mut self, spec: &RunSpec) -> Result<Output, Error> {
        let mut task = self.task()?;
        let output = task.run(spec);
        let aborted = task.abort();
        let output = output?;
        aborted?;
        Ok(output)
    }

    /// Ends the run and hands over the accumulated changes.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a commit that failed half-way, or when the
    /// snapshot machinery cannot be taken down.
    fn finish(self: Box<Self>) -> Result<Upper, Error>;
}

/// A task's snapshot: steps run on it, then it is committed or thrown away.
///
/// Dropping a task without committing it aborts it.
pub trait Task {
    /// Runs a command in the snapshot and waits for it, up to its time
    /// limit.
    ///
    /// # Errors
    ///
    /// [`Error::Interrupted`] and [`Error::Deadline`] when the run must stop;
    /// [`Error::User`] for a user the image does not have; runtime and
    /// setup failures. A command that exits non-zero or runs past its own
    /// limit is an `Ok` [`Output`]; see [`Output::check`].
    fn run(&mut self, spec: &RunSpec) -> Result<Output, Error>;

    /// Writes a file at `path` (absolute, in the image), owned by root with
    /// `mode`, replacing a file or symlink there and creating missing parent
    /// dirs. Symlinks in the image resolve inside the image.
    ///
    /// # Errors
    ///
    /// [`Error::ImagePath`] for a relative path or one with `..`;
    /// [`Error::InImage`] when the write fails (a dir at `path`...).
    fn write_file(&mut self, path: &str, contents: &[u8], mode: u32) -> Result<(), Error>;

    /// Removes the file or directory tree at `path` (absolute, in the
    /// image); a symlink is removed, not followed. Returns whether anything
    /// was there.
    ///
    /// # Errors
    ///
    /// As [`write_file`](Task::write_file).
    fn remove(&mut self, path: &str) -> Result<bool, Error>;

    /// The host dir that commands see at [`STAGING_DIR`]: fetch steps write
    /// into it, and commands may use it as scratch space. It is never part
    /// of the new layer. Commands can plant symlinks in it, so the host
    /// writes into it only through a fresh file renamed into place.
    fn staging_dir(&self) -> &Path;

    /// The snapshot's files as its steps left them, for the plugins'
    /// `detect` before the task is committed. Read it only: changes go
    /// through [`run`](Task::run), [`write_file`](Task::write_file) and
    /// [`remove`](Task::remove).
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] when the snapshot is no longer mounted.
    fn view(&self) -> Result<&Path, Error>;

    /// Keeps the snapshot's changes.
    ///
    /// # Errors
    ///
    /// When the changes cannot be merged; the executor is then unusable
    /// ([`Error::Poisoned`]).
    fn commit(self: Box<Self>) -> Result<(), Error>;

    /// Throws the snapshot's changes away.
    ///
    /// # Errors
    ///
    /// When the snapshot cannot be taken down (a mount that stays busy).
    fn abort(self: Box<Self>) -> Result<(), Error>;
}

/// The accumulated changes of a run, in overlayfs form; removed when
/// dropped.
#[derive(Debug)]
pub struct Upper {
    path: PathBuf,
    _dir: tempfile::TempDir,
    _lock: Option<File>,
}

impl Upper {
    /// The directory holding the changes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
