//! The versions an index offers for one installed copy, and which of them
//! can be installed in that copy's environment.
//!
//! A version is unusable, in this order of reasons, when:
//!
//! 1. every file of it is yanked (PEP 592);
//! 2. every file left states a `Requires-Python` that excludes the
//!    environment's Python;
//! 3. none of the files left is a wheel this platform takes (see
//!    [`crate::platform`]) and there is no source distribution;
//! 4. the index names it (PEP 700 `versions`) but lists no file for it.

use std::collections::BTreeMap;

use pep440_rs::{Version, VersionSpecifiers};
use salve_plugin_sdk::{InstalledPackage, Release};

use crate::filename::{self, Kind};
use crate::index::{File, Project};
use crate::platform::{Libc, Platform};

/// The Python an environment runs and what its platform takes, read back
/// from a copy's attributes (see `inventory`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The version `Requires-Python` is checked against: the full version
    /// when known, else major.minor.
    pub python: Version,
    /// How it is shown in reasons.
    pub python_shown: String,
    /// Which wheels install.
    pub platform: Platform,
}

impl Target {
    /// Reads a copy's attributes; `None` when it has no Python version (an
    /// environment without an interpreter).
    pub fn of(package: &InstalledPackage) -> Option<Target> {
        let minor = package
            .attribute("python-version")
            .filter(|v| !v.is_empty())?;
        let (major, minor_number) = minor.split_once('.')?;
        let python_minor = (major.parse().ok()?, minor_number.parse().ok()?);
        let full = package
            .attribute("python-full-version")
            .filter(|v| !v.is_empty());
        let shown = full.unwrap_or(minor).to_string();
        let platform = Platform {
            python: python_minor,
            machine: package.attribute("machine").map(str::to_string),
            libc: Libc::from_attribute(package.attribute("libc").unwrap_or_default()),
        };
        Some(Target {
            python: shown.parse().ok()?,
            python_shown: shown,
            platform,
        })
    }
}

/// The releases of a project page for a target, newest first.
pub fn evaluate(project: &Project, key: &str, target: &Target) -> Vec<Release> {
    let mut by_version: BTreeMap<Version, Vec<(&File, Kind)>> = BTreeMap::new();
    for file in &project.files {
        if let Some(parsed) = filename::parse(&file.filename, key) {
            by_version
                .entry(parsed.version)
                .or_default()
                .push((file, parsed.kind));
        }
    }
    for stated in &project.versions {
        if let Ok(version) = stated.parse::<Version>() {
            by_version.entry(version).or_default();
        }
    }

    by_version
        .iter()
        .rev()
        .map(|(version, files)| Release {
            version: version.to_string(),
            unusable: unusable(files, target),
        })
        .collect()
}

/// Adds another index's releases to `into` (both newest first, as
/// [`evaluate`] gives them): a version either index can install is usable.
pub fn merge(into: &mut Vec<Release>, more: Vec<Release>) {
    for release in more {
        match into.iter_mut().find(|r| r.version == release.version) {
            Some(known) if release.unusable.is_none() => known.unusable = None,
            Some(_) => {}
            None => into.push(release),
        }
    }
    into.sort_by_cached_key(|r| std::cmp::Reverse(r.version.parse::<Version>().ok()));
}

/// Why no file of a version installs, or `None` when one does.
fn unusable(files: &[(&File, Kind)], target: &Target) -> Option<String> {
    if files.is_empty() {
        return Some("the index lists no files for it".into());
    }

    let live: Vec<&(&File, Kind)> = files.iter().filter(|(f, _)| f.yanked.is_none()).collect();
    if live.is_empty() {
        let reason = files
            .iter()
            .find_map(|(f, _)| f.yanked.as_deref().filter(|r| !r.trim().is_empty()));
        return Some(match reason {
            Some(reason) => format!("yanked: {}", reason.trim()),
            None => "yanked".into(),
        });
    }

    let admitted: Vec<&&(&File, Kind)> = live
        .iter()
        .filter(|(f, _)| admits(f.requires_python.as_deref(), &target.python))
        .collect();
    if admitted.is_empty() {
        let spec = live
            .iter()
            .find_map(|(f, _)| f.requires_python.as_deref())
            .unwrap_or_default();
        return Some(format!(
            "requires Python {}; the environment has {}",
            spec.trim(),
            target.python_shown
        ));
    }

    let installable = admitted.iter().any(|(_, kind)| match kind {
        Kind::Sdist => true,
        Kind::Wheel {
            python,
            abi,
            platform,
        } => target.platform.accepts(python, abi, platform),
    });
    if installable {
        None
    } else {
        Some(format!(
            "no wheel for {} and no source distribution",
            target.platform.describe()
        ))
    }
}

/// True when a `Requires-Python` admits the version. A specifier that does
/// not parse admits everything, as pip treats it.
fn admits(requires_python: Option<&str>, python: &Version) -> bool {
    let Some(spec) = requires_python else {
        return true;
    };
    match spec.parse::<VersionSpecifiers>() {
        Ok(specifiers) => specifiers.contains(python),
        Err(e) => {
            salve_plugin_sdk::host::debug(&format!("ignoring Requires-Python {spec:?}: {e}"));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::parse_json;

    fn fixture(name: &str) -> Project {
        let full = format!("{}/tests/fixtures/index/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&full).unwrap();
        if name.ends_with(".html") {
            crate::index::parse_html(&text)
        } else {
            parse_json(&text).unwrap()
        }
    }

    fn target(python: &str, machine: &str, libc: Libc) -> Target {
        let minor: Vec<u64> = python
            .split('.')
            .take(2)
            .map(|p| p.parse().unwrap())
            .collect();
        Target {
            python: python.parse().unwrap(),
            python_shown: python.into(),
            platform: Platform {
                python: (minor[0], minor[1]),
                machine: Some(machine.into()),
                libc,
            },
        }
    }

    fn bookworm() -> Target {
        target("3.11.2", "x86_64", Libc::Glibc(Some((2, 36))))
    }

    fn find<'a>(releases: &'a [Release], version: &str) -> &'a Release {
        releases
            .iter()
            .find(|r| r.version == version)
            .unwrap_or_else(|| panic!("no {version}"))
    }

    #[test]
    fn releases_are_newest_first_and_installable_ones_are_clean() {
        let releases = evaluate(&fixture("requests.json"), "requests", &bookworm());
        let versions: Vec<Version> = releases
            .iter()
            .map(|r| r.version.parse().unwrap())
            .collect();
        assert!(versions.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(find(&releases, "2.25.1").unusable, None);
        assert_eq!(find(&releases, "2.32.3").unusable, None);
    }

    #[test]
    fn fully_yanked_versions_say_why() {
        let releases = evaluate(&fixture("requests.json"), "requests", &bookworm());
        assert_eq!(
            find(&releases, "2.32.0").unusable.as_deref(),
            Some("yanked: Yanked due to conflicts with CVE-2024-35195 mitigation")
        );
    }

    #[test]
    fn requires_python_excludes_old_interpreters() {
        let old = target("3.7.3", "x86_64", Libc::Glibc(Some((2, 28))));
        let releases = evaluate(&fixture("urllib3.json"), "urllib3", &old);
        assert_eq!(
            find(&releases, "2.2.0").unusable.as_deref(),
            Some("requires Python >=3.8; the environment has 3.7.3")
        );
        assert_eq!(find(&releases, "1.26.18").unusable, None);
    }

    #[test]
    fn binary_only_versions_need_a_matching_wheel() {
        // markupsafe 3.0.3 ships CPython wheels for many platforms and an sdist.
        let releases = evaluate(&fixture("markupsafe.json"), "markupsafe", &bookworm());
        assert_eq!(find(&releases, "3.0.3").unusable, None);

        let project = Project {
            files: vec![
                File {
                    filename: "m-1.0-cp312-cp312-manylinux_2_17_x86_64.whl".into(),
                    requires_python: None,
                    yanked: None,
                },
                File {
                    filename: "m-1.0-cp311-cp311-win_amd64.whl".into(),
                    requires_python: None,
                    yanked: None,
                },
                File {
                    filename: "m-1.0-cp311-cp311-musllinux_1_1_x86_64.whl".into(),
                    requires_python: None,
                    yanked: None,
                },
            ],
            versions: vec![],
        };
        let releases = evaluate(&project, "m", &bookworm());
        assert_eq!(
            releases[0].unusable.as_deref(),
            Some(
                "no wheel for CPython 3.11 on linux x86_64 (glibc 2.36) and no source distribution"
            )
        );
        let alpine = target("3.11.9", "x86_64", Libc::Musl(Some((1, 2))));
        assert_eq!(evaluate(&project, "m", &alpine)[0].unusable, None);
    }

    #[test]
    fn html_pages_are_evaluated_like_json_ones() {
        let old = target("3.5.3", "x86_64", Libc::Glibc(None));
        let releases = evaluate(&fixture("idna.html"), "idna", &old);
        assert_eq!(
            find(&releases, "3.9").unusable.as_deref(),
            Some("requires Python >=3.6; the environment has 3.5.3")
        );
        assert_eq!(find(&releases, "2.10").unusable, None);
    }

    #[test]
    fn stated_versions_without_files_are_unusable() {
        let project = Project {
            files: vec![],
            versions: vec!["1.0".into()],
        };
        let releases = evaluate(&project, "x", &bookworm());
        assert_eq!(
            releases[0].unusable.as_deref(),
            Some("the index lists no files for it")
        );
    }

    #[test]
    fn targets_are_read_back_from_attributes() {
        let package = InstalledPackage {
            name: "requests".into(),
            key: "requests".into(),
            version: "2.25.1".into(),
            path: String::new(),
            scope: String::new(),
            origin: salve_plugin_sdk::Origin::Managed,
            attributes: vec![
                ("python-version".into(), "3.11".into()),
                ("machine".into(), "aarch64".into()),
                ("libc".into(), "musl 1.2".into()),
            ],
        };
        let t = Target::of(&package).unwrap();
        assert_eq!(t.python_shown, "3.11");
        assert_eq!(t.platform.libc, Libc::Musl(Some((1, 2))));
        assert_eq!(t.platform.machine.as_deref(), Some("aarch64"));

        let without = InstalledPackage {
            attributes: vec![],
            ..package
        };
        assert_eq!(Target::of(&without), None);
    }
}
