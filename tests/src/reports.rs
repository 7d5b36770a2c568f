//! Trivy JSON reports for test images, written from their real contents.
//!
//! A report is the image's [`Inventory`] matched against real advisory data:
//! the OSV records in `shared/advisories/` for Python and npm packages, and
//! for Debian packages the newer versions bookworm-security and
//! bookworm-updates carry, with the CVE ids their changelogs name (see
//! [`debian`](crate::debian)). Nothing is hand-typed, so the reports follow
//! the images when a recipe changes.
//!
//! The shape is Trivy's (`SchemaVersion` 2): `Metadata` with the OS, image
//! id, diff ids and config; one `Results` entry per class (`os-pkgs` with
//! `Type` `debian`, `lang-pkgs` with `python-pkg` or `node-pkg`), whose
//! `Vulnerabilities` carry `PkgPath` exactly as Trivy writes it and
//! `FixedVersion` as every fixed version of the record's ranges for the
//! package, comma-joined. Where this differs from a real Trivy scan,
//! `docs/testbed.md` says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::advisories::{self, Database, Source};
use crate::debian::Updates;
use crate::images::BuiltImage;
use crate::inventory::{self, Ecosystem, Inventory, Package};

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The advisory records could not be loaded.
    #[error("loading advisories")]
    Advisories(#[from] advisories::Error),
    /// The image could not be scanned.
    #[error(transparent)]
    Scan(#[from] inventory::Error),
    /// The report file could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Which classes of findings a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classes {
    /// `os-pkgs` (Debian packages).
    pub os: bool,
    /// `lang-pkgs` (Python and npm packages).
    pub library: bool,
}

impl Classes {
    /// Both classes.
    pub const ALL: Classes = Classes {
        os: true,
        library: true,
    };
    /// Only `lang-pkgs`.
    pub const LIBRARY: Classes = Classes {
        os: false,
        library: true,
    };
    /// Only `os-pkgs`.
    pub const OS: Classes = Classes {
        os: true,
        library: false,
    };
}

/// The Trivy report for a test image, with every class of finding.
pub fn trivy_for(image: &BuiltImage) -> Result<Value, Error> {
    let database = advisories::load()?;
    Ok(trivy(
        &image.tag,
        &image.inventory,
        &image.debian_updates,
        &database,
        Classes::ALL,
    ))
}

/// Writes [`trivy_for`]'s report to `path` (atomically) and returns the path.
pub fn write_trivy(image: &BuiltImage, path: &Path) -> Result<PathBuf, Error> {
    write(path, &trivy_for(image)?)
}

/// A fresh report for `patched` (an OCI layout or docker-archive made from
/// `original`), as a re-scan after patching: the same advisory data and the
/// same Debian archive state as the original's report, applied to what the
/// patched image really holds now.
pub fn rescan(patched: &Path, original: &BuiltImage, classes: Classes) -> Result<Value, Error> {
    let database = advisories::load()?;
    let inventory = inventory::scan(patched, None)?;
    Ok(trivy(
        &original.tag,
        &inventory,
        &original.debian_updates,
        &database,
        classes,
    ))
}

/// The same findings as a Trivy report, in Grype's JSON format (`grype -o
/// json`): one match per (vulnerability, package copy), the copy's metadata
/// file as its primary location, Grype's artifact types (`deb`, `python`,
/// `npm`) and namespaces (`debian:distro:debian:12`,
/// `github:language:python`), and each fixed line as its own version.
pub fn grype_from_trivy(trivy: &Value) -> Value {
    let os = &trivy["Metadata"]["OS"];
    let distro_version = os["Name"].as_str().unwrap_or_default();
    let major = distro_version.split('.').next().unwrap_or_default();
    let mut matches = Vec::new();
    for result in trivy["Results"].as_array().into_iter().flatten() {
        let (kind, language, namespace) = match result["Type"].as_str().unwrap_or_default() {
            "debian" => ("deb", "", format!("debian:distro:debian:{major}")),
            "python-pkg" => ("python", "python", "github:language:python".to_owned()),
            "node-pkg" => ("npm", "javascript", "github:language:javascript".to_owned()),
            _ => continue,
        };
        for finding in result["Vulnerabilities"].as_array().into_iter().flatten() {
            let text = |name: &str| finding[name].as_str().unwrap_or_default();
            let fixed: Vec<&str> = text("FixedVersion")
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            let locations: Vec<Value> = match text("PkgPath") {
                "" => vec![],
                path => vec![json!({
                    "path": format!("/{path}"),
                    "layerID": finding["Layer"]["DiffID"],
                    "annotations": { "evidence": "primary" },
                })],
            };
            matches.push(json!({
                "vulnerability": {
                    "id": text("VulnerabilityID"),
                    "namespace": namespace,
                    "severity": text("Severity"),
                    "description": text("Title"),
                    "fix": {
                        "versions": fixed,
                        "state": if fixed.is_empty() { "not-fixed" } else { "fixed" },
                    },
                },
                "relatedVulnerabilities": [],
                "matchDetails": [],
                "artifact": {
                    "name": text("PkgName"),
                    "version": text("InstalledVersion"),
                    "type": kind,
                    "language": language,
                    "locations": locations,
                    "purl": finding["PkgIdentifier"]["PURL"],
                },
            }));
        }
    }
    json!({
        "matches": matches,
        "source": {
            "type": "image",
            "target": {
                "userInput": trivy["ArtifactName"],
                "imageID": trivy["Metadata"]["ImageID"],
                "architecture": trivy["Metadata"]["ImageConfig"]["architecture"],
            },
        },
        "distro": { "name": os["Family"], "version": distro_version },
        "descriptor": { "name": "grype", "version": "0.0.0-salve-testbed" },
    })
}

/// Writes `report` as pretty JSON to `path`, through a temporary file.
pub fn write(path: &Path, report: &Value) -> Result<PathBuf, Error> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staging = tempfile::Builder::new()
        .prefix(".trivy-")
        .tempfile_in(dir)?;
    serde_json::to_writer_pretty(&mut staging, report).map_err(std::io::Error::from)?;
    staging.persist(path).map_err(|error| error.error)?;
    Ok(path.to_owned())
}

/// Builds a Trivy report from an inventory and the advisory data.
pub fn trivy(
    tag: &str,
    inventory: &Inventory,
    updates: &Updates,
    database: &Database,
    classes: Classes,
) -> Value {
    let os_name = inventory.debian_version.clone().unwrap_or_default();
    let mut results = Vec::new();
    if classes.os && inventory.debian_version.is_some() {
        let vulnerabilities = debian_findings(inventory, updates, &os_name);
        results.push(result(
            &format!("{tag} (debian {os_name})"),
            "os-pkgs",
            "debian",
            vulnerabilities,
        ));
    }
    if classes.library {
        for (ecosystem, target, kind) in [
            (Ecosystem::Pypi, "Python", "python-pkg"),
            (Ecosystem::Npm, "Node.js", "node-pkg"),
        ] {
            if inventory.of(ecosystem).next().is_some() {
                results.push(result(
                    target,
                    "lang-pkgs",
                    kind,
                    library_findings(inventory, database, ecosystem),
                ));
            }
        }
    }

    let mut report = json!({
        "SchemaVersion": 2,
        "Trivy": { "Version": "0.0.0-salve-testbed" },
        "ArtifactName": tag,
        "ArtifactType": "container_image",
        "Metadata": {
            "ImageID": inventory.image_id,
            "DiffIDs": inventory.layers.iter().map(|layer| &layer.diff_id).collect::<Vec<_>>(),
            "RepoTags": [tag],
            "ImageConfig": inventory.config,
        },
        "Results": results,
    });
    if inventory.debian_version.is_some() {
        report["Metadata"]["OS"] = json!({ "Family": "debian", "Name": os_name });
    }
    report
}

fn result(target: &str, class: &str, kind: &str, mut vulnerabilities: Vec<Value>) -> Value {
    let key = |v: &Value| {
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        (
            field("PkgName"),
            field("PkgPath"),
            field("InstalledVersion"),
            field("VulnerabilityID"),
        )
    };
    vulnerabilities.sort_by_key(key);
    let mut result = json!({ "Target": target, "Class": class, "Type": kind });
    if !vulnerabilities.is_empty() {
        result["Vulnerabilities"] = Value::Array(vulnerabilities);
    }
    result
}

/// One finding per CVE a newer changelog entry names, for every installed
/// package that is still older than that entry.
fn debian_findings(inventory: &Inventory, updates: &Updates, os_name: &str) -> Vec<Value> {
    let mut findings = Vec::new();
    for package in inventory.of(Ecosystem::Debian) {
        let Some(update) = updates.get(&package.name) else {
            continue;
        };
        for (cve, fixed) in &update.fixes {
            if !debian_older(&package.version, fixed) {
                continue;
            }
            let arch = package.arch.as_deref().unwrap_or("all");
            let purl = format!(
                "pkg:deb/debian/{}@{}?arch={arch}&distro=debian-{os_name}",
                package.name, package.version
            );
            let mut finding = finding(inventory, package, cve, fixed, &purl);
            finding["SeveritySource"] = json!("debian");
            finding["PrimaryURL"] =
                json!(format!("https://security-tracker.debian.org/tracker/{cve}"));
            finding["DataSource"] = json!({
                "ID": "debian",
                "Name": "Debian Security Tracker",
                "URL": "https://salsa.debian.org/security-tracker-team/security-tracker",
            });
            finding["Title"] = json!(format!(
                "{cve}: fixed in {} {fixed} ({})",
                update.source, update.suite
            ));
            finding["Severity"] = json!("UNKNOWN");
            findings.push(finding);
        }
    }
    findings
}

/// Whether installed Debian version `installed` sorts before `fixed`. A
/// version dpkg would reject counts as older, so it is reported, not hidden.
fn debian_older(installed: &str, fixed: &str) -> bool {
    match (
        installed.parse::<debversion::Version>(),
        fixed.parse::<debversion::Version>(),
    ) {
        (Ok(installed), Ok(fixed)) => installed < fixed,
        _ => true,
    }
}

/// One finding per advisory record that affects a Python or npm package.
fn library_findings(
    inventory: &Inventory,
    database: &Database,
    ecosystem: Ecosystem,
) -> Vec<Value> {
    let mut findings = Vec::new();
    for package in inventory.of(ecosystem) {
        for found in database.matching(ecosystem, &package.name, &package.version) {
            let advisory = found.advisory;
            let id = found.vulnerability_id();
            let purl = match ecosystem {
                Ecosystem::Pypi => format!(
                    "pkg:pypi/{}@{}",
                    inventory::normalize(ecosystem, &package.name),
                    package.version
                ),
                _ => format!(
                    "pkg:npm/{}@{}",
                    package.name.replace('@', "%40"),
                    package.version
                ),
            };
            let mut finding = finding(inventory, package, id, &found.fixed.join(", "), &purl);
            finding["PkgPath"] = json!(package.path);
            if id != advisory.id {
                finding["VendorIDs"] = json!([advisory.id]);
            }

            let (source_id, source_name, url) = match (advisory.source, ecosystem) {
                (Source::Ghsa, Ecosystem::Npm) => (
                    "ghsa",
                    "GitHub Security Advisory npm",
                    "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Anpm",
                ),
                (Source::Ghsa, _) => (
                    "ghsa",
                    "GitHub Security Advisory pip",
                    "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Apip",
                ),
                (Source::Pypa, _) => (
                    "pypa",
                    "Python Packaging Advisory Database",
                    "https://github.com/pypa/advisory-database",
                ),
            };
            finding["SeveritySource"] = json!(source_id);
            finding["DataSource"] = json!({ "ID": source_id, "Name": source_name, "URL": url });
            finding["PrimaryURL"] = json!(match advisory.source {
                Source::Ghsa => format!("https://github.com/advisories/{}", advisory.id),
                Source::Pypa => format!("https://osv.dev/vulnerability/{}", advisory.id),
            });
            if let Some(title) = &advisory.summary {
                finding["Title"] = json!(title);
            }
            if let Some(details) = &advisory.details {
                finding["Description"] = json!(details);
            }
            finding["Severity"] = json!(severity(advisory));
            findings.push(finding);
        }
    }
    findings
}

/// The fields every finding has.
fn finding(inventory: &Inventory, package: &Package, id: &str, fixed: &str, purl: &str) -> Value {
    let layer = inventory.layers.get(package.layer);
    json!({
        "VulnerabilityID": id,
        "PkgID": format!("{}@{}", package.name, package.version),
        "PkgName": package.name,
        "PkgIdentifier": { "PURL": purl },
        "InstalledVersion": package.version,
        "FixedVersion": fixed,
        "Status": if fixed.is_empty() { "affected" } else { "fixed" },
        "Layer": {
            "Digest": layer.and_then(|layer| layer.digest.clone()),
            "DiffID": layer.map(|layer| layer.diff_id.clone()),
        },
    })
}

/// Trivy's severity words from a GHSA record's (`MODERATE` is `MEDIUM`).
fn severity(advisory: &advisories::Advisory) -> &'static str {
    let stated = advisory
        .database_specific
        .as_ref()
        .and_then(|d| d.severity.as_deref());
    match stated {
        Some("LOW") => "LOW",
        Some("MODERATE" | "MEDIUM") => "MEDIUM",
        Some("HIGH") => "HIGH",
        Some("CRITICAL") => "CRITICAL",
        _ => "UNKNOWN",
    }
}

/// The findings of a report as (type, name, path, installed, id, fixed),
/// for assertions.
pub fn findings(report: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    for result in report["Results"].as_array().into_iter().flatten() {
        for vulnerability in result["Vulnerabilities"].as_array().into_iter().flatten() {
            let field = |name: &str| vulnerability[name].as_str().unwrap_or_default().to_owned();
            findings.push(Finding {
                kind: result["Type"].as_str().unwrap_or_default().to_owned(),
                name: field("PkgName"),
                path: field("PkgPath"),
                installed: field("InstalledVersion"),
                id: field("VulnerabilityID"),
                fixed: field("FixedVersion"),
            });
        }
    }
    findings
}

/// One finding of a report, flattened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The result's `Type` (`debian`, `python-pkg`, `node-pkg`).
    pub kind: String,
    /// `PkgName`.
    pub name: String,
    /// `PkgPath` (empty for OS packages).
    pub path: String,
    /// `InstalledVersion`.
    pub installed: String,
    /// `VulnerabilityID`.
    pub id: String,
    /// `FixedVersion`.
    pub fixed: String,
}

/// How many findings each (type, package, path) has, for summaries.
pub fn counts(report: &Value) -> BTreeMap<(String, String, String), usize> {
    let mut counts = BTreeMap::new();
    for finding in findings(report) {
        *counts
            .entry((finding.kind, finding.name, finding.path))
            .or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::advisories::Advisory;
    use crate::debian::Update;
    use crate::inventory::LayerId;

    fn advisory(id: &str, aliases: &[&str], source: Source, ranges: &[(&str, &str)]) -> Advisory {
        let ranges: Vec<Value> = ranges
            .iter()
            .map(|(introduced, fixed)| {
                json!({ "type": "ECOSYSTEM", "events": [{ "introduced": introduced }, { "fixed": fixed }] })
            })
            .collect();
        let record = json!({
            "id": id,
            "aliases": aliases,
            "summary": "a title",
            "affected": [{ "package": { "ecosystem": "PyPI", "name": "urllib3" }, "ranges": ranges }],
            "database_specific": { "severity": "MODERATE" },
        });
        let advisory: Advisory = serde_json::from_value(record).expect("a valid record");
        Advisory { source, ..advisory }
    }

    fn package(ecosystem: Ecosystem, name: &str, version: &str, path: &str) -> Package {
        Package {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            path: path.to_owned(),
            dir: String::new(),
            layer: 0,
            source: None,
            arch: Some("amd64".to_owned()),
        }
    }

    #[test]
    fn findings_use_the_cve_join_every_fixed_branch_and_skip_duplicate_records() {
        let database = Database {
            advisories: vec![
                advisory(
                    "GHSA-g4mx-q9vg-27p4",
                    &["CVE-2023-45803"],
                    Source::Ghsa,
                    &[("2.0.0", "2.0.7"), ("0", "1.26.18")],
                ),
                advisory(
                    "PYSEC-2023-212",
                    &["CVE-2023-45803"],
                    Source::Pypa,
                    &[("0", "1.26.18")],
                ),
            ],
        };
        let debian_fixed = "1:1.2.13.dfsg-1+deb12u1";
        let updates = Updates {
            packages: vec![Update {
                package: "zlib1g".to_owned(),
                installed: "1:1.2.13.dfsg-1".to_owned(),
                candidate: debian_fixed.to_owned(),
                suite: "oldstable-security".to_owned(),
                source: "zlib".to_owned(),
                fixes: BTreeMap::from([("CVE-2026-1".to_owned(), debian_fixed.to_owned())]),
            }],
        };
        let metadata = "usr/local/lib/python3.11/dist-packages/urllib3-1.26.5.dist-info/METADATA";
        let mut inventory = Inventory {
            debian_version: Some("12.15".to_owned()),
            image_id: "sha256:0".to_owned(),
            architecture: "amd64".to_owned(),
            config: json!({}),
            layers: vec![LayerId {
                digest: Some("sha256:1".to_owned()),
                diff_id: "sha256:2".to_owned(),
            }],
            packages: vec![
                package(Ecosystem::Pypi, "urllib3", "1.26.5", metadata),
                package(
                    Ecosystem::Debian,
                    "zlib1g",
                    "1:1.2.13.dfsg-1",
                    "var/lib/dpkg/status",
                ),
            ],
        };

        let report = trivy("test:1", &inventory, &updates, &database, Classes::ALL);
        let found = findings(&report);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].kind.as_str(), found[0].fixed.as_str()),
            ("debian", debian_fixed)
        );
        assert_eq!(found[1].id, "CVE-2023-45803");
        assert_eq!(found[1].fixed, "2.0.7, 1.26.18");
        assert_eq!(found[1].path, metadata);
        let python = &report["Results"][1]["Vulnerabilities"][0];
        assert_eq!(python["VendorIDs"], json!(["GHSA-g4mx-q9vg-27p4"]));
        assert_eq!(python["Severity"], "MEDIUM");
        assert_eq!(python["Layer"]["DiffID"], "sha256:2");

        // Once patched past the fixes, nothing is reported.
        inventory.packages[0].version = "1.26.18".to_owned();
        inventory.packages[1].version = debian_fixed.to_owned();
        let report = trivy("test:1", &inventory, &updates, &database, Classes::ALL);
        assert!(findings(&report).is_empty());
    }
}
