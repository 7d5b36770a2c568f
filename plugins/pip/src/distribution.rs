//! One installed distribution, read from its metadata directory.
//!
//! pip and every installer after it write `<name>-<version>.dist-info/`
//! (PEP 376/627): `METADATA`, `RECORD`, `INSTALLER`, maybe `top_level.txt`
//! and `direct_url.json`. Older setuptools installs leave
//! `<name>-<version>.egg-info/` directories (`PKG-INFO`), distutils a single
//! `<name>-<version>.egg-info` file, easy_install a `.egg` directory with
//! `EGG-INFO/PKG-INFO`. Name and version come from the metadata itself, never
//! from the directory name, which installers escape differently.

use salve_plugin_sdk::Error;
use salve_plugin_sdk::image::{EntryKind, Image};
use salve_plugin_sdk::metadata;

use crate::name;

/// How a distribution's metadata is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `X.dist-info/METADATA`.
    DistInfo,
    /// `X.egg-info/PKG-INFO`.
    EggInfoDir,
    /// `X.egg-info`, a single file written by distutils.
    EggInfoFile,
    /// `X.egg/EGG-INFO/PKG-INFO`, written by easy_install.
    Egg,
    /// A `name==version` line of a list of copies vendored without metadata
    /// (pip's `_vendor/vendor.txt`); the "directory" is the list itself.
    VendorList,
}

impl Format {
    /// The format of a site-directory entry, by its name and kind.
    pub fn of(entry_name: &str, is_dir: bool) -> Option<Format> {
        match (entry_name.rsplit_once('.').map(|(_, ext)| ext), is_dir) {
            (Some("dist-info"), true) => Some(Format::DistInfo),
            (Some("egg-info"), true) => Some(Format::EggInfoDir),
            (Some("egg-info"), false) => Some(Format::EggInfoFile),
            (Some("egg"), true) => Some(Format::Egg),
            _ => None,
        }
    }

    /// The metadata file inside a metadata directory (or the file itself).
    pub fn metadata_file(self, dir: &str) -> String {
        match self {
            Format::DistInfo => format!("{dir}/METADATA"),
            Format::EggInfoDir => format!("{dir}/PKG-INFO"),
            Format::EggInfoFile | Format::VendorList => dir.to_string(),
            Format::Egg => format!("{dir}/EGG-INFO/PKG-INFO"),
        }
    }
}

/// One installed distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    /// The name as its metadata spells it (`Werkzeug`).
    pub name: String,
    /// The PEP 503 normalised name.
    pub key: String,
    /// The version as its metadata spells it.
    pub version: String,
    /// The metadata directory (or egg-info file), relative to the image root.
    pub dir: String,
    /// The file scanners report: `.../METADATA`, `.../PKG-INFO`, or the
    /// egg-info file itself.
    pub metadata_path: String,
    /// How the metadata is laid out.
    pub format: Format,
    /// What its `INSTALLER` file says (`pip`, `uv`, `rpm`), if it has one.
    pub installer: Option<String>,
    /// True when pip can tell which files belong to it: a `RECORD` for
    /// dist-info, `installed-files.txt` or `top_level.txt` for egg-info.
    pub has_file_list: bool,
    /// The source tree of an editable install (`direct_url.json`), if it is
    /// one.
    pub editable_from: Option<String>,
    /// Normalised names of the distributions it requires (markers and
    /// extras ignored).
    pub requires: Vec<String>,
}

impl Distribution {
    /// Reads the distribution whose metadata lives at `dir`. `None` when the
    /// metadata lacks a name or version (the reason is logged).
    ///
    /// # Errors
    ///
    /// A file exists but cannot be read.
    pub fn read(image: &Image, dir: &str, format: Format) -> Result<Option<Distribution>, Error> {
        // One listing answers which of the optional files exist: every image
        // call resolves its path again, and in the sandbox each is a host call.
        let files: Vec<String> = match format {
            Format::DistInfo | Format::EggInfoDir => {
                image.read_dir(dir)?.into_iter().map(|e| e.name).collect()
            }
            Format::EggInfoFile | Format::Egg | Format::VendorList => Vec::new(),
        };
        let has = |name: &str| files.iter().any(|f| f == name);
        let metadata_path = format.metadata_file(dir);
        let metadata_present = match format {
            Format::DistInfo => has("METADATA"),
            Format::EggInfoDir => has("PKG-INFO"),
            _ => image.is_file(&metadata_path),
        };
        let text = if metadata_present {
            image.read_optional(&metadata_path)?
        } else {
            None
        };
        let Some(text) = text else {
            salve_plugin_sdk::host::debug(&format!("/{metadata_path}: missing; skipped"));
            return Ok(None);
        };
        let fields = metadata::headers(&text);
        let (Some(name), Some(version)) = (fields.get("Name"), fields.get("Version")) else {
            salve_plugin_sdk::host::warn(&format!(
                "/{metadata_path}: no Name or Version field; distribution skipped"
            ));
            return Ok(None);
        };
        let requires = fields
            .get_all("Requires-Dist")
            .filter(|r| {
                !r.split_once(';')
                    .is_some_and(|(_, marker)| marker.contains("extra"))
            })
            .filter_map(requirement_name)
            .collect();

        let read_extra = |file: &str| -> Result<Option<String>, Error> {
            if has(file) {
                image.read_optional(&format!("{dir}/{file}"))
            } else {
                Ok(None)
            }
        };
        let installer = match format {
            Format::DistInfo => read_extra("INSTALLER")?.map(|s| s.trim().to_string()),
            _ => None,
        };
        let has_file_list = match format {
            Format::DistInfo => has("RECORD"),
            Format::EggInfoDir => has("installed-files.txt") || has("top_level.txt"),
            Format::EggInfoFile | Format::Egg | Format::VendorList => false,
        };
        let editable_from = match format {
            Format::DistInfo => read_extra("direct_url.json")?.and_then(|t| editable_source(&t)),
            _ => None,
        };

        Ok(Some(Distribution {
            name: name.to_string(),
            key: name::normalize(name),
            version: version.to_string(),
            dir: dir.to_string(),
            metadata_path,
            format,
            installer,
            has_file_list,
            editable_from,
            requires,
        }))
    }

    /// The names of the top-level modules it installs, for import checks:
    /// `top_level.txt` when present, else the packages and modules at the
    /// top of `RECORD`. A namespace package (a directory without
    /// `__init__.py`, such as `jaraco`) is named by its first subpackage or
    /// module (`jaraco.context`).
    ///
    /// # Errors
    ///
    /// A file exists but cannot be read.
    pub fn top_level_modules(&self, image: &Image) -> Result<Vec<String>, Error> {
        if matches!(
            self.format,
            Format::EggInfoFile | Format::Egg | Format::VendorList
        ) {
            return Ok(Vec::new());
        }
        let record = image
            .read_optional(&format!("{}/RECORD", self.dir))?
            .unwrap_or_default();
        let files: Vec<&str> = record
            .lines()
            .filter_map(|line| line.split(',').next())
            .filter(|path| !path.starts_with("..") && !path.starts_with('/'))
            .collect();

        let listed = image.read_optional(&format!("{}/top_level.txt", self.dir))?;
        let names: Vec<String> = match listed {
            Some(text) => text.lines().map(|l| l.trim().replace('/', ".")).collect(),
            None => modules_in_record(&files),
        };
        let mut modules: Vec<String> = names
            .into_iter()
            .filter(|n| !n.is_empty() && n.split('.').all(is_identifier))
            .map(|n| namespace_child(&n, &files).unwrap_or(n))
            .collect();
        modules.sort();
        modules.dedup();
        Ok(modules)
    }

    /// The parent directory that holds the metadata (the site directory for
    /// a top-level distribution).
    pub fn site_dir(&self) -> &str {
        salve_plugin_sdk::image::parent_of(&self.dir)
    }
}

/// The project name at the start of a `Requires-Dist` value
/// (`urllib3 (<1.27,>=1.21.1)`, `idna<4,>=2.5; python_version >= "3"`).
fn requirement_name(requirement: &str) -> Option<String> {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(requirement.len());
    let name = requirement[..end].trim_end_matches(['.', '-', '_']);
    name::is_valid(name).then(|| name::normalize(name))
}

/// The source directory of an editable install, from `direct_url.json`.
fn editable_source(direct_url: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(direct_url).ok()?;
    let editable = value.get("dir_info")?.get("editable")?.as_bool()?;
    editable.then(|| {
        value
            .get("url")
            .and_then(|u| u.as_str())
            .unwrap_or("a local tree")
            .to_string()
    })
}

/// Top-level importable names in a RECORD's file list: `pkg/__init__.py`,
/// `module.py`, `ext.cpython-311-x86_64-linux-gnu.so`, and namespace
/// directories holding Python files.
fn modules_in_record(files: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for path in files {
        let (first, rest) = path.split_once('/').unwrap_or((path, ""));
        if first.ends_with(".dist-info") || first.ends_with(".data") || first == "__pycache__" {
            continue;
        }
        let name = if rest.is_empty() {
            match first.split_once('.') {
                Some((stem, ext)) if ext == "py" || ext.ends_with("so") || ext.ends_with("pyd") => {
                    stem
                }
                _ => continue,
            }
        } else if rest.ends_with(".py") || rest.ends_with(".so") {
            first
        } else {
            continue;
        };
        names.push(name.to_string());
    }
    names
}

/// For a namespace package (no `__init__.py` at its top), the first
/// importable child, which is what the distribution really provides.
fn namespace_child(module: &str, files: &[&str]) -> Option<String> {
    let dir = module.replace('.', "/");
    let has_init = files.iter().any(|f| *f == format!("{dir}/__init__.py"));
    let has_files_below = files.iter().any(|f| f.starts_with(&format!("{dir}/")));
    if has_init || !has_files_below {
        return None;
    }
    let mut children: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&format!("{dir}/")))
        .filter_map(|rest| match rest.split_once('/') {
            Some((child, _)) => Some(child.to_string()),
            None => rest.strip_suffix(".py").map(str::to_string),
        })
        .filter(|child| is_identifier(child))
        .collect();
    children.sort();
    children.first().map(|child| format!("{module}.{child}"))
}

/// True for a Python identifier made of ASCII letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every distribution whose metadata sits directly in `dir`.
///
/// # Errors
///
/// The directory or a metadata file cannot be read.
pub fn read_all(image: &Image, dir: &str) -> Result<Vec<Distribution>, Error> {
    let mut found = Vec::new();
    for entry in image.read_dir(dir)? {
        let is_dir = match entry.kind {
            EntryKind::Dir => true,
            EntryKind::File => false,
            EntryKind::Symlink => image.is_dir(&entry.path),
            EntryKind::Other => continue,
        };
        if let Some(format) = Format::of(&entry.name, is_dir) {
            found.extend(Distribution::read(image, &entry.path, format)?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    /// A site directory holding the named wheel fixtures' dist-info.
    fn site_with(dists: &[&str]) -> (tempfile::TempDir, Image) {
        let root = tempfile::tempdir().unwrap();
        let site = root.path().join("site");
        for dist in dists {
            let from = format!(
                "{}/tests/fixtures/wheels/{dist}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::create_dir_all(site.join(dist)).unwrap();
            for file in std::fs::read_dir(&from).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), site.join(dist).join(file.file_name())).unwrap();
            }
        }
        let image = Image::at(root.path());
        (root, image)
    }

    #[test]
    fn name_and_version_come_from_metadata_not_the_directory() {
        let (_root, image) = site_with(&["werkzeug-3.1.4.dist-info"]);
        let dist = Distribution::read(&image, "site/werkzeug-3.1.4.dist-info", Format::DistInfo)
            .unwrap()
            .unwrap();
        assert_eq!(
            (dist.name.as_str(), dist.key.as_str()),
            ("Werkzeug", "werkzeug")
        );
        assert_eq!(dist.version, "3.1.4");
        assert_eq!(dist.metadata_path, "site/werkzeug-3.1.4.dist-info/METADATA");
        assert!(dist.has_file_list);
        assert_eq!(dist.requires, vec!["markupsafe"]);
    }

    #[test]
    fn requirements_skip_extras_and_keep_names() {
        let (_root, image) = site_with(&["requests-2.25.1.dist-info"]);
        let dist = &read_all(&image, "site").unwrap()[0];
        assert_eq!(dist.requires, vec!["chardet", "idna", "urllib3", "certifi"]);
    }

    #[test]
    fn top_level_modules_come_from_top_level_txt() {
        let (_root, image) = site_with(&["requests-2.25.1.dist-info"]);
        let dist = &read_all(&image, "site").unwrap()[0];
        assert_eq!(dist.top_level_modules(&image).unwrap(), vec!["requests"]);
    }

    #[test]
    fn top_level_modules_fall_back_to_record() {
        let (_root, image) = site_with(&["werkzeug-3.1.4.dist-info"]);
        let dist = &read_all(&image, "site").unwrap()[0];
        assert!(!image.is_file("site/werkzeug-3.1.4.dist-info/top_level.txt"));
        assert_eq!(dist.top_level_modules(&image).unwrap(), vec!["werkzeug"]);
    }

    #[test]
    fn namespace_packages_are_imported_through_their_child() {
        let (_root, image) = site_with(&["jaraco.context-5.3.0.dist-info"]);
        let dist = &read_all(&image, "site").unwrap()[0];
        assert_eq!(dist.key, "jaraco-context");
        assert_eq!(
            dist.top_level_modules(&image).unwrap(),
            vec!["jaraco.context"]
        );
    }

    #[test]
    fn egg_info_directories_and_files_are_read() {
        let root = tempfile::tempdir().unwrap();
        let site = root.path().join("site");
        std::fs::create_dir_all(site.join("idna-3.3.egg-info")).unwrap();
        std::fs::write(
            site.join("idna-3.3.egg-info/PKG-INFO"),
            fixture("debian/idna-3.3.PKG-INFO"),
        )
        .unwrap();
        std::fs::write(
            site.join("idna-3.3.egg-info/top_level.txt"),
            fixture("debian/idna-3.3.top_level.txt"),
        )
        .unwrap();
        std::fs::write(
            site.join("six-1.16.0.egg-info"),
            "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
        )
        .unwrap();
        let image = Image::at(root.path());

        let found = read_all(&image, "site").unwrap();

        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].name.as_str(), found[0].format),
            ("idna", Format::EggInfoDir)
        );
        assert_eq!(found[0].metadata_path, "site/idna-3.3.egg-info/PKG-INFO");
        assert!(found[0].has_file_list);
        assert_eq!(found[0].top_level_modules(&image).unwrap(), vec!["idna"]);
        assert_eq!(
            (found[1].name.as_str(), found[1].format),
            ("six", Format::EggInfoFile)
        );
        assert_eq!(found[1].metadata_path, "site/six-1.16.0.egg-info");
        assert!(!found[1].has_file_list);
    }

    #[test]
    fn metadata_without_a_version_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("site/broken-1.dist-info")).unwrap();
        std::fs::write(
            root.path().join("site/broken-1.dist-info/METADATA"),
            "Name: broken\n",
        )
        .unwrap();
        assert!(
            read_all(&Image::at(root.path()), "site")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn editable_installs_name_their_source() {
        let direct_url = r#"{"url": "file:///src/app", "dir_info": {"editable": true}}"#;
        assert_eq!(
            editable_source(direct_url).as_deref(),
            Some("file:///src/app")
        );
        assert_eq!(
            editable_source(r#"{"url": "https://x/a.whl", "archive_info": {}}"#),
            None
        );
        assert_eq!(editable_source("not json"), None);
    }

    #[test]
    fn requirement_names_are_read_from_every_spelling() {
        assert_eq!(
            requirement_name("urllib3 (<1.27,>=1.21.1)").as_deref(),
            Some("urllib3")
        );
        assert_eq!(
            requirement_name("idna<4,>=2.5; python_version >= \"3\"").as_deref(),
            Some("idna")
        );
        assert_eq!(
            requirement_name("Jaraco.Functools>=1.0").as_deref(),
            Some("jaraco-functools")
        );
        assert_eq!(
            requirement_name("zope.interface").as_deref(),
            Some("zope-interface")
        );
        assert_eq!(requirement_name("pkg[extra]>=1").as_deref(), Some("pkg"));
        assert_eq!(requirement_name("(broken"), None);
    }
}
