//! The small Node.js programs plans run inside the image.
//!
//! Two jobs need the image's own view at run time, so they run on the
//! image's `node` (every image npm can patch has one):
//!
//! - `js/manifest.js` edits a `package.json` as the step runs, so that the
//!   tasks of one project compose in order: each task adds its edit to
//!   whatever the tasks before it left (a task computed at plan time from
//!   the original file would undo the edits of the tasks that ran first,
//!   and with them their installs). It keeps the file's indentation, line
//!   endings and key order, as npm does when it saves the file.
//! - `js/tree.js` lists every copy of a tree before and after a task and
//!   compares them (see its header).
//!
//! Both run with `node -e <source> ...`, so nothing is written to the image
//! to run them.

use salve_plugin_sdk::Command;
use serde::Serialize;
use serde_json::json;

/// `js/tree.js`.
const TREE_JS: &str = include_str!("js/tree.js");
/// `js/manifest.js`.
const MANIFEST_JS: &str = include_str!("js/manifest.js");

/// A copy a task moves, as `tree.js compare` checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The package name the dependents require.
    pub name: String,
    /// The copy's location under the root before the task.
    pub location: String,
    /// The version the dependents must load afterwards.
    pub version: String,
    /// The locations (`""` for the root) that required the copy.
    pub dependents: Vec<String>,
}

/// The edits a task makes to a `package.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    /// `(section, name, spec)`: a dependency's new spec.
    pub specs: Vec<(String, String, String)>,
    /// `(key path, value)` under `overrides`.
    pub overrides: Vec<(Vec<String>, String)>,
    /// Top-level fields to delete.
    pub remove: Vec<String>,
}

impl Edits {
    /// The edits as `manifest.js` reads them.
    pub fn to_json(&self) -> String {
        json!({ "specs": self.specs, "overrides": self.overrides, "remove": self.remove })
            .to_string()
    }
}

/// `node -e <source> <args>`.
fn node(source: &str, args: &[&str]) -> Command {
    let mut argv = vec!["node", "-e", source];
    argv.extend_from_slice(args);
    Command::new(argv)
}

/// Writes the list of copies under `root` to `out`.
pub fn snapshot(root: &str, out: &str) -> Command {
    node(TREE_JS, &["snapshot", root, out])
}

/// Compares the tree under `root` with the listing in `before`.
pub fn compare(root: &str, before: &str, targets: &[Target]) -> Command {
    let targets = serde_json::to_string(targets).unwrap_or_else(|_| "[]".into());
    node(TREE_JS, &["compare", root, before, &targets])
}

/// Prints the versions of `name` that the copies at `froms` load.
pub fn versions(root: &str, name: &str, froms: &[String]) -> Command {
    let mut args = vec!["versions", root, name];
    args.extend(froms.iter().map(String::as_str));
    node(TREE_JS, &args)
}

/// Copies the files `npm ci` reads from `root` to `dir`.
pub fn stage_lock(root: &str, dir: &str) -> Command {
    node(TREE_JS, &["stage-lock", root, dir])
}

/// Removes `file` if it exists.
pub fn forget(file: &str) -> Command {
    node(TREE_JS, &["forget", file])
}

/// Applies `edits` to the `package.json` at `file`.
pub fn edit(file: &str, edits: &Edits) -> Command {
    node(MANIFEST_JS, &[file, &edits.to_json()])
}

/// Test access to the sources, to run them on the machine's node.
#[cfg(test)]
pub mod source {
    /// `js/tree.js`.
    pub const TREE: &str = super::TREE_JS;
    /// `js/manifest.js`.
    pub const MANIFEST: &str = super::MANIFEST_JS;
}
