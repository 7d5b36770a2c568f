//! The Debian side of the reports: which installed packages bookworm-security
//! and bookworm-updates carry newer versions of, and which CVEs those fix.
//!
//! There is no live security tracker here, so the data comes from the
//! archive itself, as a person would check by hand: `apt list --upgradable`
//! against the image's sources (bookworm, bookworm-updates,
//! bookworm-security), then the newer packages' changelogs, whose entries
//! above the installed version name the CVEs they fix. The work runs in a
//! throw-away container of the image (`scripts/debian-updates.sh`), with the
//! image's own apt and dpkg, when the image is built; the result is cached
//! with the image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The script run in the container.
pub const SCRIPT: &str = include_str!("scripts/debian-updates.sh");

/// The script's output does not parse.
#[derive(Debug, thiserror::Error)]
#[error("debian-updates.sh output line {line}: {problem}")]
pub struct Error {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// What the security and updates suites offer for one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updates {
    /// One entry per installed binary package with a newer version.
    pub packages: Vec<Update>,
}

/// A newer version of one installed binary package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The binary package.
    pub package: String,
    /// Its installed version.
    pub installed: String,
    /// The newest version the image's sources carry.
    pub candidate: String,
    /// The suite that carries it, as apt names it (e.g. `oldstable-security`).
    pub suite: String,
    /// The source package.
    pub source: String,
    /// The CVEs the newer changelog entries name, each with the version of
    /// the oldest entry that names it (the first version that fixes it).
    pub fixes: BTreeMap<String, String>,
}

impl Updates {
    /// The update for `package`, if there is one.
    pub fn get(&self, package: &str) -> Option<&Update> {
        self.packages
            .iter()
            .find(|update| update.package == package)
    }
}

/// Parses the script's tab-separated output.
pub fn parse(output: &str) -> Result<Updates, Error> {
    let mut packages = Vec::new();
    let mut fixes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    for (number, line) in output.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let error = |problem: &str| Error {
            line: number + 1,
            problem: problem.to_owned(),
        };
        match fields.as_slice() {
            [
                "update",
                package,
                installed,
                candidate,
                suite,
                source,
                _source_version,
            ] => {
                packages.push(Update {
                    package: (*package).to_owned(),
                    installed: (*installed).to_owned(),
                    candidate: (*candidate).to_owned(),
                    suite: (*suite).to_owned(),
                    source: (*source).to_owned(),
                    fixes: BTreeMap::new(),
                });
            }
            // Changelogs run newest first: the last entry seen for a CVE is
            // the oldest one, where it was fixed.
            ["fix", source, version, cve] => {
                let by_cve = fixes.entry((*source).to_owned()).or_default();
                by_cve.insert((*cve).to_owned(), (*version).to_owned());
            }
            [""] => {}
            [kind, ..] => {
                return Err(error(&format!(
                    "unknown record {kind:?} or wrong field count"
                )));
            }
            [] => return Err(error("empty record")),
        }
    }

    for update in &mut packages {
        update.fixes = fixes.get(&update.source).cloned().unwrap_or_default();
    }
    Ok(Updates { packages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_attach_to_every_binary_package_of_their_source_at_the_oldest_entry() {
        let output = "update\tlibpam0g\t1.5.2-6+deb12u1\t1.5.2-6+deb12u3\toldstable-security\tpam\t1.5.2-6+deb12u1\n\
            fix\tpam\t1.5.2-6+deb12u3\tCVE-2025-6020\n\
            fix\tpam\t1.5.2-6+deb12u3\tCVE-2024-22365\n\
            fix\tpam\t1.5.2-6+deb12u2\tCVE-2024-22365\n\
            update\tlibpam-modules\t1.5.2-6+deb12u1\t1.5.2-6+deb12u3\toldstable-security\tpam\t1.5.2-6+deb12u1\n\
            update\ttzdata\t2026b-0+deb12u1\t2026f-0+deb12u1\toldstable-updates\ttzdata\t2026b-0+deb12u1\n";
        let updates = parse(output).expect("parses");
        let pam = updates.get("libpam-modules").expect("libpam-modules");
        assert_eq!(pam.fixes["CVE-2024-22365"], "1.5.2-6+deb12u2");
        assert_eq!(pam.fixes["CVE-2025-6020"], "1.5.2-6+deb12u3");
        assert_eq!(updates.get("libpam0g").map(|u| u.fixes.len()), Some(2));
        assert!(updates.get("tzdata").is_some_and(|u| u.fixes.is_empty()));
    }

    #[test]
    fn a_malformed_line_is_named_by_number() {
        let error = parse("update\tonly\tthree\n").expect_err("rejects");
        assert_eq!(error.line, 1);
    }
}
