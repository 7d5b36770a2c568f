//! The pip salve brings to environments that have none.
//!
//! Virtual environments made by uv, or with `python -m venv --without-pip`,
//! and slim images such as distroless Python have an interpreter but no pip.
//! pip runs from its own wheel (`python pip-X-py3-none-any.whl/pip
//! install ...`, the way virtualenv seeds environments), installing into the
//! environment of the interpreter that runs it; so a plan fetches one wheel
//! into the staging directory, outside the new layer.
//!
//! The wheel is pinned by URL and SHA-256, as `ensurepip` bundles one pip:
//! `plan` has no access to the index, and PyPI's file URLs are
//! content-addressed and never change. The host fetches it only when the
//! user's sources allow files.pythonhosted.org (the defaults do); otherwise
//! the fetch step, and so that package's task, fails with the host's reason.
//!
//! To move to a newer pip, take the wheel's `url` and `hashes.sha256` from
//! `curl -H 'Accept: application/vnd.pypi.simple.v1+json'
//! https://pypi.org/simple/pip/`, keeping a version whose `requires-python`
//! admits every Python salve patches (3.8 and later).

use salve_plugin_sdk::FetchRequest;

/// The pip version brought in.
pub const VERSION: &str = "25.0.1";

/// Its wheel's file name.
pub const FILE_NAME: &str = "pip-25.0.1-py3-none-any.whl";

/// Where PyPI serves it.
pub const URL: &str = "https://files.pythonhosted.org/packages/c9/bc/\
     b7db44f5f39f9d0494071bddae6880eb645970366d0a200022a1a93d57f5/pip-25.0.1-py3-none-any.whl";

/// Its SHA-256, as PyPI states it.
pub const SHA256: &str = "c46efd13b6aa8279f33f2864459c8ce587ea6a1a59ee20de055868d8f7688f7f";

/// The fetch step that puts the wheel into the staging directory.
pub fn fetch() -> FetchRequest {
    FetchRequest {
        url: URL.to_string(),
        file_name: FILE_NAME.to_string(),
        sha256: Some(SHA256.to_string()),
    }
}

/// The path of pip inside the fetched wheel, for `python <it> install`.
pub fn entry_point(staging_dir: &str) -> String {
    format!("{}/{FILE_NAME}/pip", staging_dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_wheel_is_one_pip_release_for_every_python_3() {
        assert!(URL.ends_with(&format!("/{FILE_NAME}")));
        assert_eq!(FILE_NAME, format!("pip-{VERSION}-py3-none-any.whl"));
        assert!(URL.starts_with(crate::DEFAULT_SOURCES[1]));
        assert_eq!(SHA256.len(), 64);
        assert!(
            SHA256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(entry_point("/s/"), "/s/pip-25.0.1-py3-none-any.whl/pip");
    }
}
