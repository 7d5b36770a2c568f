//! PEP 440 versions: ordering, canonical spelling and how far apart two are.
//!
//! Parsing and ordering come from `pep440_rs`, which implements the whole
//! specification (epochs, pre-, post- and dev-releases, local versions, and
//! `1.0` equal to `1.0.0`). This module adds what salve's policy needs on
//! top: the pre-release flag and the major/minor/patch distance.

use std::cmp::Ordering;

use pep440_rs::Version;
use salve_plugin_sdk::{Bump, VersionInfo};

/// Parses a PEP 440 version; the error says why the text is not one.
///
/// # Errors
///
/// The text is not a valid PEP 440 version.
pub fn parse(text: &str) -> Result<Version, String> {
    text.trim()
        .parse::<Version>()
        .map_err(|e| format!("{text:?} is not a PEP 440 version: {e}"))
}

/// The canonical spelling and pre-release flag of a version. Pre-releases
/// are alpha, beta and release-candidate versions and development releases
/// (`1.0rc1`, `1.0.dev3`, `1.0.post1.dev1`).
///
/// # Errors
///
/// The text is not a valid PEP 440 version.
pub fn info(text: &str) -> Result<VersionInfo, String> {
    let version = parse(text)?;
    Ok(VersionInfo {
        normalized: version.to_string(),
        prerelease: version.any_prerelease(),
    })
}

/// Orders two versions by PEP 440.
///
/// # Errors
///
/// Either text is not a valid PEP 440 version.
pub fn compare(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

/// How far apart two versions are, by their release segments: a different
/// epoch or first segment is a major move, a different second segment a
/// minor one, anything else (a third or fourth segment, a post-, pre- or
/// dev-release, a local label) a patch. Missing segments count as zero, so
/// `4.0` and `4.0.0.1` are a patch apart.
///
/// # Errors
///
/// Either text is not a valid PEP 440 version.
pub fn classify(a: &str, b: &str) -> Result<Bump, String> {
    let (a, b) = (parse(a)?, parse(b)?);
    if a == b {
        return Ok(Bump::None);
    }
    let segment = |v: &Version, i: usize| v.release().get(i).copied().unwrap_or(0);
    Ok(
        if a.epoch() != b.epoch() || segment(&a, 0) != segment(&b, 0) {
            Bump::Major
        } else if segment(&a, 1) != segment(&b, 1) {
            Bump::Minor
        } else {
            Bump::Patch
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap()
    }

    #[test]
    fn trailing_zeros_do_not_change_a_version() {
        assert_eq!(order("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(order("1", "1.0.0.0"), Ordering::Equal);
        assert_eq!(classify("1.0", "1.0.0"), Ok(Bump::None));
    }

    #[test]
    fn pre_post_dev_and_local_releases_order_as_pep_440_says() {
        let ascending = [
            "1.0.dev1",
            "1.0a1.dev1",
            "1.0a1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local.1",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.0.1",
            "1.1",
            "1!0.1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(
                order(pair[0], pair[1]),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        // Numeric, not lexical.
        assert_eq!(order("1.10", "1.9"), Ordering::Greater);
        assert_eq!(order("1.10rc1", "1.9"), Ordering::Greater);
    }

    #[test]
    fn spellings_are_normalised() {
        assert_eq!(info("1.0-post1").unwrap().normalized, "1.0.post1");
        assert_eq!(info("1.0RC1").unwrap().normalized, "1.0rc1");
        assert_eq!(info("v2.0").unwrap().normalized, "2.0");
        assert_eq!(info("1.0.0-alpha.2").unwrap().normalized, "1.0.0a2");
        assert_eq!(info("1.0+Ubuntu-1").unwrap().normalized, "1.0+ubuntu.1");
    }

    #[test]
    fn pre_and_dev_releases_are_prereleases_and_post_releases_are_not() {
        for pre in ["1.0.1rc1", "1.0a1", "2.0b3", "1.0.dev0", "1.0.post1.dev2"] {
            assert!(info(pre).unwrap().prerelease, "{pre}");
        }
        for stable in ["1.0", "2.0.0.post1", "1.0+local", "1!2.0"] {
            assert!(!info(stable).unwrap().prerelease, "{stable}");
        }
    }

    #[test]
    fn invalid_versions_are_refused_with_the_text() {
        let err = info("1.0; rm -rf /").unwrap_err();
        assert!(err.contains("\"1.0; rm -rf /\""), "{err}");
        assert!(compare("1.0", "not-a-version").is_err());
        assert!(classify("", "1.0").is_err());
    }

    #[test]
    fn classify_compares_release_segments() {
        assert_eq!(classify("1.26.16", "1.26.19"), Ok(Bump::Patch));
        assert_eq!(classify("1.26.16", "1.27.1"), Ok(Bump::Minor));
        assert_eq!(classify("1.26.16", "2.0.6"), Ok(Bump::Major));
        assert_eq!(classify("4.0.0", "4.0.0.1"), Ok(Bump::Patch));
        assert_eq!(classify("4.0", "4.0.0.1"), Ok(Bump::Patch));
        assert_eq!(classify("2.0.0", "2.0.0.post1"), Ok(Bump::Patch));
        assert_eq!(classify("1.0.0", "1.0.1rc1"), Ok(Bump::Patch));
        assert_eq!(classify("1.0", "1.0+local"), Ok(Bump::Patch));
        assert_eq!(classify("1.0", "1!1.0"), Ok(Bump::Major));
        // Order-insensitive.
        assert_eq!(classify("2.0.6", "1.26.16"), Ok(Bump::Major));
    }

    /// The rows of the host's policy table that depend on pip's versions.
    #[test]
    fn policy_table_rows_for_pip() {
        // Installed 2.0.0, fix 2.0.0.post1, patch level: a newer, stable,
        // patch-level version, so the policy takes it.
        assert_eq!(order("2.0.0.post1", "2.0.0"), Ordering::Greater);
        assert_eq!(classify("2.0.0", "2.0.0.post1"), Ok(Bump::Patch));
        assert!(!info("2.0.0.post1").unwrap().prerelease);

        // Installed 1.0.0, fix 1.0.1rc1: newer, but a pre-release.
        assert_eq!(order("1.0.1rc1", "1.0.0"), Ordering::Greater);
        assert!(info("1.0.1rc1").unwrap().prerelease);

        // Installed 10.0a1, fix 9.0: the installed version is already past.
        assert_eq!(order("10.0a1", "9.0"), Ordering::Greater);
    }
}
