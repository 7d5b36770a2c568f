//! Running the `salve` binary that cargo built for this test run.

use std::path::PathBuf;
use std::process::Command;

/// The `salve` binary beside the running test or tool: `cargo test
/// --workspace` builds it before any test runs (it sits in `target/<profile>/`,
/// tests in `target/<profile>/deps/`).
///
/// # Panics
///
/// When it is not there: the message says how to build it.
pub fn salve_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let dir = exe.parent().expect("the executable's directory");
    for candidate in [dir.join("salve"), dir.parent().unwrap_or(dir).join("salve")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no salve binary next to {}: run the tests with `cargo test --workspace`, which builds it",
        exe.display()
    );
}

/// A command running that binary.
pub fn salve() -> Command {
    Command::new(salve_path())
}
