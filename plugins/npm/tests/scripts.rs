//! The Node.js programs plans run in the image, run on this machine's
//! `node` against directories standing in for projects.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestImage;
use serde_json::{Value, json};

const NPM_JS: &str = include_str!("../src/js/npm.js");

/// Whether `node` runs here; says why not, or fails under CI (`SALVE_CI=1`).
fn have_node(test: &str) -> bool {
    let runs = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var_os("SALVE_CI").is_none(),
            "{test}: SALVE_CI=1 and node is not installed"
        );
        eprintln!("skipping {test}: node is not installed (set SALVE_CI=1 to make this a failure)");
    }
    runs
}

/// Runs `node -e <npm.js> args...`; returns (exit code, stdout + stderr).
fn node(args: &[&str]) -> (i32, String) {
    node_with_path(args, None)
}

fn node_with_path(args: &[&str], path: Option<&str>) -> (i32, String) {
    let mut command = Command::new("node");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command
        .arg("-e")
        .arg(NPM_JS)
        .args(args)
        .output()
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn edit(file: &Path, edits: Value) -> (i32, String) {
    node(&["edit", file.to_str().unwrap(), &edits.to_string()])
}

#[test]
fn manifest_edits_keep_indentation_line_endings_and_key_order() {
    if !have_node("manifest_edits_keep_indentation_line_endings_and_key_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("package.json");
    let original = "{\r\n    \"name\": \"app\",\r\n    \"dependencies\": {\r\n        \"zeta\": \"1.0.0\",\r\n        \"express\": \"^4.17.1\"\r\n    },\r\n    \"private\": true\r\n}\r\n";
    std::fs::write(&file, original).unwrap();

    let (code, out) = edit(
        &file,
        json!({"specs": [["dependencies", "express", "4.19.2"]],
               "overrides": [[["express@4.17.1", "."], "$express"], [["express@4.17.1", "qs"], "6.7.3"]]}),
    );
    assert_eq!(code, 0, "{out}");
    let expected = "{\r\n    \"name\": \"app\",\r\n    \"dependencies\": {\r\n        \"zeta\": \"1.0.0\",\r\n        \"express\": \"4.19.2\"\r\n    },\r\n    \"private\": true,\r\n    \"overrides\": {\r\n        \"express@4.17.1\": {\r\n            \".\": \"$express\",\r\n            \"qs\": \"6.7.3\"\r\n        }\r\n    }\r\n}\r\n";
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
}

#[test]
fn manifest_edits_compose_with_earlier_ones_and_the_users_overrides() {
    if !have_node("manifest_edits_compose_with_earlier_ones_and_the_users_overrides") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("package.json");
    std::fs::write(
        &file,
        "{\n\t\"name\": \"app\",\n\t\"overrides\": {\n\t\t\"rc@1.2.8\": \"1.2.8\"\n\t}\n}",
    )
    .unwrap();
    assert_eq!(
        edit(
            &file,
            json!({"overrides": [[["rc@1.2.8", "ini"], "1.3.8"]]})
        )
        .0,
        0
    );
    assert_eq!(
        edit(
            &file,
            json!({"overrides": [[["rc@1.2.8", "minimist"], "1.2.6"]]})
        )
        .0,
        0
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.ends_with('\n'), "no final newline was added");
    let written: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        written["overrides"],
        json!({"rc@1.2.8": {".": "1.2.8", "ini": "1.3.8", "minimist": "1.2.6"}})
    );
    assert!(
        text.contains("\n\t\t\"rc@1.2.8\": {\n\t\t\t\".\""),
        "tabs kept: {text}"
    );
}

#[test]
fn manifest_edits_of_a_missing_dependency_fail_naming_the_file() {
    if !have_node("manifest_edits_of_a_missing_dependency_fail_naming_the_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("package.json");
    std::fs::write(&file, "{\"name\": \"app\"}\n").unwrap();
    let (code, out) = edit(
        &file,
        json!({"specs": [["dependencies", "express", "4.19.2"]]}),
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("package.json: dependencies.express is missing"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"name\": \"app\"}\n"
    );
}

/// The demo application's tree, and a snapshot of it.
fn snapshotted() -> (TestImage, String, String) {
    let image = TestImage::app("app/package-lock.json", true);
    let root = image.root().join("app").to_string_lossy().into_owned();
    let before = image
        .root()
        .join("before.json")
        .to_string_lossy()
        .into_owned();
    let (code, out) = node(&["snapshot", &root, &before]);
    assert_eq!(code, 0, "{out}");
    (image, root, before)
}

fn set_version(image: &TestImage, location: &str, name: &str, version: &str) {
    image.write(
        &format!("app/{location}/package.json"),
        &json!({"name": name, "version": version}).to_string(),
    );
}

#[test]
fn tree_comparison_accepts_the_target_and_flags_anything_else() {
    if !have_node("tree_comparison_accepts_the_target_and_flags_anything_else") {
        return;
    }
    let (image, root, before) = snapshotted();
    let targets = json!([{"name": "qs", "location": "node_modules/qs", "version": "6.7.3",
                          "dependents": [{"location": "node_modules/body-parser", "version": "1.19.0"},
                                         {"location": "node_modules/express", "version": "4.17.1"}]}])
    .to_string();

    set_version(&image, "node_modules/qs", "qs", "6.7.3");
    let (code, out) = node(&["compare", &root, &before, &targets]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("1 copies changed in {root}, each a target or something one needs").as_str()
        )
    );

    set_version(&image, "node_modules/lodash", "lodash", "4.17.21");
    let (code, out) = node(&["compare", &root, &before, &targets]);
    assert_eq!(code, 1);
    assert!(
        out.contains("node_modules/lodash: lodash@4.17.15 -> lodash@4.17.21"),
        "{out}"
    );
}

#[test]
fn tree_comparison_follows_a_copy_npm_placed_under_its_dependent() {
    if !have_node("tree_comparison_follows_a_copy_npm_placed_under_its_dependent") {
        return;
    }
    let (image, root, before) = snapshotted();
    std::fs::remove_dir_all(image.root().join("app/node_modules/minimist")).unwrap();
    set_version(
        &image,
        "node_modules/mkdirp/node_modules/minimist",
        "minimist",
        "0.2.4",
    );
    let moved = json!([{"name": "minimist", "location": "node_modules/minimist",
                        "version": "0.2.4",
                        "dependents": [{"location": "node_modules/mkdirp", "version": "0.5.1"}]}])
    .to_string();
    let (code, out) = node(&["compare", &root, &before, &moved]);
    assert_eq!(code, 0, "{out}");

    let wrong = moved.replace("0.2.4", "0.2.5");
    let (code, out) = node(&["compare", &root, &before, &wrong]);
    assert_eq!(code, 1);
    assert!(
        out.contains("node_modules/mkdirp loads minimist@0.2.4 instead of minimist@0.2.5"),
        "{out}"
    );
}

#[test]
fn versions_are_what_each_dependent_loads() {
    if !have_node("versions_are_what_each_dependent_loads") {
        return;
    }
    let (_image, root, _) = snapshotted();
    let (_, out) = node(&[
        "versions",
        &root,
        "minimist",
        "node_modules/mkdirp",
        "node_modules/rc",
    ]);
    assert_eq!(out.trim(), "0.0.8 1.2.0");
    let (_, out) = node(&["versions", &root, "express", ""]);
    assert_eq!(out.trim(), "4.17.1");
}

#[test]
fn stage_lock_copies_what_npm_ci_reads() {
    if !have_node("stage_lock_copies_what_npm_ci_reads") {
        return;
    }
    let (image, root, _) = snapshotted();
    image.write("app/.npmrc", "registry=https://npm.example.com/\n");
    let dir = image.root().join("ci").to_string_lossy().into_owned();
    let (code, out) = node(&["stage-lock", &root, &dir]);
    assert_eq!(code, 0, "{out}");
    let mut copied: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    copied.sort();
    assert_eq!(copied, [".npmrc", "package-lock.json", "package.json"]);
}

#[test]
fn a_dependent_that_moved_is_not_held_to_the_old_pin() {
    if !have_node("a_dependent_that_moved_is_not_held_to_the_old_pin") {
        return;
    }
    // An earlier task moved body-parser, which brought its own qs; the qs
    // task was planned when body-parser 1.19.0 still required the top qs.
    let image = TestImage::app("app/package-lock.json", true);
    set_version(&image, "node_modules/body-parser", "body-parser", "1.20.3");
    set_version(
        &image,
        "node_modules/body-parser/node_modules/qs",
        "qs",
        "6.13.0",
    );
    let root = image.root().join("app").to_string_lossy().into_owned();
    let before = image
        .root()
        .join("before.json")
        .to_string_lossy()
        .into_owned();
    assert_eq!(node(&["snapshot", &root, &before]).0, 0);

    set_version(&image, "node_modules/qs", "qs", "6.7.3");
    let targets = json!([{"name": "qs", "location": "node_modules/qs", "version": "6.7.3",
        "dependents": [{"location": "node_modules/body-parser", "version": "1.19.0"},
                       {"location": "node_modules/express", "version": "4.17.1"}]}])
    .to_string();
    let (code, out) = node(&["compare", &root, &before, &targets]);
    assert_eq!(code, 0, "{out}");

    // express did not move, so it is held to the pin.
    set_version(&image, "node_modules/qs", "qs", "6.7.2");
    let (code, out) = node(&["compare", &root, &before, &targets]);
    assert_eq!(code, 1);
    assert!(
        out.contains("node_modules/express loads qs@6.7.2 instead of qs@6.7.3"),
        "{out}"
    );
}

#[test]
fn fixed_means_gone_or_at_the_target_or_later() {
    if !have_node("fixed_means_gone_or_at_the_target_or_later") {
        return;
    }
    let (image, root, _) = snapshotted();
    let fixed = |location: &str, target: &str| node(&["fixed", &root, location, target]).1;
    assert_eq!(fixed("node_modules/qs", "6.7.3").trim(), "still qs@6.7.0");
    set_version(&image, "node_modules/qs", "qs", "6.13.0");
    assert_eq!(fixed("node_modules/qs", "6.7.3").trim(), "fixed");
    assert_eq!(fixed("node_modules/qs", "6.13.0-rc.1").trim(), "fixed");
    assert_eq!(fixed("node_modules/nothing-here", "1.0.0").trim(), "fixed");
    set_version(&image, "node_modules/qs", "qs", "6.13.0-rc.1");
    assert_eq!(
        fixed("node_modules/qs", "6.13.0").trim(),
        "still qs@6.13.0-rc.1"
    );
}

#[test]
fn the_dry_run_reports_what_requires_each_watched_copy_in_the_new_lockfile() {
    if !have_node("the_dry_run_reports_what_requires_each_watched_copy_in_the_new_lockfile") {
        return;
    }
    let (image, root, _) = snapshotted();
    // A stand-in npm that leaves the lockfile as it is: this pins how the
    // program reads a lockfile, not what npm resolves.
    let bin = image.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("npm");
    std::fs::write(&fake, "#!/bin/sh\necho \"$@\" > args.txt\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = image.root().join("dry").to_string_lossy().into_owned();
    let edits = json!({"specs": [["dependencies", "express", "4.19.2"]]}).to_string();
    let (code, out) = node_with_path(
        &[
            "dry-run",
            &root,
            &dir,
            &edits,
            r#"["minimist"]"#,
            "--omit=dev",
        ],
        Some(&path),
    );
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        report,
        json!({"copies": [
            {"name": "minimist", "location": "node_modules/minimist", "version": "0.0.8",
             "dependents": [{"location": "node_modules/mkdirp", "name": "mkdirp", "version": "0.5.1"}]},
            {"name": "minimist", "location": "node_modules/rc/node_modules/minimist",
             "version": "1.2.0",
             "dependents": [{"location": "node_modules/rc", "name": "rc", "version": "1.2.8"}]},
        ]})
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["dependencies"]["express"], "4.19.2",
        "edited on the copy"
    );
    let args = std::fs::read_to_string(Path::new(&dir).join("args.txt")).unwrap();
    assert_eq!(args.trim(), "install --package-lock-only --omit=dev");
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(image.root().join("app/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        original["dependencies"]["express"], "^4.17.1",
        "the project is untouched"
    );
}
