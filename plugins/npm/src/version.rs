//! Node semver versions: ordering, canonical spelling and how far apart two
//! are.
//!
//! Parsing and ordering come from `nodejs-semver`, a port of the `semver`
//! package npm itself uses. Versions are read the way npm reads the
//! `version` of a `package.json` or a registry document: surrounding
//! whitespace and a leading `v` or `=` are tolerated (`v1.2.3` is `1.2.3`);
//! build metadata is kept in the spelling but ignored by the order, as
//! semver says.

use std::cmp::Ordering;

use nodejs_semver::{Range, Version};
use salve_plugin_sdk::{Bump, VersionInfo};

/// Parses a version; the error says why the text is not one.
///
/// # Errors
///
/// The text is not a semver version (ranges such as `^1.2.0` are not
/// versions).
pub fn parse(text: &str) -> Result<Version, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('=').unwrap_or(trimmed).trim_start();
    let invalid = || format!("{text:?} is not a semver version");
    let version = Version::parse(bare).map_err(|_| invalid())?;
    // The parser stops early on trailing text (`1.2.0abc`, `1.2.0 <2`); a
    // version is what it spells back, less a leading `v`.
    let unprefixed = bare.strip_prefix(['v', 'V']).unwrap_or(bare);
    if version.to_string() != unprefixed {
        return Err(invalid());
    }
    Ok(version)
}

/// Parses a range as npm reads a dependency spec (`^1.2.0`, `1.x || >=2.5`).
///
/// # Errors
///
/// The text is not a semver range (a tag, a URL, a path...).
pub fn parse_range(text: &str) -> Result<Range, String> {
    Range::parse(text.trim()).map_err(|_| format!("{text:?} is not a semver range"))
}

/// The canonical spelling and pre-release flag of a version.
///
/// # Errors
///
/// The text is not a semver version.
pub fn info(text: &str) -> Result<VersionInfo, String> {
    let version = parse(text)?;
    Ok(VersionInfo {
        normalized: version.to_string(),
        prerelease: version.is_prerelease(),
    })
}

/// Orders two versions by semver precedence.
///
/// # Errors
///
/// Either text is not a semver version.
pub fn compare(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

/// How far apart two versions are: a different major is a major move, a
/// different minor a minor one, anything else (patch, pre-release) a patch.
///
/// npm's own caret treats `0.x` minors as breaking, but salve's levels are
/// the user's words for "how much may change", read the same way in every
/// ecosystem, so `0.1.0` to `0.2.0` is a minor move here too.
///
/// # Errors
///
/// Either text is not a semver version.
pub fn classify(a: &str, b: &str) -> Result<Bump, String> {
    let (a, b) = (parse(a)?, parse(b)?);
    Ok(if a == b {
        Bump::None
    } else if a.major() != b.major() {
        Bump::Major
    } else if a.minor() != b.minor() {
        Bump::Minor
    } else {
        Bump::Patch
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap()
    }

    #[test]
    fn leading_v_and_equals_are_tolerated() {
        assert_eq!(info("v1.2.3").unwrap().normalized, "1.2.3");
        assert_eq!(info(" =1.2.3 ").unwrap().normalized, "1.2.3");
        assert_eq!(order("v4.17.21", "4.17.21"), Ordering::Equal);
    }

    #[test]
    fn pre_releases_sort_before_their_release() {
        assert_eq!(order("5.0.0-beta.3", "5.0.0"), Ordering::Less);
        assert_eq!(order("5.0.0-alpha.10", "5.0.0-alpha.9"), Ordering::Greater);
        assert_eq!(order("5.0.0-beta.1", "4.21.0"), Ordering::Greater);
        assert!(info("5.0.0-beta.3").unwrap().prerelease);
        assert!(!info("4.21.0").unwrap().prerelease);
    }

    #[test]
    fn build_metadata_does_not_change_the_order() {
        assert_eq!(order("1.0.0+build.5", "1.0.0"), Ordering::Equal);
    }

    #[test]
    fn numeric_parts_compare_as_numbers() {
        assert_eq!(order("4.17.9", "4.17.10"), Ordering::Less);
        assert_eq!(order("0.1.10", "0.1.7"), Ordering::Greater);
    }

    #[test]
    fn ranges_and_partial_versions_are_not_versions() {
        assert!(parse("^1.2.0").is_err());
        assert!(parse("1.2").is_err());
        assert!(parse("latest").is_err());
        assert!(parse("1.2.0 <2.0.0").is_err());
        assert!(parse("1.2.0abc").is_err());
        assert!(parse("01.2.3").is_err());
        assert_eq!(
            info("1.2.3-beta.1+build.5").unwrap().normalized,
            "1.2.3-beta.1+build.5"
        );
        let err = parse("1.x").unwrap_err();
        assert!(err.contains("\"1.x\""), "{err}");
    }

    #[test]
    fn classify_by_major_then_minor() {
        assert_eq!(classify("4.17.1", "4.17.3"), Ok(Bump::Patch));
        assert_eq!(classify("4.17.1", "4.19.2"), Ok(Bump::Minor));
        assert_eq!(classify("4.17.1", "5.0.0"), Ok(Bump::Major));
        assert_eq!(classify("0.0.8", "0.2.4"), Ok(Bump::Minor));
        assert_eq!(classify("5.0.0-beta.1", "5.0.0"), Ok(Bump::Patch));
        assert_eq!(classify("v1.2.3", "1.2.3"), Ok(Bump::None));
    }

    #[test]
    fn caret_ranges_follow_npm() {
        let caret = parse_range("^1.2.0").unwrap();
        assert!(parse("1.9.9").unwrap().satisfies(&caret));
        assert!(!parse("1.3.0-beta.1").unwrap().satisfies(&caret));
        assert!(!parse("2.0.0").unwrap().satisfies(&caret));
        let zero = parse_range("^0.0.3").unwrap();
        assert!(!parse("0.0.4").unwrap().satisfies(&zero));
        let either = parse_range("1.x || >=2.5.0").unwrap();
        assert!(parse("2.6.0").unwrap().satisfies(&either));
        assert!(!parse("2.4.0").unwrap().satisfies(&either));
    }
}
