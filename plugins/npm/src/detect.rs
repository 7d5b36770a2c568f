//! Detection: every installed copy of every Node package, with where it
//! came from and whether salve can move it.
//!
//! One `installed-package` per copy: its `path` is the copy's
//! `package.json`, as Trivy reports it (`app/node_modules/qs/package.json`),
//! and its `scope` is the root planned as a whole (the application, or the
//! global package it lives in). The attributes tell a person (with `-vv`)
//! and the plan what kind of dependency the copy is.

use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{Error, InstalledPackage, Origin, VendoredIn, host};

use crate::dpkg::Owners;
use crate::project::{Kind, Manager, Project};
use crate::tools::Tools;
use crate::tree::{Chains, Copy, join, parent_location};

/// Attribute names, shared with the plan.
pub mod attr {
    /// `direct`, `transitive` or `global` (a package installed with `-g`).
    pub const DEPENDENCY: &str = "dependency";
    /// For a direct dependency, the manifest section that declares it.
    pub const SECTION: &str = "section";
    /// `true` when only development dependencies need the copy.
    pub const DEV: &str = "dev";
    /// `true` when only optional dependencies need the copy.
    pub const OPTIONAL: &str = "optional";
    /// The chain of dependents from the root, `a@1.0.0 > b@2.0.0`.
    pub const PARENTS: &str = "parents";
    /// The copy's location under its root (`node_modules/a/node_modules/b`).
    pub const LOCATION: &str = "location";
    /// The root's lockfile name, or `none`.
    pub const LOCKFILE: &str = "lockfile";
    /// The lockfile's `lockfileVersion`.
    pub const LOCKFILE_VERSION: &str = "lockfile-version";
    /// The version the lockfile records at the copy's location.
    pub const LOCKED_VERSION: &str = "locked-version";
    /// `true` when the root's development dependencies are installed.
    pub const DEV_INSTALLED: &str = "dev-installed";
    /// The image's npm version.
    pub const NPM_VERSION: &str = "npm-version";
    /// The image's Node.js version.
    pub const NODE_VERSION: &str = "node-version";
}

/// Lists every copy under every root of the image.
///
/// # Errors
///
/// A directory cannot be listed or a root's `package.json` or lockfile is
/// unreadable.
pub fn detect(image: &Image, tools: &Tools) -> Result<Vec<InstalledPackage>, Error> {
    let owners = Owners::read(image)?;
    let mut found = Vec::new();
    for root in crate::project::discover(image)? {
        let project = match Project::load(image, root.clone()) {
            Ok(p) => p,
            Err(e) if !matches!(root.kind, Kind::App { .. }) => {
                // A broken global or Debian module must not hide the rest.
                host::warn(&format!("skipping /{}: {e}", root.dir));
                continue;
            }
            Err(e) => return Err(e),
        };
        let context = Context {
            image,
            tools,
            owners: &owners,
            project: &project,
        };
        if let Some(own) = context.root_package()? {
            found.push(own);
        }
        let chains = project.tree.chains();
        for (location, copy) in &project.tree.copies {
            found.push(context.copy(location, copy, &chains));
        }
    }
    Ok(found)
}

/// What every copy of one root is judged against.
struct Context<'a> {
    image: &'a Image,
    tools: &'a Tools,
    owners: &'a Owners,
    project: &'a Project,
}

impl Context<'_> {
    /// The package that is itself the root, for global packages and
    /// Debian's modules (an application is not a package anyone reports).
    fn root_package(&self) -> Result<Option<InstalledPackage>, Error> {
        let root = &self.project.root;
        let manifest = &self.project.tree.manifest;
        let (Some(name), Some(version)) = (&manifest.name, &manifest.version) else {
            return Ok(None);
        };
        if name.is_empty() || name.len() > 214 || version.trim().is_empty() || version.len() > 256 {
            return Ok(None);
        }
        let path = join(&root.dir, "package.json");
        let origin = match &root.kind {
            Kind::App { .. } | Kind::Stray => return Ok(None),
            // npm and corepack themselves move as a whole like any global.
            Kind::Global { .. } => {
                self.foreign(&path)
                    .unwrap_or_else(|| match self.tools.npm_unusable() {
                        Some(why) => Origin::Unsupported(why),
                        None => Origin::Managed,
                    })
            }
            Kind::Debian { modules_dir } => self.foreign(&path).unwrap_or_else(|| {
                Origin::Unsupported(format!(
                    "in Debian's module directory /{modules_dir} but owned by no Debian \
                     package; salve cannot tell what installed it"
                ))
            }),
        };
        let dependency = match root.kind {
            Kind::Global { .. } => "global",
            _ => "debian-module",
        };
        let mut attributes = vec![(attr::DEPENDENCY.to_string(), dependency.to_string())];
        attributes.extend(self.tool_attributes());
        Ok(Some(InstalledPackage {
            name: name.clone(),
            key: name.clone(),
            version: version.clone(),
            path,
            scope: root.scope(),
            origin,
            attributes,
        }))
    }

    /// One copy under the root.
    fn copy(&self, location: &str, copy: &Copy, chains: &Chains) -> InstalledPackage {
        let tree = &self.project.tree;
        let path = join(&tree.path_of(location), "package.json");
        let origin = self.origin(location, copy, &path);
        InstalledPackage {
            name: copy.name().to_string(),
            key: copy.name().to_string(),
            version: copy.version.clone(),
            path,
            scope: self.project.root.scope(),
            origin,
            attributes: self.attributes(location, copy, chains),
        }
    }

    /// Whether salve may move the copy, and if not, why.
    fn origin(&self, location: &str, copy: &Copy, path: &str) -> Origin {
        if let Some(foreign) = self.foreign(path) {
            return foreign;
        }
        let root = &self.project.root;
        match &root.kind {
            Kind::Debian { modules_dir } => {
                return Origin::Unsupported(format!(
                    "inside /{}, in Debian's module directory /{modules_dir}, owned by no \
                     Debian package; salve cannot tell what installed it",
                    root.dir
                ));
            }
            Kind::Stray => {
                return Origin::Unsupported(format!(
                    "/{}/node_modules has no package.json beside it; salve patches npm \
                     projects only",
                    root.dir
                ));
            }
            Kind::App {
                manager: Manager::Yarn(marker),
                ..
            } => {
                return Origin::Unsupported(format!(
                    "the project at /{} uses yarn ({marker}); salve patches npm projects only",
                    root.dir
                ));
            }
            Kind::App {
                manager: Manager::Pnpm(marker),
                ..
            } => {
                return Origin::Unsupported(format!(
                    "the project at /{} uses pnpm ({marker}); salve patches npm projects only",
                    root.dir
                ));
            }
            Kind::App {
                workspace: Some(workspace),
                ..
            } => {
                // TODO(#7): move members' dependencies through the workspace root.
                return Origin::Unsupported(format!(
                    "the project at /{workspace} uses npm workspaces, which salve does not \
                     patch yet"
                ));
            }
            Kind::Global { .. } => {
                if let Some(npm_tree) = self.npm_origin() {
                    return npm_tree;
                }
            }
            Kind::App { .. } => {}
        }
        if copy
            .manifest
            .name
            .as_deref()
            .is_some_and(|n| n != copy.dir_name)
        {
            return Origin::Unsupported(format!(
                "installed under the alias {:?}; salve does not move aliased packages yet",
                copy.dir_name
            ));
        }
        if let Some(parent) = self.bundling_parent(location, copy) {
            return Origin::Vendored(parent);
        }
        if let Some(source) = self.non_registry_source(location, copy) {
            return Origin::Unsupported(format!(
                "installed from {source}, not from a registry; salve moves registry packages \
                 only"
            ));
        }
        if let Some(why) = self.tools.npm_unusable() {
            return Origin::Unsupported(why);
        }
        if !self.is_direct(location, copy)
            && let Some(why) = self.tools.overrides_unsupported()
        {
            return Origin::Unsupported(why);
        }
        Origin::Managed
    }

    /// `Foreign` when a Debian package owns the file at `path`.
    fn foreign(&self, path: &str) -> Option<Origin> {
        self.owners.owner(self.image, path).map(|package| {
            Origin::Foreign(format!(
                "installed by apt as {package}; patch with --pkg-types os"
            ))
        })
    }

    /// `Unsupported` for anything in npm's or corepack's own global tree.
    fn npm_origin(&self) -> Option<Origin> {
        let root = &self.project.root;
        let name = self.project.tree.manifest.name.as_deref()?;
        if !matches!(root.kind, Kind::Global { .. }) || !matches!(name, "npm" | "corepack") {
            return None;
        }
        Some(Origin::Unsupported(format!(
            "part of the {name} CLI's own bundled tree at /{}; move {name} itself \
             (npm install -g {name}@<version>) to a release that carries the fix",
            root.dir
        )))
    }

    /// The package whose tarball ships this copy, if one does.
    fn bundling_parent(&self, location: &str, copy: &Copy) -> Option<VendoredIn> {
        let tree = &self.project.tree;
        let parent = parent_location(location);
        let locked = self
            .project
            .lockfile
            .as_ref()
            .and_then(|l| l.entries.get(location))
            .is_some_and(|e| e.in_bundle);
        let parent_copy = tree.copies.get(parent)?;
        if !locked && !parent_copy.manifest.bundles(&copy.dir_name) {
            return None;
        }
        Some(VendoredIn {
            parent: parent_copy.name().to_string(),
            parent_path: join(&tree.path_of(parent), "package.json"),
        })
    }

    /// Where the copy came from when that is not a registry: the root's
    /// spec for a direct dependency (`github:user/repo`, `file:../lib`), or
    /// the lockfile's `resolved` (`git+ssh://...`).
    fn non_registry_source(&self, location: &str, copy: &Copy) -> Option<String> {
        if self.is_direct(location, copy)
            && let Some((_, spec)) = self.project.tree.manifest.declared(&copy.dir_name)
            && !crate::spec::from_registry(spec)
        {
            return Some(format!("{spec:?}"));
        }
        let resolved = self
            .project
            .lockfile
            .as_ref()?
            .entries
            .get(location)?
            .resolved
            .as_deref()?;
        // Registry tarballs are http(s) URLs (some registries' without a
        // `.tgz`); git, local paths and links are not.
        let elsewhere = ["git+", "git:", "github:", "file:", "link:"]
            .iter()
            .any(|prefix| resolved.starts_with(prefix));
        elsewhere.then(|| resolved.to_string())
    }

    /// True for the copy the root itself requires by a declared dependency.
    fn is_direct(&self, location: &str, copy: &Copy) -> bool {
        location == format!("node_modules/{}", copy.dir_name)
            && self
                .project
                .tree
                .manifest
                .declared(&copy.dir_name)
                .is_some()
    }

    /// The facts the plan and `-vv` want about a copy.
    fn attributes(&self, location: &str, copy: &Copy, chains: &Chains) -> Vec<(String, String)> {
        let project = self.project;
        let tree = &project.tree;
        let mut out = Vec::new();
        let mut push = |k: &str, v: String| out.push((k.to_string(), v));
        let locked = project
            .lockfile
            .as_ref()
            .and_then(|l| l.entries.get(location));

        let section = tree.manifest.declared(&copy.dir_name).map(|(s, _)| s);
        match section.filter(|_| self.is_direct(location, copy)) {
            Some(section) => {
                push(attr::DEPENDENCY, "direct".into());
                push(attr::SECTION, section.into());
            }
            None => push(attr::DEPENDENCY, "transitive".into()),
        }
        let dev = locked.is_some_and(|l| l.dev) || section == Some("devDependencies");
        push(attr::DEV, dev.to_string());
        push(
            attr::OPTIONAL,
            locked.is_some_and(|l| l.optional).to_string(),
        );
        push(attr::LOCATION, location.to_string());
        let parents = match chains.to(location) {
            Some(chain) => chain[..chain.len().saturating_sub(1)]
                .iter()
                .filter_map(|l| tree.copies.get(*l).map(Copy::spec))
                .collect::<Vec<_>>()
                .join(" > "),
            None => "(extraneous: nothing in the tree requires it)".into(),
        };
        if !parents.is_empty() {
            push(attr::PARENTS, parents);
        }
        match &project.lockfile {
            Some(lock) => {
                push(attr::LOCKFILE, lock.file_name.clone());
                push(attr::LOCKFILE_VERSION, lock.version.to_string());
                if let Some(v) = locked.and_then(|l| l.version.clone()) {
                    push(attr::LOCKED_VERSION, v);
                }
            }
            None => push(attr::LOCKFILE, "none".into()),
        }
        push(attr::DEV_INSTALLED, project.dev_installed.to_string());
        out.extend(self.tool_attributes());
        out
    }

    /// The image's tool versions, for `releases` and `plan`.
    fn tool_attributes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.tools.npm {
            out.push((attr::NPM_VERSION.to_string(), v.to_string()));
        }
        if let Some(v) = &self.tools.node {
            out.push((attr::NODE_VERSION.to_string(), v.to_string()));
        }
        out
    }
}
