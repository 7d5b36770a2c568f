//! Parsers for the key-value formats package databases use.
//!
//! Python's `METADATA`/`PKG-INFO`, Debian's `status` and `control` files and
//! Alpine's `installed` database are all "Name: value" lines with
//! continuation lines; they differ in what separates records. [`headers`]
//! reads one header block (stopping at the first blank line, as in
//! `METADATA`), [`paragraphs`] reads blank-line separated records (as in
//! dpkg's `status`).

/// The fields of one record, in order, keys as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// `(key, value)` pairs; continuation lines are joined with `\n`.
    pub entries: Vec<(String, String)>,
}

impl Fields {
    /// The first value of a key, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a key, in order (`Requires-Dist` appears many times).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Adds one physical line to a record; returns false for a line that is not
/// a field or a continuation (the caller decides what that means).
fn push_line(fields: &mut Fields, line: &str) -> bool {
    if line.starts_with([' ', '\t']) {
        if let Some((_, value)) = fields.entries.last_mut() {
            value.push('\n');
            value.push_str(line.trim());
            return true;
        }
        return false;
    }
    match line.split_once(':') {
        Some((key, value)) if !key.is_empty() && !key.contains(' ') => {
            fields
                .entries
                .push((key.to_string(), value.trim().to_string()));
            true
        }
        _ => false,
    }
}

/// Reads the header block at the start of `text`, up to the first blank
/// line. Lines that are not fields are skipped.
pub fn headers(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            break;
        }
        push_line(&mut fields, line);
    }
    fields
}

/// Reads blank-line separated records. Lines that are not fields are
/// skipped; empty records are dropped.
pub fn paragraphs(text: &str) -> Vec<Fields> {
    let mut records = Vec::new();
    let mut current = Fields::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
            continue;
        }
        push_line(&mut current, line);
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

/// Reads `KEY=value` lines (`os-release`, `pyvenv.cfg` with ` = `), dropping
/// comments and unquoting values.
pub fn assignments(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            fields
                .entries
                .push((key.trim().to_string(), value.to_string()));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_stop_at_the_body() {
        let f = headers(
            "Metadata-Version: 2.1\nName: Flask\nRequires-Dist: a\nRequires-Dist: b\n\nName: not-me\n",
        );
        assert_eq!(f.get("name"), Some("Flask"));
        assert_eq!(
            f.get_all("Requires-Dist").collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn paragraphs_join_continuations() {
        let recs =
            paragraphs("Package: a\nDescription: x\n more\n\n\nPackage: b\r\nVersion: 1\r\n");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].get("Description"), Some("x\nmore"));
        assert_eq!(recs[1].get("version"), Some("1"));
    }

    #[test]
    fn assignments_unquote() {
        let f = assignments("ID=debian\nVERSION_ID=\"12\"\n# c\nhome = /usr/bin\n");
        assert_eq!(f.get("VERSION_ID"), Some("12"));
        assert_eq!(f.get("home"), Some("/usr/bin"));
    }
}
