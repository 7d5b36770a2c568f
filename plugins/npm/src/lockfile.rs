//! Reading `package-lock.json` and `npm-shrinkwrap.json`, versions 1 to 3.
//!
//! Versions 2 and 3 list every copy under `packages`, keyed by its location
//! (`node_modules/a/node_modules/b`); version 1 (npm 5 and 6) nests copies
//! under `dependencies`, and the location follows from the nesting. Both
//! are read into one map from location to what the lockfile says about the
//! copy there: its version and whether only development or optional
//! dependencies need it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Why a lockfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("{what}: not valid JSON")]
    NotJson {
        /// The file, as messages name it.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// `lockfileVersion` is missing.
    #[error("{what}: lockfileVersion is missing or not a number")]
    NoVersion {
        /// The file, as messages name it.
        what: String,
    },
    /// `lockfileVersion` is one npm never wrote.
    #[error("{what}: lockfileVersion {version} is not one npm has written (1, 2 or 3)")]
    UnknownVersion {
        /// The file, as messages name it.
        what: String,
        /// The version found.
        version: u64,
    },
}

/// The lockfile names npm reads, in the order it prefers them.
pub const FILE_NAMES: [&str; 2] = ["npm-shrinkwrap.json", "package-lock.json"];

/// What a lockfile records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lockfile {
    /// `package-lock.json` or `npm-shrinkwrap.json`.
    pub file_name: String,
    /// `lockfileVersion`.
    pub version: u64,
    /// Every locked copy by location.
    pub entries: BTreeMap<String, Locked>,
}

/// What a lockfile says about the copy at one location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locked {
    /// The locked version (absent for links).
    pub version: Option<String>,
    /// Needed only by development dependencies.
    pub dev: bool,
    /// Needed only by optional dependencies.
    pub optional: bool,
    /// Needed only by development or optional dependencies, mixed.
    pub dev_optional: bool,
    /// Shipped inside its parent's tarball.
    pub in_bundle: bool,
    /// Where npm fetched it from (a registry tarball, `git+ssh://...`,
    /// `file:...`), when recorded.
    pub resolved: Option<String>,
}

impl Lockfile {
    /// Parses a lockfile; `file_name` is its base name and `what` names it
    /// in errors.
    ///
    /// # Errors
    ///
    /// The text is not JSON, or has no `lockfileVersion` npm knows.
    pub fn parse(text: &str, file_name: &str, what: &str) -> Result<Lockfile, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(text).map_err(|source| ParseError::NotJson {
            what: what.to_string(),
            source,
        })?;
        let version = value
            .get("lockfileVersion")
            .and_then(Value::as_u64)
            .ok_or_else(|| ParseError::NoVersion {
                what: what.to_string(),
            })?;
        let mut entries = BTreeMap::new();
        match version {
            1 => {
                if let Some(Value::Object(deps)) = value.get("dependencies") {
                    read_v1(deps, "", &mut entries);
                }
            }
            2 | 3 => {
                if let Some(Value::Object(packages)) = value.get("packages") {
                    for (location, entry) in packages {
                        if !location.is_empty() {
                            entries.insert(location.clone(), locked(entry, "inBundle"));
                        }
                    }
                }
            }
            other => {
                return Err(ParseError::UnknownVersion {
                    what: what.to_string(),
                    version: other,
                });
            }
        }
        Ok(Lockfile {
            file_name: file_name.to_string(),
            version,
            entries,
        })
    }

    /// True when the lockfile marks any copy as needed only in development.
    pub fn has_dev_entries(&self) -> bool {
        self.entries.values().any(|e| e.dev)
    }
}

/// The flags of one entry; `bundle_key` differs between formats.
fn locked(entry: &Value, bundle_key: &str) -> Locked {
    let flag = |key: &str| entry.get(key).and_then(Value::as_bool).unwrap_or(false);
    Locked {
        version: entry
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string),
        dev: flag("dev"),
        optional: flag("optional"),
        dev_optional: flag("devOptional"),
        in_bundle: flag(bundle_key),
        resolved: entry
            .get("resolved")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Version 1's nested `dependencies`, flattened to locations.
fn read_v1(deps: &Map<String, Value>, parent: &str, entries: &mut BTreeMap<String, Locked>) {
    for (name, entry) in deps {
        let location = if parent.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{parent}/node_modules/{name}")
        };
        entries.insert(location.clone(), locked(entry, "bundled"));
        if let Some(Value::Object(nested)) = entry.get("dependencies") {
            read_v1(nested, &location, entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_nesting_becomes_locations() {
        let lock = Lockfile::parse(
            r#"{"lockfileVersion":1,"dependencies":{
                "mkdirp":{"version":"0.5.1","requires":{"minimist":"0.0.8"}},
                "minimist":{"version":"0.0.8"},
                "rc":{"version":"1.2.8","dependencies":{"minimist":{"version":"1.2.0"}}},
                "lodash":{"version":"4.17.15","dev":true}}}"#,
            "package-lock.json",
            "/app/package-lock.json",
        )
        .unwrap();
        assert_eq!(lock.version, 1);
        let version = |l: &str| lock.entries[l].version.clone().unwrap();
        assert_eq!(version("node_modules/rc/node_modules/minimist"), "1.2.0");
        assert_eq!(version("node_modules/minimist"), "0.0.8");
        assert!(lock.entries["node_modules/lodash"].dev);
        assert!(lock.has_dev_entries());
    }

    #[test]
    fn version_3_packages_keep_their_flags() {
        let lock = Lockfile::parse(
            r#"{"lockfileVersion":3,"packages":{
                "":{"name":"app"},
                "node_modules/fsevents":{"version":"2.3.3","optional":true},
                "node_modules/a/node_modules/b":{"version":"1.0.0","inBundle":true,"devOptional":true}}}"#,
            "package-lock.json",
            "/app/package-lock.json",
        )
        .unwrap();
        assert_eq!(lock.entries.len(), 2);
        assert!(lock.entries["node_modules/fsevents"].optional);
        let b = &lock.entries["node_modules/a/node_modules/b"];
        assert!(b.in_bundle && b.dev_optional && !b.dev);
        assert!(!lock.has_dev_entries());
    }

    #[test]
    fn unknown_versions_and_non_json_name_the_file() {
        let parse = |text: &str| {
            Lockfile::parse(text, "package-lock.json", "/app/x")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            parse(r#"{"lockfileVersion":7}"#),
            "/app/x: lockfileVersion 7 is not one npm has written (1, 2 or 3)"
        );
        assert_eq!(
            parse("{}"),
            "/app/x: lockfileVersion is missing or not a number"
        );
        assert_eq!(parse("{"), "/app/x: not valid JSON");
    }
}
