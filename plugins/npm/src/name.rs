//! npm package names: what may reach a command line or a registry URL.
//!
//! npm's rules (the `validate-npm-package-name` package): at most 214
//! characters, URL-safe, not starting with `.` or `_`, optionally scoped as
//! `@scope/name`. Names published before the rules tightened may hold
//! capitals (`JSONStream`), so capitals are accepted; the characters npm
//! later banned (`~'!()*`) are refused here because no name that needs them
//! is worth the risk of passing them to a program. A name never starts with
//! `-`, so it cannot be read as an option.

/// The longest name npm accepts.
const MAX_LEN: usize = 214;

/// Checks a package name; the error says what is wrong with it.
///
/// # Errors
///
/// The name breaks npm's naming rules.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty package name".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "package name {name:?} is longer than {MAX_LEN} characters"
        ));
    }
    let parts: Vec<&str> = match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, base)) => vec![scope, base],
            None => return Err(format!("scoped package name {name:?} has no '/'")),
        },
        None => vec![name],
    };
    for part in parts {
        validate_part(name, part)?;
    }
    if matches!(name, "node_modules" | "favicon.ico") {
        return Err(format!("{name:?} is a name npm reserves"));
    }
    Ok(())
}

/// One side of a scoped name, or an unscoped name.
fn validate_part(name: &str, part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("package name {name:?} has an empty part"));
    }
    if part.starts_with(['.', '_', '-']) {
        return Err(format!(
            "package name {name:?} starts a part with '.', '_' or '-'"
        ));
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("package name {name:?} holds {c:?}"));
    }
    Ok(())
}

/// The name as a registry URL path segment: a scoped name's `/` is encoded
/// (`@types%2fnode`), as npm requests it.
pub fn url_segment(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scoped_and_legacy_names_are_valid() {
        for name in [
            "express",
            "lodash.merge",
            "@babel/core",
            "@types/node",
            "JSONStream",
            "ms",
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn names_that_could_be_options_or_paths_are_refused() {
        for name in [
            "",
            "-rf",
            ".bin",
            "_private",
            "a b",
            "../evil",
            "a/b",
            "@scope",
            "@scope/",
            "@/x",
            "node_modules",
            "x;rm",
            "a~b",
        ] {
            assert!(validate(name).is_err(), "{name:?} accepted");
        }
        assert!(validate(&"a".repeat(215)).is_err());
    }

    #[test]
    fn scoped_names_encode_their_slash_in_urls() {
        assert_eq!(url_segment("@babel/core"), "@babel%2fcore");
        assert_eq!(url_segment("qs"), "qs");
    }
}
