//! End-to-end tests of salve on real images and reports.

mod testbed;
