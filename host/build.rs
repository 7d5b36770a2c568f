//! Builds the bundled plugins for `wasm32-wasip2` and embeds them.
//!
//! Artifact dependencies (`-Z bindeps`) are still unstable, so this script
//! runs a nested `cargo build` of the plugin crates, with its own target
//! directory (sharing the outer one deadlocks on cargo's lock in release
//! builds), and writes `bundled.rs` into `OUT_DIR` with one
//! `include_bytes!` per plugin. Plugins are always built with the `plugin`
//! profile, whatever the host's profile, so debug and release hosts share
//! one build.
//!
//! `SALVE_SKIP_PLUGINS=1` (or building docs on docs.rs) embeds no plugins,
//! for tools that run build scripts without needing them (rust-analyzer,
//! `cargo doc`).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled plugins: (name the host knows them by, cargo package).
const BUNDLED: &[(&str, &str)] = &[("pip", "salve-plugin-pip"), ("npm", "salve-plugin-npm")];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-env-changed=SALVE_SKIP_PLUGINS");

    let skip = env::var_os("SALVE_SKIP_PLUGINS").is_some_and(|v| v == "1")
        || env::var_os("DOCS_RS").is_some();
    let mut generated = String::from("/// Bundled plugins: (name, component bytes).\n");
    generated.push_str("pub const BUNDLED: &[(&str, &[u8])] = &[\n");
    if skip {
        println!("cargo:warning=SALVE_SKIP_PLUGINS=1: no plugins are embedded in this build");
    } else {
        let target_dir = workspace.join("target").join("wasm-plugins");
        build_plugins(&workspace, &target_dir);
        let artifacts = target_dir.join("wasm32-wasip2").join("plugin");
        for (name, package) in BUNDLED {
            let file = package.replace('-', "_");
            let wasm = artifacts.join(format!("{file}.wasm"));
            let copy = out_dir.join(format!("{name}.wasm"));
            std::fs::copy(&wasm, &copy)
                .unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
            rerun_on_sources(&artifacts.join(format!("{file}.d")));
            writeln!(
                generated,
                "    ({name:?}, include_bytes!({:?})),",
                copy.display()
            )
            .unwrap();
        }
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), generated).expect("writing bundled.rs");
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
}

/// Runs the nested cargo build of every bundled plugin.
fn build_plugins(workspace: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"])
        .arg("--target-dir")
        .arg(target_dir);
    for (_, package) in BUNDLED {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers are for the host target; the
    // nested build must not inherit them (sccache hangs on wasm builds).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running the nested cargo build of the plugins");
    if !status.success() {
        panic!(
            "building the bundled plugins for wasm32-wasip2 failed ({status}); \
             is the target installed? `rustup toolchain install` reads rust-toolchain.toml"
        );
    }
}

/// Rebuilds when any source file of a plugin changes, read from the
/// dep-info file cargo wrote next to the artifact.
fn rerun_on_sources(dep_info: &Path) {
    let Ok(text) = std::fs::read_to_string(dep_info) else {
        return;
    };
    let Some((_, deps)) = text.split_once(": ") else {
        return;
    };
    // Paths are space-separated; spaces inside paths are escaped as "\ ".
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' | '\n' => {
                if !current.is_empty() {
                    println!("cargo:rerun-if-changed={current}");
                    current.clear();
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        println!("cargo:rerun-if-changed={current}");
    }
}
