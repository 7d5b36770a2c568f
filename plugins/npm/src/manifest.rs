//! Reading `package.json`: the fields salve needs, read leniently.
//!
//! Installed packages carry whatever their authors published, over fifteen
//! years of npm: dependency maps with non-string values, `engines` as a
//! list, `bundleDependencies` as `true`. A field of the wrong shape is
//! treated as absent rather than failing the whole image; only a file that
//! is not JSON at all is an error.

use serde_json::{Map, Value};

/// Why a `package.json` could not be read.
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
    /// The JSON is not an object.
    #[error("{what}: not a JSON object")]
    NotObject {
        /// The file, as messages name it.
        what: String,
    },
}

/// The parts of a `package.json` salve uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// `name`, if a string.
    pub name: Option<String>,
    /// `version`, if a string.
    pub version: Option<String>,
    /// `dependencies`.
    pub dependencies: Vec<(String, String)>,
    /// `optionalDependencies`.
    pub optional_dependencies: Vec<(String, String)>,
    /// `devDependencies`.
    pub dev_dependencies: Vec<(String, String)>,
    /// `peerDependencies`.
    pub peer_dependencies: Vec<(String, String)>,
    /// `bundleDependencies` (or the older `bundledDependencies`).
    pub bundled: Bundled,
    /// True when the manifest declares `workspaces`.
    pub has_workspaces: bool,
}

/// Which dependencies a package ships inside its own tarball.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Bundled {
    /// None.
    #[default]
    None,
    /// All of its dependencies (`"bundleDependencies": true`).
    All,
    /// These names.
    Names(Vec<String>),
}

impl Manifest {
    /// Parses a manifest; `what` names the file in the error.
    ///
    /// # Errors
    ///
    /// The text is not a JSON object.
    pub fn parse(text: &str, what: &str) -> Result<Manifest, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(text).map_err(|source| ParseError::NotJson {
            what: what.to_string(),
            source,
        })?;
        let Value::Object(object) = value else {
            return Err(ParseError::NotObject {
                what: what.to_string(),
            });
        };
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
        let bundled = match object
            .get("bundleDependencies")
            .or_else(|| object.get("bundledDependencies"))
        {
            Some(Value::Bool(true)) => Bundled::All,
            Some(Value::Array(names)) => Bundled::Names(
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            ),
            _ => Bundled::None,
        };
        Ok(Manifest {
            name: string("name"),
            version: string("version"),
            dependencies: specs(&object, "dependencies"),
            optional_dependencies: specs(&object, "optionalDependencies"),
            dev_dependencies: specs(&object, "devDependencies"),
            peer_dependencies: specs(&object, "peerDependencies"),
            bundled,
            has_workspaces: object.get("workspaces").is_some_and(|w| !w.is_null()),
        })
    }

    /// The section that declares `name`, and its spec, as npm resolves a
    /// name listed twice: `optionalDependencies` wins over `dependencies`,
    /// both over `devDependencies`, all over `peerDependencies`.
    pub fn declared(&self, name: &str) -> Option<(&'static str, &str)> {
        [
            ("optionalDependencies", &self.optional_dependencies),
            ("dependencies", &self.dependencies),
            ("devDependencies", &self.dev_dependencies),
            ("peerDependencies", &self.peer_dependencies),
        ]
        .into_iter()
        .find_map(|(section, list)| {
            list.iter()
                .find(|(n, _)| n == name)
                .map(|(_, spec)| (section, spec.as_str()))
        })
    }

    /// The names this package needs at run time and their specs:
    /// dependencies, optional and peer dependencies (not dev ones).
    pub fn runtime_edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.dependencies
            .iter()
            .chain(&self.optional_dependencies)
            .chain(&self.peer_dependencies)
            .map(|(n, s)| (n.as_str(), s.as_str()))
    }

    /// True when `name` ships inside this package's tarball.
    pub fn bundles(&self, name: &str) -> bool {
        match &self.bundled {
            Bundled::None => false,
            Bundled::All => self.runtime_edges().any(|(n, _)| n == name),
            Bundled::Names(names) => names.iter().any(|n| n == name),
        }
    }
}

/// A dependency map's string entries, sorted by name; other values (npm
/// ignores them too) are skipped.
fn specs(object: &Map<String, Value>, key: &str) -> Vec<(String, String)> {
    let Some(Value::Object(map)) = object.get(key) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, spec)| spec.as_str().map(|s| (name.clone(), s.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_tolerates_odd_shapes() {
        let m = Manifest::parse(
            r#"{"name":"app","version":"1.0.0",
                "dependencies":{"express":"^4.17.1","bad":3},
                "devDependencies":{"lodash":"4.17.15"},
                "optionalDependencies":{"fsevents":"*"},
                "engines":["node >= 0.4"],
                "bundleDependencies":true}"#,
            "app/package.json",
        )
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("app"));
        assert_eq!(m.dependencies, vec![("express".into(), "^4.17.1".into())]);
        assert_eq!(m.declared("lodash"), Some(("devDependencies", "4.17.15")));
        assert_eq!(m.declared("fsevents"), Some(("optionalDependencies", "*")));
        assert_eq!(m.declared("qs"), None);
        assert!(m.bundles("express"));
        assert!(!m.bundles("lodash"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let m = Manifest::parse("\u{feff}{\"name\":\"x\"}", "x").unwrap();
        assert_eq!(m.name.as_deref(), Some("x"));
    }

    #[test]
    fn non_json_names_the_file() {
        let err = Manifest::parse("{", "app/package.json").unwrap_err();
        assert_eq!(err.to_string(), "app/package.json: not valid JSON");
        assert!(std::error::Error::source(&err).is_some());
        let err = Manifest::parse("[]", "app/package.json").unwrap_err();
        assert_eq!(err.to_string(), "app/package.json: not a JSON object");
    }
}
