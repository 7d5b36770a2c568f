//! End-to-end tests of salve: one test binary, one module per area.

mod exec;
mod plugins;
