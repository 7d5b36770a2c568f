//! Grype's JSON report (`grype -o json`).
//!
//! Each match pairs a vulnerability with the artifact (package copy) it was
//! found in. Grype has no class field: a match found through a distribution's
//! data (its vulnerability namespace reads `<provider>:distro:<name>`) is an
//! OS package, anything else a library. The copy's location is the location
//! Grype marks as primary evidence (the package's metadata file), else the
//! first it lists.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{
    Class, Document, Finding, Os, Parts, Problem, Scanner, Severity, fix_state, non_empty,
    normalise_path, split_fixed,
};

/// One entry of `matches`.
#[derive(Deserialize)]
pub(super) struct Match<'a> {
    #[serde(borrow)]
    vulnerability: Vulnerability<'a>,
    #[serde(borrow)]
    artifact: Artifact<'a>,
}

#[derive(Deserialize)]
struct Vulnerability<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    fix: Option<Fix<'a>>,
}

#[derive(Deserialize)]
struct Fix<'a> {
    #[serde(borrow)]
    versions: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Artifact<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    locations: Option<Vec<Location<'a>>>,
    #[serde(borrow)]
    language: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Location<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    annotations: Option<Annotations<'a>>,
}

#[derive(Deserialize)]
struct Annotations<'a> {
    #[serde(borrow)]
    evidence: Option<Cow<'a, str>>,
}

/// `distro`: the distribution Grype recognised.
#[derive(Deserialize)]
pub(super) struct Distro<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
}

/// `source`: what was scanned.
#[derive(Deserialize)]
pub(super) struct Source<'a> {
    #[serde(rename = "type", borrow)]
    _kind: Option<Cow<'a, str>>,
    target: Option<Target>,
}

/// `source.target`: an object describing the image, whose `architecture`
/// salve keeps, or a plain string (a directory, a file, an SBOM).
struct Target {
    architecture: Option<String>,
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TargetVisitor)
    }
}

struct TargetVisitor;

impl<'de> Visitor<'de> for TargetVisitor {
    type Value = Target;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object describing the image")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Target, E> {
        Ok(Target { architecture: None })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Target, E> {
        Ok(Target { architecture: None })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
        let mut architecture = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "architecture" {
                architecture = map.next_value::<Option<String>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Target { architecture })
    }
}

/// Turns a document recognised as Grype's into a report.
pub(super) fn parts(document: Document<'_>) -> Result<Parts, Problem> {
    let matches = document.matches.unwrap_or_default();
    let os = document.distro.and_then(|distro| {
        let family = non_empty(distro.name)?;
        Some(Os {
            family,
            name: non_empty(distro.version).unwrap_or_default(),
        })
    });
    let architecture = document
        .source
        .and_then(|source| source.target)
        .and_then(|target| target.architecture)
        .filter(|arch| !arch.is_empty());

    let findings = matches
        .into_iter()
        .enumerate()
        .map(|(index, m)| finding(index, m))
        .collect::<Result<_, _>>()?;
    Ok(Parts {
        scanner: Scanner::Grype,
        os,
        architecture,
        findings,
    })
}

fn finding(index: usize, m: Match<'_>) -> Result<Finding, Problem> {
    let required = |value: Cow<'_, str>, name: &str| {
        let value = value.trim();
        if value.is_empty() {
            let field = format!("matches[{index}].{name}");
            return Err(Problem::Field {
                field,
                detail: "empty".into(),
            });
        }
        Ok(value.to_owned())
    };
    let Match {
        vulnerability,
        artifact,
    } = m;

    let class = match (
        vulnerability.namespace.as_deref(),
        artifact.language.as_deref(),
    ) {
        (Some(namespace), _) if namespace.split(':').nth(1) == Some("distro") => Class::Os,
        (Some(_), _) => Class::Library,
        (None, Some(language)) if !language.is_empty() => Class::Library,
        (None, _) => Class::Os,
    };
    let locations = artifact.locations.unwrap_or_default();
    let primary = locations
        .iter()
        .find(|l| l.annotations.as_ref().and_then(|a| a.evidence.as_deref()) == Some("primary"))
        .or(locations.first())
        .and_then(|l| normalise_path(&l.path));
    let (fixed, state) = vulnerability.fix.map_or((Vec::new(), None), |fix| {
        let fixed = fix
            .versions
            .iter()
            .flatten()
            .flat_map(|v| split_fixed(v))
            .collect();
        (fixed, fix.state)
    });

    Ok(Finding {
        vulnerability: required(vulnerability.id, "vulnerability.id")?,
        package: required(artifact.name, "artifact.name")?,
        installed: non_empty(artifact.version).unwrap_or_default(),
        fix_state: fix_state(state.as_deref(), &fixed),
        fixed,
        report_type: required(artifact.kind, "artifact.type")?,
        class,
        path: if class == Class::Os { None } else { primary },
        locations: locations
            .iter()
            .filter_map(|l| normalise_path(&l.path))
            .collect(),
        scan_target: None,
        severity: vulnerability
            .severity
            .as_deref()
            .map_or(Severity::Unknown, Severity::from_label),
        title: non_empty(vulnerability.description)
            .and_then(|d| d.lines().next().map(str::to_owned)),
    })
}
