//! What is installed in an image, read from its layers' real contents.
//!
//! The scan reads the package metadata a scanner such as Trivy reads, with
//! none of salve's code (it is also the independent re-scan after a patch):
//!
//! - Debian: `var/lib/dpkg/status`;
//! - Python: `*.dist-info/METADATA` and `*.egg-info/PKG-INFO` (or an
//!   `*.egg-info` file) anywhere in the tree;
//! - npm: `node_modules/<name>/package.json` and
//!   `node_modules/@scope/<name>/package.json` anywhere in the tree.
//!
//! Layers are applied in order with OCI whiteouts, keeping only those
//! files, so no root file system is unpacked. Each package records the
//! layer that last wrote its metadata, as Trivy's `Layer` field does.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layout;

/// A package ecosystem the scan knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// dpkg packages.
    Debian,
    /// Python distributions.
    Pypi,
    /// npm packages.
    Npm,
}

/// An image that cannot be scanned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image's files cannot be read.
    #[error("reading image {path}")]
    Layout {
        /// The image path.
        path: String,
        /// What went wrong.
        #[source]
        source: layout::Error,
    },
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as its metadata spells it.
    pub name: String,
    /// Its installed version.
    pub version: String,
    /// The metadata file, relative to the root, as Trivy's `PkgPath` writes
    /// it (`usr/local/lib/python3.11/dist-packages/requests-2.25.1.dist-info/METADATA`,
    /// `app/node_modules/qs/package.json`, `var/lib/dpkg/status`).
    pub path: String,
    /// The directory the package is installed in: the `site-packages` or
    /// `node_modules` directory, or `var/lib/dpkg`.
    pub dir: String,
    /// The index of the layer that last wrote this package's metadata.
    pub layer: usize,
    /// For Debian, the source package's name and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(String, String)>,
    /// For Debian, the package's architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

/// A layer as the scan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerId {
    /// The blob digest, when the image format names it.
    pub digest: Option<String>,
    /// The sha256 of the uncompressed layer.
    pub diff_id: String,
}

/// Everything the scan found in one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// `etc/debian_version`, when the image is Debian.
    pub debian_version: Option<String>,
    /// The image's config digest.
    pub image_id: String,
    /// The image's architecture.
    pub architecture: String,
    /// The image's config, as JSON.
    pub config: serde_json::Value,
    /// The layers, bottom first.
    pub layers: Vec<LayerId>,
    /// Installed packages, sorted by ecosystem, name, path.
    pub packages: Vec<Package>,
}

impl Inventory {
    /// The packages of one ecosystem.
    pub fn of(&self, ecosystem: Ecosystem) -> impl Iterator<Item = &Package> {
        self.packages
            .iter()
            .filter(move |p| p.ecosystem == ecosystem)
    }

    /// The package `name` installed in `dir`, if any (names compare as the
    /// ecosystem compares them: Python's case- and separator-insensitively).
    pub fn find(&self, ecosystem: Ecosystem, dir: &str, name: &str) -> Option<&Package> {
        let wanted = normalize(ecosystem, name);
        self.of(ecosystem)
            .find(|p| p.dir == dir && normalize(ecosystem, &p.name) == wanted)
    }
}

/// A package name in the form its ecosystem compares: PEP 503 for Python.
pub fn normalize(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::Pypi => {
            let lower = name.to_ascii_lowercase();
            let mut out = String::with_capacity(lower.len());
            for part in lower.split(['-', '_', '.']).filter(|part| !part.is_empty()) {
                if !out.is_empty() {
                    out.push('-');
                }
                out.push_str(part);
            }
            out
        }
        Ecosystem::Debian | Ecosystem::Npm => name.to_owned(),
    }
}

/// Scans the image at `path` (an OCI layout or a docker-archive); `name`
/// picks one image when the file holds several.
pub fn scan(path: &Path, name: Option<&str>) -> Result<Inventory, Error> {
    let context = |source| Error::Layout {
        path: path.display().to_string(),
        source,
    };
    let opened = layout::open(path).map_err(context)?;
    let image = opened.image(name).map_err(context)?;

    let mut files = Files::default();
    let mut layers = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let diff_id = files.apply(index, layer).map_err(context)?;
        layers.push(LayerId {
            digest: layer.digest.clone(),
            diff_id,
        });
    }

    let mut packages = files.packages();
    packages.sort_by(|a, b| (a.ecosystem, &a.name, &a.path).cmp(&(b.ecosystem, &b.name, &b.path)));
    Ok(Inventory {
        debian_version: files
            .text("etc/debian_version")
            .map(|v| v.trim().to_owned()),
        image_id: image.config_digest.clone(),
        architecture: image.config.architecture.clone(),
        config: serde_json::from_slice(&image.config_bytes).unwrap_or_default(),
        layers,
        packages,
    })
}

/// The metadata files seen so far, by path, with the layer that wrote them.
#[derive(Default)]
struct Files {
    files: BTreeMap<String, (usize, Vec<u8>)>,
    /// The layer that first showed each (package, version) in dpkg's status.
    dpkg_origin: HashMap<(String, String), usize>,
}

impl Files {
    /// Applies one layer on top of what is there, with OCI whiteouts.
    fn apply(&mut self, index: usize, layer: &layout::Layer) -> Result<String, layout::Error> {
        let mut added: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut removed: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();

        let diff_id = layout::walk(layer, |entry| {
            let path = clean(&entry.path()?.to_string_lossy());
            let (parent, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            let kind = entry.header().entry_type();

            if base == ".wh..wh..opq" {
                opaque.push(parent.to_owned());
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                removed.push(join(parent, hidden));
            } else if !kind.is_dir() {
                // Anything but a directory replaces what was at its path,
                // and everything under it if that was a directory.
                removed.push(path.clone());
                if wanted(&path) && kind.is_file() {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    added.insert(path, bytes);
                } else if wanted(&path) && kind.is_hard_link() {
                    let target = entry.link_name()?.map(|t| clean(&t.to_string_lossy()));
                    if let Some(bytes) = target.and_then(|t| added.get(&t).cloned()) {
                        added.insert(path, bytes);
                    }
                }
            }
            Ok(())
        })?;

        // Whiteouts hide lower layers' files only, then this layer's land.
        for dir in &opaque {
            self.remove_under(dir);
        }
        for path in &removed {
            self.files.remove(path);
            self.remove_under(path);
        }
        if let Some(status) = added.get(DPKG_STATUS) {
            for (name, version) in dpkg_installed(status)
                .into_iter()
                .map(|p| (p.name, p.version))
            {
                self.dpkg_origin.entry((name, version)).or_insert(index);
            }
        }
        self.files.extend(
            added
                .into_iter()
                .map(|(path, bytes)| (path, (index, bytes))),
        );
        Ok(diff_id)
    }

    fn remove_under(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .map(|(k, _)| k.clone())
            .take_while(|k| k.starts_with(&prefix))
            .collect();
        for path in doomed {
            self.files.remove(&path);
        }
    }

    fn text(&self, path: &str) -> Option<String> {
        self.files
            .get(path)
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
    }

    fn packages(&self) -> Vec<Package> {
        let mut packages = Vec::new();
        for (path, (layer, bytes)) in &self.files {
            if path == DPKG_STATUS {
                for mut package in dpkg_installed(bytes) {
                    let key = (package.name.clone(), package.version.clone());
                    package.layer = self.dpkg_origin.get(&key).copied().unwrap_or(*layer);
                    packages.push(package);
                }
            } else if let Some(mut package) = python_package(path, bytes) {
                package.layer = *layer;
                packages.push(package);
            } else if let Some(mut package) = npm_package(path, bytes) {
                package.layer = *layer;
                packages.push(package);
            }
        }
        packages
    }
}

const DPKG_STATUS: &str = "var/lib/dpkg/status";

/// Whether the scan keeps the file at `path`.
fn wanted(path: &str) -> bool {
    path == DPKG_STATUS
        || path == "etc/debian_version"
        || path.ends_with(".dist-info/METADATA")
        || path.ends_with(".egg-info/PKG-INFO")
        || path.ends_with(".egg-info")
        || node_modules_dir(path).is_some()
}

/// For `.../node_modules/[@scope/]name/package.json`, the `node_modules` dir.
fn node_modules_dir(path: &str) -> Option<&str> {
    let dir = path.strip_suffix("/package.json")?;
    let (parent, _name) = dir.rsplit_once('/')?;
    let parent = match parent.rsplit_once('/') {
        Some((above, scope)) if scope.starts_with('@') => above,
        _ if parent.starts_with('@') => return None,
        _ => parent,
    };
    (parent == "node_modules" || parent.ends_with("/node_modules")).then_some(parent)
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// The packages dpkg's status file says are installed.
fn dpkg_installed(status: &[u8]) -> Vec<Package> {
    let text = String::from_utf8_lossy(status);
    let mut packages = Vec::new();
    for paragraph in text.split("\n\n") {
        let fields = rfc822_fields(paragraph);
        let installed = fields
            .get("Status")
            .is_some_and(|s| s.ends_with(" installed"));
        let (Some(name), Some(version), true) =
            (fields.get("Package"), fields.get("Version"), installed)
        else {
            continue;
        };

        // `Source: name` or `Source: name (version)`; absent means the same.
        let source = match fields.get("Source").map(|s| s.split_once(" (")) {
            Some(Some((source, version))) => {
                (source.to_owned(), version.trim_end_matches(')').to_owned())
            }
            Some(None) => (fields["Source"].clone(), version.clone()),
            None => (name.clone(), version.clone()),
        };
        packages.push(Package {
            ecosystem: Ecosystem::Debian,
            name: name.clone(),
            version: version.clone(),
            path: DPKG_STATUS.to_owned(),
            dir: "var/lib/dpkg".to_owned(),
            layer: 0,
            source: Some(source),
            arch: fields.get("Architecture").cloned(),
        });
    }
    packages
}

/// A Python distribution from its `METADATA` or `PKG-INFO`.
fn python_package(path: &str, bytes: &[u8]) -> Option<Package> {
    let metadata_dir = path
        .strip_suffix("/METADATA")
        .filter(|dir| dir.ends_with(".dist-info"))
        .or_else(|| {
            path.strip_suffix("/PKG-INFO")
                .filter(|dir| dir.ends_with(".egg-info"))
        })
        .or_else(|| path.ends_with(".egg-info").then_some(path))?;
    let dir = metadata_dir.rsplit_once('/').map_or("", |(dir, _)| dir);

    // The headers end at the first blank line; the description follows.
    let text = String::from_utf8_lossy(bytes);
    let headers = text.split("\n\n").next().unwrap_or_default();
    let fields = rfc822_fields(headers);
    Some(Package {
        ecosystem: Ecosystem::Pypi,
        name: fields.get("Name")?.clone(),
        version: fields.get("Version")?.clone(),
        path: path.to_owned(),
        dir: dir.to_owned(),
        layer: 0,
        source: None,
        arch: None,
    })
}

/// An npm package from its `package.json`.
fn npm_package(path: &str, bytes: &[u8]) -> Option<Package> {
    #[derive(Deserialize)]
    struct Manifest {
        name: Option<String>,
        version: Option<String>,
    }
    let dir = node_modules_dir(path)?;
    let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name: manifest.name?,
        version: manifest.version?,
        path: path.to_owned(),
        dir: dir.to_owned(),
        layer: 0,
        source: None,
        arch: None,
    })
}

/// `Key: value` lines; continuation lines (leading space) are dropped.
fn rfc822_fields(paragraph: &str) -> HashMap<&str, String> {
    paragraph
        .lines()
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_modules_paths_are_recognized_with_and_without_scope() {
        assert_eq!(
            node_modules_dir("app/node_modules/qs/package.json"),
            Some("app/node_modules")
        );
        assert_eq!(
            node_modules_dir("app/node_modules/@babel/core/package.json"),
            Some("app/node_modules")
        );
        assert_eq!(
            node_modules_dir("app/node_modules/mkdirp/node_modules/minimist/package.json"),
            Some("app/node_modules/mkdirp/node_modules")
        );
        assert_eq!(node_modules_dir("app/package.json"), None);
        assert_eq!(
            node_modules_dir("app/node_modules/qs/test/package.json"),
            None
        );
    }

    #[test]
    fn python_names_normalize_per_pep_503() {
        assert_eq!(normalize(Ecosystem::Pypi, "Jinja2"), "jinja2");
        assert_eq!(
            normalize(Ecosystem::Pypi, "charset_normalizer"),
            "charset-normalizer"
        );
        assert_eq!(
            normalize(Ecosystem::Pypi, "zope..Interface"),
            "zope-interface"
        );
        assert_eq!(normalize(Ecosystem::Npm, "Foo_Bar"), "Foo_Bar");
    }

    #[test]
    fn dpkg_status_keeps_installed_packages_with_their_source() {
        let status = b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
            Source: glibc\nVersion: 2.36-9+deb12u10\n\n\
            Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
            Package: libssl3\nStatus: install ok installed\nSource: openssl (3.0.15-1~deb12u1)\n\
            Version: 3.0.15-1~deb12u1+b1\nDescription: x\n more\n";
        let packages = dpkg_installed(status);
        let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libc6", "libssl3"]);
        assert_eq!(
            packages[0].source,
            Some(("glibc".into(), "2.36-9+deb12u10".into()))
        );
        assert_eq!(
            packages[1].source,
            Some(("openssl".into(), "3.0.15-1~deb12u1".into()))
        );
        assert_eq!(packages[1].version, "3.0.15-1~deb12u1+b1");
    }

    #[test]
    fn python_metadata_headers_stop_at_the_description() {
        let metadata =
            b"Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n\nName: not-this\n";
        let path = "usr/local/lib/python3.11/dist-packages/requests-2.25.1.dist-info/METADATA";
        let package = python_package(path, metadata).expect("a package");
        assert_eq!(
            (package.name.as_str(), package.version.as_str()),
            ("requests", "2.25.1")
        );
        assert_eq!(package.dir, "usr/local/lib/python3.11/dist-packages");

        let egg = "usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO";
        let package = python_package(egg, b"Name: idna\nVersion: 3.3\n").expect("a package");
        assert_eq!(package.dir, "usr/lib/python3/dist-packages");
    }
}
