//! Loading ecosystem plugins and calling them in a sandbox.
//!
//! A plugin is a WebAssembly component implementing `salve:plugin` (see
//! `wit/plugin.wit`). The [`Registry`] loads the plugins bundled into the
//! binary and any found in the plugin directories; each [`Plugin`] is a
//! handle whose methods call into the component, every call in a fresh
//! sandbox with a memory and time budget ([`runtime`]). Whatever a plugin
//! does — trap, loop, allocate without end, return nonsense — ends as an
//! [`Error`] naming the plugin and its version, never as a host failure.
//!
//! The types here are the host's own view of the data the contract carries;
//! the generated bindings stay inside this module.

mod convert;
mod registry;
pub mod runtime;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use registry::{LoadFailure, Options, Registry};
pub use runtime::{CallError, Limits, LoadError};

use crate::fetch;

/// Which side of an image a plugin patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// OS packages (apt, apk, rpm): the target version is a minimum.
    Os,
    /// Application libraries (pip, npm, NuGet): the target is exact.
    Library,
}

/// How far apart two versions are, by the leading part that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    /// The same version.
    None,
    /// Same major and minor.
    Patch,
    /// Same major, different minor.
    Minor,
    /// Different major.
    Major,
}

/// What a plugin knows about one version string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The canonical spelling.
    pub normalized: String,
    /// True for pre-releases.
    pub prerelease: bool,
}

/// One version an ecosystem's index offers for a package at a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The version as the index spells it.
    pub version: String,
    /// `None` when installable there; otherwise why not.
    pub unusable: Option<String>,
}

/// Where a package's files came from, and so whether its plugin may move it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Origin {
    /// Installed by the ecosystem's own tool; the plugin can move it.
    Managed,
    /// Owned by another package manager; the text says which and what to do.
    Foreign(String),
    /// Vendored inside another package.
    Vendored(VendoredIn),
    /// Found but not patchable, with the reason.
    Unsupported(String),
}

/// The package a vendored copy lives inside.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VendoredIn {
    /// Key of the parent package.
    pub parent: String,
    /// Path of the parent's metadata.
    pub parent_path: String,
}

/// One installed copy of a package, as a plugin's `detect` found it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstalledPackage {
    /// The name as spelled in the image.
    pub name: String,
    /// The same for every spelling of the name; findings match by key.
    pub key: String,
    /// The installed version.
    pub version: String,
    /// Metadata path scanners report, relative to the image root; empty for
    /// OS packages.
    pub path: String,
    /// The unit patched as a whole, relative to the image root.
    pub scope: String,
    /// Whether the plugin can move this copy.
    pub origin: Origin,
    /// Facts the plugin wants back at plan time.
    pub attributes: Vec<(String, String)>,
}

/// What the host tells a plugin about the image being patched.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageContext {
    /// `linux`, `windows`.
    pub os: String,
    /// `amd64`, `arm64`...
    pub architecture: String,
    /// `v7`, `v8`, or empty.
    pub variant: String,
    /// The image config's `Env`, in order.
    pub env: Vec<(String, String)>,
    /// The image config's `WorkingDir`, or `/`.
    pub working_dir: String,
    /// The image config's `User`, or empty for root.
    pub user: String,
}

/// A command to run inside the image.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables added to the image's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the image's own when `None`.
    pub cwd: Option<String>,
    /// User; root when `None`.
    pub user: Option<String>,
}

/// A file to write into the image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileWrite {
    /// Absolute path inside the image.
    pub path: String,
    /// The whole content.
    #[serde(skip)]
    pub contents: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// An artifact to download into the staging directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FetchRequest {
    /// What to download.
    pub url: String,
    /// File name inside the staging directory.
    pub file_name: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: Option<String>,
}

/// One thing to do in the image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Run a command; a non-zero exit fails the task.
    Run(Command),
    /// Write a file.
    WriteFile(FileWrite),
    /// Remove a file or directory tree.
    Remove(String),
    /// Download an artifact into the staging directory.
    Fetch(FetchRequest),
}

/// What a check expects on standard output.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMatch {
    /// Any output.
    Any,
    /// Exactly this, ignoring surrounding whitespace.
    Equals(String),
    /// This text somewhere.
    Contains(String),
}

/// A command run after a task's steps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What it proves, for people.
    pub description: String,
    /// The command.
    pub command: Command,
    /// The exit code it must end with.
    pub exit_code: i32,
    /// What standard output must show.
    pub stdout: OutputMatch,
}

/// A unit of work that succeeds or fails as a whole.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Task {
    /// What it does, for people.
    pub description: String,
    /// Indexes into the updates given to `plan`.
    pub updates: Vec<u32>,
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// Checks, in order.
    pub checks: Vec<Check>,
}

/// A read-only command the host runs in a throw-away copy of the image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// The plugin's name for it.
    pub id: String,
    /// The command.
    pub command: Command,
}

/// The host's answer to a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// The probe's id.
    pub id: String,
    /// Exit code, -1 when it could not start or was killed.
    pub exit_code: i32,
    /// Standard output (its last 1 MiB).
    pub stdout: String,
    /// Standard error (its last 64 KiB).
    pub stderr: String,
}

/// The result of `detect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectOutcome {
    /// Everything installed that the plugin knows about.
    Packages(Vec<InstalledPackage>),
    /// Run these probes and call again with the answers.
    Probes(Vec<Probe>),
}

/// One copy to move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageUpdate {
    /// The copy, as `detect` returned it.
    pub package: InstalledPackage,
    /// Exact for libraries, a minimum for OS packages.
    pub target: String,
    /// The vulnerabilities the move closes.
    pub vulnerabilities: Vec<String>,
}

/// Everything a plan may depend on besides the updates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// The image.
    pub image: ImageContext,
    /// Where fetch steps put files, inside the image.
    pub staging_dir: String,
    /// A CA bundle installers should trust, inside the image.
    pub ca_bundle: Option<String>,
    /// The allowed sources, primary first.
    pub sources: Vec<String>,
    /// Whether run steps have network access.
    pub network: bool,
}

/// The result of `plan`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    /// The tasks, in order.
    Tasks(Vec<Task>),
    /// Run these probes and call again with the answers.
    Probes(Vec<Probe>),
}

/// Who a plugin is, from its `info` export.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Info {
    /// Short lowercase name, unique among loaded plugins.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// OS packages or libraries.
    pub kind: PackageKind,
    /// Scanner result types it handles.
    pub report_types: Vec<String>,
    /// Sources it fetches from unless the user names others.
    pub default_sources: Vec<String>,
    /// Package keys that always move to their newest release.
    pub always_latest: Vec<String>,
}

/// Where a plugin was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Embedded in the salve binary, under this name.
    Bundled(&'static str),
    /// A component file.
    Path(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bundled(name) => write!(f, "bundled ({name})"),
            Source::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A plugin call that did not give a usable answer.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {call}: {kind}")]
pub struct Error {
    /// `name version`.
    pub plugin: String,
    /// The export called (`detect`, `plan`...).
    pub call: &'static str,
    /// What went wrong.
    #[source]
    pub kind: ErrorKind,
}

/// What went wrong in a plugin call.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The sandbox stopped it (trap, time, memory).
    #[error(transparent)]
    Sandbox(#[from] CallError),
    /// The plugin returned an error of its own.
    #[error("{0}")]
    Returned(String),
    /// The plugin returned something unusable.
    #[error("returned {0}")]
    Nonsense(String),
}

/// A loaded plugin.
pub struct Plugin {
    info: Info,
    source: Source,
    label: String,
    prepared: runtime::Prepared,
    runtime: Arc<runtime::Runtime>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.info)
            .field("source", &self.source)
            .finish()
    }
}

impl Plugin {
    /// Who the plugin is.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `name version`, as errors and logs name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn error(&self, call: &'static str, kind: impl Into<ErrorKind>) -> Error {
        Error {
            plugin: self.label.clone(),
            call,
            kind: kind.into(),
        }
    }

    /// Calls an export without an image and without network.
    fn call_pure<R>(
        &self,
        call: &'static str,
        f: impl FnOnce(
            &runtime::bindings::Ecosystem,
            &mut wasmtime::Store<runtime::State>,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let setup = runtime::CallSetup {
            root: None,
            sources: fetch::Sources::default(),
            label: &self.label,
        };
        self.runtime
            .call(&self.prepared, &setup, f)
            .map_err(|e| self.error(call, e))
    }

    /// Parses a version string. An invalid version is
    /// [`ErrorKind::Returned`] with the plugin's reason.
    ///
    /// # Errors
    ///
    /// The version is invalid, or the plugin failed.
    pub fn parse_version(&self, version: &str) -> Result<VersionInfo, Error> {
        let r = self.call_pure("parse-version", |p, s| {
            p.salve_plugin_plugin().call_parse_version(s, version)
        })?;
        let info: VersionInfo = r
            .map_err(|e| self.error("parse-version", ErrorKind::Returned(e)))?
            .into();
        validate::version("normalized version", &info.normalized)
            .map_err(|e| self.error("parse-version", ErrorKind::Nonsense(e)))?;
        Ok(info)
    }

    /// Orders two versions.
    ///
    /// # Errors
    ///
    /// Either version is invalid, or the plugin failed.
    pub fn compare(&self, a: &str, b: &str) -> Result<std::cmp::Ordering, Error> {
        let r = self.call_pure("compare", |p, s| {
            p.salve_plugin_plugin().call_compare(s, a, b)
        })?;
        Ok(
            r.map_err(|e| self.error("compare", ErrorKind::Returned(e)))?
                .into(),
        )
    }

    /// How far apart two versions are.
    ///
    /// # Errors
    ///
    /// Either version is invalid, or the plugin failed.
    pub fn classify(&self, a: &str, b: &str) -> Result<Bump, Error> {
        let r = self.call_pure("classify", |p, s| {
            p.salve_plugin_plugin().call_classify(s, a, b)
        })?;
        Ok(
            r.map_err(|e| self.error("classify", ErrorKind::Returned(e)))?
                .into(),
        )
    }

    /// The key of a package name as a report spells it.
    ///
    /// # Errors
    ///
    /// The plugin failed or returned nonsense.
    pub fn package_key(&self, name: &str) -> Result<String, Error> {
        let key = self.call_pure("package-key", |p, s| {
            p.salve_plugin_plugin().call_package_key(s, name)
        })?;
        if key.is_empty() || key.len() > validate::MAX_NAME {
            let e = format!("a key of {} bytes for {name:?}", key.len());
            return Err(self.error("package-key", ErrorKind::Nonsense(e)));
        }
        Ok(key)
    }

    /// Lists what is installed under `root` (the image's files, read-only).
    /// Detection reads the image only: the plugin may fetch nothing.
    ///
    /// # Errors
    ///
    /// The plugin failed or returned nonsense.
    pub fn detect(
        &self,
        root: &Path,
        image: &ImageContext,
        answers: &[ProbeResult],
    ) -> Result<DetectOutcome, Error> {
        let setup = runtime::CallSetup {
            root: Some(root),
            sources: fetch::Sources::default(),
            label: &self.label,
        };
        let image = image.into();
        let answers: Vec<_> = answers.iter().map(Into::into).collect();
        let r = self
            .runtime
            .call(&self.prepared, &setup, |p, s| {
                p.salve_plugin_plugin().call_detect(s, &image, &answers)
            })
            .map_err(|e| self.error("detect", e))?;
        let outcome: DetectOutcome = r
            .map_err(|e| self.error("detect", ErrorKind::Returned(convert::plugin_error(e))))?
            .into();
        validate::detect(&outcome).map_err(|e| self.error("detect", ErrorKind::Nonsense(e)))?;
        Ok(outcome)
    }

    /// The releases the index offers for a copy's package; `None` when the
    /// plugin does not (or cannot) ask an index.
    ///
    /// # Errors
    ///
    /// The plugin failed or returned nonsense.
    pub fn releases(
        &self,
        package: &InstalledPackage,
        sources: &fetch::Sources,
    ) -> Result<Option<Vec<Release>>, Error> {
        let setup = runtime::CallSetup {
            root: None,
            sources: sources.clone(),
            label: &self.label,
        };
        let package = package.into();
        let list: Vec<String> = sources.as_slice().to_vec();
        let r = self
            .runtime
            .call(&self.prepared, &setup, |p, s| {
                p.salve_plugin_plugin().call_releases(s, &package, &list)
            })
            .map_err(|e| self.error("releases", e))?;
        let found =
            r.map_err(|e| self.error("releases", ErrorKind::Returned(convert::plugin_error(e))))?;
        let found: Option<Vec<Release>> = found.map(|l| l.into_iter().map(Into::into).collect());
        if let Some(list) = &found {
            validate::releases(list).map_err(|e| self.error("releases", ErrorKind::Nonsense(e)))?;
        }
        Ok(found)
    }

    /// Turns updates into tasks, reading the image under `root`.
    ///
    /// # Errors
    ///
    /// The plugin failed or returned nonsense (an update in no task, a plan
    /// too large...).
    pub fn plan(
        &self,
        root: &Path,
        updates: &[PackageUpdate],
        context: &PlanContext,
        answers: &[ProbeResult],
    ) -> Result<PlanOutcome, Error> {
        // A plan may ask the index (a feed's package contents, a checksum)
        // from the same sources its run steps install from.
        let setup = runtime::CallSetup {
            root: Some(root),
            sources: fetch::Sources::new(&context.sources),
            label: &self.label,
        };
        let wit_updates: Vec<_> = updates.iter().map(Into::into).collect();
        let context = context.into();
        let answers: Vec<_> = answers.iter().map(Into::into).collect();
        let r = self
            .runtime
            .call(&self.prepared, &setup, |p, s| {
                p.salve_plugin_plugin()
                    .call_plan(s, &wit_updates, &context, &answers)
            })
            .map_err(|e| self.error("plan", e))?;
        let outcome: PlanOutcome = r
            .map_err(|e| self.error("plan", ErrorKind::Returned(convert::plugin_error(e))))?
            .into();
        validate::plan(&outcome, updates.len())
            .map_err(|e| self.error("plan", ErrorKind::Nonsense(e)))?;
        Ok(outcome)
    }
}

/// The policy orders a package's versions through its own plugin.
impl crate::policy::Versions for Plugin {
    fn parse(&self, version: &str) -> Result<VersionInfo, String> {
        self.parse_version(version).map_err(|e| e.to_string())
    }

    fn compare(&self, a: &str, b: &str) -> Result<std::cmp::Ordering, String> {
        Plugin::compare(self, a, b).map_err(|e| e.to_string())
    }

    fn classify(&self, a: &str, b: &str) -> Result<Bump, String> {
        Plugin::classify(self, a, b).map_err(|e| e.to_string())
    }
}
