//! Scanner reports: Trivy and Grype JSON into findings.
//!
//! A report says which vulnerable package copies a scanner found in an image.
//! This module reads one into a [`Report`]: the image's OS and architecture
//! as the scanner saw them, and one [`Finding`] per vulnerability of a
//! package at a location. Nothing here knows an ecosystem: a finding keeps
//! the scanner's own result type (`python-pkg`, `debian`, Grype's `npm`...)
//! and the host routes it to the plugin that declares that type.
//!
//! The format is recognised from the content (Trivy writes `SchemaVersion`
//! and `Results`, Grype writes `matches`) unless the caller names the
//! scanner. A directory gives one report per `.json` file in it.
//!
//! ```no_run
//! # fn main() -> Result<(), salve::report::Error> {
//! let reports = salve::report::read("trivy.json".as_ref(), None)?;
//! for package in salve::report::group(&reports[0].findings) {
//!     println!("{} {} at {:?}", package.name, package.installed, package.path);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Reading is hostile-input safe: a file over [`SIZE_LIMIT`], a truncated or
//! ill-typed document, or a report of an unknown shape ends in one
//! [`Error`] that names the file and, where there is one, the field.

mod error;
mod grype;
mod package;
mod trivy;

// std::fs rather than fs-err here: every I/O error is wrapped in an
// `Error` that names the file already, and fs-err would name it twice.
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use tracing::debug;

pub use error::{Error, ParseScannerError, Problem};
pub use package::{Package, group};

/// The largest report read, in bytes: 128 MiB.
///
/// Trivy's JSON for a large image with thousands of findings, descriptions
/// and CVSS vectors included, is tens of megabytes; four times the 50 MB
/// report the benchmark parses leaves room for the biggest real images.
/// Parsing needs roughly the file's size again in memory, so the cap also
/// bounds what a hostile or mistaken input (a disk image, `/dev/zero`) can
/// cost before it is refused.
pub const SIZE_LIMIT: u64 = 128 * 1024 * 1024;

/// A scanner whose JSON output salve reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scanner {
    /// Aqua Security's Trivy, JSON schema version 2.
    Trivy,
    /// Anchore's Grype.
    Grype,
}

impl fmt::Display for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trivy => "trivy",
            Self::Grype => "grype",
        })
    }
}

impl FromStr for Scanner {
    type Err = ParseScannerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "trivy" => Ok(Self::Trivy),
            "grype" => Ok(Self::Grype),
            other => Err(ParseScannerError {
                value: other.to_owned(),
            }),
        }
    }
}

/// One scanner report, read from one file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The file it was read from.
    pub path: PathBuf,
    /// The scanner that wrote it.
    pub scanner: Scanner,
    /// The image's operating system, if the scanner recognised one.
    pub os: Option<Os>,
    /// The image's architecture (`amd64`, `arm64`), if the report says.
    pub architecture: Option<String>,
    /// Every vulnerability of every package copy, in report order.
    pub findings: Vec<Finding>,
}

/// The operating system a scanner recognised in the image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Os {
    /// The distribution (`debian`, `alpine`, `ubuntu`).
    pub family: String,
    /// Its release (`12.5`, `3.21.3`).
    pub name: String,
}

/// Whether a finding is about an OS package or an application library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A package of the distribution's package manager.
    Os,
    /// An application library (pip, npm, NuGet...).
    Library,
}

/// How bad a vulnerability is, by the scanner's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not rated, or a label salve does not know.
    Unknown,
    /// Grype's lowest rating.
    Negligible,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Reads a scanner's label, in any letter case; an unknown label is
    /// [`Severity::Unknown`].
    pub fn from_label(label: &str) -> Self {
        const LABELS: [(&str, Severity); 6] = [
            ("unknown", Severity::Unknown),
            ("negligible", Severity::Negligible),
            ("low", Severity::Low),
            ("medium", Severity::Medium),
            ("high", Severity::High),
            ("critical", Severity::Critical),
        ];
        LABELS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(label))
            .map_or(Self::Unknown, |&(_, severity)| severity)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Negligible => "negligible",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        })
    }
}

/// What the scanner's data source says about a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    /// A fixed version exists.
    Fixed,
    /// Affected, and no fix is published yet.
    NotFixed,
    /// The vendor decided not to fix it.
    WontFix,
    /// The vendor postponed the fix.
    Deferred,
    /// The release line is out of support.
    EndOfLife,
    /// The vendor is still looking into it.
    UnderInvestigation,
    /// The vendor says this package is not affected.
    NotAffected,
    /// The report does not say, or uses a state salve does not know.
    Unknown,
}

impl FixState {
    /// Reads Trivy's `Status` (`will_not_fix`) or Grype's `fix.state`
    /// (`wont-fix`); an unknown value is [`FixState::Unknown`].
    pub fn from_label(label: &str) -> Self {
        match label.to_ascii_lowercase().replace('-', "_").as_str() {
            "fixed" => Self::Fixed,
            "affected" | "not_fixed" => Self::NotFixed,
            "will_not_fix" | "wont_fix" => Self::WontFix,
            "fix_deferred" => Self::Deferred,
            "end_of_life" => Self::EndOfLife,
            "under_investigation" => Self::UnderInvestigation,
            "not_affected" => Self::NotAffected,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for FixState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fixed => "fixed",
            Self::NotFixed => "not fixed yet",
            Self::WontFix => "the vendor will not fix it",
            Self::Deferred => "the vendor deferred the fix",
            Self::EndOfLife => "the release is end of life",
            Self::UnderInvestigation => "under investigation",
            Self::NotAffected => "the vendor says it is not affected",
            Self::Unknown => "fix state unknown",
        })
    }
}

/// One vulnerability of one package copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The vulnerability's id (`CVE-2023-32681`, `GHSA-...`).
    pub vulnerability: String,
    /// The package name, as the scanner spells it.
    pub package: String,
    /// The installed version.
    pub installed: String,
    /// The versions that fix it, one per release line, as the scanner
    /// spells them; empty when no fix is known.
    pub fixed: Vec<String>,
    /// What the data source says about a fix.
    pub fix_state: FixState,
    /// The scanner's type for the package's ecosystem: Trivy's result
    /// `Type` (`python-pkg`, `debian`) or Grype's artifact `type`
    /// (`python`, `deb`). Plugins declare the types they take.
    pub report_type: String,
    /// OS package or application library.
    pub class: Class,
    /// Where the package copy is, relative to the image root with no
    /// leading `/` (`usr/local/lib/python3.11/site-packages/pip-24.0.dist-info/METADATA`).
    /// The same package at two paths is two copies. `None` for OS packages
    /// and when the scanner gives no location.
    pub path: Option<String>,
    /// Every location the scanner names for the copy, normalised like
    /// `path` (Grype lists several: the metadata file first, then the
    /// files it owns).
    pub locations: Vec<String>,
    /// What was scanned to find it, when the scanner says: Trivy's result
    /// `Target` (a lockfile, a `.deps.json`, or a label such as `Python`).
    pub scan_target: Option<String>,
    /// How bad it is.
    pub severity: Severity,
    /// A one-line summary, when the scanner gives one.
    pub title: Option<String>,
}

/// Reads the report at `path`, or every `.json` report in the directory at
/// `path`, sorted by file name.
///
/// `scanner` forces the format; `None` recognises it from the content.
///
/// # Errors
///
/// The file cannot be read, is not a report of a supported scanner, or is
/// malformed; the error names the file and the field. A directory without
/// any `.json` file is an error too.
pub fn read(path: &Path, scanner: Option<Scanner>) -> Result<Vec<Report>, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::new(path, Problem::Io(e)))?;
    if !metadata.is_dir() {
        return Ok(vec![read_file(path, scanner)?]);
    }

    let files = json_files(path)?;
    if files.is_empty() {
        return Err(Error::new(path, Problem::EmptyDirectory));
    }
    debug!(dir = %path.display(), count = files.len(), "reading a directory of reports");
    files.iter().map(|file| read_file(file, scanner)).collect()
}

/// Parses a report already in memory; `path` names it in errors.
///
/// # Errors
///
/// As for [`read`], apart from I/O.
pub fn parse(path: &Path, bytes: &[u8], scanner: Option<Scanner>) -> Result<Report, Error> {
    parse_bytes(bytes, scanner)
        .map(|parts| parts.into_report(path))
        .map_err(|p| Error::new(path, p))
}

fn read_file(path: &Path, scanner: Option<Scanner>) -> Result<Report, Error> {
    let bytes = read_limited(path).map_err(|p| Error::new(path, p))?;
    let report = parse(path, &bytes, scanner)?;
    debug!(
        report = %path.display(),
        scanner = %report.scanner,
        findings = report.findings.len(),
        "read report"
    );
    Ok(report)
}

/// The regular `.json` files directly inside `dir`, sorted by name.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |e| Error::new(dir, Problem::Io(e));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if is_json && !hidden && path.is_file() {
            files.push(path);
        } else {
            debug!(path = %path.display(), "not a report file; ignored");
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a whole file, refusing one over [`SIZE_LIMIT`] before and while
/// reading (a special file or one still growing has no trustworthy size).
fn read_limited(path: &Path) -> Result<Vec<u8>, Problem> {
    let file = std::fs::File::open(path).map_err(Problem::Io)?;
    let size = file.metadata().map_err(Problem::Io)?.len();
    if size > SIZE_LIMIT {
        return Err(Problem::TooLarge {
            size,
            limit: SIZE_LIMIT,
        });
    }

    // Capacity from the metadata avoids regrowing a 50 MB buffer.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(SIZE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(Problem::Io)?;
    let read = bytes.len() as u64;
    if read > SIZE_LIMIT {
        return Err(Problem::TooLarge {
            size: read,
            limit: SIZE_LIMIT,
        });
    }
    Ok(bytes)
}

/// A report before it is tied to its file.
struct Parts {
    scanner: Scanner,
    os: Option<Os>,
    architecture: Option<String>,
    findings: Vec<Finding>,
}

impl Parts {
    fn into_report(self, path: &Path) -> Report {
        Report {
            path: path.to_owned(),
            scanner: self.scanner,
            os: self.os,
            architecture: self.architecture,
            findings: self.findings,
        }
    }
}

/// The top level of either format, read in one pass; which keys are
/// present tells the formats apart, since they share none.
#[derive(Deserialize)]
struct Document<'a> {
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "Metadata", borrow)]
    metadata: Option<trivy::Metadata<'a>>,
    #[serde(rename = "Results", borrow)]
    results: Option<Vec<trivy::ScanResult<'a>>>,
    #[serde(borrow)]
    matches: Option<Vec<grype::Match<'a>>>,
    #[serde(borrow)]
    source: Option<grype::Source<'a>>,
    #[serde(borrow)]
    distro: Option<grype::Distro<'a>>,
}

fn parse_bytes(bytes: &[u8], scanner: Option<Scanner>) -> Result<Parts, Problem> {
    // PowerShell's `>` writes a byte order mark before the JSON.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| Problem::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(Problem::Empty);
    }

    // A derived struct also accepts an array, positionally; refuse it here.
    if !text.trim_start().starts_with('{') {
        return Err(not_object(text));
    }
    let document = deserialize(text)?;
    let detected = match (
        document.schema_version.is_some(),
        document.matches.is_some(),
    ) {
        (true, false) => Some(Scanner::Trivy),
        (false, true) => Some(Scanner::Grype),
        _ => None,
    };
    match (scanner, detected) {
        (None | Some(Scanner::Trivy), Some(Scanner::Trivy)) => trivy::parts(document),
        (None | Some(Scanner::Grype), Some(Scanner::Grype)) => grype::parts(document),
        (Some(expected), Some(found)) => Err(Problem::WrongScanner { expected, found }),
        (Some(expected), None) => Err(Problem::NotScanner { expected }),
        (None, None) => Err(Problem::Unrecognised),
    }
}

/// Deserializes the document; on failure, deserializes it again while
/// tracking the path, so the error names the field without slowing down
/// the reports that are fine.
fn deserialize(text: &str) -> Result<Document<'_>, Problem> {
    let error = match serde_json::from_str::<Document<'_>>(text) {
        Ok(document) => return Ok(document),
        Err(error) => error,
    };

    if !error.is_data() {
        return Err(json_problem(&error));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Err(
        match serde_path_to_error::deserialize::<_, Document<'_>>(&mut de) {
            Err(e) => Problem::Field {
                field: e.path().to_string(),
                detail: message(e.inner()),
            },
            // Unreachable unless serde_json disagrees with itself; the first
            // error still says what is wrong.
            Ok(_) => Problem::Field {
                field: "(unknown)".into(),
                detail: message(&error),
            },
        },
    )
}

/// Why a document that does not start with `{` is refused: it is either
/// not JSON at all, or JSON of another kind.
fn not_object(text: &str) -> Problem {
    let found = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(_)) => "an array",
        Ok(serde_json::Value::String(_)) => "a string",
        Ok(serde_json::Value::Number(_)) => "a number",
        Ok(serde_json::Value::Bool(_)) => "a boolean",
        Ok(serde_json::Value::Null) => "null",
        Ok(serde_json::Value::Object(_)) => "an object",
        Err(error) => return json_problem(&error),
    };
    Problem::NotObject { found }
}

/// The problem of a document serde_json could not read as JSON at all.
fn json_problem(error: &serde_json::Error) -> Problem {
    let (line, column) = (error.line(), error.column());
    if error.is_eof() {
        Problem::Truncated { line, column }
    } else {
        Problem::Syntax {
            detail: message(error),
            line,
            column,
        }
    }
}

/// serde_json's message without the position it appends (the problem
/// carries the position or the field instead).
fn message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// Splits a scanner's fixed-version text into versions: Trivy writes one
/// string with a comma between release lines (`"2.0.7, 1.26.18"`).
///
/// Some advisory sources (the Node.js security working group's, as Trivy
/// passes them on) spell a fix as a lower bound, `>=4.17.19`. A fixed
/// version is a lower bound by definition, so the operator is dropped here
/// rather than taught to every plugin.
fn split_fixed<'a>(text: &'a str) -> impl Iterator<Item = String> + 'a {
    text.split(',')
        .map(|piece| {
            let piece = piece.trim();
            piece.strip_prefix(">=").map_or(piece, str::trim_start)
        })
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
}

/// A location as the scanner writes it, relative to the image root.
fn normalise_path(path: &str) -> Option<String> {
    let path = path.trim().trim_start_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// The fix state a report gives, or what its fixed versions imply when it
/// gives none (older Trivy versions write no `Status`).
fn fix_state(label: Option<&str>, fixed: &[String]) -> FixState {
    match label {
        Some(label) => FixState::from_label(label),
        None if fixed.is_empty() => FixState::Unknown,
        None => FixState::Fixed,
    }
}

/// An optional string that is absent when empty.
fn non_empty(text: Option<Cow<'_, str>>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests;
