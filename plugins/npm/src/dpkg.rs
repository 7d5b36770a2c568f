//! Which `package.json` files Debian packages own.
//!
//! Debian packages hundreds of Node modules (`node-qs`, ...) under
//! `/usr/share/nodejs` and `/usr/lib/nodejs`, and its `npm` package lives
//! there too. Those copies belong to apt: replacing them with npm would be
//! undone by the next `apt-get upgrade` and would break dpkg's records.
//! dpkg lists every file a package installed in
//! `var/lib/dpkg/info/<package>[:<arch>].list`.

use std::collections::BTreeMap;

use salve_plugin_sdk::Error;
use salve_plugin_sdk::image::Image;

/// Where dpkg keeps its per-package file lists.
const INFO_DIR: &str = "var/lib/dpkg/info";

/// The owner of each `package.json` that some Debian package installed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owners {
    /// Image path (no leading slash) to package name.
    by_path: BTreeMap<String, String>,
}

impl Owners {
    /// Reads dpkg's file lists; an image without dpkg owns nothing.
    ///
    /// # Errors
    ///
    /// A list exists but cannot be read.
    pub fn read(image: &Image) -> Result<Owners, Error> {
        let mut by_path = BTreeMap::new();
        // dpkg may record `/lib/...` where `lib` links to `usr/lib`: resolve
        // each listed path's first component once, so lookups by real path
        // find it.
        let mut tops: BTreeMap<String, String> = BTreeMap::new();
        for entry in image.read_dir(INFO_DIR)? {
            let Some(stem) = entry.name.strip_suffix(".list") else {
                continue;
            };
            let package = stem.split(':').next().unwrap_or(stem).to_string();
            let text = image.read_to_string(&entry.path)?;
            for line in text.lines().filter(|l| l.ends_with("/package.json")) {
                let listed = line.trim_start_matches('/');
                let (top, rest) = listed.split_once('/').unwrap_or((listed, ""));
                if !tops.contains_key(top) {
                    tops.insert(top.to_string(), image.resolve(top)?);
                }
                let real = format!("{}/{rest}", tops[top]);
                by_path.insert(real, package.clone());
            }
        }
        Ok(Owners { by_path })
    }

    /// The Debian package that installed the file at `path` (an image
    /// path), looked up as written and with its links resolved.
    pub fn owner(&self, image: &Image, path: &str) -> Option<&str> {
        if self.by_path.is_empty() {
            return None;
        }
        let path = path.trim_start_matches('/');
        if let Some(owner) = self.by_path.get(path) {
            return Some(owner);
        }
        let resolved = image.resolve(path).ok()?;
        self.by_path.get(&resolved).map(String::as_str)
    }

    /// True when dpkg owns no `package.json` at all.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}
