//! Fetching from the network on behalf of plugins, from allowed sources only.
//!
//! Plugins have no sockets. When one needs its ecosystem's index (the pip
//! plugin asking PyPI which releases exist) or a plan needs an artifact,
//! the host fetches it here, and only from URLs under the sources the user
//! allowed for that plugin. Redirects are followed by hand so that each hop
//! is checked against the same list.
//!
//! TLS trusts the system's certificate store (through the platform
//! verifier), or the CA bundle given with `--ca-bundle`, so fetches work
//! behind TLS-intercepting proxies; `HTTP(S)_PROXY`/`NO_PROXY` apply.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The largest body a fetch returns to a plugin.
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

/// The largest artifact a fetch step downloads.
pub const MAX_ARTIFACT: u64 = 2 * 1024 * 1024 * 1024;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not under any allowed source.
    #[error("{url} is not under an allowed source ({allowed})")]
    NotAllowed {
        /// The refused URL.
        url: String,
        /// The allowed sources, comma-separated, or "none".
        allowed: String,
    },
    /// The network, TLS or the server failed.
    #[error("fetching {url}: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status for a download.
    #[error("fetching {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body was larger than allowed.
    #[error("fetching {url}: the body is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A redirect without a usable `Location`, or too many redirects.
    #[error("fetching {url}: {reason}")]
    Redirect {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The downloaded artifact's digest differs from the expected one.
    #[error("fetching {url}: sha256 is {actual}, the plan expected {expected}")]
    Digest {
        /// The URL.
        url: String,
        /// The digest the plan named.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// Writing the artifact failed.
    #[error("writing {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle could not be read.
    #[error("reading the CA bundle {path}: {reason}")]
    CaBundle {
        /// The bundle's path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// URL prefixes a plugin may fetch from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources(Vec<String>);

impl Sources {
    /// Sources from URL prefixes; a prefix without a trailing slash is taken
    /// as a directory (`https://pypi.org/simple` allows
    /// `https://pypi.org/simple/x/` but not `https://pypi.org/simplex`).
    pub fn new<I, S>(prefixes: I) -> Sources
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Sources(
            prefixes
                .into_iter()
                .map(|p| {
                    let p = p.as_ref().trim();
                    if p.ends_with('/') {
                        p.to_string()
                    } else {
                        format!("{p}/")
                    }
                })
                .collect(),
        )
    }

    /// True if `url` lies under one of the sources. Scheme and host are
    /// compared case-insensitively; `..` segments are refused outright.
    pub fn allows(&self, url: &str) -> bool {
        if url
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .split('/')
            .any(|s| s == "..")
        {
            return false;
        }
        let url = normalize_origin(url);
        self.0.iter().any(|p| url.starts_with(&normalize_origin(p)))
    }

    /// The prefixes, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            "none".into()
        } else {
            self.0.join(", ")
        }
    }
}

/// Lowercases the scheme and host of a URL, leaving the path alone.
fn normalize_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path
    )
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, decompressed.
    pub body: Vec<u8>,
}

/// An HTTP client that only goes where it is allowed.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client trusting the system's certificates, or only `ca_bundle`
    /// (PEM) when given.
    ///
    /// # Errors
    ///
    /// The CA bundle cannot be read or holds no certificate.
    pub fn new(ca_bundle: Option<&Path>) -> Result<Client, Error> {
        let roots = match ca_bundle {
            None => ureq::tls::RootCerts::PlatformVerifier,
            Some(path) => ureq::tls::RootCerts::Specific(Arc::new(read_bundle(path)?)),
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .user_agent(concat!("salve/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: config.into(),
        })
    }

    /// GETs `url` (following allowed redirects) and returns the response,
    /// whatever its status, with a body of at most [`MAX_BODY`] bytes.
    ///
    /// # Errors
    ///
    /// The URL or a redirect target is not allowed, the transfer failed, or
    /// the body is too large.
    pub fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        sources: &Sources,
    ) -> Result<Response, Error> {
        let (final_url, mut response) = self.send(url, headers, sources)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Error::TooLarge {
                    url: final_url.clone(),
                    limit: MAX_BODY,
                },
                e => Error::Transport {
                    url: final_url.clone(),
                    source: e,
                },
            })?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Downloads `url` into `dest` (written under a temporary name, renamed
    /// when complete), checking the SHA-256 when given. Returns the size.
    ///
    /// # Errors
    ///
    /// As [`Client::get`], plus a non-2xx status, a digest mismatch, or a
    /// write failure.
    pub fn download(
        &self,
        url: &str,
        dest: &Path,
        sha256: Option<&str>,
        sources: &Sources,
    ) -> Result<u64, Error> {
        let (final_url, response) = self.send(url, &[], sources)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Error::Status {
                url: final_url,
                status,
            });
        }

        // Stream to a temporary file beside the destination, hashing as we go.
        let dir = dest.parent().unwrap_or(Path::new("."));
        let write_err = |source| Error::Write {
            path: dest.to_path_buf(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
        let mut reader = response.into_body().into_reader().take(MAX_ARTIFACT + 1);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| Error::Transport {
                url: final_url.clone(),
                source: ureq::Error::Io(e),
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > MAX_ARTIFACT {
                return Err(Error::TooLarge {
                    url: final_url,
                    limit: MAX_ARTIFACT,
                });
            }
            hasher.update(&buf[..n]);
            std::io::Write::write_all(&mut tmp, &buf[..n]).map_err(write_err)?;
        }

        let actual = hex::encode(hasher.finalize());
        if let Some(expected) = sha256
            && !expected.eq_ignore_ascii_case(&actual)
        {
            return Err(Error::Digest {
                url: final_url,
                expected: expected.into(),
                actual,
            });
        }
        tmp.persist(dest).map_err(|e| write_err(e.error))?;
        Ok(size)
    }

    /// Sends a GET, following redirects only to allowed URLs.
    fn send(
        &self,
        url: &str,
        headers: &[(String, String)],
        sources: &Sources,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), Error> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            if !sources.allows(&current) {
                return Err(Error::NotAllowed {
                    url: current,
                    allowed: sources.describe(),
                });
            }
            let mut request = self.agent.get(&current);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.call().map_err(|source| Error::Transport {
                url: current.clone(),
                source,
            })?;
            if !response.status().is_redirection() {
                return Ok((current, response));
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Redirect {
                    url: current.clone(),
                    reason: format!("redirect {} without a Location", response.status()),
                })?;
            current = resolve_location(&current, location);
        }
        Err(Error::Redirect {
            url: url.into(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Resolves a `Location` header against the URL that returned it.
fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let host_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..host_end]);
    if let Some(path) = location.strip_prefix("//") {
        return format!("{scheme}://{path}");
    }
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let dir = &rest[host_end..];
    let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
    format!(
        "{origin}{}{location}",
        if dir.is_empty() { "/" } else { dir }
    )
}

/// Reads every certificate of a PEM bundle.
fn read_bundle(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, Error> {
    let pem = fs_err::read(path).map_err(|e| Error::CaBundle {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::CaBundle {
                    path: path.into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::CaBundle {
            path: path.into(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_allow_only_urls_under_a_prefix() {
        let s = Sources::new(["https://pypi.org/simple", "https://files.pythonhosted.org/"]);
        assert!(s.allows("https://pypi.org/simple/requests/"));
        assert!(s.allows("HTTPS://PyPI.org/simple/requests/"));
        assert!(s.allows("https://files.pythonhosted.org/packages/ab/cd/x.whl"));
        assert!(!s.allows("https://pypi.org/simplex/"));
        assert!(!s.allows("https://pypi.org/"));
        assert!(!s.allows("https://pypi.org.evil.example/simple/"));
        assert!(!s.allows("https://pypi.org/simple/../admin"));
        assert!(!Sources::default().allows("https://pypi.org/simple/"));
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base = "https://registry.example/a/b/c";
        assert_eq!(resolve_location(base, "https://other/x"), "https://other/x");
        assert_eq!(
            resolve_location(base, "/x/y"),
            "https://registry.example/x/y"
        );
        assert_eq!(
            resolve_location(base, "d"),
            "https://registry.example/a/b/d"
        );
        assert_eq!(
            resolve_location(base, "//cdn.example/z"),
            "https://cdn.example/z"
        );
    }

    #[test]
    fn a_refused_url_is_named_with_the_allowed_sources() {
        let client = Client::new(None).unwrap();
        let err = client
            .get(
                "https://example.org/x",
                &[],
                &Sources::new(["https://pypi.org/simple/"]),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "https://example.org/x is not under an allowed source (https://pypi.org/simple/)"
        );
    }

    #[test]
    fn an_empty_ca_bundle_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "").unwrap();
        let err = Client::new(Some(&path)).unwrap_err();
        assert!(
            err.to_string().contains("empty.pem: no certificate in it"),
            "{err}"
        );
    }
}
