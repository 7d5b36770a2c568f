//! `salve patch` on the test bed's Node.js image, end to end (issue 7).
//!
//! The image (`tests/recipes/node.toml`) has Debian's nodejs and npm, an
//! application at `/app` (lockfile, old express and what it pins, axios,
//! minimist at the top and an older minimist nested under mkdirp), and a
//! global package (optimist) with a vulnerable dependency. Its Trivy report
//! comes from its real contents and the advisory records in
//! `shared/advisories/`. Each level's result is checked without salve's
//! plugin: Docker runs the patched image (`npm ls`, `npm ci --dry-run`, and
//! a walk of the trees by `node`), the test bed re-scans it, and a
//! before/after diff of the trees must show only targets and what the moved
//! packages require.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use salve_tests::cli::salve;
use salve_tests::reports::{self, Classes, Finding};
use salve_tests::{BuiltImage, images, require, validate};

fn image() -> Option<(&'static BuiltImage, &'static Path)> {
    if !require::image_builder("npm end-to-end") {
        return None;
    }
    static REPORT: OnceLock<PathBuf> = OnceLock::new();
    let image = images::node().expect("the Node.js test image builds");
    let report = REPORT.get_or_init(|| {
        let path = scratch().join("node-trivy.json");
        reports::write_trivy(image, &path).expect("the report is written")
    });
    Some((image, report))
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch dir"))
        .path()
}

/// One `salve patch --json` per level, shared by the tests.
fn run(level: &'static str) -> Option<&'static (PathBuf, Value)> {
    static RUNS: OnceLock<Mutex<BTreeMap<&'static str, &'static (PathBuf, Value)>>> =
        OnceLock::new();
    let (image, report) = image()?;
    let mut runs = RUNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(done) = runs.get(level) {
        return Some(done);
    }
    let out = scratch().join(format!("patched-{level}"));
    let output = salve()
        .args(["patch", "--json", "-i", &image.oci_ref(), "-r"])
        .arg(report)
        .args([
            "--pkg-types",
            "library",
            "--library-patch-level",
            level,
            "-o",
        ])
        .arg(format!("oci:{}", out.display()))
        .args(["-t", "salve-test/node:patched"])
        .output()
        .expect("salve runs");
    let doc: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(
        output.status.code(),
        Some(0),
        "salve patch at {level}: {doc:#}"
    );
    validate::image(&out).expect("the patched image is valid");
    let done: &'static (PathBuf, Value) = Box::leak(Box::new((out, doc)));
    runs.insert(level, done);
    Some(done)
}

fn updated(doc: &Value) -> Vec<&Value> {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "updated")
        .collect()
}

type Key = (String, String, String);

fn key(f: &Finding) -> Key {
    (
        f.name.clone(),
        f.path.trim_start_matches('/').to_string(),
        f.id.clone(),
    )
}

/// Exactly the advisories salve says it closed are gone, nothing new shows.
fn assert_rescan_matches(image: &BuiltImage, patched: &Path, doc: &Value) {
    let before: BTreeSet<Key> = reports::findings(&reports::trivy_for(image).unwrap())
        .iter()
        .filter(|f| f.kind == "node-pkg")
        .map(key)
        .collect();
    let after: BTreeSet<Key> =
        reports::findings(&reports::rescan(patched, image, Classes::LIBRARY).unwrap())
            .iter()
            .filter(|f| f.kind == "node-pkg")
            .map(key)
            .collect();
    let closed: BTreeSet<Key> = updated(doc)
        .into_iter()
        .flat_map(|e| {
            let name = e["package"].as_str().unwrap().to_string();
            let path = e["location"]
                .as_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string();
            e["closes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |id| (name.clone(), path.clone(), id.as_str().unwrap().to_string()))
        })
        .collect();
    assert!(!closed.is_empty(), "salve closed nothing");
    let expected: BTreeSet<Key> = before.difference(&closed).cloned().collect();
    assert_eq!(after, expected, "the re-scan and salve's summary disagree");
}

/// A Node program that lists every installed copy under the app and the
/// global root: path -> [version, names of its dependencies].
const WALK: &str = r#"
const fs = require('fs'), path = require('path');
const out = {};
function copy(dir) {
  let pkg;
  try { pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')); } catch (e) { return; }
  out[path.relative('/', dir)] = [pkg.version, Object.keys(pkg.dependencies || {})];
  tree(path.join(dir, 'node_modules'));
}
function tree(dir) {
  let names;
  try { names = fs.readdirSync(dir); } catch (e) { return; }
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) { for (const s of fs.readdirSync(path.join(dir, name))) copy(path.join(dir, name, s)); }
    else copy(path.join(dir, name));
  }
}
tree('/app/node_modules');
tree('/usr/local/lib/node_modules');
console.log(JSON.stringify(out));
"#;

type Tree = BTreeMap<String, (String, Vec<String>)>;

/// Loads a patched OCI layout into Docker under a throw-away tag.
fn load(layout: &Path) -> String {
    let tag = format!(
        "salve-test/node-check:{}",
        layout.file_name().unwrap().to_string_lossy()
    );
    let archive = layout.with_extension("tar");
    let copied = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:patched", layout.display()))
        .arg(format!("docker-archive:{}:{tag}", archive.display()))
        .status()
        .unwrap();
    assert!(copied.success(), "skopeo exports the patched layout");
    let loaded = Command::new("docker")
        .args(["load", "--quiet", "-i"])
        .arg(&archive)
        .status()
        .unwrap();
    assert!(loaded.success(), "docker loads the patched image");
    tag
}

fn docker_run(tag: &str, network: &str, script: &str) -> std::process::Output {
    let ca = images::host_ca_bundle();
    Command::new("docker")
        .args(["run", "--rm", "--network", network, "--workdir", "/app"])
        .args(["-v", &format!("{}:/check-ca.crt:ro", ca.display())])
        .args([
            "-e",
            "NODE_EXTRA_CA_CERTS=/check-ca.crt",
            "-e",
            "npm_config_cafile=/check-ca.crt",
        ])
        .args(["--entrypoint", "sh", tag, "-c", script])
        .output()
        .unwrap()
}

fn walk(tag: &str) -> Tree {
    let out = docker_run(
        tag,
        "none",
        &format!("node -e '{}'", WALK.replace('\'', "'\\''")),
    );
    assert!(
        out.status.success(),
        "the walk runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: BTreeMap<String, (String, Vec<String>)> = serde_json::from_slice(&out.stdout).unwrap();
    raw
}

/// Runs the patched image: `npm ls` is clean, the lockfile and
/// `package.json` agree (`npm ci --dry-run`), every updated copy is at or
/// past its target where salve says, and the tree changed only where the
/// targets and what they require explain it.
fn assert_patched_project(original: &BuiltImage, layout: &Path, doc: &Value) {
    let tag = load(layout);
    let ls = docker_run(&tag, "none", "npm ls --all >/dev/null");
    assert!(
        ls.status.success(),
        "npm ls: {}",
        String::from_utf8_lossy(&ls.stderr)
    );
    // The global packages' trees too (optimist's, whose dependency moved
    // inside it).
    let ls = docker_run(&tag, "none", "npm ls -g --all >/dev/null");
    assert!(
        ls.status.success(),
        "npm ls -g: {}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let ci = docker_run(
        &tag,
        "host",
        "mkdir /tmp/ci && cp package.json package-lock.json /tmp/ci && cd /tmp/ci && \
         npm ci --dry-run --ignore-scripts --no-audit --no-fund >/dev/null",
    );
    assert!(
        ci.status.success(),
        "npm ci --dry-run: {}",
        String::from_utf8_lossy(&ci.stderr)
    );

    original.load_into_docker().unwrap();
    let before = walk(&original.tag);
    let after = walk(&tag);
    let _ = Command::new("docker")
        .args(["rmi", "--force", &tag])
        .output();

    // Each target where salve says it is now.
    let mut targets: Vec<String> = Vec::new();
    for e in updated(doc) {
        let path = e["location"].as_str().unwrap().trim_start_matches('/');
        let dir = path.trim_end_matches("/package.json").to_string();
        let name = e["package"].as_str().unwrap();
        let at = after.get(&dir).map(|(v, _)| v.as_str());
        assert_eq!(at, e["target"].as_str(), "{name} at /{dir}");
        targets.push(dir);
    }

    // What changed: a copy added, removed or at another version. Each change
    // must be a target's copy or one that a target's copy loads, before or
    // after, as node resolves it from that copy's own directory.
    let changed: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|dir| before.get(*dir).map(|x| &x.0) != after.get(*dir).map(|x| &x.0))
        .collect();
    let mut explained = loaded_from(&after, &targets);
    explained.extend(loaded_from(&before, &targets));
    let unexplained: Vec<&&String> = changed
        .iter()
        .filter(|dir| !explained.contains(**dir))
        .collect();
    assert!(
        unexplained.is_empty(),
        "changed without being a target or loaded by one: {unexplained:?}"
    );
}

/// The copy node loads for `name` required from the package in `dir`: the
/// nearest `node_modules/name` on the way up from `dir`.
fn resolve(tree: &Tree, dir: &str, name: &str) -> Option<String> {
    let mut base = dir.to_string();
    loop {
        let candidate = format!("{base}/node_modules/{name}");
        if tree.contains_key(&candidate) {
            return Some(candidate);
        }
        let up = base.rfind("/node_modules/")?;
        base.truncate(up);
    }
}

/// The directories of `roots` and of every copy they load, transitively.
fn loaded_from(tree: &Tree, roots: &[String]) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = roots
        .iter()
        .filter(|r| tree.contains_key(*r))
        .cloned()
        .collect();
    while let Some(dir) = todo.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        for dependency in &tree[&dir].1 {
            if let Some(found) = resolve(tree, &dir, dependency) {
                todo.push(found);
            }
        }
    }
    seen
}

#[test]
fn patch_level_pins_transitive_copies_and_the_project_stays_consistent() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("patch").unwrap();
    let moved: BTreeMap<&str, &str> = updated(doc)
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moved.get("/app/node_modules/qs/package.json"),
        Some(&"6.7.3"),
        "{moved:?}"
    );
    assert_eq!(
        moved.get("/app/node_modules/minimist/package.json"),
        Some(&"1.2.6")
    );
    assert!(
        !moved.contains_key("/app/node_modules/express/package.json"),
        "express has no fix on 4.17.x"
    );
    assert_rescan_matches(image, dir, doc);
    if require::docker("npm end-to-end: run the patched image") {
        assert_patched_project(image, dir, doc);
    }
}

#[test]
fn minor_level_moves_the_direct_dependency_and_both_minimist_copies() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("minor").unwrap();
    let moved: BTreeMap<&str, &str> = updated(doc)
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    let express = moved.get("/app/node_modules/express/package.json").copied();
    assert!(express.is_some_and(|v| v.starts_with("4.")), "{express:?}");
    assert!(moved.contains_key("/app/node_modules/mkdirp/node_modules/minimist/package.json"));
    assert!(
        moved.contains_key(
            "/usr/local/lib/node_modules/optimist/node_modules/minimist/package.json"
        ),
        "the global package's dependency is fixed inside its own tree"
    );
    assert_rescan_matches(image, dir, doc);
    if require::docker("npm end-to-end: run the patched image") {
        assert_patched_project(image, dir, doc);
    }
}

#[test]
fn major_level_closes_what_any_release_fixes() {
    let Some((image, _)) = image() else { return };
    let (dir, doc) = run("major").unwrap();
    let axios = updated(doc)
        .into_iter()
        .find(|e| e["location"] == "/app/node_modules/axios/package.json")
        .expect("axios moves");
    assert!(
        axios["target"].as_str().unwrap().starts_with("1."),
        "{axios}"
    );
    assert_eq!(axios["open"], serde_json::json!([]));
    assert_rescan_matches(image, dir, doc);
    if require::docker("npm end-to-end: run the patched image") {
        assert_patched_project(image, dir, doc);
    }
}
