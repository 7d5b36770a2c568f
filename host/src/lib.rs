//! salve patches the vulnerable packages inside a container image without
//! rebuilding it.
//!
//! The engine is a pipeline of stages, each a module with one job:
//!
//! - [`report`] reads scanner reports (Trivy, Grype) into findings;
//! - [`image`] opens an image (OCI layout, docker-archive, OCI archive) and
//!   writes the patched one; [`unpack`] turns its layers into directories
//!   and [`layer`] turns the changes back into one new layer;
//! - [`plugin`] loads the ecosystem plugins (WebAssembly components) and
//!   runs them in a sandbox with a memory and time budget;
//! - [`policy`] decides which version each vulnerable package moves to;
//! - [`exec`] runs the plugins' steps inside the image's own userland, on a
//!   copy-on-write snapshot whose changes become the new layer;
//! - [`patch`] drives the stages for `salve patch`.
//!
//! Data moves forward only: no stage reaches into an earlier one's
//! internals. The `salve` binary is a thin command line over this library.

pub mod exec;
pub mod fetch;
pub mod image;
pub mod layer;
pub mod patch;
pub mod plugin;
pub mod policy;
pub mod report;
pub mod session;
pub mod target;
pub mod unpack;
