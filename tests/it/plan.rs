//! `salve plan` on the real public reports in `shared/reports/`, and the
//! errors for bad reports and bad flags (issue 3).
//!
//! Plans run `--offline` so that what PyPI publishes tomorrow does not
//! change today's snapshot: decisions then come from the reports' fixed
//! versions and the bundled plugins' version rules alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use salve_tests::cli::salve;
use salve_tests::inventory::Ecosystem;
use salve_tests::{advisories, images, reports, require};

fn reports_dir() -> PathBuf {
    advisories::shared_dir()
        .expect("the shared directory")
        .join("reports")
}

fn plan(args: &[&str]) -> (i32, String, String) {
    let out = salve().arg("plan").args(args).output().expect("salve runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_report(file: &str, extra: &[&str]) -> String {
    let path = reports_dir().join(file);
    let path = path.to_str().unwrap();
    let mut args = vec!["-r", path, "--offline", "--pkg-types", "os,library"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = plan(&args);
    assert_eq!(code, 0, "{file}: {stderr}");
    stdout
}

macro_rules! pinned {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            insta::assert_snapshot!(plan_report($file, &["--library-patch-level", "minor"]));
        }
    };
}

pinned!(
    plan_of_the_trivy_dotnet_golden_report,
    "aquasecurity_trivy__dotnet-json-golden.json"
);
pinned!(
    plan_of_a_node_app_on_alpine,
    "goo4422_nodejs-project__trivy-report.json"
);
pinned!(
    plan_of_a_flask_app_on_debian_13,
    "jhowell-ocs_FuelTime__trivy-image-report.json"
);
pinned!(
    plan_of_a_flask_app_with_vendored_copies,
    "nanda9_flask-python-app__trivy.json"
);
pinned!(
    plan_of_copas_dotnet_report,
    "project-copacetic_copacetic__trivy_dotnet.json"
);
pinned!(
    plan_of_copas_python_venv_report,
    "project-copacetic_copacetic__trivy_python_venv.json"
);

#[test]
fn every_public_report_is_planned() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(reports_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let table = plan_report(&name, &[]);
        assert!(table.starts_with(" ECOSYSTEM"), "{name}: {table}");
    }
}

#[test]
fn a_directory_of_reports_is_planned_as_one() {
    let dir = reports_dir();
    let (code, json, stderr) = plan(&[
        "-r",
        dir.to_str().unwrap(),
        "--offline",
        "--pkg-types",
        "library",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ecosystems: std::collections::BTreeSet<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ecosystem"].as_str().unwrap())
        .collect();
    assert!(
        ecosystems.contains("pip") && ecosystems.contains("dotnet-core"),
        "{ecosystems:?}"
    );
}

fn error_for(args: &[&str]) -> String {
    let (code, stdout, stderr) = plan(args);
    assert_eq!(code, 1, "{args:?} succeeded: {stdout}");
    assert!(stdout.is_empty(), "{args:?} printed a table: {stdout}");
    stderr.trim().to_string()
}

#[test]
fn a_report_with_a_wrong_type_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"SchemaVersion": 2, "Results": [{"Target": "x", "Class": "lang-pkgs", "Type": "python-pkg",
            "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "1",
            "FixedVersion": 2}]}]}"#,
    )
    .unwrap();
    let err = error_for(&["-r", path.to_str().unwrap()]);
    assert!(
        err.starts_with(&format!("error: reading report {}", path.display())),
        "{err}"
    );
    assert!(
        err.contains("Results[0].Vulnerabilities[0].FixedVersion"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one message: {err}");
}

#[test]
fn an_empty_or_truncated_report_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let err = error_for(&["-r", empty.to_str().unwrap()]);
    assert!(
        err.contains(&empty.display().to_string()) && err.contains("empty"),
        "{err}"
    );

    let truncated = dir.path().join("cut.json");
    let real =
        std::fs::read(reports_dir().join("goo4422_nodejs-project__trivy-report.json")).unwrap();
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    let err = error_for(&["-r", truncated.to_str().unwrap()]);
    assert!(err.contains(&truncated.display().to_string()), "{err}");
}

#[test]
fn flags_that_do_not_fit_together_are_refused() {
    let report = reports_dir().join("project-copacetic_copacetic__trivy_python_venv.json");
    let report = report.to_str().unwrap();
    let (code, stdout, stderr) = plan(&["-r", report, "--library-patch-level", "minor"]);
    assert_eq!(code, 2, "flags that do not fit together are a usage error");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "error: --library-patch-level minor applies to libraries, which --pkg-types leaves out; \
         add them with --pkg-types os,library or --pkg-types library"
    );

    let (code, _, stderr) = plan(&["-r", report, "--pkg-types", "os,firmware"]);
    assert_eq!(code, 2, "a bad flag value is a usage error");
    assert!(
        stderr.contains("unknown package type `firmware`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_report_names_its_path() {
    let err = error_for(&["-r", "/nonexistent/report.json"]);
    assert!(err.contains("/nonexistent/report.json"), "{err}");
}

/// The rows of a `salve plan --json` run, by (package, location, installed).
fn plan_rows(args: &[&str]) -> BTreeMap<(String, String, String), Value> {
    let (code, json, stderr) = plan(args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    let doc: Value = serde_json::from_str(&json).unwrap();
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap().to_string();
            (
                (field("package"), field("location"), field("installed")),
                e.clone(),
            )
        })
        .collect()
}

#[test]
fn plan_with_the_image_marks_what_it_lacks_and_grype_reads_the_same() {
    if !require::image_builder("salve plan -i on the Python image") {
        return;
    }
    let image = images::python().expect("the Python test image builds");
    let dir = tempfile::tempdir().unwrap();

    // The image's own report, plus a real PyYAML advisory for a copy the
    // image does not have.
    let mut trivy = reports::trivy_for(image).unwrap();
    let database = advisories::load().unwrap();
    let pyyaml = database.matching(Ecosystem::Pypi, "PyYAML", "5.3.1");
    let advisory = pyyaml.first().expect("PyYAML 5.3.1 has an advisory");
    let missing = "app/.venv/lib/python3.11/site-packages/PyYAML-5.3.1.dist-info/METADATA";
    let python = trivy["Results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["Type"] == "python-pkg")
        .expect("a python-pkg result");
    python["Vulnerabilities"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "VulnerabilityID": advisory.vulnerability_id(),
            "PkgName": "PyYAML",
            "PkgPath": missing,
            "InstalledVersion": "5.3.1",
            "FixedVersion": advisory.fixed.join(", "),
            "Severity": "HIGH",
        }));
    let trivy_file = reports::write(&dir.path().join("trivy.json"), &trivy).unwrap();
    let grype = reports::grype_from_trivy(&trivy);
    let grype_file = reports::write(&dir.path().join("grype.json"), &grype).unwrap();

    let image_ref = image.oci_ref();
    let on_image = |report: &Path, extra: &[&str]| {
        let mut args = vec!["-i", &image_ref, "-r", report.to_str().unwrap()];
        args.extend(["--pkg-types", "library", "--offline", "--json"]);
        args.extend_from_slice(extra);
        plan_rows(&args)
    };
    let from_trivy = on_image(&trivy_file, &[]);
    let from_grype = on_image(&grype_file, &["--scanner", "grype"]);
    let detected_grype = on_image(&grype_file, &[]);

    // The copy the image lacks is marked, with its vulnerability left open.
    let lacking = &from_trivy[&(
        "PyYAML".to_string(),
        format!("/{missing}"),
        "5.3.1".to_string(),
    )];
    assert_eq!(lacking["status"], "not-installed", "{lacking}");
    assert_eq!(
        lacking["open"][0]["id"],
        advisory.vulnerability_id(),
        "{lacking}"
    );

    // Copies the image has are planned: the venv's urllib3 moves.
    let requests = from_trivy
        .iter()
        .find(|((name, location, _), _)| name == "urllib3" && location.starts_with("/app/.venv/"))
        .map(|(_, row)| row)
        .expect("the venv's urllib3 is planned");
    assert_eq!(requests["status"], "update", "{requests}");

    // Grype's report of the same findings gives the same decisions, whether
    // its format is forced or recognised. Only the OS rows, which no plugin
    // takes yet, differ: they carry each report's own type word.
    let decided = |rows: &BTreeMap<_, Value>, os_type: &str| {
        let mut decided = rows.clone();
        decided.retain(|_, row| {
            let ecosystem = row["ecosystem"].as_str().unwrap();
            assert!(ecosystem == "pip" || ecosystem == os_type, "{row}");
            ecosystem == "pip"
        });
        let os: Vec<_> = rows
            .keys()
            .filter(|k| !decided.contains_key(*k))
            .cloned()
            .collect();
        (decided, os)
    };
    let (trivy_pip, trivy_os) = decided(&from_trivy, "debian");
    let (grype_pip, grype_os) = decided(&from_grype, "deb");
    assert!(!trivy_os.is_empty());
    assert_eq!(trivy_os, grype_os);
    assert!(
        trivy_pip == grype_pip,
        "pip rows differ:\n{trivy_pip:#?}\n{grype_pip:#?}"
    );
    assert!(
        from_grype == detected_grype,
        "--scanner grype changed the plan"
    );
}
