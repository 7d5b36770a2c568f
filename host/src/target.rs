//! Joining report findings to the package copies a plugin detects.
//!
//! A report says "requests 2.25.1 at `usr/local/lib/python3.11/site-packages/
//! requests-2.25.1.dist-info/METADATA` has CVE-2023-32681"; a plugin's
//! `detect` says what is really installed, and where. Each finding is
//! routed to the copy it describes:
//!
//! 1. copies whose key is the finding's key (the plugin normalises names);
//! 2. with a path, the copy at exactly that path; failing that (a stale
//!    report: the copy moved or was upgraded since the scan), the copies
//!    under the nearest directory the report's path shares with them;
//! 3. without a path (OS packages, some scanners), the copies at the
//!    version the report names, else every copy of the package.
//!
//! A finding that reaches no copy is kept, with the reason, so the summary
//! can say "not installed in the image". Findings that reach the same copy
//! become one [`Target`]: the policy then picks one version for it.

use crate::plugin::InstalledPackage;
use crate::report::Finding;

/// One package copy and the findings that describe it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The copy, as detected.
    pub copy: InstalledPackage,
    /// Its findings, in report order, without repeats of one vulnerability.
    pub findings: Vec<Finding>,
}

/// Findings that reach no copy in the image.
#[derive(Clone, Debug)]
pub struct Unmatched {
    /// The package name, as the report spells it.
    pub package: String,
    /// The version the report says is installed.
    pub installed: String,
    /// Where the report says it is.
    pub path: Option<String>,
    /// The findings.
    pub findings: Vec<Finding>,
}

/// Routes findings to copies. `key` gives the plugin's key for a name.
pub fn resolve(
    findings: &[Finding],
    installed: &[InstalledPackage],
    key: &mut dyn FnMut(&str) -> String,
) -> (Vec<Target>, Vec<Unmatched>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut unmatched: Vec<Unmatched> = Vec::new();

    for finding in findings {
        let k = key(&finding.package);
        let copies: Vec<&InstalledPackage> = installed.iter().filter(|c| c.key == k).collect();
        let chosen = choose(finding, &copies);
        if chosen.is_empty() {
            add_unmatched(&mut unmatched, finding);
            continue;
        }
        for copy in chosen {
            add_target(&mut targets, copy, finding);
        }
    }
    (targets, unmatched)
}

/// The copies a finding describes, among those with its key.
fn choose<'a>(finding: &Finding, copies: &[&'a InstalledPackage]) -> Vec<&'a InstalledPackage> {
    if copies.is_empty() {
        return Vec::new();
    }
    let Some(path) = finding.path.as_deref().map(|p| p.trim_matches('/')) else {
        let same: Vec<_> = copies
            .iter()
            .copied()
            .filter(|c| c.version == finding.installed)
            .collect();
        return if same.is_empty() {
            copies.to_vec()
        } else {
            same
        };
    };

    if let Some(exact) = copies.iter().find(|c| c.path.trim_matches('/') == path) {
        return vec![exact];
    }

    // Some reports name the environment (a site directory) rather than the
    // copy's metadata: the copies of that scope.
    let in_scope: Vec<_> = copies
        .iter()
        .copied()
        .filter(|c| c.scope.trim_matches('/') == path)
        .collect();
    if !in_scope.is_empty() {
        return in_scope;
    }

    // The nearest shared directory: climb the report's path until some
    // copies live under it.
    let mut dir = path;
    while let Some(cut) = dir.rfind('/') {
        dir = &dir[..cut];
        let under: Vec<_> = copies
            .iter()
            .copied()
            .filter(|c| c.path.trim_matches('/').starts_with(&format!("{dir}/")))
            .collect();
        if under.is_empty() {
            continue;
        }
        // Copies as deep as the reported one are its siblings (another
        // version's dist-info beside it); deeper ones are vendored or
        // nested copies of something else. Then, of several, the ones at
        // the reported version.
        let depth = |p: &str| p.trim_matches('/').split('/').count();
        let level: Vec<_> = under
            .iter()
            .copied()
            .filter(|c| depth(&c.path) == depth(path))
            .collect();
        let under = if level.is_empty() { under } else { level };
        let same: Vec<_> = under
            .iter()
            .copied()
            .filter(|c| c.version == finding.installed)
            .collect();
        tracing::debug!(
            "{} at /{path} is not in the image; matched by the directory /{dir}",
            finding.package
        );
        return if same.is_empty() { under } else { same };
    }
    Vec::new()
}

fn add_target(targets: &mut Vec<Target>, copy: &InstalledPackage, finding: &Finding) {
    let same_copy = |t: &&mut Target| {
        t.copy.key == copy.key && t.copy.path == copy.path && t.copy.scope == copy.scope
    };
    match targets.iter_mut().find(same_copy) {
        Some(t) => {
            if !t
                .findings
                .iter()
                .any(|f| f.vulnerability == finding.vulnerability)
            {
                t.findings.push(finding.clone());
            }
        }
        None => targets.push(Target {
            copy: copy.clone(),
            findings: vec![finding.clone()],
        }),
    }
}

fn add_unmatched(unmatched: &mut Vec<Unmatched>, finding: &Finding) {
    let same = |u: &&mut Unmatched| {
        u.package == finding.package && u.path == finding.path && u.installed == finding.installed
    };
    match unmatched.iter_mut().find(same) {
        Some(u) => {
            if !u
                .findings
                .iter()
                .any(|f| f.vulnerability == finding.vulnerability)
            {
                u.findings.push(finding.clone());
            }
        }
        None => unmatched.push(Unmatched {
            package: finding.package.clone(),
            installed: finding.installed.clone(),
            path: finding.path.clone(),
            findings: vec![finding.clone()],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Origin, VendoredIn};
    use crate::report::{Class, FixState, Severity};

    fn finding(package: &str, installed: &str, path: Option<&str>, id: &str) -> Finding {
        Finding {
            vulnerability: id.into(),
            package: package.into(),
            installed: installed.into(),
            fixed: vec!["9.9".into()],
            fix_state: FixState::Fixed,
            report_type: "python-pkg".into(),
            class: Class::Library,
            path: path.map(|p| p.trim_start_matches('/').to_string()),
            locations: vec![],
            scan_target: None,
            severity: Severity::High,
            title: None,
        }
    }

    fn copy(name: &str, version: &str, path: &str, scope: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            key: name.to_lowercase(),
            version: version.into(),
            path: path.into(),
            scope: scope.into(),
            origin: Origin::Managed,
            attributes: vec![],
        }
    }

    fn lower(name: &str) -> String {
        name.to_lowercase()
    }

    const SITE: &str = "app/.venv/lib/python3.11/site-packages";
    const SYSTEM: &str = "usr/local/lib/python3.11/dist-packages";

    #[test]
    fn the_same_package_at_two_paths_is_two_targets() {
        let venv = format!("{SITE}/requests-2.28.1.dist-info/METADATA");
        let system = format!("{SYSTEM}/requests-2.25.1.dist-info/METADATA");
        let installed = [
            copy("requests", "2.28.1", &venv, SITE),
            copy("requests", "2.25.1", &system, SYSTEM),
        ];
        let findings = [
            finding("requests", "2.28.1", Some(&venv), "CVE-1"),
            finding("Requests", "2.25.1", Some(&system), "CVE-1"),
            finding("requests", "2.28.1", Some(&venv), "CVE-2"),
        ];
        let (targets, unmatched) = resolve(&findings, &installed, &mut lower);
        assert!(unmatched.is_empty());
        assert_eq!(targets.len(), 2);
        assert_eq!(
            (targets[0].copy.version.as_str(), targets[0].findings.len()),
            ("2.28.1", 2)
        );
        assert_eq!(
            (targets[1].copy.version.as_str(), targets[1].findings.len()),
            ("2.25.1", 1)
        );
    }

    #[test]
    fn a_stale_path_reaches_the_sibling_copy_not_a_vendored_one() {
        let mut vendored = copy(
            "certifi",
            "2022.12.7",
            &format!("{SITE}/pip/_vendor/vendor.txt"),
            SITE,
        );
        vendored.origin = Origin::Vendored(VendoredIn {
            parent: "pip".into(),
            parent_path: String::new(),
        });
        let current = format!("{SITE}/certifi-2026.10.19.dist-info/METADATA");
        let installed = [copy("certifi", "2026.10.19", &current, SITE), vendored];
        let stale = format!("{SITE}/certifi-2022.9.24.dist-info/METADATA");
        let findings = [finding("certifi", "2022.9.24", Some(&stale), "CVE-1")];
        let (targets, _) = resolve(&findings, &installed, &mut lower);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].copy.path, current);
    }

    #[test]
    fn a_path_naming_the_environment_reaches_its_copy() {
        let path = format!("{SITE}/requests-2.28.0.dist-info/METADATA");
        let installed = [copy("requests", "2.28.0", &path, SITE)];
        let findings = [finding("requests", "2.28.0", Some(SITE), "CVE-1")];
        let (targets, _) = resolve(&findings, &installed, &mut lower);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].copy.path, path);
    }

    #[test]
    fn without_a_path_the_reported_version_picks_the_copy() {
        let installed = [
            copy("libssl3", "3.0.11", "", "var/lib/dpkg"),
            copy("libssl3", "3.0.15", "", "var/lib/dpkg"),
        ];
        let findings = [finding("libssl3", "3.0.11", None, "CVE-1")];
        let (targets, _) = resolve(&findings, &installed, &mut lower);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].copy.version, "3.0.11");
    }

    #[test]
    fn a_package_the_image_lacks_is_unmatched_once_per_copy() {
        let path = "srv/site-packages/flask-2.2.2.dist-info/METADATA";
        let findings = [
            finding("flask", "2.2.2", Some(path), "CVE-1"),
            finding("flask", "2.2.2", Some(path), "CVE-2"),
        ];
        let (targets, unmatched) = resolve(&findings, &[], &mut lower);
        assert!(targets.is_empty());
        assert_eq!(unmatched.len(), 1);
        assert_eq!(unmatched[0].findings.len(), 2);
    }
}
