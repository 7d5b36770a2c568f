//! Directories standing in for images, built from the fixtures.
//!
//! The fixtures hold real manifests and lockfiles (see
//! `fixtures/README.md`); an installed tree is laid out from a lockfile the
//! way npm lays it out: one `package.json` per locked location, with the
//! name, version and dependencies the lockfile records.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use salve_plugin_npm::Npm;
use salve_plugin_sdk::{
    Answers, Detected, ImageContext, InstalledPackage, Plugin, ProbeResult, image::Image,
};
use serde_json::{Value, json};

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A directory standing in for an image.
pub struct TestImage {
    pub dir: tempfile::TempDir,
}

impl TestImage {
    pub fn new() -> TestImage {
        TestImage {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn image(&self) -> Image {
        Image::at(self.root())
    }

    /// Writes `contents` at the image path `path` (never outside the image).
    pub fn write(&self, path: &str, contents: &str) {
        let relative = Path::new(path.trim_start_matches('/'));
        assert!(
            relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{path} is not a plain path inside the image"
        );
        let full = self.root().join(relative);
        std::fs::create_dir_all(full.parent().expect("a parent")).expect("creating dirs");
        std::fs::write(full, contents).expect("writing a file");
    }

    /// Copies a fixture file to the image path `path`.
    pub fn copy(&self, fixture: &str, path: &str) {
        let text = std::fs::read_to_string(fixtures().join(fixture)).expect("reading a fixture");
        self.write(path, &text);
    }

    /// Copies a fixture directory tree under the image path `path`.
    pub fn copy_tree(&self, fixture: &str, path: &str) {
        let from = fixtures().join(fixture);
        for entry in walk(&from) {
            let relative = entry.strip_prefix(&from).expect("under the fixture");
            let text = std::fs::read_to_string(&entry).expect("reading a fixture");
            let inside = Path::new(path).join(relative);
            self.write(&inside.to_string_lossy(), &text);
        }
    }

    /// Lays out the tree a version 2 or 3 lockfile describes under the
    /// image path `dir`, leaving out development-only copies unless `dev`.
    pub fn install(&self, dir: &str, lockfile: &str, dev: bool) {
        let lock: Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join(lockfile)).unwrap())
                .unwrap();
        let packages = lock["packages"].as_object().expect("a v2 or v3 lockfile");
        for (location, entry) in packages {
            if location.is_empty() || (!dev && entry["dev"] == json!(true)) {
                continue;
            }
            let name = entry["name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let cut = location.rfind("node_modules/").unwrap() + "node_modules/".len();
                    location[cut..].to_string()
                });
            let mut manifest = json!({ "name": name, "version": entry["version"] });
            for key in ["dependencies", "optionalDependencies", "peerDependencies"] {
                if let Some(v) = entry.get(key) {
                    manifest[key] = v.clone();
                }
            }
            let text = serde_json::to_string_pretty(&manifest).unwrap();
            self.write(&format!("{dir}/{location}/package.json"), &text);
        }
    }

    /// The demo application at `app/`, installed from its v3 lockfile.
    pub fn app(lockfile: &str, dev: bool) -> TestImage {
        let image = TestImage::new();
        image.copy("app/package.json", "app/package.json");
        image.copy(lockfile, "app/package-lock.json");
        image.install("app", "app/package-lock.json", dev);
        image.write("usr/bin/npm", "");
        image
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing a fixture dir") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Probe answers for an image with this npm and node.
pub fn answers(npm: &str, node: &str) -> Answers {
    let answer = |id: &str, out: &str| ProbeResult {
        id: id.into(),
        exit_code: 0,
        stdout: format!("{out}\n"),
        stderr: String::new(),
    };
    Answers(vec![
        answer("npm-version", npm),
        answer("node-version", node),
    ])
}

/// Detects with Debian bookworm's npm 9.2.0 and Node 18.20.4.
pub fn detect(image: &TestImage) -> Vec<InstalledPackage> {
    detect_with(image, &answers("9.2.0", "v18.20.4"))
}

pub fn detect_with(image: &TestImage, answers: &Answers) -> Vec<InstalledPackage> {
    match Npm::detect(&image.image(), &ImageContext::default(), answers) {
        Ok(Detected::Packages(found)) => found,
        other => panic!("detect answered {other:?}"),
    }
}

/// The copy detected at `path`.
pub fn at<'a>(found: &'a [InstalledPackage], path: &str) -> &'a InstalledPackage {
    found
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("nothing detected at {path}"))
}
