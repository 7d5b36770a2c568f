//! Findings gathered per package copy.

use std::collections::HashMap;

use super::{Class, Finding};

/// The findings of one package copy: one package name at one location, of
/// one scanner type and installed version. The policy picks one target per
/// copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// The scanner's type for the ecosystem; routes the copy to a plugin.
    pub report_type: &'a str,
    /// OS package or library.
    pub class: Class,
    /// The package name, as the scanner spells it.
    pub name: &'a str,
    /// The installed version.
    pub installed: &'a str,
    /// The location, as in [`Finding::path`].
    pub path: Option<&'a str>,
    /// Its findings, in report order; the same vulnerability may appear
    /// more than once when the scanner repeats it.
    pub findings: Vec<&'a Finding>,
}

/// Gathers findings per package copy, in the order copies first appear.
///
/// Names are compared exactly: telling `Werkzeug` and `werkzeug` apart or
/// not is the ecosystem's business, and one report spells a package one
/// way.
pub fn group(findings: &[Finding]) -> Vec<Package<'_>> {
    type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);
    let mut index: HashMap<Key<'_>, usize> = HashMap::new();
    let mut packages: Vec<Package<'_>> = Vec::new();

    for finding in findings {
        let key = (
            finding.report_type.as_str(),
            finding.package.as_str(),
            finding.path.as_deref(),
            finding.installed.as_str(),
        );
        let slot = *index.entry(key).or_insert_with(|| {
            packages.push(Package {
                report_type: key.0,
                class: finding.class,
                name: key.1,
                installed: key.3,
                path: key.2,
                findings: Vec::new(),
            });
            packages.len() - 1
        });
        packages[slot].findings.push(finding);
    }
    packages
}
