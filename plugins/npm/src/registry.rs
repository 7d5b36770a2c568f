//! The releases a registry offers for a package: its packument.
//!
//! npm asks `<registry>/<name>` (a scoped name's `/` encoded) with
//! `Accept: application/vnd.npm.install-v1+json`, the abbreviated document
//! that carries what installing needs; registries that ignore the header
//! answer with the full document, which has the same `versions` map.
//!
//! Deprecated versions stay usable: npm installs them with a warning. A
//! version is unusable when its `engines.node` excludes the image's Node
//! (npm 9 refuses those under `engine-strict` and they may not run).

use salve_plugin_sdk::host::{self, FetchError};
use salve_plugin_sdk::{Error, Release};
use serde_json::Value;

use crate::{name, version};

/// Why a registry's answer is not a packument.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The body is not JSON.
    #[error("{url}: not a registry document")]
    NotJson {
        /// Where it came from.
        url: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON has no `versions` object.
    #[error("{url}: the document has no versions map")]
    NoVersions {
        /// Where it came from.
        url: String,
    },
}

/// The header that asks for the abbreviated document.
const ACCEPT: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8";

/// The releases of `package` from the first of `sources` that answers, or
/// `None` when none can be reached. A registry that does not know the
/// package answers with an empty list.
///
/// # Errors
///
/// The name is invalid, a source is not allowed, or a registry answered
/// with a document that is not a packument.
pub fn releases(
    package: &str,
    node: Option<&str>,
    sources: &[String],
) -> Result<Option<Vec<Release>>, Error> {
    name::validate(package).map_err(Error::InvalidInput)?;
    let node = node.and_then(|n| version::parse(n).ok());
    for source in sources {
        let url = format!(
            "{}/{}",
            source.trim_end_matches('/'),
            name::url_segment(package)
        );
        let response = match host::fetch(&url, &[("accept", ACCEPT)]) {
            Ok(r) => r,
            Err(FetchError::NotAllowed(m)) => return Err(Error::InvalidInput(m)),
            Err(e) => {
                host::debug(&format!("{url}: {e}; trying the next source"));
                continue;
            }
        };
        match response.status {
            200 => {
                return parse(&response.body, &url, node.as_ref())
                    .map(Some)
                    .map_err(crate::failed);
            }
            404 => {
                host::debug(&format!("{url}: the registry has no package {package}"));
                return Ok(Some(Vec::new()));
            }
            status => host::debug(&format!("{url}: status {status}; trying the next source")),
        }
    }
    Ok(None)
}

/// The releases a packument lists, marked against the image's Node.
fn parse(
    body: &[u8],
    url: &str,
    node: Option<&nodejs_semver::Version>,
) -> Result<Vec<Release>, DocumentError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|source| DocumentError::NotJson {
            url: url.to_string(),
            source,
        })?;
    let Some(Value::Object(versions)) = document.get("versions") else {
        return Err(DocumentError::NoVersions {
            url: url.to_string(),
        });
    };
    let mut releases = Vec::with_capacity(versions.len());
    for (spelled, manifest) in versions {
        let unusable = node.and_then(|node| engine_mismatch(manifest, node));
        releases.push(Release {
            version: spelled.clone(),
            unusable,
        });
    }
    Ok(releases)
}

/// Why a version's `engines.node` excludes this Node, if it does. Ranges
/// that do not parse (old packages wrote free text) exclude nothing, as in
/// npm.
fn engine_mismatch(manifest: &Value, node: &nodejs_semver::Version) -> Option<String> {
    let wanted = manifest.get("engines")?.get("node")?.as_str()?;
    let range = version::parse_range(wanted).ok()?;
    if node.satisfies(&range) {
        return None;
    }
    Some(format!("requires Node {wanted}; the image has Node {node}"))
}

#[cfg(test)]
mod tests {
    use salve_plugin_sdk::host::{Response, testing};

    use super::*;

    const QS: &str = r#"{"name":"qs","dist-tags":{"latest":"6.13.0"},"versions":{
        "6.7.0":{"version":"6.7.0","engines":{"node":">=0.6"}},
        "6.7.3":{"version":"6.7.3","engines":{"node":">=0.6"},"deprecated":"please upgrade"},
        "6.13.0":{"version":"6.13.0","engines":{"node":">=0.6"}},
        "7.0.0":{"version":"7.0.0","engines":{"node":">= 20"}},
        "0.0.1":{"version":"0.0.1","engines":["node >= 0.1"]}}}"#;

    fn registry(status: u16, body: &'static str) {
        testing::set_fetch(move |url, headers| {
            assert!(
                headers
                    .iter()
                    .any(|(k, v)| *k == "accept" && v.contains("install-v1"))
            );
            assert!(url.starts_with("https://registry.npmjs.org/"), "{url}");
            Ok(Response {
                status,
                headers: vec![],
                body: body.as_bytes().to_vec(),
            })
        });
    }

    fn sources() -> Vec<String> {
        vec!["https://registry.npmjs.org/".into()]
    }

    #[test]
    fn engines_that_exclude_the_image_node_make_a_release_unusable() {
        registry(200, QS);
        let found = releases("qs", Some("18.20.4"), &sources())
            .unwrap()
            .unwrap();
        let get = |v: &str| found.iter().find(|r| r.version == v).unwrap();
        assert_eq!(
            get("6.7.3").unusable,
            None,
            "deprecated is still installable"
        );
        assert_eq!(
            get("7.0.0").unusable.as_deref(),
            Some("requires Node >= 20; the image has Node 18.20.4")
        );
        assert_eq!(
            get("0.0.1").unusable,
            None,
            "free-form engines exclude nothing"
        );
        assert_eq!(found.len(), 5);
    }

    #[test]
    fn without_a_node_version_every_release_is_usable() {
        registry(200, QS);
        let found = releases("qs", None, &sources()).unwrap().unwrap();
        assert!(found.iter().all(|r| r.unusable.is_none()));
    }

    #[test]
    fn scoped_names_are_encoded_in_the_url() {
        testing::set_fetch(|url, _| {
            assert_eq!(url, "https://registry.npmjs.org/@babel%2fcore");
            Ok(Response {
                status: 200,
                headers: vec![],
                body: br#"{"versions":{"7.0.0":{}}}"#.to_vec(),
            })
        });
        let found = releases("@babel/core", None, &sources()).unwrap().unwrap();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn an_unknown_package_has_no_releases_and_an_unreachable_registry_says_none() {
        registry(404, "{}");
        assert_eq!(releases("qs", None, &sources()).unwrap(), Some(vec![]));
        testing::set_fetch(|_, _| Err(FetchError::Transport("connection refused".into())));
        assert_eq!(releases("qs", None, &sources()).unwrap(), None);
    }

    #[test]
    fn invalid_names_and_documents_are_errors() {
        assert!(matches!(
            releases("../x", None, &sources()),
            Err(Error::InvalidInput(_))
        ));
        registry(200, "<html>");
        let err = releases("qs", None, &sources()).unwrap_err().to_string();
        assert!(err.contains("not a registry document"), "{err}");
    }
}
