//! salve plugin for Python packages installed with pip.
//!
//! It finds every Python environment in an image (system interpreters,
//! virtual environments, user sites) and every distribution in them, tells
//! apart what pip may move from what apt, apk or rpm installed and from
//! copies vendored inside other packages, orders and classifies PEP 440
//! versions, asks the index (PEP 691 JSON or PEP 503 HTML) which versions
//! install in each environment, and plans one guarded `pip install` per
//! package and environment.
//!
//! The pipeline stages are modules: [`inventory`] (detect: [`environment`],
//! [`distribution`], [`ospackages`]), [`releases`] ([`index`],
//! [`filename`], [`platform`]), and [`plan`] (with `guard.py`, the script
//! that runs beside pip in the image, and [`bootstrap`], the pip brought to
//! environments without one). [`version`] and [`name`] hold PEP 440 and
//! PEP 503/508.
//!
//! The `scope` of every package is its environment's install directory: the
//! site directory `pip install` writes to for that interpreter and user
//! (`usr/local/lib/python3.11/dist-packages` for Debian's python3.11,
//! `opt/venv/lib/python3.11/site-packages` for a venv).

use std::cmp::Ordering;

use salve_plugin_sdk::prelude::*;

pub mod bootstrap;
pub mod distribution;
pub mod environment;
pub mod filename;
pub mod index;
pub mod inventory;
pub mod name;
pub mod ospackages;
pub mod plan;
pub mod platform;
pub mod releases;
pub mod version;

/// Where the plugin looks for releases unless the user names other
/// sources: PyPI's simple index, and the host its files live on.
pub const DEFAULT_SOURCES: [&str; 2] = [
    "https://pypi.org/simple/",
    "https://files.pythonhosted.org/",
];

/// The pip plugin.
pub struct Pip;

impl Plugin for Pip {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "pip".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PackageKind::Library,
            // Trivy's installed-package type and Grype's. Trivy's `pip`,
            // `pipenv` and `poetry` describe lock files of source trees,
            // not what is installed, and are not taken.
            report_types: vec!["python-pkg".into(), "python".into()],
            default_sources: DEFAULT_SOURCES.map(String::from).to_vec(),
            always_latest: vec!["certifi".into()],
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

    /// PEP 503: `Werkzeug`, `werkzeug` and `jaraco.context`,
    /// `jaraco-context` name one package each.
    fn package_key(name: &str) -> String {
        name::normalize(name)
    }

    fn detect(image: &Image, context: &ImageContext, _: &Answers) -> Result<Detected, Error> {
        let inventory = inventory::scan(image, context)?;
        host::debug(&format!(
            "found {} Python environment(s) holding {} distribution(s)",
            inventory.environments.len(),
            inventory.copies.len()
        ));
        Ok(Detected::Packages(inventory.packages()))
    }

    fn releases(
        package: &InstalledPackage,
        sources: &[String],
    ) -> Result<Option<Vec<Release>>, Error> {
        if !name::is_valid(&package.key) {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a valid Python project name",
                package.key
            )));
        }
        if sources.is_empty() {
            host::warn(&format!(
                "no index to ask about {}: no sources are configured",
                package.key
            ));
            return Ok(None);
        }
        let Some(target) = releases::Target::of(package) else {
            host::debug(&format!(
                "{} at /{}: no Python version known, so releases cannot be judged",
                package.key, package.path
            ));
            return Ok(None);
        };

        // pip takes a version from any of its indexes, so every index is
        // asked; one that cannot be asked leaves the report to decide.
        let mut offered = Vec::new();
        for index_url in index::indexes(sources) {
            match index::fetch(index_url, &package.key) {
                Ok(index::Fetched::Page(project)) => releases::merge(
                    &mut offered,
                    releases::evaluate(&project, &package.key, &target),
                ),
                Ok(index::Fetched::NotFound) => host::debug(&format!(
                    "{index_url}: the index has no project {}",
                    package.key
                )),
                Ok(index::Fetched::Unreachable(why)) => {
                    host::warn(&format!(
                        "cannot ask {index_url} about {}: {why}",
                        package.key
                    ));
                    return Ok(None);
                }
                Err(e) => return Err(Error::Failed(error_chain(&e))),
            }
        }
        if offered.is_empty() {
            host::warn(&format!(
                "no index offers {} ({})",
                package.key,
                index::indexes(sources)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Some(offered))
    }

    fn plan(
        image: &Image,
        updates: &[PackageUpdate],
        context: &PlanContext,
        _: &Answers,
    ) -> Result<Planned, Error> {
        plan::plan(image, updates, context).map(Planned::Tasks)
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

salve_plugin_sdk::export_plugin!(Pip);
