//! Why a report could not be read.

use std::path::{Path, PathBuf};

use super::Scanner;

/// A report that could not be read, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("reading report {}", .path.display())]
pub struct Error {
    path: PathBuf,
    #[source]
    problem: Problem,
}

impl Error {
    pub(super) fn new(path: &Path, problem: Problem) -> Self {
        Self {
            path: path.to_owned(),
            problem,
        }
    }

    /// The file (or directory) being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

/// What is wrong with a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    #[error(transparent)]
    Io(std::io::Error),
    /// The file holds nothing but whitespace.
    #[error("the file is empty")]
    Empty,
    /// The file is larger than [`super::SIZE_LIMIT`].
    #[error("the file is {size} bytes, over the {limit}-byte limit for a report")]
    TooLarge {
        /// Its size, or how much was read before giving up.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The content is not UTF-8 text.
    #[error("not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The content is not JSON.
    #[error("not JSON: {detail} at line {line}, column {column}")]
    Syntax {
        /// The parser's message.
        detail: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The JSON stops before the document is complete.
    #[error("truncated: the JSON ends before the document does (line {line}, column {column})")]
    Truncated {
        /// 1-based line of the end.
        line: usize,
        /// 1-based column of the end.
        column: usize,
    },
    /// The document is JSON but not an object.
    #[error("the top level is not a JSON object but {found}")]
    NotObject {
        /// What it is instead (`an array`).
        found: &'static str,
    },
    /// A field has the wrong type, is missing, or holds an unusable value.
    #[error("field `{field}`: {detail}")]
    Field {
        /// Where the field is (`Results[0].Vulnerabilities[3].PkgName`).
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Neither format's keys are at the top level.
    #[error(
        "not a report salve reads: the top level has neither Trivy's `SchemaVersion` nor \
         Grype's `matches`"
    )]
    Unrecognised,
    /// The caller named a scanner, and the document is another's.
    #[error("not a {expected} report: it looks like {found}'s")]
    WrongScanner {
        /// The scanner named.
        expected: Scanner,
        /// The scanner the content belongs to.
        found: Scanner,
    },
    /// The caller named a scanner, and the document has none of its keys.
    #[error("not a {expected} report: {}", expected_keys(*.expected))]
    NotScanner {
        /// The scanner named.
        expected: Scanner,
    },
    /// A Trivy report of another schema version.
    #[error("`SchemaVersion` is {found}; salve reads Trivy's schema version 2")]
    SchemaVersion {
        /// The version found.
        found: i64,
    },
    /// A Trivy report that lists no results at all.
    #[error("the Trivy report has no `Results`: nothing was scanned, or the file was cut")]
    NoResults,
    /// A directory without any report in it.
    #[error("the directory holds no .json report")]
    EmptyDirectory,
}

fn expected_keys(scanner: Scanner) -> &'static str {
    match scanner {
        Scanner::Trivy => "the top level has no `SchemaVersion`",
        Scanner::Grype => "the top level has no `matches`",
    }
}

/// A `--scanner` value that names no supported scanner.
#[derive(Debug, thiserror::Error)]
#[error("unknown scanner `{value}`; expected trivy or grype")]
pub struct ParseScannerError {
    pub(super) value: String,
}
