//! The installed tree of one npm root, as it is on disk.
//!
//! A root is a directory with a `package.json` whose dependencies live in
//! its `node_modules`: an application, or a globally installed package.
//! Every copy under `node_modules` (nested ones included) is read with its
//! manifest, keyed by its location relative to the root
//! (`node_modules/a/node_modules/b`), and dependencies are resolved the way
//! Node resolves `require`: from the requiring copy's directory up to the
//! root, taking the nearest `node_modules/<name>`.
//!
//! Symbolic links (workspace members, `file:` dependencies, `npm link`) are
//! recorded but not followed: what they point at belongs to another root.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use salve_plugin_sdk::host;
use salve_plugin_sdk::image::{EntryKind, Image};

use crate::manifest::Manifest;

/// Nesting deeper than this is not a real install; stop there.
const MAX_NESTING: usize = 64;

/// Longest version string a copy may carry (semver has no limit; npm's
/// `semver` refuses more than 256 characters).
const MAX_VERSION: usize = 256;

/// Longest package name npm accepts.
const MAX_NAME: usize = 214;

/// One installed copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// The directory name under `node_modules` (`@scope/name` for scoped
    /// packages): the name its dependents require it by.
    pub dir_name: String,
    /// The copy's manifest.
    pub manifest: Manifest,
    /// The installed version.
    pub version: String,
}

impl Copy {
    /// The package's own name: the manifest's, else the directory's.
    pub fn name(&self) -> &str {
        self.manifest
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.dir_name)
    }

    /// `name@version`, as npm prints a copy.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.name(), self.version)
    }
}

/// The installed tree of one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The root directory's image path, without slashes at either end.
    pub root: String,
    /// The root's own manifest.
    pub manifest: Manifest,
    /// Every copy by location.
    pub copies: BTreeMap<String, Copy>,
    /// Locations that are symbolic links.
    pub links: BTreeSet<String>,
}

impl Tree {
    /// Reads the root at `root` (an image path) and everything installed
    /// under it.
    ///
    /// # Errors
    ///
    /// The root's `package.json` is missing or not JSON, or a directory
    /// cannot be listed. A copy whose `package.json` cannot be read is
    /// skipped (npm cannot use it either) and logged.
    pub fn read(image: &Image, root: &str) -> Result<Tree, salve_plugin_sdk::Error> {
        let root = root.trim_matches('/');
        let manifest_path = join(root, "package.json");
        let text = image.read_to_string(&manifest_path)?;
        let manifest =
            Manifest::parse(&text, &format!("/{manifest_path}")).map_err(crate::failed)?;
        Tree::read_with(image, root, manifest)
    }

    /// Reads what is installed under a `node_modules` at `root` that has no
    /// `package.json` beside it.
    ///
    /// # Errors
    ///
    /// A directory cannot be listed.
    pub fn stray(image: &Image, root: &str) -> Result<Tree, salve_plugin_sdk::Error> {
        Tree::read_with(image, root.trim_matches('/'), Manifest::default())
    }

    fn read_with(
        image: &Image,
        root: &str,
        manifest: Manifest,
    ) -> Result<Tree, salve_plugin_sdk::Error> {
        let mut tree = Tree {
            root: root.to_string(),
            manifest,
            copies: BTreeMap::new(),
            links: BTreeSet::new(),
        };
        tree.read_modules(image, "", 0)?;
        Ok(tree)
    }

    /// The image path of a location (the root itself for `""`).
    pub fn path_of(&self, location: &str) -> String {
        join(&self.root, location)
    }

    /// Reads `<location>/node_modules` into the tree, recursively.
    fn read_modules(
        &mut self,
        image: &Image,
        location: &str,
        depth: usize,
    ) -> Result<(), salve_plugin_sdk::Error> {
        if depth > MAX_NESTING {
            host::warn(&format!(
                "/{}: node_modules nested more than {MAX_NESTING} deep; not read further",
                self.path_of(location)
            ));
            return Ok(());
        }
        let modules = join(location, "node_modules");
        for entry in image.read_dir(&self.path_of(&modules))? {
            if entry.name.starts_with('.') {
                // .bin, .package-lock.json, .cache: npm's own files.
                continue;
            }
            if entry.name.starts_with('@') && entry.kind == EntryKind::Dir {
                for scoped in image.read_dir(&entry.path)? {
                    let dir_name = format!("{}/{}", entry.name, scoped.name);
                    self.read_copy(image, &modules, dir_name, scoped.kind, depth)?;
                }
                continue;
            }
            self.read_copy(image, &modules, entry.name, entry.kind, depth)?;
        }
        Ok(())
    }

    /// Reads one entry of a `node_modules` directory.
    fn read_copy(
        &mut self,
        image: &Image,
        modules: &str,
        dir_name: String,
        kind: EntryKind,
        depth: usize,
    ) -> Result<(), salve_plugin_sdk::Error> {
        let location = format!("{modules}/{dir_name}");
        match kind {
            EntryKind::Symlink => {
                self.links.insert(location);
                return Ok(());
            }
            EntryKind::Dir => {}
            EntryKind::File | EntryKind::Other => return Ok(()),
        }
        let manifest_path = join(&self.path_of(&location), "package.json");
        let Some(text) = image.read_optional(&manifest_path)? else {
            return Ok(());
        };
        let manifest = match Manifest::parse(&text, &format!("/{manifest_path}")) {
            Ok(m) => m,
            Err(e) => {
                let why = crate::chain(&e);
                host::debug(&format!("skipping a copy npm cannot read either: {why}"));
                return Ok(());
            }
        };
        // What no registry would publish is no copy to report.
        let Some(version) = manifest
            .version
            .clone()
            .filter(|v| !v.trim().is_empty() && v.len() <= MAX_VERSION)
        else {
            host::debug(&format!("skipping /{manifest_path}: no usable version"));
            return Ok(());
        };
        if manifest.name.as_ref().is_some_and(|n| n.len() > MAX_NAME) {
            host::debug(&format!("skipping /{manifest_path}: its name is too long"));
            return Ok(());
        }
        self.copies.insert(
            location.clone(),
            Copy {
                dir_name,
                manifest,
                version,
            },
        );
        self.read_modules(image, &location, depth + 1)
    }

    /// Where `name`, required from the copy at `from` (`""` for the root),
    /// resolves: the nearest `node_modules/<name>` from there up.
    pub fn resolve(&self, from: &str, name: &str) -> Option<&str> {
        let mut at = from;
        loop {
            let candidate = join(at, &format!("node_modules/{name}"));
            if let Some((location, _)) = self.copies.get_key_value(&candidate) {
                return Some(location);
            }
            if at.is_empty() {
                return None;
            }
            at = parent_location(at);
        }
    }

    /// The names the copy at `location` (or the root, `""`) depends on. The
    /// root's development dependencies count; a copy's do not (npm never
    /// installs them).
    pub fn edges(&self, location: &str) -> Vec<&str> {
        if location.is_empty() {
            let m = &self.manifest;
            return m
                .runtime_edges()
                .map(|(n, _)| n)
                .chain(m.dev_dependencies.iter().map(|(n, _)| n.as_str()))
                .collect();
        }
        self.copies
            .get(location)
            .map(|c| c.manifest.runtime_edges().map(|(n, _)| n).collect())
            .unwrap_or_default()
    }

    /// For every copy, the locations (`""` for the root) whose dependencies
    /// resolve to it.
    pub fn dependents(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut found: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let froms = std::iter::once("").chain(self.copies.keys().map(String::as_str));
        for from in froms {
            for name in self.edges(from) {
                if let Some(to) = self.resolve(from, name) {
                    found.entry(to).or_default().push(from);
                }
            }
        }
        found
    }

    /// Shortest chains of dependents from the root to every copy it
    /// reaches, found in one walk of the tree.
    pub fn chains(&self) -> Chains<'_> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([""]);
        while let Some(from) = queue.pop_front() {
            for name in self.edges(from) {
                if let Some(to) = self.resolve(from, name)
                    && !previous.contains_key(to)
                {
                    previous.insert(to, from);
                    queue.push_back(to);
                }
            }
        }
        Chains { previous }
    }
}

/// The result of [`Tree::chains`].
pub struct Chains<'a> {
    /// Each reached copy's dependent on a shortest chain (`""`: the root).
    previous: BTreeMap<&'a str, &'a str>,
}

impl<'a> Chains<'a> {
    /// The chain from the root to `location`, root excluded, the copy
    /// included; `None` when nothing in the tree requires it (an extraneous
    /// copy).
    pub fn to(&self, location: &str) -> Option<Vec<&'a str>> {
        let (&reached, _) = self.previous.get_key_value(location)?;
        let mut chain = vec![reached];
        let mut at = reached;
        while let Some(&p) = self.previous.get(at) {
            if p.is_empty() {
                break;
            }
            chain.push(p);
            at = p;
        }
        chain.reverse();
        Some(chain)
    }
}

/// The location a copy is nested in: `node_modules/a` for
/// `node_modules/a/node_modules/b`, `""` for a top-level copy.
pub fn parent_location(location: &str) -> &str {
    match location.rfind("/node_modules/") {
        Some(i) => &location[..i],
        None => "",
    }
}

/// Joins two relative paths, either of which may be empty.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_locations_strip_one_level() {
        assert_eq!(
            parent_location("node_modules/a/node_modules/@s/b"),
            "node_modules/a"
        );
        assert_eq!(parent_location("node_modules/@s/b"), "");
        assert_eq!(parent_location("node_modules/a"), "");
    }
}
