//! `testbed`: builds the test images, writes their reports, validates images.
//!
//! ```text
//! cargo run -p salve-tests --bin testbed -- build python
//! cargo run -p salve-tests --bin testbed -- report python -o report.json
//! cargo run -p salve-tests --bin testbed -- validate oci/ image.tar
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use salve_tests::{images, recipe, reports, validate};

/// Builds salve's test images, writes their Trivy reports, validates images.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds images (all recipes when none is named) and prints where they are.
    Build {
        /// Recipe names from tests/recipes/.
        recipes: Vec<String>,
    },
    /// Writes the Trivy report of a recipe's image.
    Report {
        /// Recipe name.
        recipe: String,
        /// Output file; stdout when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Validates OCI layouts or docker-archives.
    Validate {
        /// Image paths.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    match Cli::parse().command {
        Command::Build { recipes } => {
            let names: Vec<String> = if recipes.is_empty() {
                recipe::names().map(str::to_owned).collect()
            } else {
                recipes
            };
            for name in names {
                let image = images::build(&name).with_context(|| format!("building {name}"))?;
                println!(
                    "{}\t{}\t{}",
                    image.name,
                    image.oci_ref(),
                    image.docker_archive_ref()
                );
            }
        }
        Command::Report { recipe, output } => {
            let image = images::build(&recipe).with_context(|| format!("building {recipe}"))?;
            let report = reports::trivy_for(&image)?;
            match output {
                Some(path) => {
                    reports::write(&path, &report)?;
                }
                None => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
        Command::Validate { paths } => {
            for path in paths {
                validate::image(&path)?;
                println!("{}: valid", path.display());
            }
        }
    }
    Ok(())
}
