//! Trivy's JSON report, schema version 2.
//!
//! Only the fields salve uses are read; the rest (descriptions, CVSS,
//! references, the package inventory) is skipped without being copied.

use std::borrow::Cow;

use serde::Deserialize;
use tracing::debug;

use super::{
    Class, Document, Finding, Os, Parts, Problem, Scanner, Severity, fix_state, non_empty,
    normalise_path, split_fixed,
};

/// `Metadata`: what Trivy learnt about the image.
#[derive(Deserialize)]
pub(super) struct Metadata<'a> {
    #[serde(rename = "OS", borrow)]
    os: Option<OsInfo<'a>>,
    #[serde(rename = "ImageConfig", borrow)]
    image_config: Option<ImageConfig<'a>>,
}

#[derive(Deserialize)]
struct OsInfo<'a> {
    #[serde(rename = "Family", borrow)]
    family: Option<Cow<'a, str>>,
    #[serde(rename = "Name", borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ImageConfig<'a> {
    #[serde(borrow)]
    architecture: Option<Cow<'a, str>>,
}

/// One entry of `Results`: what one scanner of Trivy found in one target.
#[derive(Deserialize)]
pub(super) struct ScanResult<'a> {
    #[serde(rename = "Target", borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(rename = "Class", borrow)]
    class: Option<Cow<'a, str>>,
    #[serde(rename = "Type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "Vulnerabilities", borrow)]
    vulnerabilities: Option<Vec<Vulnerability<'a>>>,
}

#[derive(Deserialize)]
struct Vulnerability<'a> {
    #[serde(rename = "VulnerabilityID", borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "PkgName", borrow)]
    package: Cow<'a, str>,
    #[serde(rename = "PkgPath", borrow)]
    path: Option<Cow<'a, str>>,
    #[serde(rename = "InstalledVersion", borrow)]
    installed: Option<Cow<'a, str>>,
    #[serde(rename = "FixedVersion", borrow)]
    fixed: Option<Cow<'a, str>>,
    #[serde(rename = "Status", borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(rename = "Severity", borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(rename = "Title", borrow)]
    title: Option<Cow<'a, str>>,
}

/// Turns a document recognised as Trivy's into a report.
pub(super) fn parts(document: Document<'_>) -> Result<Parts, Problem> {
    if let Some(found) = document.schema_version.filter(|&v| v != 2) {
        return Err(Problem::SchemaVersion { found });
    }
    let results = document.results.ok_or(Problem::NoResults)?;

    let (os, architecture) = document.metadata.map_or((None, None), |metadata| {
        let os = metadata.os.and_then(|os| {
            let family = non_empty(os.family)?;
            Some(Os {
                family,
                name: non_empty(os.name).unwrap_or_default(),
            })
        });
        (
            os,
            metadata
                .image_config
                .and_then(|config| non_empty(config.architecture)),
        )
    });

    let mut findings = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        read_result(index, result, &mut findings)?;
    }
    Ok(Parts {
        scanner: Scanner::Trivy,
        os,
        architecture,
        findings,
    })
}

/// Adds the findings of `Results[index]`, unless its class is not about
/// packages (secrets, misconfigurations, licenses).
fn read_result(
    index: usize,
    result: ScanResult<'_>,
    findings: &mut Vec<Finding>,
) -> Result<(), Problem> {
    let field = |name: &str| format!("Results[{index}].{name}");
    let class = match result.class.as_deref() {
        Some("os-pkgs") => Class::Os,
        Some("lang-pkgs") => Class::Library,
        Some(other) => {
            debug!(
                index,
                class = other,
                "ignoring a result that is not about packages"
            );
            return Ok(());
        }
        None => {
            return Err(Problem::Field {
                field: field("Class"),
                detail: "missing".into(),
            });
        }
    };
    let report_type = non_empty(result.kind).ok_or_else(|| Problem::Field {
        field: field("Type"),
        detail: "missing or empty".into(),
    })?;
    let scan_target = non_empty(result.target);

    for (row, vulnerability) in result.vulnerabilities.into_iter().flatten().enumerate() {
        let required = |value: Cow<'_, str>, name: &str| {
            let value = value.trim();
            if value.is_empty() {
                let field = field(&format!("Vulnerabilities[{row}].{name}"));
                return Err(Problem::Field {
                    field,
                    detail: "empty".into(),
                });
            }
            Ok(value.to_owned())
        };
        let path = vulnerability.path.as_deref().and_then(normalise_path);
        let fixed: Vec<String> = vulnerability
            .fixed
            .as_deref()
            .map(split_fixed)
            .into_iter()
            .flatten()
            .collect();
        findings.push(Finding {
            vulnerability: required(vulnerability.id, "VulnerabilityID")?,
            package: required(vulnerability.package, "PkgName")?,
            installed: non_empty(vulnerability.installed).unwrap_or_default(),
            fix_state: fix_state(vulnerability.status.as_deref(), &fixed),
            fixed,
            report_type: report_type.clone(),
            class,
            locations: path.iter().cloned().collect(),
            path,
            scan_target: scan_target.clone(),
            severity: vulnerability
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::from_label),
            title: non_empty(vulnerability.title),
        });
    }
    Ok(())
}
