//! Rewriting a direct dependency's spec for its new version, in the style
//! the user wrote it.
//!
//! The user's operator is kept and its version raised to the target
//! (`^4.17.1` becomes `^4.19.2`, `~1.2.0` becomes `~1.2.6`, an exact pin
//! stays exact); a partial version keeps its precision (`4.17.x` becomes
//! `4.19.x`). A spec in any other shape (a compound range, `*`, a tag) is
//! left alone when it already admits the target, and otherwise becomes the
//! exact target. The result always admits the target, so the lockfile that
//! pins the target satisfies it; raising the floor keeps a later fresh
//! install from picking the vulnerable version again.

use nodejs_semver::Version;

use crate::version;

/// Operators a single-version spec may start with, longest first.
const OPERATORS: [&str; 6] = [">=", "<=", "^", "~", "=", ">"];

/// True when a dependency spec names registry versions (a range, a version
/// or a tag), not a git repository, a URL, a path or an alias.
pub fn from_registry(spec: &str) -> bool {
    let spec = spec.trim();
    if version::parse_range(spec).is_ok() {
        return true;
    }
    // A dist-tag is a bare word; anything with a scheme, a path or a
    // `user/repo` shorthand comes from elsewhere.
    !spec.is_empty()
        && spec
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The spec to write for `target` in place of `spec`.
pub fn restyle(spec: &str, target: &Version) -> String {
    let trimmed = spec.trim();
    let exact = target.to_string();
    let candidate = single(trimmed, &exact)
        .or_else(|| partial(trimmed, target))
        .or_else(|| admits(trimmed, target).then(|| trimmed.to_string()));
    match candidate {
        Some(s) if admits(&s, target) => s,
        _ => exact,
    }
}

/// `^1.2.3`, `~1.2.3`, `>=1.2.3`, `=1.2.3`, `v1.2.3`, `1.2.3`: the same
/// operator (and `v`) before the target.
fn single(spec: &str, exact: &str) -> Option<String> {
    let operator = OPERATORS
        .iter()
        .find(|op| spec.starts_with(*op))
        .copied()
        .unwrap_or("");
    let rest = spec[operator.len()..].trim_start();
    let (v, bare) = match rest.strip_prefix('v') {
        Some(bare) => ("v", bare),
        None => ("", rest),
    };
    version::parse(bare).ok()?;
    if operator.starts_with('<') || operator == ">" {
        // An upper bound or a strict floor is not a style to keep.
        return None;
    }
    Some(format!("{operator}{v}{exact}"))
}

/// `1.2.x`, `1.x`, `1.2.*`, `1.2`, `1`: the target's leading parts with the
/// same precision and wildcard.
fn partial(spec: &str, target: &Version) -> Option<String> {
    let parts: Vec<&str> = spec.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let numbers = parts
        .iter()
        .take_while(|p| p.parse::<u64>().is_ok())
        .count();
    let wildcards = &parts[numbers..];
    let wildcard = wildcards.first().copied();
    if numbers == 0
        || !wildcards.iter().all(|w| matches!(*w, "x" | "X" | "*"))
        || (wildcard.is_none() && numbers == 3)
    {
        return None;
    }
    let leading = [target.major(), target.minor(), target.patch()];
    let mut out: Vec<String> = leading[..numbers].iter().map(u64::to_string).collect();
    out.extend(wildcards.iter().map(|w| w.to_string()));
    Some(out.join("."))
}

/// True when `spec` is a semver range that `target` satisfies.
fn admits(spec: &str, target: &Version) -> bool {
    version::parse_range(spec).is_ok_and(|range| target.satisfies(&range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restyled(spec: &str, target: &str) -> String {
        restyle(spec, &version::parse(target).unwrap())
    }

    #[test]
    fn operators_are_kept_and_raised() {
        assert_eq!(restyled("^4.17.1", "4.19.2"), "^4.19.2");
        assert_eq!(restyled("~0.19.0", "0.19.3"), "~0.19.3");
        assert_eq!(restyled("4.17.1", "4.17.3"), "4.17.3");
        assert_eq!(restyled(">=4.17.1", "4.17.21"), ">=4.17.21");
        assert_eq!(restyled("=1.0.0", "1.0.2"), "=1.0.2");
        assert_eq!(restyled("v1.0.0", "1.0.2"), "v1.0.2");
        assert_eq!(restyled(" ^1.2.0 ", "1.3.0"), "^1.3.0");
    }

    #[test]
    fn partial_versions_keep_their_precision() {
        assert_eq!(restyled("4.17.x", "4.19.2"), "4.19.x");
        assert_eq!(restyled("4.x", "4.19.2"), "4.x");
        assert_eq!(restyled("4.x", "5.0.1"), "5.x");
        assert_eq!(restyled("1.2", "1.3.4"), "1.3");
        assert_eq!(restyled("0.0.*", "0.2.4"), "0.2.*");
    }

    #[test]
    fn other_shapes_stay_when_they_admit_the_target() {
        assert_eq!(restyled(">=1.2.0 <2.0.0", "1.9.0"), ">=1.2.0 <2.0.0");
        assert_eq!(restyled("*", "1.9.0"), "*");
        assert_eq!(restyled("^1.0.0 || ^2.0.0", "2.1.0"), "^1.0.0 || ^2.0.0");
    }

    #[test]
    fn other_shapes_become_exact_when_they_exclude_the_target() {
        assert_eq!(restyled(">=1.2.0 <2.0.0", "2.0.1"), "2.0.1");
        assert_eq!(restyled("<1.0.0", "1.0.1"), "1.0.1");
        assert_eq!(restyled("latest", "1.0.1"), "1.0.1");
        assert_eq!(restyled("github:user/repo", "1.0.1"), "1.0.1");
    }

    #[test]
    fn registry_specs_are_told_from_other_sources() {
        for spec in ["^4.17.1", "4.x", "*", "", "latest", "next", ">=1 <2"] {
            assert!(from_registry(spec), "{spec:?}");
        }
        for spec in [
            "github:user/repo",
            "user/repo#v1.0.0",
            "git+ssh://git@github.com/u/r.git",
            "file:../lib",
            "https://example.com/x.tgz",
            "npm:qs@6.5.2",
            "link:../x",
        ] {
            assert!(!from_registry(spec), "{spec:?}");
        }
    }

    #[test]
    fn pre_release_targets_are_written_whole() {
        assert_eq!(restyled("^5.0.0-beta.1", "5.0.0-beta.3"), "^5.0.0-beta.3");
    }
}
