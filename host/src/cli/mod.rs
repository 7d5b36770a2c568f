//! Command-line arguments and the subcommands.

mod choices;
pub mod logging;
mod patch;
mod plan;
mod plugins;
mod run;
mod sandbox;
mod summary;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use salve::plugin;

/// Patch the vulnerable packages inside container images without
/// rebuilding them.
///
/// Hand salve an image and a scanner report (Trivy or Grype JSON); it moves
/// the vulnerable OS packages and application libraries to fixed versions
/// inside the image's own userland and writes the same image plus one layer.
#[derive(Debug, Parser)]
#[command(
    name = "salve",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: Global,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// More detail on stderr (-v decisions, -vv everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print a JSON document on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// A directory of external plugins (`*.wasm`); repeatable. Directories
    /// in SALVE_PLUGIN_PATH (colon-separated) are searched after these.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    pub plugin_dirs: Vec<PathBuf>,

    /// Where salve caches unpacked layers and compiled plugins
    /// [default: $XDG_CACHE_HOME/salve or ~/.cache/salve].
    #[arg(long, value_name = "DIR", env = "SALVE_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

impl Global {
    /// The cache directory in effect.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("salve")
        })
    }

    /// Plugin loading options from the flags and the environment.
    pub fn plugin_options(&self) -> plugin::Options {
        let mut plugin_dirs = self.plugin_dirs.clone();
        if let Some(path) = std::env::var_os("SALVE_PLUGIN_PATH") {
            plugin_dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
        }
        plugin::Options {
            plugin_dirs,
            cache_dir: Some(self.cache_dir().join("plugins")),
            ..plugin::Options::default()
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Patch an image: move the vulnerable packages a report names to fixed
    /// versions, inside the image, and write it plus one new layer.
    Patch(patch::PatchArgs),
    /// Show what salve would do for each finding of a report, without
    /// changing any image.
    Plan(plan::PlanArgs),
    /// List the loaded plugins: name, version, kind, report types, origin.
    Plugins(plugins::PluginsArgs),
    /// Run one command in an image and write the image plus what it
    /// changed (a debugging aid for the executor; needs root and runc).
    Run(Box<run::RunArgs>),
}

/// A command line whose flags do not fit together (exit 2, as for clap's
/// own usage errors).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(pub anyhow::Error);

/// How the process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything asked for was done (or there was nothing to do).
    Success,
    /// 1: an error; nothing was written.
    Failure,
    /// 3: output was written, but something failed and was skipped
    /// (`--ignore-errors`), or a plugin could not be loaded.
    Partial,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        match e {
            Exit::Success => 0.into(),
            Exit::Failure => 1.into(),
            Exit::Partial => 3.into(),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Patch(args) => patch::run(&cli.global, &args),
        Command::Plan(args) => plan::run(&cli.global, &args),
        Command::Plugins(args) => plugins::run(&cli.global, &args),
        Command::Run(args) => run::run(&cli.global, &args),
    }
}
