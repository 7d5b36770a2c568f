//! The small Node.js programs plans run inside the image.
//!
//! Some jobs need the image's own view at run time, so `js/npm.js` runs
//! them on the image's `node` (every image npm can patch has one):
//!
//! - `edit` changes a `package.json` as the step runs, so that the tasks of
//!   one project compose in order: each task adds its edit to whatever the
//!   tasks before it left (a task computed at plan time from the original
//!   file would undo the edits of the tasks that ran first, and with them
//!   their installs). It keeps the file's indentation, line endings and key
//!   order, as npm does when it saves the file.
//! - `snapshot`, `compare`, `versions` and `fixed` list a tree before and
//!   after a task and check what changed (see the program's header);
//! - `dry-run` is the probe that tells a plan which tree the direct
//!   dependencies' moves lead to.
//!
//! It runs with `node -e <source> ...`, so nothing is written to the image
//! to run it.

use salve_plugin_sdk::Command;
use serde::Serialize;
use serde_json::json;

/// `js/npm.js`.
const NPM_JS: &str = include_str!("js/npm.js");

/// A copy a task moves, as `tree.js compare` checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The package name the dependents require.
    pub name: String,
    /// The copy's location under the root before the task.
    pub location: String,
    /// The version the dependents must load afterwards.
    pub version: String,
    /// The copies that required it.
    pub dependents: Vec<Dependent>,
}

/// A copy (or the root) that requires another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dependent {
    /// Its location (`""` for the root).
    pub location: String,
    /// Its version (empty for the root); a dependent that moves is no
    /// longer held to the target.
    #[serde(default)]
    pub version: String,
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

/// `node -e <npm.js> <args>`.
fn node(args: &[&str]) -> Command {
    let mut argv = vec!["node", "-e", NPM_JS];
    argv.extend_from_slice(args);
    Command::new(argv)
}

/// Writes the list of copies under `root` to `out`.
pub fn snapshot(root: &str, out: &str) -> Command {
    node(&["snapshot", root, out])
}

/// Compares the tree under `root` with the listing in `before`.
pub fn compare(root: &str, before: &str, targets: &[Target]) -> Command {
    let targets = serde_json::to_string(targets).unwrap_or_else(|_| "[]".into());
    node(&["compare", root, before, &targets])
}

/// Prints the versions of `name` that the copies at `froms` load.
pub fn versions(root: &str, name: &str, froms: &[String]) -> Command {
    let mut args = vec!["versions", root, name];
    args.extend(froms.iter().map(String::as_str));
    node(&args)
}

/// Copies the files `npm ci` reads from `root` to `dir`.
pub fn stage_lock(root: &str, dir: &str) -> Command {
    node(&["stage-lock", root, dir])
}

/// Removes `file` if it exists.
pub fn forget(file: &str) -> Command {
    node(&["forget", file])
}

/// Applies `edits` to the `package.json` at `file`.
pub fn edit(file: &str, edits: &Edits) -> Command {
    node(&["edit", file, &edits.to_json()])
}

/// Prints `fixed` when the copy at `location` is gone or at `target` or
/// later.
pub fn fixed(root: &str, location: &str, target: &str) -> Command {
    node(&["fixed", root, location, target])
}

/// The probe: in `dir`, a copy of the root's `package.json` and lockfile
/// gets `edits` and `npm install --package-lock-only <npm_args>`; prints
/// the copies of the `watch` names the new lockfile holds (see
/// [`DryRun`]).
pub fn dry_run(
    root: &str,
    dir: &str,
    edits: &Edits,
    watch: &[String],
    npm_args: &[String],
) -> Command {
    let watch = serde_json::to_string(watch).unwrap_or_else(|_| "[]".into());
    let edits = edits.to_json();
    let mut args = vec!["dry-run", root, dir, &edits, &watch];
    args.extend(npm_args.iter().map(String::as_str));
    node(&args)
}

/// What the `dry-run` probe prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct DryRun {
    /// Every copy of a watched name in the lockfile the moves lead to.
    pub copies: Vec<FutureCopy>,
}

/// A copy in the lockfile the direct dependencies' moves lead to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct FutureCopy {
    /// Its package name.
    pub name: String,
    /// Its location.
    pub location: String,
    /// Its version.
    pub version: String,
    /// What requires it (the root as `""`).
    pub dependents: Vec<FutureDependent>,
}

/// A dependent in [`FutureCopy::dependents`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct FutureDependent {
    /// Its location (`""` for the root).
    pub location: String,
    /// Its package name.
    #[serde(default)]
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
}
