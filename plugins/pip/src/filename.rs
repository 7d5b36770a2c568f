//! What a distribution file's name says: its version, and for a wheel its
//! compatibility tags.
//!
//! Wheels are `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
//! (PEP 427, where the name never contains `-`). Source distributions are
//! `{name}-{version}.tar.gz` or `.zip` (and older archive suffixes); old ones
//! may have `-` in the name, so the version is found by matching the name
//! part against the project's normalised name. Eggs, Windows installers and
//! other legacy formats are ignored: pip does not install them.

use pep440_rs::Version;

use crate::name;

/// Suffixes of source distributions pip accepts.
const SDIST_SUFFIXES: &[&str] = &[
    ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".tar",
];

/// One distribution file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A wheel, with its compressed tag sets.
    Wheel {
        /// Python tags (`py2.py3`, `cp311`).
        python: String,
        /// ABI tags (`none`, `abi3`, `cp311`).
        abi: String,
        /// Platform tags (`any`, `manylinux_2_17_x86_64`).
        platform: String,
    },
    /// A source distribution.
    Sdist,
}

/// A parsed file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The version it carries.
    pub version: Version,
    /// What kind of file it is.
    pub kind: Kind,
}

/// Parses a file name of the project with normalised name `key`. `None` for
/// files pip does not install, and for names that do not carry a PEP 440
/// version of that project.
pub fn parse(filename: &str, key: &str) -> Option<Parsed> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, tags) = match parts.as_slice() {
            [name, version, python, abi, platform] => (name, version, [python, abi, platform]),
            [name, version, _build, python, abi, platform] => {
                (name, version, [python, abi, platform])
            }
            _ => return None,
        };
        if name::normalize(name) != key {
            return None;
        }
        let [python, abi, platform] = tags.map(|t| t.to_string());
        let version = version.parse().ok()?;
        return Some(Parsed {
            version,
            kind: Kind::Wheel {
                python,
                abi,
                platform,
            },
        });
    }

    let stem = SDIST_SUFFIXES
        .iter()
        .find_map(|s| strip_suffix_ignore_case(filename, s))?;
    // Try each `-` as the name/version boundary, leftmost first.
    stem.match_indices('-').find_map(|(i, _)| {
        let (name, version) = (&stem[..i], &stem[i + 1..]);
        if name::normalize(name) != key {
            return None;
        }
        let version = version.parse().ok()?;
        Some(Parsed {
            version,
            kind: Kind::Sdist,
        })
    })
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(filename: &str, key: &str) -> Option<String> {
        parse(filename, key).map(|p| p.version.to_string())
    }

    #[test]
    fn wheels_give_version_and_tags() {
        let parsed = parse(
            "markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            "markupsafe",
        )
        .unwrap();
        assert_eq!(parsed.version.to_string(), "3.0.4");
        assert_eq!(
            parsed.kind,
            Kind::Wheel {
                python: "cp311".into(),
                abi: "cp311".into(),
                platform: "manylinux2014_x86_64.manylinux_2_17_x86_64".into()
            }
        );
        assert_eq!(
            version_of("jaraco.context-5.3.0-py3-none-any.whl", "jaraco-context").as_deref(),
            Some("5.3.0")
        );
        assert_eq!(
            version_of("pkg-1.0-1build-py3-none-any.whl", "pkg").as_deref(),
            Some("1.0")
        );
    }

    #[test]
    fn sdists_give_versions_even_with_dashes_in_the_name() {
        assert_eq!(
            version_of("requests-2.32.3.tar.gz", "requests").as_deref(),
            Some("2.32.3")
        );
        assert_eq!(
            version_of("MarkupSafe-0.9.zip", "markupsafe").as_deref(),
            Some("0.9")
        );
        assert_eq!(
            version_of("backports-tarfile-1.2.0.tar.gz", "backports-tarfile").as_deref(),
            Some("1.2.0")
        );
        assert_eq!(
            version_of("jaraco.context-4.0.0.TAR.GZ", "jaraco-context").as_deref(),
            Some("4.0.0")
        );
    }

    #[test]
    fn other_projects_legacy_formats_and_bad_versions_are_ignored() {
        assert_eq!(parse("requests-toolbelt-1.0.0.tar.gz", "requests"), None);
        assert_eq!(parse("requests-2.0-py2.7.egg", "requests"), None);
        assert_eq!(parse("pkg-1.0.win32.exe", "pkg"), None);
        assert_eq!(parse("pkg-not.a.version.tar.gz", "pkg"), None);
        assert_eq!(parse("pkg-1.0-py3-none.whl", "pkg"), None);
    }
}
