//! End-to-end tests on real images and reports.

mod image;
