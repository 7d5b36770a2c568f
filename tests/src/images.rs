//! The test-image builder and its cache.
//!
//! [`python`], [`node`] and [`debian`] return the test images, building them
//! on first use; [`build`] builds any recipe by name. Images are made the way
//! real ones are: the base is a `debootstrap` root file system imported as
//! one layer, and each recipe step runs in a container of the image so far
//! (`docker run --network host`) and is committed as one more layer. During
//! a step only, a directory with the host's CA bundle and an environment
//! file is mounted at `/dev/salve-build` (a tmpfs, so never part of a
//! layer); the environment file points pip and npm at the bundle.
//!
//! Each built image is exported as a docker-archive (`docker save`) and an
//! OCI layout with gzip layers (`skopeo copy`), scanned for what it holds
//! ([`Inventory`]), checked against its recipe's `[[expect]]` list, checked
//! by [`validate::image`](crate::validate::image), and stored under
//! `/var/tmp/salve-testbed/<recipe>-<key>/` (or `$SALVE_TESTBED_CACHE`),
//! where the key hashes the recipe, its parents and the builder version.
//! The image is built in a temporary directory next to it and renamed when
//! complete; a second builder waits on a lock file instead of racing. The
//! cache is never required: a missing entry is rebuilt.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::debian::{self, Updates};
use crate::inventory::{self, Inventory};
use crate::recipe::{self, Recipe};
use crate::{command, validate};

/// The cache directory unless `SALVE_TESTBED_CACHE` names another.
pub const DEFAULT_CACHE: &str = "/var/tmp/salve-testbed";

/// Where build steps see the build directory (CA bundle, scripts).
const BUILD_MOUNT: &str = "/dev/salve-build";

/// The environment every build step sources.
const BUILD_ENV: &str = include_str!("scripts/build-env.sh");

/// The scripts the builder runs in containers; part of every cache key.
pub(crate) const SCRIPTS: [&str; 2] = [BUILD_ENV, debian::SCRIPT];

/// An image that could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipe is unknown or malformed.
    #[error(transparent)]
    Recipe(#[from] recipe::Error),
    /// A file of the cache or the build could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A host tool failed.
    #[error("building image {recipe}")]
    Tool {
        /// The recipe being built.
        recipe: String,
        /// The tool's failure.
        #[source]
        source: command::Error,
    },
    /// A cached `build.json` does not parse.
    #[error("{path}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The built image could not be scanned.
    #[error("scanning image {recipe}")]
    Scan {
        /// The recipe being built.
        recipe: String,
        /// What went wrong.
        #[source]
        source: inventory::Error,
    },
    /// The built image lacks a package its recipe expects.
    #[error("image {recipe} does not hold what tests/recipes/{recipe}.toml expects: {problem}")]
    Unexpected {
        /// The recipe being built.
        recipe: String,
        /// The missing or different packages.
        problem: String,
    },
    /// The container's Debian update listing does not parse.
    #[error("listing Debian updates for image {recipe}")]
    Updates {
        /// The recipe being built.
        recipe: String,
        /// What went wrong.
        #[source]
        source: debian::Error,
    },
    /// The built image fails validation.
    #[error("validating image {recipe}")]
    Invalid {
        /// The recipe being built.
        recipe: String,
        /// What the validator found.
        #[source]
        source: validate::Error,
    },
}

/// A built test image and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltImage {
    /// The recipe's name.
    pub name: String,
    /// The cache key (a hash of the recipe and the builder).
    pub key: String,
    /// The Docker tag, also the docker-archive's `RepoTags` entry.
    pub tag: String,
    /// The tag inside the OCI layout.
    pub oci_tag: String,
    /// The config digest (`sha256:...`), Docker's image id.
    pub image_id: String,
    /// The cache directory holding the image.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The OCI image layout directory (gzip layers).
    #[serde(skip)]
    pub oci_layout: PathBuf,
    /// The docker-archive tarball (`docker save`).
    #[serde(skip)]
    pub docker_archive: PathBuf,
    /// What is installed where, read from the image's layers.
    pub inventory: Inventory,
    /// What bookworm-security and bookworm-updates offer, at build time.
    pub debian_updates: Updates,
}

impl BuiltImage {
    /// The OCI layout reference, `oci:DIR:TAG`.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.oci_layout.display(), self.oci_tag)
    }

    /// The docker-archive reference, `docker-archive:PATH`.
    pub fn docker_archive_ref(&self) -> String {
        format!("docker-archive:{}", self.docker_archive.display())
    }

    /// Makes sure the Docker daemon has this image under [`BuiltImage::tag`],
    /// loading the docker-archive if it does not.
    pub fn load_into_docker(&self) -> Result<(), Error> {
        let tool = |source| Error::Tool {
            recipe: self.name.clone(),
            source,
        };
        let inspect = ["image", "inspect", "--format", "{{.Id}}", &self.tag];
        let present = command::output("docker", inspect).is_ok_and(|id| id.trim() == self.image_id);
        if !present {
            tracing::debug!(image = %self.name, "loading the docker-archive into the daemon");
            let archive = self.docker_archive.display().to_string();
            command::output("docker", ["load", "--quiet", "--input", &archive]).map_err(tool)?;
        }
        Ok(())
    }

    fn locate(mut self, dir: &Path) -> Self {
        self.oci_layout = dir.join("oci");
        self.docker_archive = dir.join("image.tar");
        self.dir = dir.to_owned();
        self
    }
}

/// The Debian bookworm base image.
pub fn debian() -> Result<&'static BuiltImage, Arc<Error>> {
    static IMAGE: OnceLock<Result<BuiltImage, Arc<Error>>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build("debian-bookworm").map_err(Arc::new))
        .as_ref()
        .map_err(Arc::clone)
}

/// The Python image (see `tests/recipes/python.toml`).
pub fn python() -> Result<&'static BuiltImage, Arc<Error>> {
    static IMAGE: OnceLock<Result<BuiltImage, Arc<Error>>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build("python").map_err(Arc::new))
        .as_ref()
        .map_err(Arc::clone)
}

/// The Node.js image (see `tests/recipes/node.toml`).
pub fn node() -> Result<&'static BuiltImage, Arc<Error>> {
    static IMAGE: OnceLock<Result<BuiltImage, Arc<Error>>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build("node").map_err(Arc::new))
        .as_ref()
        .map_err(Arc::clone)
}

/// The cache directory.
pub fn cache_root() -> PathBuf {
    std::env::var_os("SALVE_TESTBED_CACHE")
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

/// Returns the image of recipe `name` from the cache, building it (and its
/// parents) first when it is not there.
pub fn build(name: &str) -> Result<BuiltImage, Error> {
    let recipe = recipe::load(name)?;
    let key = recipe.key()?;
    let root = cache_root();
    let dir = root.join(format!("{name}-{key}"));
    if let Some(image) = cached(&dir)? {
        return Ok(image);
    }

    // The parent first, under its own lock, so no process holds two locks.
    let parent = recipe.parent.as_deref().map(build).transpose()?;
    fs_err::create_dir_all(&root)?;
    let _lock = Lock::take(&root.join(format!(".{name}-{key}.lock")))?;
    if let Some(image) = cached(&dir)? {
        return Ok(image);
    }

    remove_stale_staging(&root, &format!(".{name}-{key}."))?;

    let started = std::time::Instant::now();
    tracing::info!(image = name, %key, "building test image");
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-{key}."))
        .tempdir_in(&root)?;
    let image = Builder {
        recipe: &recipe,
        key: &key,
        staging: staging.path(),
    }
    .build(parent.as_ref())?;

    // Complete: move it into place. The staging directory's name is unique,
    // so a leftover from a killed build never collides.
    let staged = staging.keep();
    fs_err::rename(&staged, &dir)?;
    tracing::info!(
        image = name,
        seconds = started.elapsed().as_secs(),
        "built test image"
    );
    Ok(image.locate(&dir))
}

/// Removes staging directories that killed builds of this key left behind;
/// the caller holds the key's lock, so none of them is in use.
fn remove_stale_staging(root: &Path, prefix: &str) -> Result<(), Error> {
    for entry in fs_err::read_dir(root)? {
        let entry = entry?;
        let stale = entry.file_name().to_string_lossy().starts_with(prefix);
        if stale && entry.file_type()?.is_dir() {
            tracing::debug!(dir = %entry.path().display(), "removing a killed build's staging directory");
            fs_err::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// The image in `dir` if a complete build is there.
fn cached(dir: &Path) -> Result<Option<BuiltImage>, Error> {
    let metadata = dir.join("build.json");
    if !metadata.is_file() {
        return Ok(None);
    }
    let bytes = fs_err::read(&metadata)?;
    let image: BuiltImage = serde_json::from_slice(&bytes).map_err(|source| Error::Metadata {
        path: metadata,
        source,
    })?;
    Ok(Some(image.locate(dir)))
}

/// One build in its staging directory.
struct Builder<'a> {
    recipe: &'a Recipe,
    key: &'a str,
    staging: &'a Path,
}

impl Builder<'_> {
    fn build(&self, parent: Option<&BuiltImage>) -> Result<BuiltImage, Error> {
        let name = &self.recipe.name;
        let work_tag = format!("salve-testbed/{name}:{}", self.key);
        let mount = self.staging.join("build");
        fs_err::create_dir_all(&mount)?;
        fs_err::write(mount.join("env.sh"), BUILD_ENV)?;
        fs_err::write(mount.join("debian-updates.sh"), debian::SCRIPT)?;
        fs_err::copy(host_ca_bundle(), mount.join("ca.crt"))?;

        // The layers.
        match (parent, &self.recipe.debootstrap) {
            (None, Some(base)) => self.import_base(base, &work_tag)?,
            (Some(parent), None) => self.run_steps(parent, &work_tag, &mount)?,
            // recipe::load rejects these; say so rather than build nonsense.
            _ => {
                let problem = "needs either `parent` or `[debootstrap]`".to_owned();
                return Err(recipe::Error::Invalid {
                    name: name.clone(),
                    problem,
                }
                .into());
            }
        }
        self.docker(["tag", &work_tag, &self.recipe.tag])?;

        // The exports: docker-archive as Docker writes it, OCI layout with
        // gzip layers as a registry serves them.
        let archive = self.staging.join("image.tar");
        let layout = self.staging.join("oci");
        self.docker([
            "save",
            "--output",
            &archive.display().to_string(),
            &self.recipe.tag,
        ])?;
        // `docker save` writes mode 0600; other users' tests read it too.
        let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        fs_err::set_permissions(&archive, readable)?;
        command::output(
            "skopeo",
            [
                "copy".to_owned(),
                "--quiet".to_owned(),
                format!("docker-archive:{}", archive.display()),
                format!("oci:{}:{}", layout.display(), self.recipe.oci_tag()),
            ],
        )
        .map_err(|source| self.tool(source))?;

        // What it holds, checked against the recipe, and what Debian offers.
        let inventory = inventory::scan(&layout, None).map_err(|source| Error::Scan {
            recipe: name.clone(),
            source,
        })?;
        self.check_expectations(&inventory)?;
        let debian_updates = self.debian_updates(&work_tag, &mount)?;

        for path in [&layout, &archive] {
            validate::image(path).map_err(|source| Error::Invalid {
                recipe: name.clone(),
                source,
            })?;
        }
        fs_err::remove_dir_all(&mount)?;

        let image = BuiltImage {
            name: name.clone(),
            key: self.key.to_owned(),
            tag: self.recipe.tag.clone(),
            oci_tag: self.recipe.oci_tag().to_owned(),
            image_id: inventory.image_id.clone(),
            dir: PathBuf::new(),
            oci_layout: PathBuf::new(),
            docker_archive: PathBuf::new(),
            inventory,
            debian_updates,
        };
        let metadata = serde_json::to_vec_pretty(&image).map_err(|source| Error::Metadata {
            path: self.staging.join("build.json"),
            source,
        })?;
        fs_err::write(self.staging.join("build.json"), metadata)?;
        fs_err::write(self.staging.join("recipe.toml"), &self.recipe.source)?;
        Ok(image)
    }

    /// debootstrap, the recipe's setup script, then `docker import`.
    fn import_base(&self, base: &recipe::Debootstrap, work_tag: &str) -> Result<(), Error> {
        let rootfs = self.staging.join("rootfs");
        let variant = format!("--variant={}", base.variant);
        let target = rootfs.display().to_string();
        command::output(
            "debootstrap",
            [variant.as_str(), &base.suite, &target, &base.mirror],
        )
        .map_err(|source| self.tool(source))?;

        let mut setup = Command::new("/bin/sh");
        setup.args(["-eu", "-c", &base.setup]).current_dir(&rootfs);
        command::run(&mut setup).map_err(|source| self.tool(source))?;

        // `tar | docker import`, through a shell: the pipe is the point.
        let message = format!(
            "debootstrap --variant={} {} {}",
            base.variant, base.suite, base.mirror
        );
        let script = r#"dir=$1; message=$2; tag=$3; shift 3
tar --numeric-owner --xattrs -C "$dir" -c . | docker import --message "$message" "$@" - "$tag""#;
        let mut import = Command::new("/bin/sh");
        import.args(["-euc", script, "import", &target, &message, work_tag]);
        for change in &base.changes {
            import.args(["--change", change]);
        }
        command::run(&mut import).map_err(|source| self.tool(source))?;
        fs_err::remove_dir_all(&rootfs)?;
        Ok(())
    }

    /// One container and one commit per step, on top of the parent image.
    fn run_steps(&self, parent: &BuiltImage, work_tag: &str, mount: &Path) -> Result<(), Error> {
        parent.load_into_docker()?;
        let parent_cmd = self.docker([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}",
            &parent.tag,
        ])?;
        let volume = format!("{}:{BUILD_MOUNT}:ro", mount.display());

        let mut current = parent.tag.clone();
        for (index, step) in self.recipe.steps.iter().enumerate() {
            let container = format!("salve-testbed-{}-{}-{index}", self.recipe.name, self.key);
            let _ = command::output("docker", ["rm", "--force", &container]);
            let _cleanup = Container(container.clone());

            tracing::info!(image = %self.recipe.name, step = %step.comment, "running build step");
            let script = format!(". {BUILD_MOUNT}/env.sh\n{}", step.run.trim());
            self.docker([
                "run",
                "--name",
                &container,
                "--network",
                "host",
                "--volume",
                &volume,
                &current,
                "/bin/sh",
                "-c",
                &script,
            ])?;

            // Commit keeps the container's Cmd (the step's shell); restore
            // the parent's unless the step sets its own.
            let mut commit = vec![
                "commit".to_owned(),
                "--message".to_owned(),
                step.comment.clone(),
            ];
            let changes = std::iter::once(format!("CMD {}", parent_cmd.trim()))
                .chain(step.changes.iter().cloned());
            for change in changes {
                commit.extend(["--change".to_owned(), change]);
            }
            commit.extend([container.clone(), work_tag.to_owned()]);
            self.docker(commit)?;
            current = work_tag.to_owned();
        }
        Ok(())
    }

    /// Every `[[expect]]` package is installed, at that version, in that dir.
    fn check_expectations(&self, inventory: &Inventory) -> Result<(), Error> {
        let mut problems = Vec::new();
        for ((ecosystem, dir), packages) in self.recipe.expected() {
            for (name, version) in packages {
                match inventory.find(ecosystem, dir, name) {
                    Some(found) if found.version == version && found.name == name => {}
                    Some(found) => problems.push(format!(
                        "{name} {version} in {dir}: found {} {}",
                        found.name, found.version
                    )),
                    None => problems.push(format!("{name} {version} in {dir}: missing")),
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Unexpected {
            recipe: self.recipe.name.clone(),
            problem: problems.join("; "),
        })
    }

    /// Runs `scripts/debian-updates.sh` in a throw-away container.
    fn debian_updates(&self, work_tag: &str, mount: &Path) -> Result<Updates, Error> {
        let volume = format!("{}:{BUILD_MOUNT}:ro", mount.display());
        let script = format!("{BUILD_MOUNT}/debian-updates.sh");
        let output = self.docker([
            "run",
            "--rm",
            "--network",
            "host",
            "--volume",
            &volume,
            work_tag,
            "/bin/sh",
            &script,
        ])?;
        fs_err::write(self.staging.join("debian-updates.tsv"), &output)?;
        debian::parse(&output).map_err(|source| Error::Updates {
            recipe: self.recipe.name.clone(),
            source,
        })
    }

    fn docker<I, S>(&self, args: I) -> Result<String, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        command::output("docker", args).map_err(|source| self.tool(source))
    }

    fn tool(&self, source: command::Error) -> Error {
        Error::Tool {
            recipe: self.recipe.name.clone(),
            source,
        }
    }
}

/// The host's CA bundle, which trusts the TLS-intercepting proxy if any:
/// `$SSL_CERT_FILE`, else Debian's bundle.
pub fn host_ca_bundle() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE").map_or_else(
        || PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        PathBuf::from,
    )
}

/// Removes a build container when the step is over, however it ended.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(error) = command::output("docker", ["rm", "--force", &self.0]) {
            tracing::debug!(container = %self.0, %error, "removing build container");
        }
    }
}

/// An exclusive lock on a file, released when dropped.
struct Lock(std::fs::File);

impl Lock {
    fn take(path: &Path) -> Result<Self, Error> {
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let file = file.into_file();
        tracing::debug!(lock = %path.display(), "waiting for the build lock");
        file.lock().map_err(|error| {
            io::Error::new(error.kind(), format!("locking {}: {error}", path.display()))
        })?;
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
