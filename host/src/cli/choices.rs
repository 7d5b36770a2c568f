//! The flags `salve plan` and `salve patch` share: reports, package types,
//! patch level, sources.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use salve::patch;
use salve::policy::{self, Level, PackageTypes};
use salve::report::{self, Report, Scanner};

/// Reports and the policy's bounds.
#[derive(Debug, Args)]
pub struct Choices {
    /// A scanner report (Trivy or Grype JSON), or a directory of them;
    /// repeatable.
    #[arg(short, long = "report", value_name = "FILE|DIR", required = true)]
    pub reports: Vec<PathBuf>,

    /// The reports' format [default: recognised from the content].
    #[arg(long, value_name = "trivy|grype")]
    pub scanner: Option<Scanner>,

    /// Which packages to patch: os, library, or os,library.
    #[arg(long, value_name = "TYPES", default_value = "os")]
    pub pkg_types: PackageTypes,

    /// How far libraries may move: patch (same major.minor), minor (same
    /// major) or major [default: patch]. Needs library in --pkg-types.
    #[arg(long, value_name = "LEVEL")]
    pub library_patch_level: Option<Level>,

    /// Let pre-releases be targets.
    #[arg(long)]
    pub allow_prereleases: bool,

    /// Where a plugin may fetch from, replacing its defaults: NAME=URL
    /// (`pip=https://mirror.example/simple/`); repeatable, in order.
    #[arg(long = "source", value_name = "NAME=URL", value_parser = parse_source)]
    pub sources: Vec<(String, String)>,

    /// The Python package index (same as --source pip=URL, first).
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,

    /// Another Python package index (same as --source pip=URL, after
    /// --index-url); repeatable.
    #[arg(long, value_name = "URL")]
    pub extra_index_url: Vec<String>,

    /// Do not ask package indexes which releases exist; decide from the
    /// reports' fixed versions alone.
    #[arg(long)]
    pub offline: bool,
}

impl Choices {
    /// Reads every report.
    pub fn read_reports(&self) -> anyhow::Result<Vec<Report>> {
        let mut reports = Vec::new();
        for path in &self.reports {
            reports.extend(report::read(path, self.scanner)?);
        }
        Ok(reports)
    }

    /// The pipeline's options; `ignore_errors` comes from `salve patch`.
    pub fn options(&self, ignore_errors: bool) -> anyhow::Result<patch::Options> {
        let level = self
            .pkg_types
            .library_level(self.library_patch_level)
            .map_err(|e| super::Usage(e.into()))?;
        let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(index) = &self.index_url {
            sources.entry("pip".into()).or_default().push(index.clone());
        }
        for extra in &self.extra_index_url {
            if self.index_url.is_none() && !sources.contains_key("pip") {
                // An extra index adds to PyPI rather than replacing it.
                sources.insert("pip".into(), vec!["https://pypi.org/simple/".into()]);
            }
            sources.entry("pip".into()).or_default().push(extra.clone());
        }
        for (name, url) in &self.sources {
            sources.entry(name.clone()).or_default().push(url.clone());
        }
        Ok(patch::Options {
            package_types: self.pkg_types,
            policy: policy::Options {
                level,
                allow_prereleases: self.allow_prereleases,
            },
            ignore_errors,
            sources,
            offline: self.offline,
        })
    }
}

fn parse_source(s: &str) -> anyhow::Result<(String, String)> {
    let (name, url) = s
        .split_once('=')
        .context("expected NAME=URL, for example pip=https://mirror/simple/")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        anyhow::bail!("{url:?} is not an http(s) URL");
    }
    Ok((name.to_string(), url.to_string()))
}
