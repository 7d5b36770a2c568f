//! Prerequisites of tests that need root, a Docker daemon or host tools.
//!
//! A test that cannot run on this machine says why and returns early:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! if !salve_tests::require::image_builder("python_image_is_valid") {
//!     return Ok(());
//! }
//! let image = salve_tests::images::python()?;
//! # let _ = image; Ok(())
//! # }
//! ```
//!
//! Under CI (`SALVE_CI=1`, set by `.ci/run`) a missing prerequisite is a
//! failure instead of a skip, so that a broken machine cannot pass by
//! skipping everything.
//!
//! This module writes to stderr on purpose: the skip reason is for the person
//! reading the test output, and the test harness captures it per test.

use std::process::{Command, Stdio};

/// The environment variable that turns a missing prerequisite into a failure.
pub const CI_VARIABLE: &str = "SALVE_CI";

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Effective user id 0: mounts, namespaces, debootstrap, the Docker socket.
    Root,
    /// A Docker daemon that answers `docker info`.
    Docker,
    /// The `debootstrap` tool, for the Debian base image.
    Debootstrap,
    /// `skopeo`, which exports OCI layouts and inspects images independently.
    Skopeo,
    /// `umoci`, an independent reader of OCI layouts.
    Umoci,
}

impl Need {
    /// Whether this machine has it, and if not, why.
    pub fn check(self) -> Result<(), String> {
        match self {
            Need::Root if rustix::process::geteuid().is_root() => Ok(()),
            Need::Root => Err("it must run as root".to_owned()),
            Need::Docker => tool_runs("docker", &["info", "--format", "{{.ServerVersion}}"])
                .map_err(|why| format!("no Docker daemon answers `docker info` ({why})")),
            Need::Debootstrap => tool_runs("debootstrap", &["--version"])
                .map_err(|why| format!("debootstrap is not installed ({why})")),
            Need::Skopeo => tool_runs("skopeo", &["--version"])
                .map_err(|why| format!("skopeo is not installed ({why})")),
            Need::Umoci => tool_runs("umoci", &["--version"])
                .map_err(|why| format!("umoci is not installed ({why})")),
        }
    }
}

/// Everything the test-image builder needs: root, Docker, debootstrap, skopeo.
pub const IMAGE_BUILDER: &[Need] = &[Need::Root, Need::Docker, Need::Debootstrap, Need::Skopeo];

/// Whether `test` can run here; prints why not, or panics under CI.
///
/// # Panics
///
/// When a need is missing and `SALVE_CI=1`: the panic is the test failure.
pub fn all(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|need| need.check().err()).collect();
    if missing.is_empty() {
        return true;
    }

    let why = missing.join("; ");
    if in_ci() {
        panic!("{test}: {CI_VARIABLE}=1 and a prerequisite is missing: {why}");
    }
    eprintln!("skipping {test}: {why} (set {CI_VARIABLE}=1 to make this a failure)");
    false
}

/// Whether `test` can build test images here (see [`IMAGE_BUILDER`]).
pub fn image_builder(test: &str) -> bool {
    all(test, IMAGE_BUILDER)
}

/// Whether `test` can run as root here.
pub fn root(test: &str) -> bool {
    all(test, &[Need::Root])
}

/// Whether `test` can talk to a Docker daemon here.
pub fn docker(test: &str) -> bool {
    all(test, &[Need::Docker])
}

/// Whether this run is under CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var(CI_VARIABLE).is_ok_and(|value| value == "1")
}

fn tool_runs(program: &str, args: &[&str]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| format!("running {program}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} exited with {status}"))
    }
}
