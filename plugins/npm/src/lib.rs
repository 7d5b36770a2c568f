//! salve plugin for Node.js packages installed with npm.
//!
//! Node packages sit in three kinds of place: an application's
//! `node_modules` (direct and transitive dependencies, nested copies
//! included), the global directory `npm install -g` fills, and npm's own
//! bundled tree. Copa swaps tarballs over every copy and leaves the
//! lockfile behind; this plugin has npm itself move each copy, so the
//! project stays consistent: `package.json`, the lockfile and `node_modules`
//! agree afterwards, and `npm ci` would rebuild the same tree.
//!
//! - [`version`]: node semver, `v` prefixes tolerated;
//! - [`project`], [`tree`], [`lockfile`], [`manifest`], [`dpkg`],
//!   [`tools`], [`detect`]: where trees live, what each copy is, who owns
//!   it (npm, apt, yarn, pnpm, npm's own bundle), and which npm the image
//!   runs;
//! - [`registry`]: the releases a registry offers;
//! - [`plan`], [`spec`], [`script`]: overrides for transitive
//!   dependencies, new specs for direct ones, `npm install -g` for global
//!   packages, and the checks that prove the result.

pub mod detect;
pub mod dpkg;
pub mod lockfile;
pub mod manifest;
pub mod name;
pub mod plan;
pub mod project;
pub mod registry;
pub mod script;
pub mod spec;
pub mod tools;
pub mod tree;
pub mod version;

use std::cmp::Ordering;

use salve_plugin_sdk::prelude::*;

use crate::detect::attr;
use crate::tools::Tools;

/// An error and its causes in one line (`a: b: c`), for the contract's
/// text-only errors.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// A failure with its causes, as the contract carries it.
pub(crate) fn failed(error: impl std::error::Error) -> Error {
    Error::Failed(chain(&error))
}

/// The npm plugin.
pub struct Npm;

impl Plugin for Npm {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "npm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PackageKind::Library,
            // Trivy's installed-package type and Grype's; Trivy's `npm`,
            // `yarn` and `pnpm` types describe lockfiles in source trees.
            report_types: vec!["node-pkg".into(), "npm".into()],
            default_sources: vec![plan::DEFAULT_REGISTRY.into()],
            always_latest: vec![],
        }
    }

    fn parse_version(v: &str) -> Result<VersionInfo, String> {
        version::info(v)
    }

    fn compare(a: &str, b: &str) -> Result<Ordering, String> {
        version::compare(a, b)
    }

    fn classify(a: &str, b: &str) -> Result<Bump, String> {
        version::classify(a, b)
    }

    fn detect(image: &Image, context: &ImageContext, answers: &Answers) -> Result<Detected, Error> {
        if answers.is_empty()
            && let Some(probes) = Tools::probes(image, context)
        {
            return Ok(Detected::Probes(probes));
        }
        let tools = Tools::from_answers(answers);
        detect::detect(image, &tools).map(Detected::Packages)
    }

    fn releases(
        package: &InstalledPackage,
        sources: &[String],
    ) -> Result<Option<Vec<Release>>, Error> {
        registry::releases(
            &package.name,
            package.attribute(attr::NODE_VERSION),
            sources,
        )
    }

    fn plan(
        image: &Image,
        updates: &[PackageUpdate],
        context: &PlanContext,
        answers: &Answers,
    ) -> Result<Planned, Error> {
        plan::plan(image, updates, context, answers)
    }
}

salve_plugin_sdk::export_plugin!(Npm);
