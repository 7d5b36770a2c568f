//! Logging to stderr through `tracing`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::Global;

/// Sets up the subscriber: warnings by default, `-v` for salve's decisions,
/// `-vv` for everything salve does, `-q` for errors only; `RUST_LOG`
/// overrides all of it.
pub fn init(global: &Global) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,salve=debug",
        (false, _) => "debug,salve=trace,cranelift_codegen=info,wasmtime=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(global.verbose > 1)
        .without_time()
        .init();
}
