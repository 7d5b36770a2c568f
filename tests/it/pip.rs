//! `salve patch` on the test bed's Python image, end to end (issue 6).
//!
//! The image (`tests/recipes/python.toml`) has Debian's python3 with pip and
//! venv, old releases installed by pip into the system environment, a
//! virtualenv at `/app/.venv` with its own old releases, and packages apt
//! installed. Its Trivy report is written from its real contents and the
//! advisory records in `shared/advisories/`. Each test patches it at one
//! level and checks the result three ways, none of them through salve's
//! plugin: salve's own summary, the patched image run by Docker printing
//! each package's version, and a re-scan of the patched image by the test
//! bed's scanner, which must show exactly the closed vulnerabilities gone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use salve_tests::cli::salve;
use salve_tests::reports::{self, Classes, Finding};
use salve_tests::{BuiltImage, images, require, validate};

/// The image and its report, once per test run.
fn image() -> Option<(&'static BuiltImage, &'static Path)> {
    if !require::image_builder("pip end-to-end") {
        return None;
    }
    static REPORT: OnceLock<PathBuf> = OnceLock::new();
    let image = images::python().expect("the Python test image builds");
    let report = REPORT.get_or_init(|| {
        let path = scratch().join("python-trivy.json");
        reports::write_trivy(image, &path).expect("the report is written")
    });
    Some((image, report))
}

/// A directory that lives as long as the test process.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch dir"))
        .path()
}

/// Runs `salve patch --json` and returns its exit code and document.
fn patch(input: &str, report: &Path, level: &str, dest: &str, extra: &[&str]) -> (i32, Value) {
    let output = salve()
        .args(["patch", "--json", "-i", input, "-r"])
        .arg(report)
        .args([
            "--pkg-types",
            "library",
            "--library-patch-level",
            level,
            "-o",
            dest,
        ])
        .args(["-t", "salve-test/python:patched"])
        .args(extra)
        .output()
        .expect("salve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let doc = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("salve patch printed no JSON ({e}); stderr:\n{stderr}");
    });
    (output.status.code().unwrap_or(-1), doc)
}

/// One run per level, shared by the tests that look at it.
fn run(level: &'static str) -> Option<&'static (PathBuf, Value)> {
    static RUNS: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static (PathBuf, Value)>>> =
        OnceLock::new();
    let (image, report) = image()?;
    let runs = RUNS.get_or_init(Default::default);
    let mut runs = runs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = runs.get(level) {
        return Some(done);
    }
    let out = scratch().join(format!("patched-{level}"));
    let (code, doc) = patch(
        &image.oci_ref(),
        report,
        level,
        &format!("oci:{}", out.display()),
        &[],
    );
    assert_eq!(code, 0, "salve patch at {level} failed: {doc:#}");
    validate::image(&out).expect("the patched image is valid");
    let done: &'static (PathBuf, Value) = Box::leak(Box::new((out, doc)));
    runs.insert(level, done);
    Some(done)
}

/// The environment a Trivy path belongs to: up to its site directory.
fn environment(path: &str) -> String {
    let path = path.trim_start_matches('/');
    for marker in ["/site-packages/", "/dist-packages/"] {
        if let Some(i) = path.find(marker) {
            return path[..i + marker.len() - 1].to_string();
        }
    }
    path.to_string()
}

/// PEP 503, for comparing names across spellings.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

type Key = (String, String, String);

fn key(f: &Finding) -> Key {
    (normalize(&f.name), environment(&f.path), f.id.clone())
}

/// The entries of salve's summary with this status.
fn entries<'a>(doc: &'a Value, status: &str) -> Vec<&'a Value> {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == status)
        .collect()
}

/// (package, environment) -> target of every updated entry.
fn targets(doc: &Value) -> BTreeMap<(String, String), String> {
    entries(doc, "updated")
        .into_iter()
        .map(|e| {
            let k = (
                normalize(e["package"].as_str().unwrap()),
                environment(e["location"].as_str().unwrap()),
            );
            (k, e["target"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Re-scans the patched image and checks that exactly the vulnerabilities
/// salve says it closed are gone, and nothing new appeared.
fn assert_rescan_matches(image: &BuiltImage, patched: &Path, doc: &Value) {
    let before: BTreeSet<Key> = reports::findings(&reports::trivy_for(image).unwrap())
        .iter()
        .filter(|f| f.kind == "python-pkg")
        .map(key)
        .collect();
    let after: BTreeSet<Key> =
        reports::findings(&reports::rescan(patched, image, Classes::LIBRARY).unwrap())
            .iter()
            .map(key)
            .collect();
    let closed: BTreeSet<Key> = entries(doc, "updated")
        .into_iter()
        .flat_map(|e| {
            let name = normalize(e["package"].as_str().unwrap());
            let env = environment(e["location"].as_str().unwrap());
            e["closes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |id| (name.clone(), env.clone(), id.as_str().unwrap().to_string()))
        })
        .collect();
    assert!(!closed.is_empty(), "salve closed nothing");
    let expected: BTreeSet<Key> = before.difference(&closed).cloned().collect();
    let gone_but_not_claimed: Vec<_> = expected.difference(&after).collect();
    let still_there: Vec<_> = after.difference(&expected).collect();
    assert!(
        gone_but_not_claimed.is_empty() && still_there.is_empty(),
        "re-scan disagrees with salve's summary:\n  closed without salve saying so: {gone_but_not_claimed:?}\n  open or new although claimed closed: {still_there:?}"
    );
}

/// Versions in the patched image, read by running it: the venv's and the
/// system pip environment's distributions.
fn versions_in(image_dir: &Path) -> BTreeMap<(String, String), String> {
    let tag = format!(
        "salve-test/python-check:{}",
        image_dir.file_name().unwrap().to_string_lossy()
    );
    let archive = image_dir.with_extension("tar");
    let copy = std::process::Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:patched", image_dir.display()))
        .arg(format!("docker-archive:{}:{tag}", archive.display()))
        .status()
        .unwrap();
    assert!(
        copy.success(),
        "skopeo turns the patched layout into a docker-archive"
    );
    let load = std::process::Command::new("docker")
        .args(["load", "--quiet", "-i"])
        .arg(&archive)
        .status()
        .unwrap();
    assert!(load.success(), "docker loads the patched image");

    let script = "import importlib.metadata as m, json, sys\n\
        print(json.dumps({d.metadata['Name']: d.version for d in m.distributions(path=[sys.argv[1]])}))";
    let mut found = BTreeMap::new();
    for (python, site) in [
        (
            "/app/.venv/bin/python",
            "/app/.venv/lib/python3.11/site-packages",
        ),
        (
            "/usr/bin/python3",
            "/usr/local/lib/python3.11/dist-packages",
        ),
    ] {
        let out = std::process::Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                python,
                &tag,
                "-c",
                script,
                site,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{python} runs in the patched image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
        for (name, version) in listed {
            found.insert(
                (normalize(&name), site.trim_start_matches('/').to_string()),
                version,
            );
        }
    }
    let _ = std::process::Command::new("docker")
        .args(["rmi", "--force", &tag])
        .output();
    found
}

fn assert_image_runs_with_the_targets(dir: &Path, doc: &Value) {
    let running = versions_in(dir);
    for ((name, env), target) in targets(doc) {
        assert_eq!(
            running.get(&(name.clone(), env.clone())),
            Some(&target),
            "{name} in /{env}"
        );
    }
}

#[test]
fn patch_level_moves_within_release_lines_and_a_rescan_agrees() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("patch").unwrap();

    let t = targets(doc);
    let venv = "app/.venv/lib/python3.11/site-packages".to_string();
    let system = "usr/local/lib/python3.11/dist-packages".to_string();
    assert_eq!(
        t.get(&("urllib3".into(), venv.clone())).map(String::as_str),
        Some("1.26.19")
    );
    assert_eq!(
        t.get(&("urllib3".into(), system.clone()))
            .map(String::as_str),
        Some("1.26.19")
    );
    assert_eq!(
        t.get(&("flask".into(), venv.clone())).map(String::as_str),
        Some("2.2.5")
    );
    assert!(
        !t.contains_key(&("requests".into(), venv.clone())),
        "requests has no fix on 2.28.x"
    );

    // certifi always moves to its newest release, in both environments.
    let certifi = t
        .get(&("certifi".into(), venv))
        .expect("certifi moves in the venv");
    let newest: pep440_rs::Version = certifi.parse().unwrap();
    assert!(newest >= "2024.7.4".parse().unwrap(), "{certifi}");
    assert_eq!(t.get(&("certifi".into(), system)), Some(certifi));

    // What apt installed is left to apt, with that reason.
    let apt = entries(doc, "skipped")
        .into_iter()
        .find(|e| e["location"] == "/usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO")
        .expect("apt's idna is listed");
    assert_eq!(
        apt["reason"],
        "installed by apt as python3-idna; patch with --pkg-types os"
    );

    assert_rescan_matches(image, dir, doc);
    if require::docker("pip end-to-end: run the patched image") {
        assert_image_runs_with_the_targets(dir, doc);
    }
}

#[test]
fn minor_level_also_takes_minor_moves() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("minor").unwrap();
    let t = targets(doc);
    let venv = "app/.venv/lib/python3.11/site-packages".to_string();
    let requests = t
        .get(&("requests".into(), venv.clone()))
        .expect("requests moves at minor");
    assert!(requests.starts_with("2.32."), "{requests}");
    assert_eq!(
        t.get(&("idna".into(), venv)).map(String::as_str),
        Some("3.7")
    );
    assert!(
        !t.contains_key(&(
            "idna".into(),
            "usr/local/lib/python3.11/dist-packages".into()
        )),
        "idna 2.10 -> 3.7 is a major move"
    );
    assert_rescan_matches(image, dir, doc);
    if require::docker("pip end-to-end: run the patched image") {
        assert_image_runs_with_the_targets(dir, doc);
    }
}

#[test]
fn major_level_closes_what_any_release_fixes() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("major").unwrap();
    let t = targets(doc);
    let system = "usr/local/lib/python3.11/dist-packages".to_string();
    assert_eq!(
        t.get(&("idna".into(), system)).map(String::as_str),
        Some("3.7")
    );
    let werkzeug = t.get(&(
        "werkzeug".into(),
        "app/.venv/lib/python3.11/site-packages".into(),
    ));
    assert!(
        werkzeug.is_some_and(|v| v.starts_with("3.0.")),
        "{werkzeug:?}"
    );
    assert_rescan_matches(image, dir, doc);
    if require::docker("pip end-to-end: run the patched image") {
        assert_image_runs_with_the_targets(dir, doc);
    }
}

#[test]
fn the_same_patch_twice_gives_the_same_digest() {
    let Some((image, report)) = image() else {
        return;
    };
    let (_, first) = run("patch").unwrap();
    let again = scratch().join("patched-patch-again");
    let (code, second) = patch(
        &image.oci_ref(),
        report,
        "patch",
        &format!("oci:{}", again.display()),
        &[],
    );
    assert_eq!(code, 0, "{second:#}");
    assert_eq!(
        first["image"]["manifest_digest"],
        second["image"]["manifest_digest"]
    );
    assert_eq!(
        first["image"]["config_digest"],
        second["image"]["config_digest"]
    );
}

#[test]
fn patching_a_patched_image_keeps_one_patch_layer() {
    let Some((image, report)) = image() else {
        return;
    };
    let (patched, first) = run("patch").unwrap();
    let base_layers = first["image"]["layers"].as_u64().unwrap() - 1;

    // The patch-level result, patched again at minor: both rounds of fixes
    // end up in one layer on the original layers.
    let out = scratch().join("repatched-minor");
    let input = format!("oci:{}:patched", patched.display());
    let (code, doc) = patch(
        &input,
        report,
        "minor",
        &format!("oci:{}", out.display()),
        &[],
    );
    assert_eq!(code, 0, "{doc:#}");
    validate::image(&out).unwrap();
    assert_eq!(doc["image"]["layers"].as_u64().unwrap(), base_layers + 1);

    // Its one patch layer's history names both rounds of moves.
    let opened = salve_tests::layout::open(&out).unwrap();
    let config = &opened.image(None).unwrap().config;
    let comment = config
        .history
        .last()
        .and_then(|h| h.comment.clone())
        .unwrap_or_default();
    assert!(
        comment.contains("pip Flask 2.2.2 -> 2.2.5"),
        "the first round: {comment}"
    );
    assert!(
        comment.contains("pip requests 2.28.1 -> 2.32."),
        "the second round: {comment}"
    );

    // It holds what patching the original at minor directly holds.
    let (direct, _) = run("minor").unwrap();
    let found = |dir: &Path| -> BTreeSet<Key> {
        reports::findings(&reports::rescan(dir, image, Classes::LIBRARY).unwrap())
            .iter()
            .map(key)
            .collect()
    };
    assert_eq!(found(&out), found(direct));
}

#[test]
fn a_failing_package_sinks_the_run_unless_errors_are_ignored() {
    let Some((image, report)) = image() else {
        return;
    };

    // A fix version PyPI does not have: with --offline the policy takes it
    // from the report as it is, and pip fails to install it.
    let mut doctored: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    for result in doctored["Results"].as_array_mut().unwrap() {
        for v in result["Vulnerabilities"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if v["PkgName"] == "urllib3" && v["PkgPath"].as_str().unwrap().starts_with("usr/local")
            {
                v["FixedVersion"] = "1.26.99".into();
            }
        }
    }
    let bad_report = reports::write(&scratch().join("doctored.json"), &doctored).unwrap();

    // Without --ignore-errors: a failure, and nothing written.
    let out = scratch().join("sunk");
    let (code, _) = salve_fails(&image.oci_ref(), &bad_report, &out);
    assert_eq!(code, 1);
    assert!(!out.exists(), "nothing is left where the output should be");

    // With it: the rest lands, the failure is reported, the exit code says so.
    let out = scratch().join("ignored");
    let (code, doc) = patch(
        &image.oci_ref(),
        &bad_report,
        "patch",
        &format!("oci:{}", out.display()),
        &["--ignore-errors", "--offline"],
    );
    assert_eq!(code, 3, "{doc:#}");
    let failed = entries(&doc, "failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["package"], "urllib3");
    assert_eq!(failed[0]["target"], "1.26.99");
    assert!(entries(&doc, "updated").len() >= 5);
    validate::image(&out).unwrap();
}

/// Runs a patch expected to fail; returns its exit code and stderr.
fn salve_fails(input: &str, report: &Path, out: &Path) -> (i32, String) {
    let output = salve()
        .args(["patch", "-i", input, "-r"])
        .arg(report)
        .args(["--pkg-types", "library", "--offline", "-t", "x:y", "-o"])
        .arg(format!("oci:{}", out.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("urllib3==1.26.99"), "{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}
