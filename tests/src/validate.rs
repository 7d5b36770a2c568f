//! The image validator every test that produces an image runs.
//!
//! [`image`] takes an OCI layout directory or a docker-archive file and
//! checks, for every image in it:
//!
//! - the manifest, config and layer blobs match the digests and sizes that
//!   point at them;
//! - the config's `rootfs.diff_ids` are the sha256 of the uncompressed
//!   layers, in order, and `history` has one non-empty entry per layer;
//! - no layer holds the build machinery: nothing under `dev/`, and no file
//!   holding a certificate that is in the host's CA bundle but not among the
//!   distribution's own certificates (that is, the certificate of a
//!   TLS-intercepting proxy, which builds and patch runs may use but must
//!   never leave behind);
//! - an independent tool accepts it: `skopeo inspect`.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use memchr::memmem;

use crate::command;
use crate::layout::{self, Format, Image};

/// An image that fails validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its files cannot be read at all.
    #[error("reading {path}")]
    Layout {
        /// The image path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: layout::Error,
    },
    /// It reads, but is wrong.
    #[error("{path} is not a valid image: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The image path.
        path: PathBuf,
        /// Everything found wrong.
        problems: Vec<Problem>,
    },
}

impl Error {
    /// The problems found, empty when the image could not be read.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems, .. } => problems,
            Error::Layout { .. } => &[],
        }
    }
}

/// One thing wrong with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob's content does not hash to the digest that points at it.
    Digest {
        /// Which blob (`manifest`, `config`, `layer 2`).
        blob: String,
        /// The digest that points at it.
        expected: String,
        /// The digest of its content.
        found: String,
    },
    /// A blob's length differs from the size that points at it.
    Size {
        /// Which blob.
        blob: String,
        /// The size that points at it.
        expected: u64,
        /// Its length.
        found: u64,
    },
    /// A config's `rootfs.diff_ids` do not match the layers.
    DiffIds {
        /// The config's list.
        config: Vec<String>,
        /// The sha256 of each uncompressed layer.
        layers: Vec<String>,
    },
    /// `history` disagrees with the layers.
    History {
        /// Layers in the manifest.
        layers: usize,
        /// Non-empty history entries.
        entries: usize,
    },
    /// A required config field is missing or wrong.
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A layer holds something of the build or patch machinery.
    Leftover {
        /// Which layer (0 is the bottom).
        layer: usize,
        /// The path in the layer.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// The independent tool rejects the image.
    Rejected {
        /// The tool and what it said.
        detail: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Digest {
                blob,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{blob} is pointed at as {expected} but hashes to {found}"
                )
            }
            Problem::Size {
                blob,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{blob} is pointed at with size {expected} but is {found} bytes"
                )
            }
            Problem::DiffIds { config, layers } => {
                write!(
                    f,
                    "config rootfs.diff_ids {config:?} differ from the layers' {layers:?}"
                )
            }
            Problem::History { layers, entries } => {
                write!(
                    f,
                    "config history has {entries} non-empty entries for {layers} layers"
                )
            }
            Problem::Field { field, problem } => write!(f, "config field `{field}` {problem}"),
            Problem::Leftover { layer, path, what } => {
                write!(f, "layer {layer} holds {what} at {path}")
            }
            Problem::Rejected { detail } => write!(f, "rejected by {detail}"),
        }
    }
}

/// Checks the image at `path` (an OCI layout directory or a docker-archive).
pub fn image(path: &Path) -> Result<(), Error> {
    let opened = layout::open(path).map_err(|source| Error::Layout {
        path: path.to_owned(),
        source,
    })?;
    let foreign = foreign_certificates();
    let mut problems = Vec::new();

    for image in &opened.images {
        check_blobs(&opened.root, image, &mut problems).map_err(|source| Error::Layout {
            path: path.to_owned(),
            source,
        })?;
        check_config(image, &mut problems);
        check_layers(image, &foreign, &mut problems).map_err(|source| Error::Layout {
            path: path.to_owned(),
            source,
        })?;
    }
    check_with_skopeo(path, &opened, &mut problems);

    if problems.is_empty() {
        tracing::debug!(image = %path.display(), "valid");
        return Ok(());
    }
    Err(Error::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Manifest, config and layer blobs against their descriptors.
fn check_blobs(
    root: &Path,
    image: &Image,
    problems: &mut Vec<Problem>,
) -> Result<(), layout::Error> {
    let mut check = |blob: String, path: &Path, digest: &str, size: Option<u64>| {
        let (found, length) = layout::file_digest(path)?;
        if found != digest {
            problems.push(Problem::Digest {
                blob: blob.clone(),
                expected: digest.to_owned(),
                found,
            });
        }
        if let Some(expected) = size.filter(|expected| *expected != length) {
            problems.push(Problem::Size {
                blob,
                expected,
                found: length,
            });
        }
        Ok::<_, layout::Error>(())
    };

    if let Some(descriptor) = &image.manifest_descriptor {
        let path = layout::blob_path(root, &descriptor.digest)?;
        check(
            "manifest".to_owned(),
            &path,
            &descriptor.digest,
            Some(descriptor.size),
        )?;
    }
    check(
        "config".to_owned(),
        &image.config_path,
        &image.config_digest,
        image.config_size,
    )?;
    for (index, layer) in image.layers.iter().enumerate() {
        if let Some(digest) = &layer.digest {
            check(format!("layer {index}"), &layer.path, digest, layer.size)?;
        }
    }
    Ok(())
}

/// The config's own consistency: fields, history against layers.
fn check_config(image: &Image, problems: &mut Vec<Problem>) {
    let config = &image.config;
    if config.os.is_empty() {
        problems.push(Problem::Field {
            field: "os",
            problem: "is empty".to_owned(),
        });
    }
    if config.architecture.is_empty() {
        problems.push(Problem::Field {
            field: "architecture",
            problem: "is empty".to_owned(),
        });
    }
    if config.rootfs.kind != "layers" {
        let problem = format!("is {:?}, not \"layers\"", config.rootfs.kind);
        problems.push(Problem::Field {
            field: "rootfs.type",
            problem,
        });
    }

    let entries = config
        .history
        .iter()
        .filter(|entry| !entry.empty_layer)
        .count();
    if !config.history.is_empty() && entries != image.layers.len() {
        problems.push(Problem::History {
            layers: image.layers.len(),
            entries,
        });
    }
}

/// Diff ids, and leftovers of the build machinery, in one pass per layer.
fn check_layers(
    image: &Image,
    foreign: &HashSet<Vec<u8>>,
    problems: &mut Vec<Problem>,
) -> Result<(), layout::Error> {
    let mut diff_ids = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let diff_id = layout::walk(layer, |entry| {
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            if path.starts_with("dev/") && path != "dev/" {
                problems.push(Problem::Leftover {
                    layer: index,
                    path,
                    what: "a file under /dev",
                });
                return Ok(());
            }
            let small = entry.header().entry_type().is_file() && entry.size() < 16 << 20;
            if small && !foreign.is_empty() {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                if holds_any_certificate(&bytes, foreign) {
                    let what =
                        "a certificate of the host's CA bundle that the distribution does not ship";
                    problems.push(Problem::Leftover {
                        layer: index,
                        path,
                        what,
                    });
                }
            }
            Ok(())
        })?;
        diff_ids.push(diff_id);
    }

    if diff_ids != image.config.rootfs.diff_ids {
        problems.push(Problem::DiffIds {
            config: image.config.rootfs.diff_ids.clone(),
            layers: diff_ids,
        });
    }
    Ok(())
}

/// `skopeo inspect` of every image in the file.
fn check_with_skopeo(path: &Path, opened: &layout::Opened, problems: &mut Vec<Problem>) {
    let references: Vec<String> = match opened.format {
        Format::DockerArchive => vec![format!("docker-archive:{}", path.display())],
        Format::OciLayout => {
            let named: Vec<String> = opened
                .images
                .iter()
                .flat_map(|image| &image.names)
                .map(|name| format!("oci:{}:{name}", path.display()))
                .collect();
            if named.is_empty() {
                vec![format!("oci:{}", path.display())]
            } else {
                named
            }
        }
    };
    for reference in references {
        if let Err(error) = command::output("skopeo", ["inspect", "--raw", reference.as_str()])
            .and_then(|_| command::output("skopeo", ["inspect", reference.as_str()]))
        {
            problems.push(Problem::Rejected {
                detail: format!("skopeo inspect {reference}: {error}"),
            });
        }
    }
}

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// The certificates of the host's CA bundle that the distribution does not
/// ship in `/usr/share/ca-certificates`: locally added ones, such as a
/// TLS-intercepting proxy's. Each as its base64 body without whitespace.
pub fn foreign_certificates() -> HashSet<Vec<u8>> {
    let bundle = fs_err::read(crate::images::host_ca_bundle()).unwrap_or_default();
    let mut foreign: HashSet<Vec<u8>> = certificates(&bundle).collect();

    let mut shipped = Vec::new();
    collect_files(Path::new("/usr/share/ca-certificates"), &mut shipped);
    for file in shipped {
        for certificate in certificates(&fs_err::read(&file).unwrap_or_default()) {
            foreign.remove(&certificate);
        }
    }
    foreign
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)
        } else {
            out.push(path)
        }
    }
}

/// The base64 bodies of the PEM certificates in `bytes`.
fn certificates(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let start = memmem::find(rest, PEM_BEGIN)? + PEM_BEGIN.len();
        let length = memmem::find(&rest[start..], PEM_END)?;
        let body: Vec<u8> = rest[start..start + length]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        rest = &rest[start + length + PEM_END.len()..];
        Some(body)
    })
}

fn holds_any_certificate(bytes: &[u8], wanted: &HashSet<Vec<u8>>) -> bool {
    memmem::find(bytes, PEM_BEGIN).is_some()
        && certificates(bytes).any(|body| wanted.contains(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_read_from_pem_text_whatever_the_line_breaks() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\r\nR0hJ\r\n-----END CERTIFICATE-----";
        let bodies: Vec<Vec<u8>> = certificates(pem).collect();
        assert_eq!(bodies, [b"QUJDREVG".to_vec(), b"R0hJ".to_vec()]);

        let wanted: HashSet<Vec<u8>> = [b"R0hJ".to_vec()].into();
        assert!(holds_any_certificate(pem, &wanted));
        assert!(!holds_any_certificate(
            b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----",
            &wanted
        ));
    }
}
