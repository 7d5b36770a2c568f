//! The data that crosses between salve and a plugin.
//!
//! These mirror the records of `wit/plugin.wit` (package `salve:plugin`), in
//! plain Rust, so that plugin code and its native tests never see generated
//! bindings.

/// Which side of an image a plugin patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackageKind {
    /// Packages of the operating system's package manager (apt, apk, rpm).
    /// The target version is a minimum: the repositories decide.
    Os,
    /// Application libraries (pip, npm, NuGet...). The target is exact.
    Library,
}

/// Who a plugin is and what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Short lowercase name, unique among loaded plugins (`pip`, `apt`).
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    /// Whether it patches OS packages or application libraries.
    pub kind: PackageKind,
    /// Scanner result types it handles (Trivy `Type`, Grype `type`).
    pub report_types: Vec<String>,
    /// URL prefixes fetched from unless the user names others; the first is
    /// the primary index.
    pub default_sources: Vec<String>,
    /// Package keys that always move to their newest release.
    pub always_latest: Vec<String>,
}

/// How far apart two versions are, by the leading part that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// True for pre-releases, which are never chosen unless allowed.
    pub prerelease: bool,
}

/// One version an ecosystem's index offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The version as the index spells it.
    pub version: String,
    /// `None` when it can be installed at the copy's location; otherwise why
    /// not, in words a person can act on.
    pub unusable: Option<String>,
}

/// Where a package's files came from, and so whether the plugin may move it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendoredIn {
    /// Key of the parent package.
    pub parent: String,
    /// Path of the parent's metadata.
    pub parent_path: String,
}

/// One installed copy of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledPackage {
    /// The name as spelled in the image.
    pub name: String,
    /// The same for every spelling of the name; findings match by key.
    pub key: String,
    /// The installed version.
    pub version: String,
    /// Path of the metadata scanners report, relative to the image root, no
    /// leading slash. Empty for OS packages.
    pub path: String,
    /// The unit patched as a whole (environment, project, package database),
    /// relative to the image root.
    pub scope: String,
    /// Whether the plugin can move this copy.
    pub origin: Origin,
    /// Facts the plugin wants back at plan time.
    pub attributes: Vec<(String, String)>,
}

impl InstalledPackage {
    /// The value of an attribute, if set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the host knows about the image being patched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl ImageContext {
    /// The value of a variable of the image's environment.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A command the host runs inside the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments; looked up in the image's `PATH` without a slash.
    pub argv: Vec<String>,
    /// Variables added to the image's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the image's own when `None`.
    pub cwd: Option<String>,
    /// User to run as; root when `None`.
    pub user: Option<String>,
}

impl Command {
    /// A command from its program and arguments.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Command::default()
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the command as this user (a name or uid of the image's
    /// `/etc/passwd`) instead of root.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// A file the host writes into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileWrite {
    /// Absolute path inside the image.
    pub path: String,
    /// The whole content.
    pub contents: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// An artifact the host downloads into the staging directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// What to download; must be under an allowed source.
    pub url: String,
    /// File name inside the staging directory.
    pub file_name: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: Option<String>,
}

/// One thing to do in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputMatch {
    /// Any output.
    Any,
    /// Exactly this, ignoring surrounding whitespace.
    Equals(String),
    /// This text somewhere.
    Contains(String),
}

/// A command run after the steps; the task fails unless it ends as expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What the check proves, for people.
    pub description: String,
    /// The command.
    pub command: Command,
    /// The exit code it must end with.
    pub exit_code: i32,
    /// What its standard output must show.
    pub stdout: OutputMatch,
}

/// A unit of work that succeeds or fails as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// What the task does, for people.
    pub description: String,
    /// Indexes into the updates given to `plan` that this task carries out.
    pub updates: Vec<u32>,
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// Checks run after the steps.
    pub checks: Vec<Check>,
}

/// A read-only command run in a throw-away copy of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The plugin's name for the probe, echoed in the answer.
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

/// Answers to the probes a plugin asked for in an earlier call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers(pub Vec<ProbeResult>);

impl Answers {
    /// The answer to the probe with this id.
    pub fn get(&self, id: &str) -> Option<&ProbeResult> {
        self.0.iter().find(|a| a.id == id)
    }

    /// True when no probe has been answered yet (the first call).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The result of `detect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    /// Everything installed that the plugin knows about.
    Packages(Vec<InstalledPackage>),
    /// Run these probes and call again with the answers.
    Probes(Vec<Probe>),
}

/// One copy to move, as the host's policy decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageUpdate {
    /// The copy, as `detect` returned it.
    pub package: InstalledPackage,
    /// Exact for libraries, a minimum for OS packages.
    pub target: String,
    /// The vulnerabilities this move closes.
    pub vulnerabilities: Vec<String>,
}

/// Everything a plan may depend on besides the updates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanContext {
    /// The image.
    pub image: ImageContext,
    /// Where `fetch` steps put files, inside the image; gone after the run.
    pub staging_dir: String,
    /// A CA bundle installers should trust for this run, inside the image.
    pub ca_bundle: Option<String>,
    /// The allowed sources, primary first.
    pub sources: Vec<String>,
    /// Whether run steps have network access.
    pub network: bool,
}

/// The result of `plan`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The tasks, in order.
    Tasks(Vec<Task>),
    /// Run these probes and call again with the answers.
    Probes(Vec<Probe>),
}

/// Why a plugin call failed. The host adds the plugin's name and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The host passed something the plugin cannot use.
    InvalidInput(String),
    /// The image or request is outside what the plugin supports.
    Unsupported(String),
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
