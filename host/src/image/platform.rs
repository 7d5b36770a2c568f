//! The `os/arch[/variant]` an image is built for, and picking one from an index.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// A platform as in `--platform linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, ... (Go's GOOS names).
    pub os: String,
    /// `amd64`, `arm64`, `arm`, ... (Go's GOARCH names).
    pub architecture: String,
    /// `v7`, `v8`, ... when the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine salve runs on, as container images name it.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "loongarch64" => "loong64",
            other => other,
        };
        let variant = (std::env::consts::ARCH == "arm").then(|| "v7".to_owned());
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// Whether an image built for `other` runs here: same OS and architecture, and the same
    /// variant when this platform names one (`arm64` with no variant means `v8`).
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match (self.normalized_variant(), other.normalized_variant()) {
            (Some(wanted), Some(found)) => wanted == found,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, variant) => variant,
        }
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(Error::InvalidPlatform {
                platform: s.to_owned(),
            });
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

impl From<&oci_spec::image::Platform> for Platform {
    fn from(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_two_and_three_parts() {
        assert_eq!(p("linux/amd64").variant, None);
        assert_eq!(p("linux/arm/v7").variant.as_deref(), Some("v7"));
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_request_without_variant_matches_any_variant() {
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
    }

    #[test]
    fn host_is_a_linux_platform_with_go_names() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert_ne!(host.architecture, "x86_64");
        assert_ne!(host.architecture, "aarch64");
    }
}
