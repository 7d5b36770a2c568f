//! Python environments in an image: which interpreter owns which site
//! directories, and where `pip install` writes for it.
//!
//! Three kinds are found:
//!
//! - **system** environments, one per interpreter named `python3.X` in
//!   `/usr/bin` or `/usr/local/bin`. Their site directories depend on who
//!   built the interpreter:
//!   - Debian and Ubuntu (`/usr/bin/python3.X` next to
//!     `/usr/lib/python3/dist-packages`): apt installs into
//!     `/usr/lib/python3/dist-packages`, pip as root into
//!     `/usr/local/lib/python3.X/dist-packages`;
//!   - a Python built from source, as in the official `python` images
//!     (`/usr/local/bin/python3.X`): `/usr/local/lib/python3.X/site-packages`;
//!   - other distributions (`/usr/bin/python3.X`: Alpine, Fedora...):
//!     `/usr/lib/python3.X/site-packages` (and `lib64`), and
//!     `/usr/local/lib/python3.X/site-packages` where it exists (Fedora's pip
//!     installs there).
//! - **virtual environments** anywhere in the image, marked by `pyvenv.cfg`
//!   (`/opt/venv`, `/app/.venv`, `~/.cache/pypoetry/virtualenvs/*`), with
//!   their own `bin/python` and `lib/python3.X/site-packages`.
//! - **user sites**, `~/.local/lib/python3.X/site-packages` of root and of
//!   the users in `/etc/passwd` and `/home`, run by the system interpreter of
//!   the same version, as that user, with `pip install --user`.
//!
//! Each environment's **install directory** (the site directory pip writes
//! to for that interpreter and user) is the `scope` of the packages found in
//! it: packages in one scope are patched by one pip.

use salve_plugin_sdk::image::{Find, Image, parent_of};
use salve_plugin_sdk::metadata;
use salve_plugin_sdk::{Error, ImageContext};

use crate::ospackages::{self, Database};

/// Debian's directory for Python packages installed by apt.
const DEBIAN_DIST_PACKAGES: &str = "usr/lib/python3/dist-packages";

/// How deep below the image root `pyvenv.cfg` is looked for: deep enough for
/// `/root/.cache/pypoetry/virtualenvs/app-AbC-py3.11/pyvenv.cfg`.
const VENV_SEARCH_DEPTH: usize = 6;

/// Directories never searched for virtual environments: kernel file
/// systems, package trees and documentation, which are large and hold none.
const VENV_SEARCH_SKIP: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "node_modules",
    ".git",
    "__pycache__",
    "site-packages",
    "dist-packages",
    "doc",
    "man",
    "locale",
    "zoneinfo",
    "terminfo",
    "i18n",
    "fonts",
    "icons",
];

/// What kind of environment this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An interpreter installed in `/usr` or `/usr/local`.
    System,
    /// A virtual environment (`pyvenv.cfg`).
    Venv,
    /// A user's `~/.local` site.
    User,
}

impl Kind {
    /// The attribute spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::System => "system",
            Kind::Venv => "venv",
            Kind::User => "user",
        }
    }
}

/// A user whose `~/.local` site an environment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name, from `/etc/passwd`.
    pub name: String,
    /// Home directory, absolute in the image.
    pub home: String,
}

/// One Python environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    /// What kind it is.
    pub kind: Kind,
    /// The interpreter to run, absolute in the image, as it must be invoked
    /// (a venv's own `bin/python`, not the interpreter it links to). `None`
    /// when the image has none that works.
    pub interpreter: Option<String>,
    /// CPython's major and minor version, when known.
    pub python: Option<(u64, u64)>,
    /// The full version (`3.11.2`), when the image says it.
    pub python_full: Option<String>,
    /// Where `pip install` writes for this interpreter and user, relative to
    /// the image root: the scope of its packages.
    pub install_dir: String,
    /// The site directories whose distributions belong to this environment.
    pub site_dirs: Vec<String>,
    /// Every site directory the interpreter sees, in `sys.path` order.
    pub search_path: Vec<String>,
    /// True when PEP 668's `EXTERNALLY-MANAGED` marker applies.
    pub externally_managed: bool,
    /// The user of a user site.
    pub user: Option<User>,
    /// The version of the pip this interpreter runs, when it has one
    /// (filled in by `inventory`, which reads the site directories). One
    /// without gets salve's own (see `bootstrap`).
    pub pip: Option<String>,
}

impl Environment {
    /// `3.11`, or empty when unknown.
    pub fn python_version(&self) -> String {
        self.python
            .map(|(major, minor)| format!("{major}.{minor}"))
            .unwrap_or_default()
    }

    /// Why pip cannot patch this environment, if it cannot.
    pub fn unsupported_reason(&self) -> Option<String> {
        let install = &self.install_dir;
        if self.interpreter.is_none() {
            return Some(match self.kind {
                Kind::Venv => format!(
                    "the virtual environment's interpreter in /{} is missing or links outside \
                     the image",
                    parent_of(parent_of(parent_of(install)))
                ),
                _ => format!("no Python interpreter for /{install} was found in the image"),
            });
        }
        if let Some((3, minor)) = self.python
            && minor < 8
        {
            return Some(format!(
                "Python 3.{minor} is older than 3.8, which salve's install checks need"
            ));
        }
        // Without a pip of its own, the environment gets salve's.
        let pip = self.pip.as_deref().unwrap_or(crate::bootstrap::VERSION);
        if self.externally_managed && !pip_can_break_system_packages(pip) && pip_honours_marker(pip)
        {
            return Some(format!(
                "pip {pip} refuses to install into this externally managed environment and has \
                 no --break-system-packages (added in pip 23.0.1)"
            ));
        }
        if self.kind == Kind::User && self.user.is_none() {
            return Some(format!(
                "no user in /etc/passwd owns the home directory of /{install}"
            ));
        }
        None
    }
}

/// True for pip versions that know `--break-system-packages` (23.0.1 on).
pub fn pip_can_break_system_packages(pip: &str) -> bool {
    pip_at_least(pip, "23.0.1")
}

/// True for pip versions that read PEP 668's marker (23.0 on).
fn pip_honours_marker(pip: &str) -> bool {
    pip_at_least(pip, "23.0")
}

/// True for pip versions with `install --dry-run --report` (22.2 on).
pub fn pip_can_report(pip: &str) -> bool {
    pip_at_least(pip, "22.2")
}

fn pip_at_least(pip: &str, minimum: &str) -> bool {
    crate::version::compare(pip, minimum).is_ok_and(|o| o.is_ge())
}

/// Finds every Python environment in the image.
///
/// # Errors
///
/// A directory or file on the way cannot be read.
pub fn discover(
    image: &Image,
    context: &ImageContext,
    db: &Database,
) -> Result<Vec<Environment>, Error> {
    let mut found = system(image, context, db)?;
    let venvs = venvs(image, &found)?;
    let users = user_sites(image, &found)?;
    found.extend(venvs);
    found.extend(users);

    let orphans = orphan_sites(image, &found)?;
    found.extend(orphans);
    Ok(found)
}

/// `(3, 11)` from `python3.11`.
fn minor_of(name: &str) -> Option<(u64, u64)> {
    let digits = name.strip_prefix("python")?;
    let (major, minor) = digits.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The system interpreters and their site directories.
fn system(image: &Image, context: &ImageContext, db: &Database) -> Result<Vec<Environment>, Error> {
    // Debian shares /usr/lib/python3/dist-packages between its interpreters;
    // it belongs to the one `python3` names.
    let debian = image.is_dir(DEBIAN_DIST_PACKAGES);
    // An unresolvable link (see `venv_interpreter`) means "not this one".
    let default_python = image.resolve("usr/bin/python3").ok();

    let mut found = Vec::new();
    for prefix in ["usr/local", "usr"] {
        for path in image.glob(&format!("{prefix}/bin/python3.*"))? {
            let name = path.rsplit('/').next().unwrap_or_default();
            let Some((major, minor)) = minor_of(name) else {
                continue;
            };
            if !image.is_file(&path) {
                continue;
            }

            let owns_shared = image.resolve(&path).ok() == default_python;
            let layout = Layout::of(image, prefix, (major, minor), debian, owns_shared);
            let lib = format!("{prefix}/lib/python{major}.{minor}");
            found.push(Environment {
                kind: Kind::System,
                interpreter: Some(format!("/{path}")),
                python: Some((major, minor)),
                python_full: full_version(context, db, prefix, (major, minor)),
                install_dir: layout.install_dir,
                site_dirs: layout.site_dirs,
                search_path: layout.search_path,
                externally_managed: image.is_file(&format!("{lib}/EXTERNALLY-MANAGED")),
                user: None,
                pip: None,
            });
        }
    }
    Ok(found)
}

/// Where a system interpreter's packages live.
struct Layout {
    /// Where `pip install` writes as root.
    install_dir: String,
    /// The site directories whose packages are reported with it.
    site_dirs: Vec<String>,
    /// Every site directory it sees, in `sys.path` order.
    search_path: Vec<String>,
}

impl Layout {
    /// The layout of `python3.X` under `prefix` (`usr` or `usr/local`).
    /// `debian`: the image has Debian's shared dist-packages, which belongs
    /// to the interpreter `python3` names (`owns_shared`).
    fn of(
        image: &Image,
        prefix: &str,
        (major, minor): (u64, u64),
        debian: bool,
        owns_shared: bool,
    ) -> Layout {
        let lib = format!("{prefix}/lib/python{major}.{minor}");
        if prefix == "usr" && debian {
            let local = format!("usr/local/lib/python{major}.{minor}/dist-packages");
            let search_path = vec![
                local.clone(),
                DEBIAN_DIST_PACKAGES.into(),
                format!("{lib}/dist-packages"),
            ];
            let mut site_dirs = search_path.clone();
            if !owns_shared {
                site_dirs.retain(|d| d != DEBIAN_DIST_PACKAGES);
            }
            return Layout {
                install_dir: local,
                site_dirs,
                search_path,
            };
        }
        if prefix == "usr/local" {
            let site = format!("{lib}/site-packages");
            return Layout {
                install_dir: site.clone(),
                site_dirs: vec![site.clone()],
                search_path: vec![site],
            };
        }

        // Fedora's pip writes to /usr/local when that directory exists;
        // Alpine's and others' to the interpreter's own site-packages.
        let local = format!("usr/local/lib/python{major}.{minor}/site-packages");
        let lib64 = format!("usr/lib64/python{major}.{minor}/site-packages");
        let system = format!("{lib}/site-packages");
        let install_dir = if image.is_dir(&local) {
            local.clone()
        } else {
            system.clone()
        };
        let dirs = vec![local, lib64, system];
        Layout {
            install_dir,
            site_dirs: dirs.clone(),
            search_path: dirs,
        }
    }
}

/// The full version of a system interpreter: the official images' own
/// `PYTHON_VERSION` variable for `/usr/local`, else the OS package that
/// installed it.
fn full_version(
    context: &ImageContext,
    db: &Database,
    prefix: &str,
    (major, minor): (u64, u64),
) -> Option<String> {
    let ours = |v: &str| {
        v.starts_with(&format!("{major}.{minor}."))
            .then(|| v.to_string())
    };
    if prefix == "usr/local" {
        return context.env_var("PYTHON_VERSION").and_then(ours);
    }
    let packages = [
        format!("python{major}.{minor}-minimal"),
        format!("libpython{major}.{minor}-minimal"),
        format!("python{major}"),
        format!("python{major}{minor}"),
    ];
    packages
        .iter()
        .filter_map(|p| db.version(p))
        .map(ospackages::upstream_version)
        .find_map(ours)
}

/// Virtual environments, wherever a `pyvenv.cfg` is.
fn venvs(image: &Image, systems: &[Environment]) -> Result<Vec<Environment>, Error> {
    let find = Find {
        name: "pyvenv.cfg",
        max_depth: VENV_SEARCH_DEPTH,
        skip_dirs: VENV_SEARCH_SKIP,
    };
    let mut found = Vec::new();
    for cfg in image.find("", &find)? {
        let root = parent_of(&cfg).to_string();
        let fields = metadata::assignments(&image.read_to_string(&cfg)?);
        let include_system = fields
            .get("include-system-site-packages")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let stated = fields.get("version_info").or_else(|| fields.get("version"));

        for site in image.glob(&format!("{root}/lib/python3.*/site-packages"))? {
            let lib_name = parent_of(&site).rsplit('/').next().unwrap_or_default();
            let Some(python) = minor_of(lib_name) else {
                continue;
            };
            let python_full = stated.and_then(|v| {
                let (major, minor) = python;
                let release: Vec<&str> = v.split('.').take(3).collect();
                (v.starts_with(&format!("{major}.{minor}.")) && release.len() == 3)
                    .then(|| release.join("."))
            });
            let interpreter = venv_interpreter(image, &root, python, &fields);

            let mut search_path = vec![site.clone()];
            if include_system {
                let home = fields.get("home").unwrap_or_default().trim_matches('/');
                if let Some(base) = base_for(systems, python, Some(home)) {
                    search_path.extend(base.search_path.iter().cloned());
                }
            }
            found.push(Environment {
                kind: Kind::Venv,
                interpreter,
                python: Some(python),
                python_full,
                install_dir: site.clone(),
                site_dirs: vec![site],
                search_path,
                externally_managed: false,
                user: None,
                pip: None,
            });
        }
    }
    Ok(found)
}

/// The interpreter of a venv: its `bin/python` (or `python3`, `python3.X`).
///
/// That is a link to the base interpreter, and usually an absolute one
/// (`/usr/bin/python3`), which the WASI sandbox refuses to read: inside the
/// plugin an absolute link cannot be followed. So a link counts when it
/// resolves to a file, or when the base interpreter `pyvenv.cfg` names
/// (`executable`, `base-executable`, or `home` and the usual names) is in
/// the image.
fn venv_interpreter(
    image: &Image,
    root: &str,
    (major, minor): (u64, u64),
    cfg: &metadata::Fields,
) -> Option<String> {
    let names = [
        "python".to_string(),
        format!("python{major}"),
        format!("python{major}.{minor}"),
    ];
    let home = cfg.get("home").unwrap_or_default().trim_end_matches('/');
    let mut bases: Vec<String> = ["executable", "base-executable"]
        .iter()
        .filter_map(|key| cfg.get(key).map(str::to_string))
        .collect();
    if !home.is_empty() {
        bases.extend(names.iter().rev().map(|name| format!("{home}/{name}")));
    }
    let base_present = || bases.iter().any(|b| image.is_file(b));

    names
        .iter()
        .map(|name| format!("{root}/bin/{name}"))
        .find_map(|path| {
            let usable = image.is_file(&path) || (image.is_symlink(&path) && base_present());
            usable.then(|| format!("/{path}"))
        })
}

/// The entries of a directory, or none when it cannot be listed (a link
/// the sandbox cannot follow); the reason is logged.
fn listing(image: &Image, path: &str) -> Vec<salve_plugin_sdk::image::Entry> {
    image.read_dir(path).unwrap_or_else(|e| {
        salve_plugin_sdk::host::debug(&format!("/{path} not searched: {e}"));
        Vec::new()
    })
}

/// The system environment of a Python version, preferring the one whose
/// interpreter lives in `bin_dir`.
fn base_for<'a>(
    systems: &'a [Environment],
    python: (u64, u64),
    bin_dir: Option<&str>,
) -> Option<&'a Environment> {
    let same_version = || {
        systems
            .iter()
            .filter(move |e| e.kind == Kind::System && e.python == Some(python))
    };
    let in_dir = |e: &&Environment| {
        let dir = e
            .interpreter
            .as_deref()
            .map(|i| parent_of(i).trim_matches('/'));
        bin_dir.is_some() && dir == bin_dir
    };
    same_version()
        .find(in_dir)
        .or_else(|| same_version().next())
}

/// `~/.local` sites of root and of every user with a home directory.
fn user_sites(image: &Image, systems: &[Environment]) -> Result<Vec<Environment>, Error> {
    let passwd = image.read_optional("etc/passwd")?.unwrap_or_default();
    let users: Vec<User> = passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, home) = (fields.first()?, fields.get(5)?);
            Some(User {
                name: name.to_string(),
                home: home.trim_end_matches('/').to_string(),
            })
        })
        .filter(|u| !u.home.is_empty() && u.home != "/")
        .collect();

    let mut homes: Vec<String> = users
        .iter()
        .map(|u| u.home.trim_matches('/').to_string())
        .collect();
    homes.push("root".into());
    homes.extend(listing(image, "home").into_iter().map(|e| e.path));
    homes.sort();
    homes.dedup();

    let mut found = Vec::new();
    for home in homes {
        for site in image.glob(&format!("{home}/.local/lib/python3.*/site-packages"))? {
            let lib_name = parent_of(&site).rsplit('/').next().unwrap_or_default();
            let Some(python) = minor_of(lib_name) else {
                continue;
            };
            let base = base_for(systems, python, None);
            let user = users
                .iter()
                .find(|u| u.home.trim_matches('/') == home)
                .cloned();
            let mut search_path = vec![site.clone()];
            search_path.extend(base.iter().flat_map(|b| b.search_path.iter().cloned()));
            found.push(Environment {
                kind: Kind::User,
                interpreter: base.and_then(|b| b.interpreter.clone()),
                python: Some(python),
                python_full: base.and_then(|b| b.python_full.clone()),
                install_dir: site.clone(),
                site_dirs: vec![site],
                search_path,
                externally_managed: base.is_some_and(|b| b.externally_managed),
                user,
                pip: None,
            });
        }
    }
    Ok(found)
}

/// Site directories no interpreter claims (a Python removed from the image,
/// a stage copied from elsewhere): their packages are reported, and cannot be
/// patched.
fn orphan_sites(image: &Image, claimed: &[Environment]) -> Result<Vec<Environment>, Error> {
    let patterns = [
        DEBIAN_DIST_PACKAGES,
        "usr/lib/python3.*/site-packages",
        "usr/lib/python3.*/dist-packages",
        "usr/lib64/python3.*/site-packages",
        "usr/local/lib/python3.*/site-packages",
        "usr/local/lib/python3.*/dist-packages",
    ];
    let mut found = Vec::new();
    for pattern in patterns {
        for site in image.glob(pattern)? {
            if !image.is_dir(&site) || claimed.iter().any(|e| e.site_dirs.contains(&site)) {
                continue;
            }
            let lib_name = parent_of(&site).rsplit('/').next().unwrap_or_default();
            found.push(Environment {
                kind: Kind::System,
                interpreter: None,
                python: minor_of(lib_name),
                python_full: None,
                install_dir: site.clone(),
                site_dirs: vec![site.clone()],
                search_path: vec![site],
                externally_managed: false,
                user: None,
                pip: None,
            });
        }
    }
    Ok(found)
}
