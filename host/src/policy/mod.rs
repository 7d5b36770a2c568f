//! Choosing the version each vulnerable package moves to.
//!
//! The policy looks at one package copy at a time: its installed version,
//! the fixed versions of each of its vulnerabilities, and, when the plugin
//! could ask the ecosystem's index, the releases on offer. It never orders
//! versions itself: every comparison goes through [`Versions`], which the
//! plugin of the package's ecosystem implements (PEP 440 for pip, node
//! semver for npm, dpkg for apt...).
//!
//! The rules, for libraries:
//!
//! - a target is never lower than the installed version;
//! - a vulnerability is closed by a version at or past its newest fix, or
//!   at or past the fix listed for that version's own release line (a
//!   scanner's comma list names one fix per line);
//! - the patch level bounds the move (`patch`: same major and minor;
//!   `minor`: same major; `major`: anything);
//! - pre-releases are not targets unless the installed version is one or
//!   the user allows them;
//! - among the allowed versions, the one that closes the most
//!   vulnerabilities wins; on a tie, the smallest move, then the lowest
//!   version; a move must close something and may not re-open what the
//!   installed version already fixes;
//! - with the index's releases known, only usable releases are targets;
//! - "always latest" packages (certifi) move to the newest allowed release,
//!   or the highest fix when the index cannot be asked.
//!
//! OS packages move to at least the highest fixed version, whatever the
//! level: the distribution's repositories decide the exact version, and
//! verification checks the result reaches the target.
//!
//! Every [`Decision`] accounts for each vulnerability: closed, already
//! fixed, or left open with a reason a person can act on.
//!
//! ```
//! use salve::policy::{self, Level, Options, Query, Vulnerability};
//! # use salve::plugin::{Bump, PackageKind, VersionInfo};
//! # use std::cmp::Ordering;
//! # struct Numbers;
//! # impl policy::Versions for Numbers {
//! #     fn parse(&self, v: &str) -> Result<VersionInfo, String> {
//! #         Ok(VersionInfo { normalized: v.to_owned(), prerelease: false })
//! #     }
//! #     fn compare(&self, a: &str, b: &str) -> Result<Ordering, String> {
//! #         let p = |v: &str| v.split('.').map(|n| n.parse::<u64>().unwrap()).collect::<Vec<_>>();
//! #         Ok(p(a).cmp(&p(b)))
//! #     }
//! #     fn classify(&self, a: &str, b: &str) -> Result<Bump, String> {
//! #         let p = |v: &str| v.split('.').map(str::to_owned).collect::<Vec<_>>();
//! #         let (a, b) = (p(a), p(b));
//! #         Ok(if a == b { Bump::None } else if a[0] != b[0] { Bump::Major }
//! #            else if a[1] != b[1] { Bump::Minor } else { Bump::Patch })
//! #     }
//! # }
//! let fixed = ["1.26.18".to_owned(), "2.0.7".to_owned()];
//! let vulnerabilities = [Vulnerability::fixed_in("CVE-2023-45803", &fixed)];
//! let decision = policy::select(&Query {
//!     versions: &Numbers,
//!     installed: "1.26.16",
//!     vulnerabilities: &vulnerabilities,
//!     releases: None,
//!     kind: PackageKind::Library,
//!     always_latest: false,
//!     options: Options { level: Level::Patch, allow_prereleases: false },
//! });
//! assert_eq!(decision.to_string(), "update 1.26.16 -> 1.26.18 (patch), closes 1");
//! ```

mod decision;
mod select;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

pub use decision::{Decision, Hint, Open, OpenReason, Skip, SkipReason, Update};
pub use select::select;

use crate::plugin::{Bump, PackageKind, Release, VersionInfo};
use crate::report::{Finding, FixState};

/// An ecosystem's version rules, as the policy needs them. The plugin host
/// implements it for a loaded plugin.
pub trait Versions {
    /// Parses a version; the error says why it is not one.
    ///
    /// # Errors
    ///
    /// The string is not a version of this ecosystem.
    fn parse(&self, version: &str) -> Result<VersionInfo, String>;

    /// Orders two versions.
    ///
    /// # Errors
    ///
    /// Either is not a version of this ecosystem.
    fn compare(&self, a: &str, b: &str) -> Result<Ordering, String>;

    /// Says how far apart two versions are.
    ///
    /// # Errors
    ///
    /// Either is not a version of this ecosystem.
    fn classify(&self, a: &str, b: &str) -> Result<Bump, String>;
}

/// How far a library may move: `--library-patch-level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Same major and minor.
    #[default]
    Patch,
    /// Same major.
    Minor,
    /// Any newer version.
    Major,
}

impl Level {
    /// Whether a move of this size is allowed.
    pub fn allows(self, bump: Bump) -> bool {
        match bump {
            Bump::None => false,
            Bump::Patch => true,
            Bump::Minor => self >= Level::Minor,
            Bump::Major => self == Level::Major,
        }
    }

    /// The smallest level that allows a move of this size.
    pub fn for_bump(bump: Bump) -> Self {
        match bump {
            Bump::None | Bump::Patch => Level::Patch,
            Bump::Minor => Level::Minor,
            Bump::Major => Level::Major,
        }
    }

    /// The next wider level, if any.
    fn wider(self) -> Option<Self> {
        match self {
            Level::Patch => Some(Level::Minor),
            Level::Minor => Some(Level::Major),
            Level::Major => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Patch => "patch",
            Level::Minor => "minor",
            Level::Major => "major",
        })
    }
}

impl FromStr for Level {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "patch" => Ok(Level::Patch),
            "minor" => Ok(Level::Minor),
            "major" => Ok(Level::Major),
            other => Err(Error::UnknownLevel {
                value: other.to_owned(),
            }),
        }
    }
}

/// Which kinds of package to patch: `--pkg-types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PackageTypes {
    /// OS packages.
    pub os: bool,
    /// Application libraries.
    pub library: bool,
}

impl Default for PackageTypes {
    fn default() -> Self {
        PackageTypes {
            os: true,
            library: false,
        }
    }
}

impl PackageTypes {
    /// Whether packages of this kind are patched.
    pub fn includes(self, kind: PackageKind) -> bool {
        match kind {
            PackageKind::Os => self.os,
            PackageKind::Library => self.library,
        }
    }

    /// The patch level for libraries: the one requested, or `patch`.
    ///
    /// # Errors
    ///
    /// A level was requested but libraries are not patched.
    pub fn library_level(self, requested: Option<Level>) -> Result<Level, Error> {
        match requested {
            Some(level) if !self.library => Err(Error::LevelWithoutLibrary { level }),
            requested => Ok(requested.unwrap_or_default()),
        }
    }
}

impl fmt::Display for PackageTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.os, self.library) {
            (true, true) => "os,library",
            (false, true) => "library",
            _ => "os",
        })
    }
}

impl FromStr for PackageTypes {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut types = PackageTypes {
            os: false,
            library: false,
        };
        for piece in s.split(',') {
            match piece {
                "os" => types.os = true,
                "library" => types.library = true,
                other => {
                    return Err(Error::UnknownPackageType {
                        value: other.to_owned(),
                        list: s.to_owned(),
                    });
                }
            }
        }
        Ok(types)
    }
}

/// A `--pkg-types` or `--library-patch-level` value, or a combination of
/// them, that salve refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A piece of `--pkg-types` that is not a package type.
    #[error("unknown package type `{value}` in `{list}`; expected os, library or os,library")]
    UnknownPackageType {
        /// The piece.
        value: String,
        /// The whole value.
        list: String,
    },
    /// A `--library-patch-level` that is not a level.
    #[error("unknown patch level `{value}`; expected patch, minor or major")]
    UnknownLevel {
        /// The value.
        value: String,
    },
    /// `--library-patch-level` without libraries among the package types.
    #[error(
        "--library-patch-level {level} applies to libraries, which --pkg-types leaves out; \
         add them with --pkg-types os,library or --pkg-types library"
    )]
    LevelWithoutLibrary {
        /// The level requested.
        level: Level,
    },
}

/// The user's choices that bound a move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// How far a library may move.
    pub level: Level,
    /// Whether pre-releases may be targets.
    pub allow_prereleases: bool,
}

/// One vulnerability of a package copy, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vulnerability<'a> {
    /// Its id.
    pub id: &'a str,
    /// The versions that fix it, one per release line; empty for no fix.
    pub fixed: &'a [String],
    /// What the data source says about a fix.
    pub state: FixState,
}

impl<'a> Vulnerability<'a> {
    /// A vulnerability with these fixes.
    pub fn fixed_in(id: &'a str, fixed: &'a [String]) -> Self {
        let state = if fixed.is_empty() {
            FixState::Unknown
        } else {
            FixState::Fixed
        };
        Vulnerability { id, fixed, state }
    }
}

impl<'a> From<&'a Finding> for Vulnerability<'a> {
    fn from(finding: &'a Finding) -> Self {
        Vulnerability {
            id: &finding.vulnerability,
            fixed: &finding.fixed,
            state: finding.fix_state,
        }
    }
}

/// Everything the policy needs to decide one package copy.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// The ecosystem's version rules.
    pub versions: &'a dyn Versions,
    /// The installed version.
    pub installed: &'a str,
    /// Its vulnerabilities; the same id may appear more than once.
    pub vulnerabilities: &'a [Vulnerability<'a>],
    /// What the ecosystem's index offers at this copy's location, when the
    /// plugin could ask it.
    pub releases: Option<&'a [Release]>,
    /// OS package or library.
    pub kind: PackageKind,
    /// Whether the package always moves to its newest release (certifi).
    pub always_latest: bool,
    /// The user's bounds.
    pub options: Options,
}

impl fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("installed", &self.installed)
            .field("vulnerabilities", &self.vulnerabilities)
            .field("releases", &self.releases)
            .field("kind", &self.kind)
            .field("always_latest", &self.always_latest)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
