//! Where an image comes from (`-i`) and where the patched one goes (`-o`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::Error;

/// An image source, as given on the command line.
///
/// Forms: `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`, or a
/// bare path whose kind is sniffed when the image is opened (a directory with an `oci-layout`
/// file, or a tarball holding `manifest.json` or `oci-layout`). Registry and Docker-daemon
/// references parse into variants that [`super::open`] refuses as not supported yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An OCI image layout directory, with the tag to pick from its `index.json`.
    OciLayout { path: PathBuf, tag: Option<String> },
    /// A tarball of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// A `docker save` tarball, with the `NAME:TAG` to pick when it holds several images.
    DockerArchive { path: PathBuf, name: Option<String> },
    /// A path whose format is decided by looking at it.
    Path(PathBuf),
    /// `docker://NAME` or a bare `NAME[:TAG]`: a registry reference (a later issue).
    Registry(String),
    /// `docker-daemon:NAME`: an image in a Docker daemon (a later issue).
    Daemon(String),
}

/// Where a patched image is written, as given to `-o`.
///
/// Forms: `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`. A tag
/// given here wins over `-t`. There is no sniffing: a bare path is refused because it does not
/// say which format to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An OCI image layout directory; created, or added to when it already is one.
    OciLayout { path: PathBuf, tag: Option<String> },
    /// A tarball of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// A tarball that `docker load` reads (and that is also an OCI layout).
    DockerArchive { path: PathBuf, name: Option<String> },
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = split_tag(rest).map_err(invalid)?;
            return Ok(Reference::OciLayout { path, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = split_tag(rest).map_err(invalid)?;
            return Ok(Reference::OciArchive { path, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, name) = split_name(rest).map_err(invalid)?;
            return Ok(Reference::DockerArchive { path, name });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Reference::Registry(rest.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            return Ok(Reference::Daemon(rest.to_owned()));
        }

        // A bare string is a path when something is there or it looks like one; otherwise it
        // reads as a registry name such as `debian:12`.
        let path = Path::new(s);
        if path.exists() || s.starts_with(['/', '.']) || !looks_like_image_name(s) {
            return Ok(Reference::Path(path.to_owned()));
        }
        Ok(Reference::Registry(s.to_owned()))
    }
}

impl FromStr for Destination {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = split_tag(rest).map_err(invalid)?;
            return Ok(Destination::OciLayout { path, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = split_tag(rest).map_err(invalid)?;
            return Ok(Destination::OciArchive { path, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, name) = split_name(rest).map_err(invalid)?;
            return Ok(Destination::DockerArchive { path, name });
        }
        if s.starts_with("docker://") || s.starts_with("docker-daemon:") {
            return Err(Error::Unsupported {
                what: format!("writing to {s}"),
                hint: "registry push and Docker daemon output come in a later version; \
                       write to oci:DIR or docker-archive:PATH and load that",
            });
        }
        Err(invalid(
            "an output needs its format: oci:DIR, oci-archive:PATH or docker-archive:PATH",
        ))
    }
}

impl Destination {
    /// The file or directory the output is written to.
    pub fn path(&self) -> &Path {
        match self {
            Destination::OciLayout { path, .. }
            | Destination::OciArchive { path, .. }
            | Destination::DockerArchive { path, .. } => path,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::OciLayout { path, tag } => write_with("oci", path, tag.as_deref(), f),
            Reference::OciArchive { path, tag } => {
                write_with("oci-archive", path, tag.as_deref(), f)
            }
            Reference::DockerArchive { path, name } => {
                write_with("docker-archive", path, name.as_deref(), f)
            }
            Reference::Path(path) => write!(f, "{}", path.display()),
            Reference::Registry(name) => write!(f, "docker://{name}"),
            Reference::Daemon(name) => write!(f, "docker-daemon:{name}"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::OciLayout { path, tag } => write_with("oci", path, tag.as_deref(), f),
            Destination::OciArchive { path, tag } => {
                write_with("oci-archive", path, tag.as_deref(), f)
            }
            Destination::DockerArchive { path, name } => {
                write_with("docker-archive", path, name.as_deref(), f)
            }
        }
    }
}

fn write_with(
    transport: &str,
    path: &Path,
    suffix: Option<&str>,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    write!(f, "{transport}:{}", path.display())?;
    match suffix {
        Some(suffix) => write!(f, ":{suffix}"),
        None => Ok(()),
    }
}

/// Splits `PATH[:TAG]` at the last colon, when what follows can be a tag.
fn split_tag(rest: &str) -> Result<(PathBuf, Option<String>), &'static str> {
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if is_valid_tag(tag) => (path, Some(tag.to_owned())),
        Some((_, "")) => return Err("the tag after ':' is empty"),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err("the path is empty");
    }
    Ok((PathBuf::from(path), tag))
}

/// Splits `PATH[:NAME:TAG]` at the first colon; the rest must be a `NAME:TAG`.
fn split_name(rest: &str) -> Result<(PathBuf, Option<String>), &'static str> {
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => {
            let parsed =
                Name::parse(name).map_err(|_| "the image name after the path is invalid")?;
            if parsed.repository.is_none() {
                return Err("the image after the path must be NAME:TAG");
            }
            (path, Some(name.to_owned()))
        }
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("the path is empty");
    }
    Ok((PathBuf::from(path), name))
}

/// Whether `s` can be a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (the distribution spec's rule).
pub(crate) fn is_valid_tag(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 128
        && (first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn looks_like_image_name(s: &str) -> bool {
    Name::parse(s).is_ok_and(|name| name.repository.is_some())
}

/// An image name as written in `-t` or in a docker-archive: `[REPOSITORY:]TAG`.
///
/// `-t 1.2-fixed` keeps the input's repository; `-t registry:5000/app:1.2` names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The repository (`docker.io/library/debian`, `app`), when known.
    pub repository: Option<String>,
    /// The tag.
    pub tag: String,
}

impl Name {
    /// Parses `REPOSITORY:TAG` or a lone `TAG`; a lone name with `/` and no tag is refused.
    pub fn parse(s: &str) -> Result<Name, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.contains('@') {
            return Err(invalid("digests cannot name an output; give a tag"));
        }
        // The tag follows the last colon only when no '/' comes after it (`host:5000/app`).
        match s.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => {
                if !is_valid_tag(tag) {
                    return Err(invalid("the tag is not a valid tag"));
                }
                if repository.is_empty() || !is_valid_repository(repository) {
                    return Err(invalid("the repository name is not valid"));
                }
                Ok(Name {
                    repository: Some(repository.to_owned()),
                    tag: tag.to_owned(),
                })
            }
            Some(_) => Err(invalid("the name has no tag")),
            None if is_valid_tag(s) => Ok(Name {
                repository: None,
                tag: s.to_owned(),
            }),
            None => Err(invalid("the name has no tag")),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repository {
            Some(repository) => write!(f, "{repository}:{}", self.tag),
            None => write!(f, "{}", self.tag),
        }
    }
}

fn is_valid_repository(s: &str) -> bool {
    s.split('/').all(|part| {
        !part.is_empty()
            && part.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | ':')
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_reference_splits_the_tag_at_the_last_colon() {
        let r: Reference = "oci:/tmp/my:dir:1.2".parse().unwrap();
        assert_eq!(
            r,
            Reference::OciLayout {
                path: "/tmp/my:dir".into(),
                tag: Some("1.2".into())
            }
        );
        let r: Reference = "oci:/tmp/dir".parse().unwrap();
        assert_eq!(
            r,
            Reference::OciLayout {
                path: "/tmp/dir".into(),
                tag: None
            }
        );
    }

    #[test]
    fn oci_reference_keeps_a_colon_followed_by_a_path_in_the_path() {
        let r: Reference = "oci:./a:b/c".parse().unwrap();
        assert_eq!(
            r,
            Reference::OciLayout {
                path: "./a:b/c".into(),
                tag: None
            }
        );
    }

    #[test]
    fn docker_archive_reference_takes_a_name_and_tag() {
        let r: Reference = "docker-archive:x.tar:app:1".parse().unwrap();
        assert_eq!(
            r,
            Reference::DockerArchive {
                path: "x.tar".into(),
                name: Some("app:1".into())
            }
        );
        assert!("docker-archive:x.tar:1".parse::<Reference>().is_err());
    }

    #[test]
    fn registry_and_daemon_forms_are_recognised() {
        assert_eq!(
            "debian:12".parse::<Reference>().unwrap(),
            Reference::Registry("debian:12".into())
        );
        assert_eq!(
            "docker://debian:12".parse::<Reference>().unwrap(),
            Reference::Registry("debian:12".into())
        );
        assert_eq!(
            "docker-daemon:app:1".parse::<Reference>().unwrap(),
            Reference::Daemon("app:1".into())
        );
    }

    #[test]
    fn bare_paths_are_paths() {
        assert_eq!(
            "./img.tar".parse::<Reference>().unwrap(),
            Reference::Path("./img.tar".into())
        );
        assert_eq!(
            "/no/such".parse::<Reference>().unwrap(),
            Reference::Path("/no/such".into())
        );
        assert_eq!(
            "IMG.tar".parse::<Reference>().unwrap(),
            Reference::Path("IMG.tar".into())
        );
    }

    #[test]
    fn destination_needs_a_format() {
        let err = "out.tar".parse::<Destination>().unwrap_err().to_string();
        assert!(err.contains("out.tar") && err.contains("oci:DIR"), "{err}");
        assert!(matches!(
            "docker://reg/app:1".parse::<Destination>(),
            Err(Error::Unsupported { .. })
        ));
        assert_eq!(
            "oci-archive:o.tar:v2".parse::<Destination>().unwrap(),
            Destination::OciArchive {
                path: "o.tar".into(),
                tag: Some("v2".into())
            }
        );
    }

    #[test]
    fn name_parses_repository_with_a_port() {
        let name = Name::parse("localhost:5000/app:1.2").unwrap();
        assert_eq!(name.repository.as_deref(), Some("localhost:5000/app"));
        assert_eq!(name.tag, "1.2");
        assert!(Name::parse("localhost:5000/app").is_err());
        assert_eq!(Name::parse("1.2-fixed").unwrap().repository, None);
        assert!(Name::parse("app@sha256:00").is_err());
        assert!(Name::parse("-bad").is_err());
    }
}
