//! Sending findings to the plugins that take their report types.

use crate::plugin::{PackageKind, Plugin, Registry};
use crate::policy::{Decision, Skip, Vulnerability};
use crate::report::{self, Class, Finding, Report};

use super::{Entry, Options, Status};

/// Findings grouped by the plugin that takes them, and entries for those
/// no plugin takes or the user left out.
#[derive(Debug)]
pub struct Routed<'r> {
    /// Per plugin, its findings, in registry order (OS plugins first).
    pub groups: Vec<(&'r Plugin, Vec<Finding>)>,
    /// Findings that will not be looked at, one entry per package copy.
    pub entries: Vec<Entry>,
}

/// Routes every finding of `reports` by its report type.
pub fn route<'r>(reports: &[Report], registry: &'r Registry, options: &Options) -> Routed<'r> {
    let mut groups: Vec<(&'r Plugin, Vec<Finding>)> = Vec::new();
    let mut unrouted: Vec<Finding> = Vec::new();
    let mut left_out: Vec<Finding> = Vec::new();

    for finding in reports.iter().flat_map(|r| r.findings.iter()) {
        let Some(plugin) = registry.for_report_type(&finding.report_type) else {
            let kind = match finding.class {
                Class::Os => PackageKind::Os,
                Class::Library => PackageKind::Library,
            };
            if options.package_types.includes(kind) {
                unrouted.push(finding.clone());
            } else {
                left_out.push(finding.clone());
            }
            continue;
        };
        if !options.package_types.includes(plugin.info().kind) {
            left_out.push(finding.clone());
            continue;
        }
        match groups
            .iter_mut()
            .find(|(p, _)| p.info().name == plugin.info().name)
        {
            Some((_, findings)) => findings.push(finding.clone()),
            None => groups.push((plugin, vec![finding.clone()])),
        }
    }
    groups.sort_by_key(|(p, _)| (p.info().kind != PackageKind::Os, p.info().name.clone()));

    let mut entries = Vec::new();
    for package in report::group(&unrouted) {
        let vulnerabilities: Vec<Vulnerability<'_>> = package
            .findings
            .iter()
            .map(|f| Vulnerability::from(*f))
            .collect();
        let decision = Decision::Skip(Skip::no_plugin(package.report_type, &vulnerabilities));
        let location = package.path.map(|p| format!("/{p}")).unwrap_or_default();
        entries.push(Entry::from_decision(
            package.report_type,
            package.name,
            &location,
            package.installed,
            &decision,
        ));
    }
    for package in report::group(&left_out) {
        let (kind, word) = match package.class {
            Class::Os => ("os", "OS"),
            Class::Library => ("library", "library"),
        };
        let reason = format!(
            "--pkg-types {} leaves out {word} packages; add {kind} to patch them",
            options.package_types
        );
        let ids: Vec<String> = package
            .findings
            .iter()
            .map(|f| f.vulnerability.clone())
            .collect();
        let ecosystem = registry
            .for_report_type(package.report_type)
            .map_or(package.report_type.to_string(), |p| p.info().name.clone());
        let location = package.path.map(|p| format!("/{p}")).unwrap_or_default();
        entries.push(
            Entry::bare(&ecosystem, package.name, &location, package.installed).left_open(
                Status::Skipped,
                reason,
                &ids,
            ),
        );
    }
    Routed { groups, entries }
}
