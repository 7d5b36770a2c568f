//! Everything pip-shaped in an image: environments, the distributions in
//! them, and whether pip may move each one.
//!
//! A copy's origin is decided in this order, first match wins:
//!
//! 1. dpkg or apk lists its metadata: **foreign** ("installed by apt as
//!    python3-idna; patch with --pkg-types os");
//! 2. it lives inside another distribution's package (`setuptools/_vendor/`,
//!    `pip/_vendor/vendor.txt`): **vendored**, movable only with its parent;
//! 3. its `INSTALLER` says `rpm` or `conda` (rpm's database is not readable
//!    here, so the hint is trusted): **foreign**;
//! 4. pip cannot work in its environment (no interpreter, no pip, a pip
//!    that refuses the externally managed marker), or cannot replace this
//!    copy (an egg, a distutils egg-info file, no RECORD, an editable
//!    install, a directory pip does not install into): **unsupported**, with
//!    the reason;
//! 5. otherwise **managed**.

use std::collections::HashMap;

use salve_plugin_sdk::image::{EntryKind, Image};
use salve_plugin_sdk::{Error, ImageContext, InstalledPackage, Origin, VendoredIn};

use crate::distribution::{self, Distribution, Format};
use crate::environment::{self, Environment};
use crate::name;
use crate::ospackages::{Database, Owner};
use crate::platform::{Libc, machine};

/// Names of the directories packages vendor their dependencies into.
const VENDOR_DIRS: &[&str] = &[
    "_vendor",
    "vendor",
    "_vendored",
    "vendored",
    "extern",
    "_extern",
    "_bundled",
    "third_party",
];

/// One installed copy of a distribution, with what salve may do to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageCopy {
    /// The distribution.
    pub distribution: Distribution,
    /// Index of its environment in [`Inventory::environments`].
    pub environment: usize,
    /// Whether pip may move it.
    pub origin: Origin,
    /// Which tool installed it (`apt`, `pip`, `uv`...), `unknown` when
    /// nothing says.
    pub installer: String,
}

/// Everything pip-shaped in an image.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The environments.
    pub environments: Vec<Environment>,
    /// Every copy found, environment by environment.
    pub copies: Vec<PackageCopy>,
    /// The image's C library.
    pub libc: Libc,
    /// The wheel machine name of the image's architecture.
    pub machine: Option<String>,
}

/// Reads the image.
///
/// # Errors
///
/// A directory or file on the way cannot be read.
pub fn scan(image: &Image, context: &ImageContext) -> Result<Inventory, Error> {
    let db = Database::read(image)?;
    let mut environments = environment::discover(image, context, &db)?;
    let mut sites = Sites::default();

    // Each environment runs the first pip on its search path.
    for env in &mut environments {
        for dir in &env.search_path {
            if let Some(pip) = sites.read(image, dir)?.iter().find(|d| d.key == "pip") {
                env.pip = Some(pip.version.clone());
                break;
            }
        }
    }

    // A directory two interpreters claim is reported once, with the first.
    let mut copies = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    for (index, env) in environments.iter().enumerate() {
        for dir in &env.site_dirs {
            if reported.contains(&dir.as_str()) {
                continue;
            }
            reported.push(dir);
            let top_level = sites.read(image, dir)?.to_vec();
            for dist in &top_level {
                let owner = db.owner(&dist.dir);
                copies.push(PackageCopy {
                    origin: origin(dist, env, owner),
                    installer: installer(dist, owner),
                    distribution: dist.clone(),
                    environment: index,
                });
            }
            for (dist, parent) in vendored(image, dir, &top_level)? {
                let owner = db.owner(&dist.dir);
                let origin = match (owner, parent) {
                    (Some(owner), _) => foreign(owner),
                    (None, Ok(parent)) => Origin::Vendored(parent),
                    (None, Err(reason)) => Origin::Unsupported(reason),
                };
                copies.push(PackageCopy {
                    origin,
                    installer: installer(&dist, owner),
                    distribution: dist,
                    environment: index,
                });
            }
        }
    }

    let libc = Libc::detect(image, &db)?;
    let machine = machine(&context.architecture, &context.variant).map(str::to_string);
    Ok(Inventory {
        environments,
        copies,
        libc,
        machine,
    })
}

impl Inventory {
    /// The copies as the contract reports them.
    pub fn packages(&self) -> Vec<InstalledPackage> {
        self.copies.iter().map(|copy| self.package(copy)).collect()
    }

    /// One copy as the contract reports it. Its attributes carry what
    /// `releases` and `plan` read back: `interpreter`, `python-version`
    /// (`3.11`), `python-full-version` (`3.11.2`, when known),
    /// `externally-managed`, `installer`, `environment` (`system`, `venv`,
    /// `user`), `pip-version` (or `pip-bootstrap`, the version of the pip
    /// salve brings to an environment without one), `machine` (`x86_64`),
    /// `libc` (`glibc 2.36`), and `user` for user sites.
    pub fn package(&self, copy: &PackageCopy) -> InstalledPackage {
        let env = &self.environments[copy.environment];
        let dist = &copy.distribution;
        let mut attributes = vec![
            (
                "interpreter".to_string(),
                env.interpreter.clone().unwrap_or_default(),
            ),
            ("python-version".to_string(), env.python_version()),
        ];
        let mut optional = |key: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attributes.push((key.to_string(), value));
            }
        };
        optional("python-full-version", env.python_full.clone());
        optional(
            "externally-managed",
            Some(env.externally_managed.to_string()),
        );
        optional("installer", Some(copy.installer.clone()));
        optional("environment", Some(env.kind.as_str().to_string()));
        optional("pip-version", env.pip.clone());
        let bootstrapped = env.pip.is_none() && env.interpreter.is_some();
        optional(
            "pip-bootstrap",
            bootstrapped.then(|| crate::bootstrap::VERSION.to_string()),
        );
        optional("machine", self.machine.clone());
        optional("libc", Some(self.libc.to_attribute()));
        optional("user", env.user.as_ref().map(|u| u.name.clone()));

        InstalledPackage {
            name: dist.name.clone(),
            key: dist.key.clone(),
            version: dist.version.clone(),
            path: dist.metadata_path.clone(),
            scope: env.install_dir.clone(),
            origin: copy.origin.clone(),
            attributes,
        }
    }
}

/// Distributions of each site directory, read once.
#[derive(Default)]
struct Sites(HashMap<String, Vec<Distribution>>);

impl Sites {
    fn read(&mut self, image: &Image, dir: &str) -> Result<&[Distribution], Error> {
        if !self.0.contains_key(dir) {
            let found = distribution::read_all(image, dir)?;
            self.0.insert(dir.to_string(), found);
        }
        Ok(self.0.get(dir).map(Vec::as_slice).unwrap_or_default())
    }
}

fn foreign(owner: &Owner) -> Origin {
    Origin::Foreign(format!(
        "installed by {} as {}; patch with --pkg-types os",
        owner.manager.command(),
        owner.package
    ))
}

fn installer(dist: &Distribution, owner: Option<&Owner>) -> String {
    match (owner, &dist.installer) {
        (Some(owner), _) => owner.manager.command().to_string(),
        (None, Some(hint)) if !hint.is_empty() => hint.clone(),
        _ => "unknown".to_string(),
    }
}

/// The origin of a top-level distribution (see the module docs).
fn origin(dist: &Distribution, env: &Environment, owner: Option<&Owner>) -> Origin {
    if let Some(owner) = owner {
        return foreign(owner);
    }
    match dist.installer.as_deref() {
        Some("rpm") => {
            return Origin::Foreign(
                "installed by rpm (its INSTALLER file says so); patch with --pkg-types os".into(),
            );
        }
        Some("conda") => {
            return Origin::Foreign("installed by conda; update it with conda".into());
        }
        _ => {}
    }
    if let Some(reason) = env.unsupported_reason() {
        return Origin::Unsupported(reason);
    }

    let dir = &dist.dir;
    let reason = match dist.format {
        Format::Egg => Some(format!(
            "/{dir} is an egg from easy_install, which pip cannot replace"
        )),
        Format::EggInfoFile => Some(format!(
            "/{dir} is a single egg-info file written by distutils, which pip cannot uninstall"
        )),
        Format::VendorList => Some(format!("/{dir} lists copies vendored without metadata")),
        Format::DistInfo | Format::EggInfoDir if !dist.has_file_list => Some(format!(
            "/{dir} has no RECORD, so pip cannot uninstall it (installer: {})",
            dist.installer.as_deref().unwrap_or("unknown")
        )),
        Format::DistInfo | Format::EggInfoDir => None,
    };
    if let Some(reason) = reason {
        return Origin::Unsupported(reason);
    }
    if let Some(source) = &dist.editable_from {
        return Origin::Unsupported(format!(
            "an editable install of {source}; rebuild it from its source"
        ));
    }
    if dist.site_dir() != env.install_dir {
        let interpreter = env.interpreter.as_deref().unwrap_or("python");
        return Origin::Unsupported(format!(
            "in /{}, but pip run by {interpreter} installs into /{}, so a new version would not \
             replace this copy",
            dist.site_dir(),
            env.install_dir
        ));
    }
    Origin::Managed
}

/// A vendored copy and the distribution it lives in (or why none was
/// found).
type VendoredCopy = (Distribution, Result<VendoredIn, String>);

/// Distributions vendored inside the packages of a site directory.
fn vendored(
    image: &Image,
    site: &str,
    top_level: &[Distribution],
) -> Result<Vec<VendoredCopy>, Error> {
    let mut found = Vec::new();
    for entry in image.read_dir(site)? {
        if entry.kind != EntryKind::Dir || Format::of(&entry.name, true).is_some() {
            continue;
        }
        // One listing of the package instead of a probe per vendor name.
        let mut inside = Vec::new();
        for child in image.read_dir(&entry.path)? {
            if child.kind == EntryKind::Dir && VENDOR_DIRS.contains(&child.name.as_str()) {
                inside.extend(distribution::read_all(image, &child.path)?);
            }
        }
        // pip vendors without metadata and lists the copies instead.
        let listing = format!("{}/_vendor/vendor.txt", entry.path);
        if entry.name == "pip" && image.is_file(&listing) {
            inside.extend(vendor_list(&image.read_to_string(&listing)?, &listing));
        }
        if inside.is_empty() {
            continue;
        }

        let parent = parent_of_package(image, &entry.name, top_level)?;
        for dist in inside {
            let parent = parent.clone().ok_or_else(|| {
                format!(
                    "vendored in /{}, which no installed distribution claims",
                    entry.path
                )
            });
            found.push((dist, parent));
        }
    }
    Ok(found)
}

/// The distribution that installed the top-level package `package`: the one
/// of the same name, else the one whose `top_level.txt` or `RECORD` lists
/// it (`pkg_resources` belongs to setuptools).
fn parent_of_package(
    image: &Image,
    package: &str,
    top_level: &[Distribution],
) -> Result<Option<VendoredIn>, Error> {
    let as_parent = |d: &Distribution| VendoredIn {
        parent: d.key.clone(),
        parent_path: d.metadata_path.clone(),
    };
    let key = name::normalize(package);
    if let Some(dist) = top_level.iter().find(|d| d.key == key) {
        return Ok(Some(as_parent(dist)));
    }
    for dist in top_level {
        let listed = image.read_optional(&format!("{}/top_level.txt", dist.dir))?;
        if listed.is_some_and(|t| t.lines().any(|l| l.trim() == package)) {
            return Ok(Some(as_parent(dist)));
        }
        let record = image.read_optional(&format!("{}/RECORD", dist.dir))?;
        if record.is_some_and(|r| r.lines().any(|l| l.starts_with(&format!("{package}/")))) {
            return Ok(Some(as_parent(dist)));
        }
    }
    Ok(None)
}

/// The `name==version` lines of pip's `_vendor/vendor.txt`.
fn vendor_list(text: &str, path: &str) -> Vec<Distribution> {
    text.lines()
        .filter_map(|line| line.split('#').next())
        .filter_map(|line| line.split_once("=="))
        .filter(|(name, _)| name::is_valid(name.trim()))
        .map(|(name, version)| Distribution {
            name: name.trim().to_string(),
            key: name::normalize(name),
            version: version.trim().to_string(),
            dir: path.to_string(),
            metadata_path: path.to_string(),
            format: Format::VendorList,
            installer: None,
            has_file_list: false,
            editable_from: None,
            requires: Vec::new(),
        })
        .collect()
}
