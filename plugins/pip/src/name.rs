//! Python project names: PEP 503 normalisation and the PEP 508 name rule.
//!
//! Both rules are one line of text processing each; they are written out
//! here rather than pulling a regular-expression engine into the component.

/// The PEP 503 normalised form of a project name: lowercase, with every run
/// of `-`, `_` and `.` replaced by one `-`. `Werkzeug` and `werkzeug`,
/// `jaraco.context` and `jaraco-context` normalise to the same key.
pub fn normalize(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator_run {
                key.push('-');
            }
            in_separator_run = true;
        } else {
            key.extend(c.to_lowercase());
            in_separator_run = false;
        }
    }
    key
}

/// True when `name` is a valid project name under PEP 508: ASCII letters and
/// digits, with `.`, `_` and `-` allowed only between them.
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_project_normalise_to_one_key() {
        assert_eq!(normalize("Werkzeug"), "werkzeug");
        assert_eq!(normalize("werkzeug"), "werkzeug");
        assert_eq!(normalize("jaraco.context"), "jaraco-context");
        assert_eq!(normalize("jaraco-context"), "jaraco-context");
        assert_eq!(normalize("Jaraco__Context"), "jaraco-context");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("typing_extensions"), "typing-extensions");
    }

    #[test]
    fn pep_508_names_are_accepted_and_anything_else_refused() {
        for ok in [
            "requests",
            "jaraco.context",
            "typing_extensions",
            "A",
            "a-b.c_d",
            "pip3",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "-r",
            "--index-url=x",
            "requests==1",
            "a b",
            "a/b",
            ".a",
            "a.",
            "naïve",
            "x;y",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
