//! The test bed: real test images, real scanner reports, and the checks that
//! judge salve's output.
//!
//! - [`images`] builds the test images from the recipes in `tests/recipes/`
//!   (Debian bookworm from `debootstrap`, then Python and Node.js layers with
//!   old releases that have real advisories) and caches them;
//! - [`inventory`] reads what an image really holds from its layers;
//! - [`reports`] writes Trivy JSON reports for an image from its inventory
//!   and real advisory data, so no test hand-types a version;
//! - [`validate`] checks any image a test produces, structurally and with an
//!   independent tool;
//! - [`require`] makes tests that need root or Docker skip with a reason, or
//!   fail under CI (`SALVE_CI=1`).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use salve_tests::{images, reports, require, validate};
//!
//! if !require::image_builder("example") {
//!     return Ok(());
//! }
//! let python = images::python()?;
//! let report = reports::write_trivy(python, &python.dir.join("trivy.json"))?;
//! validate::image(&python.oci_layout)?;
//! # let _ = report; Ok(())
//! # }
//! ```

pub mod advisories;
pub mod cli;
mod command;
pub mod debian;
pub mod images;
pub mod inventory;
pub mod layout;
pub mod recipe;
pub mod reports;
pub mod require;
pub mod validate;

pub use images::BuiltImage;
