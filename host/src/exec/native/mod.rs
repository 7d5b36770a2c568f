//! The native executor: overlay mounts run by runc, for Linux hosts without
//! a Docker daemon.
//!
//! # Why runc
//!
//! The issue allowed embedding youki's `libcontainer`, driving `runc`
//! through an OCI bundle, or bubblewrap. runc through a bundle won:
//!
//! - one package on a fresh Debian machine (`apt-get install runc`), and
//!   already there wherever `docker.io` or containerd is installed;
//!   `libcontainer` would pull libseccomp and systemd bindings into salve's
//!   build for what runc does already;
//! - it switches to the step's uid, gid and supplementary groups without a
//!   user namespace, which bubblewrap cannot do (`--uid` needs one), and
//!   applies Docker's capability set, the environment images are made for;
//! - a step is a cgroup and a pid namespace: `runc kill` and `runc delete
//!   --force` take down every process a step started, daemons included;
//! - the bundle is the OCI runtime spec, written with `oci-spec`'s typed
//!   `Spec`, so the same config serves `crun` or `youki` (the `runtime`
//!   program of [`Setup`](crate::exec::Setup)).
//!
//! Measured by `cargo bench -p salve --bench step` on the development
//! machine (2 cores, otherwise idle; medians of 30): one probe of
//! `/bin/true` (snapshot, mount, runc start and stop, unmount) 38 ms, of
//! which `runc run` on an open snapshot 26 ms and opening and dropping the
//! snapshot 3 ms; `chroot` of the same command 1.6 ms. Earlier runs on a
//! busy machine gave about 110 ms. `crun` fails on this machine's hybrid
//! cgroup setup.
//!
//! # Layout of a workspace
//!
//! A workspace is a dir `salve-ws-*` in the scratch dir:
//!
//! ```text
//! lock       flock held while the workspace lives (see sweep)
//! l/0 ...    short symlinks to the layer dirs, l/a to acc: the overlay
//!            options must fit in one page
//! acc/       the accumulated upper dir
//! base/      read-only overlay of the layers alone (for commits)
//! view/      read-only overlay of acc over the layers (Executor::view)
//! runc/      runc's state dir
//! t/N/       one task: upper/ work/ merged/ (its overlay), scaffold/
//!            (mount point stand-ins), staging/, bundle/
//! ```

mod merge;
mod metadata;
mod overlay;
mod rootfs;
mod runc;
mod scaffold;
mod sweep;
#[cfg(test)]
pub(crate) mod testing;
mod user;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tracing::{debug, warn};

use self::merge::Below;
use self::overlay::Overlay;
use self::rootfs::Rootfs;
use self::runc::{Bind, Bundle, Limits, Runtime};
pub use self::sweep::sweep;
use crate::exec::{
    CA_BUNDLE, Error, Executor, Network, Output, RunSpec, STAGING_DIR, Setup, Task, Upper,
};

const WORKSPACE_PREFIX: &str = "salve-ws-";
const RUNC_STATE: &str = "runc";
const TASKS: &str = "t";
const MERGED: &str = "merged";
/// The workspace's own mount points, besides the tasks'.
const MOUNT_POINTS: [&str; 2] = ["view", "base"];
/// The most a passwd or group file may weigh to be read.
const ACCOUNTS_LIMIT: u64 = 4 << 20;

/// A native run over one image: see the [module docs](self).
#[derive(Debug)]
pub struct Workspace {
    // Fields drop in order: the mounts before the dir they live in.
    view: Option<Overlay>,
    base: Option<Overlay>,
    dir: Option<tempfile::TempDir>,
    lock: Option<File>,
    setup: Setup,
    layers: usize,
    tasks: u32,
    poisoned: bool,
}

impl Workspace {
    /// Sets up a run over `layers` (unpacked layer dirs, bottom to top, with
    /// whiteouts in overlayfs form), in a new dir under `scratch`.
    ///
    /// `start`, when given, is the upper dir of an earlier salve patch (when
    /// re-patching): the workspace takes it over, moving it into its own
    /// dir, so it must be on the same filesystem as `scratch`.
    ///
    /// # Errors
    ///
    /// [`Error::NotRoot`], [`Error::RuntimeMissing`], [`Error::NoLayers`],
    /// [`Error::SetupFile`] for a CA bundle or resolver config that is not a
    /// file, [`Error::CrossDevice`], and mount or I/O failures.
    pub fn new(
        layers: &[PathBuf],
        start: Option<PathBuf>,
        scratch: &Path,
        setup: Setup,
    ) -> Result<Workspace, Error> {
        check_host(&setup)?;
        if layers.is_empty() {
            return Err(Error::NoLayers);
        }

        // A dir of our own, locked, after sweeping what dead runs left.
        fs_err::create_dir_all(scratch)?;
        let swept = sweep(scratch, &setup.runtime);
        if swept > 0 {
            debug!(swept, scratch = %scratch.display(), "removed abandoned workspaces");
        }
        let dir = tempfile::Builder::new()
            .prefix(WORKSPACE_PREFIX)
            .tempdir_in(scratch)?;
        let lock = sweep::lock(dir.path())?;
        let mut workspace = Workspace {
            view: None,
            base: None,
            dir: None,
            lock: Some(lock),
            setup,
            layers: layers.len(),
            tasks: 0,
            poisoned: false,
        };
        let root = dir.path().to_owned();
        workspace.dir = Some(dir);

        // Short names for the lower dirs, and the dirs of the layout.
        fs_err::create_dir(root.join("l"))?;
        for (i, layer) in layers.iter().enumerate() {
            fs_err::os::unix::fs::symlink(
                fs_err::canonicalize(layer)?,
                root.join("l").join(i.to_string()),
            )?;
        }
        let acc = root.join("acc");
        match start {
            Some(start) => take_over(&start, &acc, scratch)?,
            None => fs_err::create_dir(&acc)?,
        }
        fs_err::os::unix::fs::symlink(&acc, root.join("l/a"))?;
        for name in MOUNT_POINTS.iter().chain(&["pad", RUNC_STATE, TASKS]) {
            fs_err::create_dir(root.join(name))?;
        }

        // The layers alone (a read-only overlay needs two lowers, hence pad).
        let mut lowers = workspace.layer_links();
        lowers.push(root.join("pad"));
        workspace.base = Some(Overlay::mount("base", &root.join("base"), &lowers, None)?);
        let base_root = root.join("base");
        metadata::copy_dir_attrs(&base_root, &acc).map_err(|source| {
            std::io::Error::new(
                source.kind(),
                format!("copying the image root's attributes: {source}"),
            )
        })?;
        workspace.mount_view()?;
        debug!(dir = %root.display(), layers = layers.len(), "workspace ready");
        Ok(workspace)
    }

    /// Ends the run and hands over the accumulated changes.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a failed commit; unmount failures.
    pub fn finish(mut self) -> Result<Upper, Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.unmount_all()?;
        let (Some(dir), lock) = (self.dir.take(), self.lock.take()) else {
            return Err(Error::Poisoned);
        };
        for name in ["l", "pad", RUNC_STATE, TASKS].iter().chain(&MOUNT_POINTS) {
            fs_err::remove_dir_all(dir.path().join(name))?;
        }
        Ok(Upper {
            path: dir.path().join("acc"),
            _dir: dir,
            _lock: lock,
        })
    }

    /// Opens a task's snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after a failed commit; mount and I/O failures.
    pub fn snapshot(&mut self) -> Result<Snapshot<'_>, Error> {
        Snapshot::open(self)
    }

    fn root(&self) -> Result<&Path, Error> {
        self.dir
            .as_ref()
            .map(|dir| dir.path())
            .ok_or(Error::Poisoned)
    }

    /// The layer links, topmost first.
    fn layer_links(&self) -> Vec<PathBuf> {
        let links = self.root().map(|root| root.join("l")).unwrap_or_default();
        (0..self.layers)
            .rev()
            .map(|i| links.join(i.to_string()))
            .collect()
    }

    fn mount_view(&mut self) -> Result<(), Error> {
        let root = self.root()?.to_owned();
        let mut lowers = vec![root.join("l/a")];
        lowers.extend(self.layer_links());
        self.view = Some(Overlay::mount("view", &root.join("view"), &lowers, None)?);
        Ok(())
    }

    fn unmount_all(&mut self) -> Result<(), Error> {
        if let Some(view) = self.view.take() {
            view.unmount()?;
        }
        if let Some(base) = self.base.take() {
            base.unmount()?;
        }
        Ok(())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(error) = self.unmount_all() {
            // Removing the dir now could reach into a mount: leave it for a
            // later sweep.
            warn!(%error, "workspace left in place");
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

impl Executor for Workspace {
    fn view(&self) -> Result<&Path, Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.view.as_ref().map(Overlay::path).ok_or(Error::Poisoned)
    }

    fn task(&mut self) -> Result<Box<dyn Task + '_>, Error> {
        Ok(Box::new(self.snapshot()?))
    }

    fn finish(self: Box<Self>) -> Result<Upper, Error> {
        Workspace::finish(*self)
    }
}

/// One task's snapshot in a [`Workspace`]; aborted when dropped.
#[derive(Debug)]
pub struct Snapshot<'a> {
    workspace: &'a mut Workspace,
    dir: PathBuf,
    overlay: Option<Overlay>,
    staging: PathBuf,
    resolv_conf: bool,
}

impl<'a> Snapshot<'a> {
    fn open(workspace: &'a mut Workspace) -> Result<Snapshot<'a>, Error> {
        if workspace.poisoned {
            return Err(Error::Poisoned);
        }
        let root = workspace.root()?.to_owned();
        let view = root.join("view");
        workspace.tasks += 1;
        let dir = root.join(TASKS).join(workspace.tasks.to_string());
        let setup = &workspace.setup;
        let wanted = scaffold::Wanted {
            resolv_conf: setup.network == Network::Host && setup.resolv_conf.is_some(),
            ca_bundle: setup.ca_bundle.is_some(),
        };
        let mut lowers = vec![dir.join("scaffold"), root.join("l/a")];
        lowers.extend(workspace.layer_links());

        // From here on, dropping the snapshot removes whatever was made of it.
        let mut snapshot = Snapshot {
            workspace,
            staging: dir.join("staging"),
            dir,
            overlay: None,
            resolv_conf: false,
        };
        let dir = &snapshot.dir;
        for name in ["upper", "work", MERGED, "staging", "scaffold", "bundle"] {
            fs_err::create_dir_all(dir.join(name))?;
        }
        snapshot.resolv_conf = scaffold::build(&dir.join("scaffold"), &view, wanted)?;
        // The upper dir is the overlay's root: it takes the image root's attributes.
        metadata::copy_dir_attrs(&view, &dir.join("upper")).map_err(|source| {
            std::io::Error::new(
                source.kind(),
                format!("copying the image root's attributes: {source}"),
            )
        })?;
        let upper = Some((dir.join("upper"), dir.join("work")));
        let overlay = Overlay::mount("task", &dir.join(MERGED), &lowers, upper)?;
        snapshot.overlay = Some(overlay);
        debug!(dir = %snapshot.dir.display(), "task snapshot ready");
        Ok(snapshot)
    }

    fn merged(&self) -> Result<&Path, Error> {
        self.overlay
            .as_ref()
            .map(Overlay::path)
            .ok_or(Error::Poisoned)
    }

    /// The bind mounts of a step: staging, CA bundle, resolver config.
    fn binds(&self) -> Vec<Bind> {
        let setup = &self.workspace.setup;
        // Writable: steps use it as scratch space (pip's TMPDIR and reports).
        // A command could plant a symlink there, so the host's own writes
        // into it never follow one out: fetches land through a fresh
        // temporary file renamed into place, and files the plan writes go
        // through a capability handle rooted at the staging dir
        // (`patch::apply`).
        let mut binds = vec![Bind {
            source: self.staging.clone(),
            destination: STAGING_DIR.into(),
            writable: true,
        }];
        if let Some(ca) = &setup.ca_bundle {
            binds.push(Bind {
                source: ca.clone(),
                destination: CA_BUNDLE.into(),
                writable: false,
            });
        }
        if let (true, Some(resolv)) = (self.resolv_conf, &setup.resolv_conf) {
            let destination = "/etc/resolv.conf".into();
            binds.push(Bind {
                source: resolv.clone(),
                destination,
                writable: false,
            });
        }
        binds
    }

    /// Unmounts the overlay and removes the task's dir.
    fn close(&mut self) -> Result<(), Error> {
        if let Some(overlay) = self.overlay.take() {
            overlay.unmount()?;
        }
        if self.dir.exists() {
            fs_err::remove_dir_all(&self.dir)?;
        }
        Ok(())
    }

    fn commit_inner(&mut self) -> Result<(), Error> {
        if let Some(overlay) = self.overlay.take() {
            overlay.unmount()?;
        }
        // acc is a lower dir of the view: no mount may use it while it changes.
        if let Some(view) = self.workspace.view.take() {
            view.unmount()?;
        }
        let root = self.workspace.root()?.to_owned();
        let below = Below::open(&root.join("base"))?;
        self.workspace.poisoned = true;
        merge::merge(&self.dir.join("upper"), &root.join("acc"), &below)?;
        self.workspace.poisoned = false;
        drop(below);
        self.workspace.mount_view()?;
        self.close()
    }
}

impl Task for Snapshot<'_> {
    fn run(&mut self, spec: &RunSpec) -> Result<Output, Error> {
        let setup = &self.workspace.setup;
        if setup.interrupt.is_triggered() {
            return Err(Error::Interrupted);
        }
        if let Some(deadline) = setup
            .deadline
            .filter(|d| d.at() <= std::time::Instant::now())
        {
            return Err(Error::Deadline {
                limit: deadline.limit(),
            });
        }
        let Some(program) = spec.argv.first() else {
            return Err(Error::EmptyCommand);
        };

        // The process: user from the image's accounts, env, working dir.
        let merged = self.merged()?;
        let rootfs = Rootfs::open(merged)?;
        let text = |bytes: Option<Vec<u8>>| bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
        let passwd = text(rootfs.read("/etc/passwd", ACCOUNTS_LIMIT)?);
        let group = text(rootfs.read("/etc/group", ACCOUNTS_LIMIT)?);
        drop(rootfs);
        let ids = user::resolve(spec.user.as_deref(), passwd.as_deref(), group.as_deref())?;
        let cwd = spec.cwd.clone().or_else(|| setup.image.working_dir.clone());
        let cwd = cwd.unwrap_or_else(|| "/".into());
        if !cwd.starts_with('/') {
            return Err(Error::ImagePath {
                path: cwd,
                reason: "is not absolute (working dir)",
            });
        }

        let bundle = Bundle {
            root: merged,
            argv: &spec.argv,
            env: setup.environment(spec),
            cwd,
            ids,
            network: setup.network,
            binds: self.binds(),
        };
        let runtime = Runtime {
            program: &setup.runtime,
            state: &self.workspace.root()?.join(RUNC_STATE),
        };
        let limits = Limits {
            step: spec.timeout.unwrap_or(setup.step_timeout),
            deadline: setup.deadline,
            interrupt: &setup.interrupt,
        };
        debug!(%program, user = ?spec.user, "running step");
        runc::run(
            runtime,
            &self.dir.join("bundle"),
            &bundle,
            spec.command_line(),
            limits,
        )
    }

    fn write_file(&mut self, path: &str, contents: &[u8], mode: u32) -> Result<(), Error> {
        debug!(
            path,
            bytes = contents.len(),
            mode = format_args!("{mode:o}"),
            "writing file"
        );
        Rootfs::open(self.merged()?)?.write_file(path, contents, mode)
    }

    fn remove(&mut self, path: &str) -> Result<bool, Error> {
        let removed = Rootfs::open(self.merged()?)?.remove(path)?;
        debug!(path, removed, "removing path");
        Ok(removed)
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn view(&self) -> Result<&Path, Error> {
        self.merged()
    }

    fn commit(mut self: Box<Self>) -> Result<(), Error> {
        self.commit_inner()
    }

    fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.close()
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            warn!(dir = %self.dir.display(), %error, "task snapshot left in place");
        }
        // A commit that stopped after taking the view down puts it back.
        if self.workspace.view.is_none()
            && !self.workspace.poisoned
            && let Err(error) = self.workspace.mount_view()
        {
            warn!(%error, "workspace view not mounted again");
            self.workspace.poisoned = true;
        }
    }
}

/// Checks what the native executor needs of the host and the setup.
fn check_host(setup: &Setup) -> Result<(), Error> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::NotRoot);
    }
    let probe = Command::new(&setup.runtime)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(source) = probe {
        return Err(Error::RuntimeMissing {
            runtime: setup.runtime.clone(),
            source,
        });
    }
    let files = [
        ("CA bundle", &setup.ca_bundle),
        ("resolver config", &setup.resolv_conf),
    ];
    for (what, path) in files {
        if let Some(path) = path.as_ref().filter(|path| !path.is_file()) {
            return Err(Error::SetupFile {
                what,
                path: path.clone(),
            });
        }
    }
    Ok(())
}

/// Moves a starting upper dir into the workspace.
fn take_over(start: &Path, acc: &Path, scratch: &Path) -> Result<(), Error> {
    match std::fs::rename(start, acc) {
        Ok(()) => Ok(()),
        Err(error) if error.raw_os_error() == Some(libc::EXDEV) => Err(Error::CrossDevice {
            start: start.into(),
            scratch: scratch.into(),
        }),
        Err(error) => Err(std::io::Error::new(
            error.kind(),
            format!("moving {} to {}: {error}", start.display(), acc.display()),
        )
        .into()),
    }
}
