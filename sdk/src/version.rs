//! Version ordering for plugin authors.
//!
//! A plugin can implement `parse_version`, `compare` and `classify` by hand,
//! or implement [`Version`] for its ecosystem's version type and let the
//! defaults of [`crate::Plugin`] do the rest.

use std::cmp::Ordering;

use crate::{Bump, VersionInfo};

/// A parsed version of one ecosystem.
pub trait Version: Ord + Sized {
    /// Parses a version string; the error says why it is invalid.
    ///
    /// # Errors
    ///
    /// The string is not a version of this ecosystem.
    fn parse(text: &str) -> Result<Self, String>;

    /// The canonical spelling.
    fn normalized(&self) -> String;

    /// True for pre-releases.
    fn is_prerelease(&self) -> bool;

    /// The leading numeric components that `classify` compares: the first
    /// is the major, the second the minor.
    fn release(&self) -> Vec<u64>;
}

/// [`VersionInfo`] of a version string.
///
/// # Errors
///
/// The string is not a valid `V`.
pub fn info<V: Version>(text: &str) -> Result<VersionInfo, String> {
    let v = V::parse(text)?;
    Ok(VersionInfo {
        normalized: v.normalized(),
        prerelease: v.is_prerelease(),
    })
}

/// Orders two version strings as `V`.
///
/// # Errors
///
/// Either string is not a valid `V`; the message names it.
pub fn compare<V: Version>(a: &str, b: &str) -> Result<Ordering, String> {
    let va = V::parse(a).map_err(|e| format!("{a:?}: {e}"))?;
    let vb = V::parse(b).map_err(|e| format!("{b:?}: {e}"))?;
    Ok(va.cmp(&vb))
}

/// Classifies the distance between two version strings by their first two
/// release components: major, then minor; anything else is a patch move.
///
/// # Errors
///
/// Either string is not a valid `V`.
pub fn classify<V: Version>(a: &str, b: &str) -> Result<Bump, String> {
    let va = V::parse(a).map_err(|e| format!("{a:?}: {e}"))?;
    let vb = V::parse(b).map_err(|e| format!("{b:?}: {e}"))?;
    if va == vb {
        return Ok(Bump::None);
    }
    let (ra, rb) = (va.release(), vb.release());
    let part = |r: &[u64], i: usize| r.get(i).copied().unwrap_or(0);
    Ok(if part(&ra, 0) != part(&rb, 0) {
        Bump::Major
    } else if part(&ra, 1) != part(&rb, 1) {
        Bump::Minor
    } else {
        Bump::Patch
    })
}
