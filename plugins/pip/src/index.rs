//! The simple repository API every Python index and mirror serves: a
//! project's page lists its files, as JSON (PEP 691) or HTML (PEP 503).
//!
//! The JSON form is asked for first; an index that only speaks HTML answers
//! with HTML, which is read too. Only what `releases` needs is kept: each
//! file's name, its `requires-python`, and whether and why it was yanked.

use serde::Deserialize;

use salve_plugin_sdk::host::{self, FetchError};

/// The media types asked for, preferred first (PEP 691's negotiation).
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// Why a project page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index answered with JSON that is not a PEP 691 project page.
    #[error("{url}: not a PEP 691 project page")]
    Json {
        /// The page.
        url: String,
        /// What was wrong.
        #[source]
        source: serde_json::Error,
    },
    /// The index answered with a media type that is not a project page.
    #[error("{url}: answered with {content_type:?}, not a simple-API project page")]
    ContentType {
        /// The page.
        url: String,
        /// What it said it sent.
        content_type: String,
    },
}

/// One file of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// The file name (`requests-2.32.3-py3-none-any.whl`).
    pub filename: String,
    /// Its `Requires-Python`, when the index states one.
    pub requires_python: Option<String>,
    /// `Some` when yanked, with the reason (possibly empty).
    pub yanked: Option<String>,
}

/// A project page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Project {
    /// The project's files.
    pub files: Vec<File>,
    /// The versions the index states outright (PEP 700), which may include
    /// versions without files.
    pub versions: Vec<String>,
}

/// What fetching a project page gave.
#[derive(Debug)]
pub enum Fetched {
    /// The page.
    Page(Project),
    /// The index has no such project (404).
    NotFound,
    /// The index could not be asked; the text says why.
    Unreachable(String),
}

/// The package indexes among a plugin's sources, as pip uses them: the first
/// source is the index (`--index-url`); after it, only sources that look
/// like simple-API roots (ending in `simple`, as PyPI, devpi, Artifactory
/// and Nexus spell them) are extra indexes; the others are file hosts pip
/// reaches through the indexes' links.
pub fn indexes(sources: &[String]) -> impl Iterator<Item = &String> {
    let (first, rest) = match sources.split_first() {
        Some((first, rest)) => (Some(first), rest),
        None => (None, &[][..]),
    };
    first.into_iter().chain(
        rest.iter()
            .filter(|s| s.trim_end_matches('/').ends_with("simple")),
    )
}

/// The URL of a project's page on an index: the index URL, a slash, the
/// normalised name, a slash.
pub fn project_url(index: &str, key: &str) -> String {
    format!("{}/{key}/", index.trim_end_matches('/'))
}

/// Fetches and reads a project page through the host.
///
/// # Errors
///
/// The index answered with something that is not a project page.
pub fn fetch(index: &str, key: &str) -> Result<Fetched, Error> {
    let url = project_url(index, key);
    let response = match host::fetch(&url, &[("Accept", ACCEPT)]) {
        Ok(response) => response,
        Err(
            e @ (FetchError::NotAllowed(_) | FetchError::Transport(_) | FetchError::TooLarge(_)),
        ) => {
            return Ok(Fetched::Unreachable(format!("{url}: {e}")));
        }
    };
    match response.status {
        200 => {}
        404 | 410 => return Ok(Fetched::NotFound),
        status => return Ok(Fetched::Unreachable(format!("{url}: HTTP status {status}"))),
    }

    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = response.text();
    if content_type.contains("json") {
        parse_json(&body)
            .map(Fetched::Page)
            .map_err(|source| Error::Json { url, source })
    } else if content_type.contains("html") || content_type.is_empty() {
        Ok(Fetched::Page(parse_html(&body)))
    } else {
        Err(Error::ContentType { url, content_type })
    }
}

/// The parts of a PEP 691 project page this plugin reads.
#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Yanked,
}

/// PEP 691's `yanked`: `false`, `true`, or the reason.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Yanked {
    #[default]
    No,
    Flag(bool),
    Reason(String),
}

/// Reads a PEP 691 JSON project page.
///
/// # Errors
///
/// The text is not one.
pub fn parse_json(body: &str) -> Result<Project, serde_json::Error> {
    let page: JsonPage = serde_json::from_str(body)?;
    let files = page
        .files
        .into_iter()
        .map(|f| File {
            filename: f.filename,
            requires_python: f.requires_python.filter(|r| !r.trim().is_empty()),
            yanked: match f.yanked {
                Yanked::No | Yanked::Flag(false) => None,
                Yanked::Flag(true) => Some(String::new()),
                Yanked::Reason(reason) => Some(reason),
            },
        })
        .collect();
    Ok(Project {
        files,
        versions: page.versions,
    })
}

/// Reads a PEP 503 HTML project page: every `<a>` is a file, its text the
/// file name (the URL's last segment when the text is empty), with
/// `data-requires-python` and `data-yanked` attributes.
///
/// The format is one anchor per line of machine-written HTML, so a small
/// tag reader suffices; a full HTML parser would be most of the component.
pub fn parse_html(body: &str) -> Project {
    // ASCII lowercasing keeps byte offsets, so tags are found in `lower` and
    // read from `body`.
    let lower = body.to_ascii_lowercase();
    let mut files = Vec::new();
    let mut at = 0;
    while let Some(start) = find_anchor(&lower, at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| start + i) else {
            break;
        };
        let attributes = &body[start + 2..tag_end];
        let text_end = lower[tag_end..]
            .find("</a")
            .map_or(body.len(), |i| tag_end + i);
        let text = decode_entities(body[tag_end + 1..text_end].trim());
        at = text_end;

        let href = attribute(attributes, "href").unwrap_or_default();
        let filename = if text.is_empty() {
            let path = href.split(['#', '?']).next().unwrap_or_default();
            path.rsplit('/').next().unwrap_or_default().to_string()
        } else {
            text
        };
        if filename.is_empty() {
            continue;
        }
        files.push(File {
            filename,
            requires_python: attribute(attributes, "data-requires-python")
                .filter(|r| !r.trim().is_empty()),
            yanked: attribute(attributes, "data-yanked"),
        });
    }
    Project {
        files,
        versions: Vec::new(),
    }
}

/// The byte offset, at or after `from`, of the next `<a` tag in lowercased
/// text (not `<abbr>` and the like).
fn find_anchor(lower: &str, mut from: usize) -> Option<usize> {
    while let Some(i) = lower.get(from..)?.find("<a") {
        let at = from + i;
        if lower[at + 2..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

/// The decoded value of an attribute in a tag's attribute text; `Some("")`
/// for an attribute without a value (`data-yanked`).
fn attribute(attributes: &str, name: &str) -> Option<String> {
    let mut rest = attributes;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let this = &rest[..name_end];
        rest = rest[name_end..].trim_start();

        let value = if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let (value, remaining) = match after_eq.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after_eq[1..];
                    let end = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or_default())
                }
                _ => {
                    let end = after_eq
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after_eq.len());
                    (&after_eq[..end], &after_eq[end..])
                }
            };
            rest = remaining;
            value
        } else {
            ""
        };
        if this.eq_ignore_ascii_case(name) {
            return Some(decode_entities(value));
        }
        if this.is_empty() {
            // Stray characters such as a self-closing slash.
            rest = rest.get(1..).unwrap_or_default();
        }
    }
}

/// Decodes the character references machine-written index pages use:
/// `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&apos;` and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|end| *end <= 10).and_then(|end| {
            let entity = &after[..end];
            let c = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture(path: &str) -> String {
        let full = format!("{}/tests/fixtures/index/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    #[test]
    fn json_pages_give_files_versions_and_yank_reasons() {
        let project = parse_json(&fixture("requests.json")).unwrap();
        assert!(project.versions.iter().any(|v| v == "2.25.1"));
        let yanked = project
            .files
            .iter()
            .find(|f| f.filename == "requests-2.32.0-py3-none-any.whl")
            .unwrap();
        assert_eq!(yanked.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(
            yanked.yanked.as_deref(),
            Some("Yanked due to conflicts with CVE-2024-35195 mitigation")
        );
        let old = project
            .files
            .iter()
            .find(|f| f.filename == "requests-0.10.0.tar.gz")
            .unwrap();
        assert_eq!(
            (old.requires_python.as_deref(), old.yanked.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn json_yanked_may_be_a_bare_flag() {
        let page = r#"{"meta": {"api-version": "1.0"}, "name": "x", "files": [
            {"filename": "x-1.0.tar.gz", "url": "u", "hashes": {}, "yanked": true},
            {"filename": "x-1.1.tar.gz", "url": "u", "hashes": {}}]}"#;
        let project = parse_json(page).unwrap();
        assert_eq!(project.files[0].yanked.as_deref(), Some(""));
        assert_eq!(project.files[1].yanked, None);
        assert!(project.versions.is_empty());
    }

    #[test]
    fn html_pages_decode_requires_python_entities() {
        let project = parse_html(&fixture("idna.html"));
        let first = &project.files[0];
        assert_eq!(first.filename, "idna-0.2.tar.gz");
        assert_eq!(first.requires_python, None);
        let last = project.files.last().unwrap();
        assert_eq!(last.filename, "idna-3.9-py3-none-any.whl");
        assert_eq!(last.requires_python.as_deref(), Some(">=3.6"));
        let count = fixture("idna.html").matches("<a ").count();
        assert_eq!(project.files.len(), count);
    }

    #[test]
    fn html_anchors_may_be_yanked_or_unquoted_or_named_by_their_url() {
        let page = "<html><body>\n\
            <a href=\"https://f/x-1.0.tar.gz#sha256=ab\" data-yanked=\"broken &amp; bad\">x-1.0.tar.gz</a><br/>\n\
            <A HREF=https://f/x-1.1.tar.gz data-yanked>x-1.1.tar.gz</A>\n\
            <a href='https://f/x-1.2-py3-none-any.whl?a=b' data-requires-python='&gt;=3.8,&lt;4'></a>\n\
            <abbr>not a link</abbr></body></html>";
        let project = parse_html(page);
        let names: Vec<&str> = project.files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(
            names,
            ["x-1.0.tar.gz", "x-1.1.tar.gz", "x-1.2-py3-none-any.whl"]
        );
        assert_eq!(project.files[0].yanked.as_deref(), Some("broken & bad"));
        assert_eq!(project.files[1].yanked.as_deref(), Some(""));
        assert_eq!(
            project.files[2].requires_python.as_deref(),
            Some(">=3.8,<4")
        );
    }

    #[test]
    fn entities_decode_and_unknown_ones_stay() {
        assert_eq!(
            decode_entities("&gt;=3.6, &#33;=3.0.*, &#x3C;4"),
            ">=3.6, !=3.0.*, <4"
        );
        assert_eq!(decode_entities("a & b &nbsp; c"), "a & b &nbsp; c");
    }

    #[test]
    fn project_urls_end_with_the_normalised_name_and_a_slash() {
        assert_eq!(
            project_url("https://pypi.org/simple/", "jaraco-context"),
            "https://pypi.org/simple/jaraco-context/"
        );
        assert_eq!(
            project_url("https://mirror/simple", "x"),
            "https://mirror/simple/x/"
        );
    }

    #[test]
    fn fetch_reads_json_html_and_status_codes() {
        use salve_plugin_sdk::host::{Response, testing};

        testing::set_fetch(|url, headers| {
            assert!(headers.iter().any(
                |(k, v)| *k == "Accept" && v.starts_with("application/vnd.pypi.simple.v1+json")
            ));
            let (status, content_type, body) = match url {
                "https://i/simple/requests/" => (
                    200,
                    "application/vnd.pypi.simple.v1+json",
                    fixture("requests.json"),
                ),
                "https://i/simple/idna/" => (200, "text/html; charset=utf-8", fixture("idna.html")),
                "https://i/simple/broken/" => (
                    200,
                    "application/vnd.pypi.simple.v1+json",
                    "{\"files\": 3}".into(),
                ),
                "https://i/simple/down/" => (503, "text/plain", String::new()),
                _ => (404, "text/plain", String::new()),
            };
            Ok(Response {
                status,
                headers: vec![("content-type".into(), content_type.into())],
                body: body.into_bytes(),
            })
        });

        assert!(
            matches!(fetch("https://i/simple", "requests"), Ok(Fetched::Page(p)) if p.files.len() > 200)
        );
        assert!(
            matches!(fetch("https://i/simple/", "idna"), Ok(Fetched::Page(p)) if !p.files.is_empty())
        );
        assert!(matches!(
            fetch("https://i/simple/", "nope"),
            Ok(Fetched::NotFound)
        ));
        assert!(
            matches!(fetch("https://i/simple/", "down"), Ok(Fetched::Unreachable(why)) if why.contains("503"))
        );
        let err = fetch("https://i/simple/", "broken").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("https://i/simple/broken/: not a PEP 691"),
            "{err}"
        );
    }
}
