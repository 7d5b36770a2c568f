//! The SDK tutorial's plugin: a toy ecosystem whose "packages" are text
//! files under `/opt/example/packages/`, each holding one version number
//! made of dot-separated integers (`1.2.3`).
//!
//! It is small enough to read in one sitting and uses every part of the
//! contract: ordering versions, detecting from the image's files, and a plan
//! with a file write and a check.

use std::cmp::Ordering;

use salve_plugin_sdk::prelude::*;
use salve_plugin_sdk::version;

/// Where the toy ecosystem keeps its packages.
const PACKAGES: &str = "opt/example/packages";

/// A version of the toy ecosystem: dot-separated integers.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Dotted(Vec<u64>);

impl Version for Dotted {
    fn parse(text: &str) -> Result<Self, String> {
        let parts: Result<Vec<u64>, _> = text.trim().split('.').map(str::parse).collect();
        match parts {
            Ok(mut parts) if !parts.is_empty() => {
                // 1.2 and 1.2.0 are the same version.
                while parts.len() > 1 && parts.last() == Some(&0) {
                    parts.pop();
                }
                Ok(Dotted(parts))
            }
            _ => Err("expected dot-separated integers".into()),
        }
    }

    fn normalized(&self) -> String {
        self.0
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    fn is_prerelease(&self) -> bool {
        false
    }

    fn release(&self) -> Vec<u64> {
        self.0.clone()
    }
}

/// The plugin.
pub struct Example;

impl Plugin for Example {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "example".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PackageKind::Library,
            report_types: vec!["example-pkg".into()],
            default_sources: vec![],
            always_latest: vec![],
        }
    }

    fn parse_version(v: &str) -> Result<VersionInfo, String> {
        version::info::<Dotted>(v)
    }

    fn compare(a: &str, b: &str) -> Result<Ordering, String> {
        version::compare::<Dotted>(a, b)
    }

    fn classify(a: &str, b: &str) -> Result<Bump, String> {
        version::classify::<Dotted>(a, b)
    }

    fn detect(image: &Image, _: &ImageContext, _: &Answers) -> Result<Detected, Error> {
        let mut found = Vec::new();
        for entry in image.read_dir(PACKAGES)? {
            let version = image.read_to_string(&entry.path)?.trim().to_string();
            found.push(InstalledPackage {
                key: entry.name.to_lowercase(),
                name: entry.name,
                version,
                path: entry.path,
                scope: PACKAGES.into(),
                origin: Origin::Managed,
                attributes: vec![],
            });
        }
        Ok(Detected::Packages(found))
    }

    fn plan(
        _: &Image,
        updates: &[PackageUpdate],
        _: &PlanContext,
        _: &Answers,
    ) -> Result<Planned, Error> {
        // One task per package, so that one failure does not sink the rest.
        let tasks = updates
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let path = format!("/{}", u.package.path);
                Task {
                    description: format!("set {} to {}", u.package.name, u.target),
                    updates: vec![i as u32],
                    steps: vec![Step::WriteFile(FileWrite {
                        path: path.clone(),
                        contents: format!("{}\n", u.target).into_bytes(),
                        mode: 0o644,
                    })],
                    checks: vec![Check {
                        description: format!("{} reads {}", u.package.name, u.target),
                        command: Command::new(["cat", path.as_str()]),
                        exit_code: 0,
                        stdout: OutputMatch::Equals(u.target.clone()),
                    }],
                }
            })
            .collect();
        Ok(Planned::Tasks(tasks))
    }
}

salve_plugin_sdk::export_plugin!(Example);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_packages_from_a_directory_standing_in_for_an_image() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(PACKAGES)).unwrap();
        std::fs::write(root.path().join(PACKAGES).join("zlib"), "1.2.0\n").unwrap();

        let found = Example::detect(
            &Image::at(root.path()),
            &ImageContext::default(),
            &Answers::default(),
        )
        .unwrap();

        let Detected::Packages(found) = found else {
            panic!("asked for probes")
        };
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].name.as_str(), found[0].version.as_str()),
            ("zlib", "1.2.0")
        );
        assert_eq!(found[0].path, "opt/example/packages/zlib");
    }

    #[test]
    fn orders_and_classifies_dotted_versions() {
        assert_eq!(Example::compare("1.2", "1.2.0"), Ok(Ordering::Equal));
        assert_eq!(Example::compare("1.10", "1.9"), Ok(Ordering::Greater));
        assert_eq!(Example::classify("1.2.3", "1.2.9"), Ok(Bump::Patch));
        assert_eq!(Example::classify("1.2.3", "1.3"), Ok(Bump::Minor));
        assert!(Example::parse_version("1.x").is_err());
    }
}
