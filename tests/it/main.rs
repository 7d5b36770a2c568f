//! End-to-end tests of salve on real images and reports: one test binary,
//! one module per area.

mod exec;
mod image;
mod npm;
mod pip;
mod plan;
mod plugins;
mod testbed;
