//! Running the `salve` binary, built for this test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `salve` binary of this build: built once per test process with the
/// same cargo and profile as the running test (cargo builds a package's
/// binaries for integration tests only in that package, and these tests
/// live in `tests/`, not `host/`).
///
/// # Panics
///
/// When cargo cannot build it: the test cannot run without it.
pub fn salve_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(build).clone()
}

/// A command running that binary.
pub fn salve() -> Command {
    Command::new(salve_path())
}

fn build() -> PathBuf {
    // target/<profile>/deps/<test> or target/<profile>/<tool>.
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe.parent().expect("the executable's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("the profile directory");
    }
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).args([
        "build", "--quiet", "--locked", "-p", "salve", "--bin", "salve",
    ]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .status()
        .expect("running cargo to build the salve binary");
    assert!(
        status.success(),
        "building the salve binary failed: {status}"
    );
    let path = dir.join("salve");
    assert!(
        path.is_file(),
        "{} is missing after cargo build",
        path.display()
    );
    path
}
