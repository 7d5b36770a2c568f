//! The advisory records for Python and npm packages, and matching against
//! them.
//!
//! The records are the OSV-format snapshots in `shared/advisories/`
//! (`pypa.json`: the PyPA database's PYSEC records; `ghsa.json`: reviewed
//! GitHub advisories), next to the repository's clone. A version is affected
//! when an `ECOSYSTEM` or `SEMVER` range of the package includes it, under
//! the ecosystem's own ordering (PEP 440, node-semver). When a GHSA and a
//! PYSEC record describe the same vulnerability (they share an id or alias),
//! the GHSA record is used, as Trivy does.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::inventory::{Ecosystem, normalize};

/// The advisory files could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `shared/advisories` directory beside the repository or above it.
    #[error(
        "no shared/advisories directory found beside the repository or its parents; \
         set SALVE_SHARED to the shared directory"
    )]
    NotFound,
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said (it names the field).
        #[source]
        source: serde_json::Error,
    },
}

/// Which database a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The GitHub Advisory Database.
    Ghsa,
    /// The PyPA advisory database.
    Pypa,
}

/// One advisory record (OSV format, the fields the reports use).
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    /// `GHSA-...` or `PYSEC-...`.
    pub id: String,
    /// Other ids of the same vulnerability (CVE, GHSA, PYSEC).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A one-line title.
    #[serde(default)]
    pub summary: Option<String>,
    /// A longer description.
    #[serde(default)]
    pub details: Option<String>,
    /// The affected packages and ranges.
    pub affected: Vec<Affected>,
    /// Per-database fields; GHSA puts the severity here.
    #[serde(default)]
    pub database_specific: Option<DatabaseSpecific>,
    /// Which database, set on load.
    #[serde(skip, default = "default_source")]
    pub source: Source,
}

fn default_source() -> Source {
    Source::Ghsa
}

/// `database_specific` of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSpecific {
    /// `LOW`, `MODERATE`, `HIGH`, `CRITICAL`.
    #[serde(default)]
    pub severity: Option<String>,
}

/// One affected package of a record.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// The package.
    pub package: AffectedPackage,
    /// The version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
}

/// The package an [`Affected`] entry names.
#[derive(Debug, Clone, Deserialize)]
pub struct AffectedPackage {
    /// `PyPI` or `npm`.
    pub ecosystem: String,
    /// The package name as the database spells it.
    pub name: String,
}

/// One OSV range.
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The range's events, each with one of the keys below.
    pub events: Vec<Event>,
}

/// One OSV range event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// The first affected version (`0`: all before).
    #[serde(default)]
    pub introduced: Option<String>,
    /// The first version with the fix.
    #[serde(default)]
    pub fixed: Option<String>,
    /// The last affected version.
    #[serde(default)]
    pub last_affected: Option<String>,
}

#[derive(Deserialize)]
struct File {
    advisories: Vec<Advisory>,
}

/// All advisory records.
#[derive(Debug, Clone)]
pub struct Database {
    /// GHSA records first, then PYSEC ones.
    pub advisories: Vec<Advisory>,
}

/// A record that affects an installed version.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    /// The record.
    pub advisory: &'a Advisory,
    /// The fixed versions of the package's ranges, in the record's order.
    pub fixed: Vec<String>,
}

impl Match<'_> {
    /// The id a report shows: the CVE alias when there is one, as Trivy does.
    pub fn vulnerability_id(&self) -> &str {
        self.advisory
            .aliases
            .iter()
            .find(|alias| alias.starts_with("CVE-"))
            .unwrap_or(&self.advisory.id)
    }
}

/// The `shared/` directory: `$SALVE_SHARED`, or the first `shared/` with an
/// `advisories/` directory beside the repository or one of its parents.
pub fn shared_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("SALVE_SHARED") {
        return Ok(PathBuf::from(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"));
    workspace
        .ancestors()
        .map(|dir| dir.join("shared"))
        .find(|shared| shared.join("advisories").is_dir())
        .ok_or(Error::NotFound)
}

/// Loads `ghsa.json` and `pypa.json` from the shared directory.
pub fn load() -> Result<Database, Error> {
    let dir = shared_dir()?.join("advisories");
    let mut advisories = Vec::new();
    for (name, source) in [("ghsa.json", Source::Ghsa), ("pypa.json", Source::Pypa)] {
        let path = dir.join(name);
        let bytes = fs_err::read(&path)?;
        let file: File =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?;
        advisories.extend(
            file.advisories
                .into_iter()
                .map(|advisory| Advisory { source, ..advisory }),
        );
    }
    Ok(Database { advisories })
}

impl Database {
    /// The records that affect `name` at `version`, one per vulnerability.
    pub fn matching(&self, ecosystem: Ecosystem, name: &str, version: &str) -> Vec<Match<'_>> {
        let Some(installed) = Version::parse(ecosystem, version) else {
            tracing::debug!(
                name,
                version,
                "version does not parse; no advisory can match"
            );
            return Vec::new();
        };
        let wanted = normalize(ecosystem, name);

        let mut matches = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for advisory in &self.advisories {
            let entries: Vec<&Affected> = advisory
                .affected
                .iter()
                .filter(|a| osv_ecosystem(&a.package.ecosystem) == Some(ecosystem))
                .filter(|a| normalize(ecosystem, &a.package.name) == wanted)
                .collect();
            let affected = entries
                .iter()
                .flat_map(|a| &a.ranges)
                .any(|r| r.includes(ecosystem, &installed));
            let ids = || {
                std::iter::once(advisory.id.as_str())
                    .chain(advisory.aliases.iter().map(String::as_str))
            };
            if !affected || ids().any(|id| seen.contains(id)) {
                continue;
            }

            seen.extend(ids());
            let fixed = entries
                .iter()
                .flat_map(|a| &a.ranges)
                .flat_map(|r| &r.events)
                .filter_map(|event| event.fixed.clone())
                .collect();
            matches.push(Match { advisory, fixed });
        }
        matches
    }
}

fn osv_ecosystem(name: &str) -> Option<Ecosystem> {
    match name {
        "PyPI" => Some(Ecosystem::Pypi),
        "npm" => Some(Ecosystem::Npm),
        _ => None,
    }
}

impl Range {
    /// Whether `version` is in this range (OSV semantics: events sorted by
    /// version; `introduced` opens, `fixed` closes, `last_affected` closes
    /// after itself).
    pub fn includes(&self, ecosystem: Ecosystem, version: &Version) -> bool {
        if self.kind != "ECOSYSTEM" && self.kind != "SEMVER" {
            return false;
        }
        let mut affected = false;
        for event in self.sorted_events(ecosystem) {
            match event {
                (Boundary::Introduced, None) => affected = true,
                (Boundary::Introduced, Some(at)) => affected |= version >= &at,
                (Boundary::Fixed, Some(at)) if version >= &at => affected = false,
                (Boundary::LastAffected, Some(at)) if version > &at => affected = false,
                _ => {}
            }
        }
        affected
    }

    fn sorted_events(&self, ecosystem: Ecosystem) -> Vec<(Boundary, Option<Version>)> {
        let mut events: Vec<(Boundary, Option<Version>)> = Vec::new();
        for event in &self.events {
            let mut push = |boundary, value: &Option<String>| {
                if let Some(value) = value {
                    // `introduced: 0` means from the beginning of time.
                    let at = if value == "0" {
                        None
                    } else {
                        Version::parse(ecosystem, value)
                    };
                    if value == "0" || at.is_some() {
                        events.push((boundary, at));
                    }
                }
            };
            push(Boundary::Introduced, &event.introduced);
            push(Boundary::Fixed, &event.fixed);
            push(Boundary::LastAffected, &event.last_affected);
        }
        events.sort_by(|a, b| match (&a.1, &b.1) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        });
        events
    }
}

#[derive(Debug, Clone, Copy)]
enum Boundary {
    Introduced,
    Fixed,
    LastAffected,
}

/// A version under its ecosystem's ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// PEP 440.
    Pep440(pep440_rs::Version),
    /// node-semver.
    Semver(nodejs_semver::Version),
}

impl Version {
    /// Parses `text` for `ecosystem`; `None` when it is not a valid version.
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Option<Version> {
        match ecosystem {
            Ecosystem::Pypi => pep440_rs::Version::from_str(text).ok().map(Version::Pep440),
            Ecosystem::Npm => nodejs_semver::Version::parse(text)
                .ok()
                .map(Version::Semver),
            Ecosystem::Debian => None,
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Version::Pep440(a), Version::Pep440(b)) => Some(a.cmp(b)),
            (Version::Semver(a), Version::Semver(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(events: &[(&str, &str)]) -> Range {
        let events = events
            .iter()
            .map(|(kind, at)| Event {
                introduced: (*kind == "introduced").then(|| (*at).to_owned()),
                fixed: (*kind == "fixed").then(|| (*at).to_owned()),
                last_affected: (*kind == "last_affected").then(|| (*at).to_owned()),
            })
            .collect();
        Range {
            kind: "ECOSYSTEM".to_owned(),
            events,
        }
    }

    fn includes(range: &Range, ecosystem: Ecosystem, version: &str) -> bool {
        range.includes(
            ecosystem,
            &Version::parse(ecosystem, version).expect("valid version"),
        )
    }

    #[test]
    fn pep440_ranges_compare_numerically_and_normalize_zero_padding() {
        let certifi = range(&[("introduced", "2021.05.30"), ("fixed", "2024.07.04")]);
        assert!(includes(&certifi, Ecosystem::Pypi, "2021.10.8"));
        assert!(!includes(&certifi, Ecosystem::Pypi, "2021.5.29"));
        assert!(!includes(&certifi, Ecosystem::Pypi, "2024.7.4"));

        let pyyaml = range(&[("introduced", "5.1"), ("fixed", "5.2b1")]);
        assert!(includes(&pyyaml, Ecosystem::Pypi, "5.2a1"));
        assert!(!includes(&pyyaml, Ecosystem::Pypi, "5.2"));
    }

    #[test]
    fn multi_branch_ranges_leave_gaps_between_branches() {
        let qs = range(&[
            ("introduced", "6.7.0"),
            ("fixed", "6.7.3"),
            ("introduced", "0"),
            ("fixed", "6.2.4"),
        ]);
        assert!(includes(&qs, Ecosystem::Npm, "6.7.0"));
        assert!(includes(&qs, Ecosystem::Npm, "6.2.3"));
        assert!(!includes(&qs, Ecosystem::Npm, "6.5.0"));
        assert!(!includes(&qs, Ecosystem::Npm, "6.7.3"));
    }

    #[test]
    fn npm_prereleases_sort_before_their_release() {
        let express = range(&[("introduced", "5.0.0-alpha.1"), ("fixed", "5.0.0-beta.3")]);
        assert!(includes(&express, Ecosystem::Npm, "5.0.0-alpha.8"));
        assert!(!includes(&express, Ecosystem::Npm, "4.17.1"));
        assert!(!includes(&express, Ecosystem::Npm, "5.0.0"));

        let last = range(&[("introduced", "0"), ("last_affected", "1.2.3")]);
        assert!(includes(&last, Ecosystem::Npm, "1.2.3"));
        assert!(!includes(&last, Ecosystem::Npm, "1.2.4"));
    }
}
