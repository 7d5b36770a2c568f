//! Where npm trees live in an image, and what kind each one is.
//!
//! Four kinds of place hold Node packages:
//!
//! - **applications**: a directory with a `package.json`, outside any
//!   `node_modules`, whose dependencies are installed beside it (a
//!   `node_modules`) or locked (a lockfile); yarn and pnpm projects are
//!   found too, so that their copies can be skipped with that reason;
//! - **global packages**: each package under `usr/local/lib/node_modules` or
//!   `usr/lib/node_modules` (`npm install -g`), a root of its own;
//! - **Debian's module directories** (`usr/share/nodejs`, `usr/lib/nodejs`),
//!   where apt installs `node-*` packages and its own npm;
//! - **stray trees**: a `node_modules` with no `package.json` beside it,
//!   which no package manager can reconcile.

use salve_plugin_sdk::Error;
use salve_plugin_sdk::image::{EntryKind, Image};

use crate::lockfile::{self, Lockfile};
use crate::tree::{Tree, join};

/// Directories `npm install -g` installs into, by prefix.
pub const GLOBAL_DIRS: [&str; 2] = ["usr/local/lib/node_modules", "usr/lib/node_modules"];

/// Debian's directories of apt-installed Node modules.
const DEBIAN_DIRS: [&str; 3] = ["usr/share/nodejs", "usr/lib/nodejs", "usr/lib/*/nodejs"];

/// How deep below the image root an application is looked for.
const MAX_DEPTH: usize = 8;

/// Top-level directories that never hold applications.
const SKIP_TOP: [&str; 7] = ["proc", "sys", "dev", "run", "boot", "lost+found", ".salve"];

/// Directories searched by other means, or full of files that are never
/// applications.
const SKIP_PATHS: [&str; 11] = [
    "usr/local/lib/node_modules",
    "usr/lib/node_modules",
    "usr/share/nodejs",
    "usr/lib/nodejs",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/include",
    "var/lib/dpkg",
    "var/cache",
    "var/log",
];

/// Directory names never entered anywhere.
const SKIP_NAMES: [&str; 6] = [".git", ".hg", ".npm", ".cache", "__pycache__", ".yarn"];

/// The package managers a project can belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manager {
    /// npm (or nothing decided yet: a tree with no lockfile).
    Npm,
    /// yarn, with the file that says so.
    Yarn(String),
    /// pnpm, with the file that says so.
    Pnpm(String),
}

/// What kind of place a root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An application directory.
    App {
        /// Who installed it.
        manager: Manager,
        /// The enclosing project that declares npm workspaces, if any
        /// (itself included).
        workspace: Option<String>,
    },
    /// A package installed with `npm install -g`, in `global_dir`.
    Global {
        /// `usr/local/lib/node_modules` or `usr/lib/node_modules`.
        global_dir: String,
    },
    /// A package in one of Debian's module directories.
    Debian {
        /// The module directory (`usr/share/nodejs`).
        modules_dir: String,
    },
    /// A `node_modules` with no `package.json` beside it.
    Stray,
}

/// A place holding Node packages, found by [`discover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The directory's image path, without slashes at either end.
    pub dir: String,
    /// What it is.
    pub kind: Kind,
}

impl Root {
    /// The unit salve patches as a whole for copies under this root: the
    /// root itself, except Debian's modules, which share their directory.
    pub fn scope(&self) -> String {
        match &self.kind {
            Kind::Debian { modules_dir } => modules_dir.clone(),
            _ => self.dir.clone(),
        }
    }
}

/// Every root in the image, applications first (sorted), then global
/// packages, then Debian's modules.
///
/// # Errors
///
/// A directory cannot be listed, or a `package.json` or lockfile cannot be
/// read.
pub fn discover(image: &Image) -> Result<Vec<Root>, Error> {
    let mut roots = Vec::new();
    walk(image, "", 0, &mut roots)?;
    roots.sort_by(|a, b| a.dir.cmp(&b.dir));
    mark_workspaces(image, &mut roots)?;

    for global_dir in GLOBAL_DIRS {
        for dir in package_dirs(image, global_dir)? {
            roots.push(Root {
                dir,
                kind: Kind::Global {
                    global_dir: global_dir.to_string(),
                },
            });
        }
    }
    for pattern in DEBIAN_DIRS {
        for modules in image.glob(pattern)? {
            for dir in package_dirs(image, &modules)? {
                roots.push(Root {
                    dir,
                    kind: Kind::Debian {
                        modules_dir: modules.clone(),
                    },
                });
            }
        }
    }
    Ok(roots)
}

/// Looks for applications and stray trees under `dir`.
fn walk(image: &Image, dir: &str, depth: usize, roots: &mut Vec<Root>) -> Result<(), Error> {
    let entries = image.read_dir(dir)?;
    let has = |name: &str| entries.iter().any(|e| e.name == name);
    if !dir.is_empty() && has("package.json") {
        if let Some(manager) = manager(image, dir, has("node_modules"))? {
            roots.push(Root {
                dir: dir.to_string(),
                kind: Kind::App {
                    manager,
                    workspace: None,
                },
            });
        }
    } else if has("node_modules")
        && image.is_dir(&join(dir, "node_modules"))
        && !SKIP_PATHS.contains(&join(dir, "node_modules").as_str())
    {
        roots.push(Root {
            dir: dir.to_string(),
            kind: Kind::Stray,
        });
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    for entry in entries {
        if entry.kind != EntryKind::Dir
            || entry.name == "node_modules"
            || SKIP_NAMES.contains(&entry.name.as_str())
            || (depth == 0 && SKIP_TOP.contains(&entry.name.as_str()))
            || SKIP_PATHS.contains(&entry.path.as_str())
        {
            continue;
        }
        walk(image, &entry.path, depth + 1, roots)?;
    }
    Ok(())
}

/// Who installed the project at `dir`, or `None` when nothing is installed
/// or locked there (a `package.json` on its own is not a project to patch).
fn manager(image: &Image, dir: &str, has_modules: bool) -> Result<Option<Manager>, Error> {
    let at = |name: &str| join(dir, name);
    let npm_lock = lockfile::FILE_NAMES.iter().any(|f| image.is_file(&at(f)));
    if !has_modules && !npm_lock {
        let other = ["yarn.lock", "pnpm-lock.yaml"]
            .iter()
            .any(|f| image.is_file(&at(f)));
        if !other {
            return Ok(None);
        }
    }
    for marker in [
        "pnpm-lock.yaml",
        "node_modules/.modules.yaml",
        "node_modules/.pnpm",
    ] {
        if image.exists(&at(marker)) {
            return Ok(Some(Manager::Pnpm(marker.to_string())));
        }
    }
    // npm keeps yarn.lock up to date when both exist, so an npm lockfile
    // beside one means npm.
    if !npm_lock {
        for marker in [
            "yarn.lock",
            ".pnp.cjs",
            ".pnp.js",
            "node_modules/.yarn-integrity",
            "node_modules/.yarn-state.yml",
        ] {
            if image.exists(&at(marker)) {
                return Ok(Some(Manager::Yarn(marker.to_string())));
            }
        }
    }
    Ok(Some(Manager::Npm))
}

/// Marks the applications inside a project that declares npm workspaces
/// (and that project itself).
fn mark_workspaces(image: &Image, roots: &mut [Root]) -> Result<(), Error> {
    let mut declaring = Vec::new();
    for root in roots.iter() {
        if matches!(root.kind, Kind::App { .. }) {
            let tree_manifest = image.read_to_string(&join(&root.dir, "package.json"))?;
            let what = format!("/{}/package.json", root.dir);
            let manifest =
                crate::manifest::Manifest::parse(&tree_manifest, &what).map_err(crate::failed)?;
            if manifest.has_workspaces {
                declaring.push(root.dir.clone());
            }
        }
    }
    for root in roots.iter_mut() {
        if let Kind::App { workspace, .. } = &mut root.kind {
            *workspace = declaring
                .iter()
                .find(|d| root.dir == **d || root.dir.starts_with(&format!("{d}/")))
                .cloned();
        }
    }
    Ok(())
}

/// The package directories directly inside a modules directory, scoped
/// ones (`@scope/name`) included, links left out.
fn package_dirs(image: &Image, modules: &str) -> Result<Vec<String>, Error> {
    let mut dirs = Vec::new();
    for entry in image.read_dir(modules)? {
        if entry.kind != EntryKind::Dir || entry.name.starts_with('.') {
            continue;
        }
        if entry.name.starts_with('@') {
            for scoped in image.read_dir(&entry.path)? {
                if scoped.kind == EntryKind::Dir
                    && image.is_file(&join(&scoped.path, "package.json"))
                {
                    dirs.push(scoped.path);
                }
            }
        } else if image.is_file(&join(&entry.path, "package.json")) {
            dirs.push(entry.path);
        }
    }
    Ok(dirs)
}

/// A root read for planning or detection: its tree and lockfile.
#[derive(Clone, Debug)]
pub struct Project {
    /// Where it is and what kind.
    pub root: Root,
    /// The installed tree.
    pub tree: Tree,
    /// The lockfile, when there is one.
    pub lockfile: Option<Lockfile>,
    /// True when the root's development dependencies are installed.
    pub dev_installed: bool,
}

impl Project {
    /// Reads the tree and lockfile of `root`.
    ///
    /// # Errors
    ///
    /// The root's `package.json` or lockfile cannot be read or parsed, or a
    /// directory cannot be listed.
    pub fn load(image: &Image, root: Root) -> Result<Project, Error> {
        let tree = if root.kind == Kind::Stray {
            Tree::stray(image, &root.dir)?
        } else {
            Tree::read(image, &root.dir)?
        };
        let mut lockfile = None;
        for file_name in lockfile::FILE_NAMES {
            let path = join(&root.dir, file_name);
            if let Some(text) = image.read_optional(&path)? {
                let parsed = Lockfile::parse(&text, file_name, &format!("/{path}"))
                    .map_err(crate::failed)?;
                lockfile = Some(parsed);
                break;
            }
        }
        let dev_installed = dev_installed(&tree, lockfile.as_ref());
        Ok(Project {
            root,
            tree,
            lockfile,
            dev_installed,
        })
    }

    /// The lockfile's name, or `None`.
    pub fn lockfile_name(&self) -> Option<&str> {
        self.lockfile.as_ref().map(|l| l.file_name.as_str())
    }
}

/// Whether the development dependencies of a root are on disk: some copy
/// the lockfile marks as development-only is installed, or (without a
/// lockfile) some declared development dependency is.
fn dev_installed(tree: &Tree, lockfile: Option<&Lockfile>) -> bool {
    if let Some(lock) = lockfile
        && lock.has_dev_entries()
    {
        return lock
            .entries
            .iter()
            .any(|(location, e)| e.dev && tree.copies.contains_key(location));
    }
    tree.manifest
        .dev_dependencies
        .iter()
        .any(|(name, _)| tree.copies.contains_key(&format!("node_modules/{name}")))
}
