//! The findings of real Trivy reports land on copies `detect` finds, in a
//! tree laid out like the scanned image: same key, same version, and a path
//! equal to the report's `PkgPath` (or, for reports that name the site
//! directory, equal to the copy's scope).

mod common;

use common::{Tree, fixture};
use salve_plugin_pip::{Pip, name};
use salve_plugin_sdk::prelude::*;

/// `(PkgName, PkgPath, InstalledVersion)` of every python-pkg finding.
fn findings(report: &str) -> Vec<(String, String, String)> {
    let results: serde_json::Value =
        serde_json::from_str(&fixture(&format!("reports/{report}"))).expect("a recorded report");
    let mut found = Vec::new();
    for result in results.as_array().expect("a list of results") {
        for v in result["Vulnerabilities"]
            .as_array()
            .expect("vulnerabilities")
        {
            let field = |k: &str| v[k].as_str().expect(k).to_string();
            found.push((
                field("PkgName"),
                field("PkgPath"),
                field("InstalledVersion"),
            ));
        }
    }
    assert!(!found.is_empty());
    found
}

fn detect(tree: &Tree, context: &ImageContext) -> Vec<InstalledPackage> {
    match Pip::detect(&tree.image(), context, &Answers::default()) {
        Ok(Detected::Packages(found)) => found,
        other => panic!("detect: {other:?}"),
    }
}

/// The official `python:3.11` image's layout, with the distributions these
/// reports name (real METADATA from the wheels on PyPI).
fn python_311_image() -> Tree {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    let vendor = format!("{site}/setuptools/_vendor");
    tree.file("usr/local/bin/python3.11", "")
        .symlink("usr/local/bin/python3", "python3.11")
        .wheel(site, "pip-24.0.dist-info", Some("pip"))
        .wheel(site, "setuptools-79.0.1.dist-info", Some("pip"))
        .wheel(site, "wheel-0.45.1.dist-info", Some("pip"))
        .wheel(site, "werkzeug-3.1.4.dist-info", Some("pip"))
        .wheel(&vendor, "jaraco.context-5.3.0.dist-info", None)
        .wheel(&vendor, "wheel-0.45.1.dist-info", None);
    tree
}

fn python_311_context() -> ImageContext {
    ImageContext {
        architecture: "amd64".into(),
        env: vec![("PYTHON_VERSION".into(), "3.11.14".into())],
        ..ImageContext::default()
    }
}

#[test]
fn every_finding_of_the_flask_reports_has_its_copy() {
    let tree = python_311_image();
    let found = detect(&tree, &python_311_context());

    for report in [
        "nanda9_flask-python-app__trivy.json",
        "jhowell-ocs_FuelTime__trivy-image-report.json",
    ] {
        for (pkg, path, version) in findings(report) {
            let copy = found
                .iter()
                .find(|p| p.path == path)
                .unwrap_or_else(|| panic!("{report}: no copy at {path}"));
            assert_eq!(copy.key, name::normalize(&pkg), "{report}: {path}");
            assert_eq!(copy.version, version, "{report}: {path}");
        }
    }
}

#[test]
fn vendored_findings_point_at_setuptools_and_the_rest_are_managed() {
    let tree = python_311_image();
    let found = detect(&tree, &python_311_context());
    let site = "usr/local/lib/python3.11/site-packages";

    for (pkg, path, _) in findings("jhowell-ocs_FuelTime__trivy-image-report.json") {
        let copy = found.iter().find(|p| p.path == path).expect("a copy");
        if path.contains("/_vendor/") {
            assert_eq!(
                copy.origin,
                Origin::Vendored(VendoredIn {
                    parent: "setuptools".into(),
                    parent_path: format!("{site}/setuptools-79.0.1.dist-info/METADATA"),
                }),
                "{pkg} at {path}"
            );
        } else {
            assert_eq!(copy.origin, Origin::Managed, "{pkg} at {path}");
            assert_eq!(copy.attribute("python-full-version"), Some("3.11.14"));
        }
    }
}

#[test]
fn reports_that_name_the_site_directory_match_the_scope() {
    let tree = Tree::new();
    tree.file("usr/local/bin/python3.11", "")
        .dist("usr/local/lib/python3.11/site-packages", "pip", "24.0")
        .dist(
            "usr/local/lib/python3.11/site-packages",
            "requests",
            "2.28.1",
        )
        .file(
            "opt/venv/pyvenv.cfg",
            "home = /usr/local/bin\nversion = 3.11.9\n",
        )
        .symlink("opt/venv/bin/python", "/usr/local/bin/python3.11")
        .dist("opt/venv/lib/python3.11/site-packages", "pip", "24.0")
        .dist(
            "opt/venv/lib/python3.11/site-packages",
            "requests",
            "2.28.0",
        )
        .dist("opt/venv/lib/python3.11/site-packages", "urllib3", "1.26.0");
    let found = detect(&tree, &python_311_context());

    for (pkg, path, version) in findings("project-copacetic_copacetic__trivy_python_venv.json") {
        let copy = found
            .iter()
            .find(|p| p.scope == path && p.key == name::normalize(&pkg))
            .unwrap_or_else(|| panic!("no {pkg} in the scope {path}"));
        assert_eq!(copy.version, version);
        assert_eq!(copy.origin, Origin::Managed);
    }
}
