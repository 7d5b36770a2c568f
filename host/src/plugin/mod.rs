//! Loading ecosystem plugins and calling them in a sandbox.
//!
//! A plugin is a WebAssembly component implementing `salve:plugin` (see
//! `wit/plugin.wit`). The types here are the host's own view of the data
//! the contract carries; the generated bindings stay inside this module.

/// Which side of an image a plugin patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// OS packages (apt, apk, rpm): the target version is a minimum.
    Os,
    /// Application libraries (pip, npm, NuGet): the target is exact.
    Library,
}

/// How far apart two versions are, by the leading part that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    /// The same version.
    None,
    /// Same major and minor.
    Patch,
    /// Same major, different minor.
    Minor,
    /// Different major.
    Major,
}

/// What a plugin knows about one version string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The canonical spelling.
    pub normalized: String,
    /// True for pre-releases.
    pub prerelease: bool,
}

/// One version an ecosystem's index offers for a package at a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The version as the index spells it.
    pub version: String,
    /// `None` when installable there; otherwise why not.
    pub unusable: Option<String>,
}
