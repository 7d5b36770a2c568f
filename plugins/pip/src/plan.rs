//! Turning updates into tasks the host runs in the image.
//!
//! **One task per package per environment.** The host runs each task on its
//! own snapshot and throws a failed one away, so a package whose install is
//! refused or breaks something costs only itself. Tasks of one environment
//! run in dependency-safe order: a package before the packages it requires
//! (moving `requests` first lets it relax its pin on `urllib3` before
//! `urllib3` moves), and pip itself last, so every other task runs with the
//! pip that detection saw.
//!
//! Each task, with the environment's own interpreter (`PY`) and the guard
//! script (`src/guard.py`) written into the staging directory:
//!
//! 1. write the guard script, and have it make the task's directory in
//!    staging (owned by the user of a user site);
//! 2. `PY guard snapshot`: record `pip check`'s problems and which of the
//!    package's top-level modules import;
//! 3. where pip has it (22.2 on), `PY -m pip install --dry-run --report`,
//!    then `PY guard review`: refuse when pip would not install exactly the
//!    target, would break an installed package's requirements, downgrade a
//!    package, or install over a copy the OS package manager owns;
//! 4. `PY -m pip install --no-cache-dir ... name==version`.
//!
//! An environment without pip first fetches salve's pinned pip wheel into
//! staging (see [`crate::bootstrap`]) and runs `PY <wheel>/pip` instead of
//! `PY -m pip`.
//!
//! Then the checks: exactly one copy of the package is left in the
//! environment's install directory and it is the target version; the
//! modules that imported before still import; `pip check` shows nothing new.
//!
//! pip runs with `--break-system-packages` only in environments carrying
//! PEP 668's marker (every copy planned here was installed by pip: apt's
//! are foreign and never planned), with `--user` as the user for user
//! sites, with `--index-url`/`--extra-index-url` only when the user named
//! sources other than the defaults (otherwise the image's own pip
//! configuration applies), and with `--cert` when the host provides a CA
//! bundle for the run.

use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{
    Check, Command, Error, FileWrite, Origin, OutputMatch, PackageUpdate, PlanContext, Step, Task,
};

use crate::environment::{self, Environment, Kind};
use crate::inventory::{self, Inventory, PackageCopy};
use crate::{DEFAULT_SOURCES, bootstrap, index, name, version};

/// The guard script run around every install.
const GUARD: &str = include_str!("guard.py");

/// One update, checked and matched to the copy it moves.
struct Planned<'a> {
    /// Index into the updates given to `plan`.
    index: usize,
    /// The project name, valid under PEP 508.
    name: &'a str,
    /// The target, in canonical PEP 440 spelling.
    target: String,
    /// The copy in the image.
    copy: &'a PackageCopy,
}

/// Plans the updates.
///
/// # Errors
///
/// An update names something that is not a valid project or version, or a
/// copy that is not in the image or that pip may not move; or the run has no
/// network.
pub fn plan(
    image: &Image,
    updates: &[PackageUpdate],
    context: &PlanContext,
) -> Result<Vec<Task>, Error> {
    if !context.network {
        return Err(Error::Unsupported(
            "pip downloads from the index, and this run has no network".into(),
        ));
    }
    let inventory = inventory::scan(image, &context.image)?;
    let planned = match_updates(&inventory, updates)?;

    // Environments in the order their first update appears.
    let mut by_environment: Vec<(usize, Vec<Planned<'_>>)> = Vec::new();
    for p in planned {
        match by_environment
            .iter_mut()
            .find(|(env, _)| *env == p.copy.environment)
        {
            Some((_, group)) => group.push(p),
            None => by_environment.push((p.copy.environment, vec![p])),
        }
    }

    let mut tasks = Vec::new();
    for (env_index, group) in by_environment {
        let env = &inventory.environments[env_index];
        let protected = protected_copies(&inventory, env);
        for p in dependency_order(group) {
            let modules = p.copy.distribution.top_level_modules(image)?;
            let task = Install {
                env,
                context,
                protected: &protected,
                modules,
                serial: tasks.len(),
            };
            tasks.push(task.build(&p)?);
        }
    }
    Ok(tasks)
}

/// Checks every update and finds the copy it names.
fn match_updates<'a>(
    inventory: &'a Inventory,
    updates: &'a [PackageUpdate],
) -> Result<Vec<Planned<'a>>, Error> {
    let mut planned: Vec<Planned<'a>> = Vec::new();
    for (index, update) in updates.iter().enumerate() {
        let package = &update.package;
        if !name::is_valid(&package.name) {
            return Err(Error::InvalidInput(format!(
                "update {index}: {:?} is not a valid Python project name",
                package.name
            )));
        }
        let target = version::info(&update.target)
            .map_err(|e| Error::InvalidInput(format!("update {index} ({}): {e}", package.name)))?
            .normalized;

        // The path names the copy; the scope and key find it when the path
        // is stale.
        let copy = inventory
            .copies
            .iter()
            .find(|c| c.distribution.metadata_path == package.path)
            .or_else(|| {
                inventory.copies.iter().find(|c| {
                    c.distribution.key == name::normalize(&package.name)
                        && inventory.environments[c.environment].install_dir == package.scope
                        && c.origin == Origin::Managed
                })
            })
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "update {index}: no copy of {} at /{} or in /{} is in the image",
                    package.name, package.path, package.scope
                ))
            })?;
        if copy.origin != Origin::Managed {
            return Err(Error::InvalidInput(format!(
                "update {index}: {} at /{} cannot be moved with pip: {}",
                package.name,
                copy.distribution.metadata_path,
                origin_reason(&copy.origin)
            )));
        }
        if let Some(earlier) = planned.iter().find(|p| std::ptr::eq(p.copy, copy)) {
            return Err(Error::InvalidInput(format!(
                "updates {} and {index} both move {} at /{}",
                earlier.index, package.name, copy.distribution.metadata_path
            )));
        }
        planned.push(Planned {
            index,
            name: &package.name,
            target,
            copy,
        });
    }
    Ok(planned)
}

fn origin_reason(origin: &Origin) -> String {
    match origin {
        Origin::Managed => "it is managed".into(),
        Origin::Foreign(why) | Origin::Unsupported(why) => why.clone(),
        Origin::Vendored(parent) => format!(
            "it is vendored inside {} (/{}); only moving {} can replace it",
            parent.parent, parent.parent_path, parent.parent
        ),
    }
}

/// Copies the OS package manager owns that this environment's pip would
/// shadow by installing the same project: `key=why`, for the guard. Only
/// the copy the interpreter imports counts (the first on its search path):
/// an apt copy already shadowed by a pip one is not touched again. A venv
/// shadows nothing outside itself.
fn protected_copies(inventory: &Inventory, env: &Environment) -> Vec<String> {
    if env.kind == Kind::Venv {
        return Vec::new();
    }
    let mut active: Vec<&PackageCopy> = Vec::new();
    for dir in &env.search_path {
        for copy in inventory
            .copies
            .iter()
            .filter(|c| c.distribution.site_dir() == dir)
        {
            if !active
                .iter()
                .any(|a| a.distribution.key == copy.distribution.key)
            {
                active.push(copy);
            }
        }
    }
    let mut protected: Vec<String> = active
        .into_iter()
        .filter_map(|c| match &c.origin {
            Origin::Foreign(why) => Some(format!("{}={why}", c.distribution.key)),
            _ => None,
        })
        .collect();
    protected.sort();
    protected
}

/// Orders one environment's updates: a package before those it requires
/// (input order among equals and in cycles), pip last.
fn dependency_order(group: Vec<Planned<'_>>) -> Vec<Planned<'_>> {
    let (mut pending, pip): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|p| p.copy.distribution.key != "pip");
    let mut ordered = Vec::with_capacity(pending.len() + pip.len());
    while !pending.is_empty() {
        // Next: the first package no other pending package requires.
        let required = |p: &Planned<'_>| {
            pending.iter().any(|other| {
                other
                    .copy
                    .distribution
                    .requires
                    .contains(&p.copy.distribution.key)
            })
        };
        let next = pending.iter().position(|p| !required(p)).unwrap_or(0);
        ordered.push(pending.remove(next));
    }
    ordered.extend(pip);
    ordered
}

/// What one install task needs to know.
struct Install<'a> {
    env: &'a Environment,
    context: &'a PlanContext,
    protected: &'a [String],
    modules: Vec<String>,
    /// The task's number in the plan, which names its files in staging.
    serial: usize,
}

/// The files of one task in the staging directory.
struct Files {
    /// The guard script.
    guard: String,
    /// The task's directory.
    work: String,
    /// What `snapshot` recorded.
    state: String,
    /// pip's `--report` of the dry run.
    report: String,
}

impl Install<'_> {
    fn build(&self, p: &Planned<'_>) -> Result<Task, Error> {
        let python = self.env.interpreter.clone().ok_or_else(|| {
            Error::InvalidInput(format!("/{} has no interpreter", self.env.install_dir))
        })?;
        let staging = self.context.staging_dir.trim_end_matches('/');
        let work = self.work_dir();
        let files = Files {
            guard: format!("{staging}/salve-pip-guard.py"),
            state: format!("{work}/before.json"),
            report: format!("{work}/report.json"),
            work,
        };
        let spec = format!("{}=={}", p.name, p.target);
        Ok(Task {
            description: format!("pip install {spec} in /{}", self.env.install_dir),
            updates: vec![p.index as u32],
            steps: self.steps(p, &python, &files, &spec),
            checks: self.checks(p, &python, &files),
        })
    }

    fn steps(&self, p: &Planned<'_>, python: &str, files: &Files, spec: &str) -> Vec<Step> {
        let mut steps = vec![Step::WriteFile(FileWrite {
            path: files.guard.clone(),
            contents: GUARD.as_bytes().to_vec(),
            mode: 0o644,
        })];
        if self.env.pip.is_none() {
            steps.push(Step::Fetch(bootstrap::fetch()));
        }

        // The task's files, writable by the user pip runs as.
        let mut workdir = vec!["workdir", "--path", &files.work];
        if let Some(user) = &self.env.user {
            workdir.extend(["--owner", &user.name]);
        }
        let mut as_root = self.guard(python, files, &workdir);
        as_root.user = None;
        steps.push(Step::Run(as_root));

        let mut snapshot = vec!["snapshot", "--state", &files.state];
        for module in &self.modules {
            snapshot.extend(["--module", module]);
        }
        steps.push(Step::Run(self.guard(python, files, &snapshot)));

        // Learn what the install would change, and refuse harm before it.
        if environment::pip_can_report(self.pip_version()) {
            let mut dry_run = self.pip_install(python);
            dry_run.extend(
                ["--dry-run", "--quiet", "--report", &files.report, spec].map(String::from),
            );
            steps.push(Step::Run(self.command(dry_run)));
            let mut review = vec![
                "review",
                "--report",
                &files.report,
                "--name",
                p.name,
                "--version",
                &p.target,
            ];
            for protected in self.protected {
                review.extend(["--protect", protected]);
            }
            steps.push(Step::Run(self.guard(python, files, &review)));
        }

        let mut install = self.pip_install(python);
        install.push(spec.to_string());
        steps.push(Step::Run(self.command(install)));
        steps
    }

    fn checks(&self, p: &Planned<'_>, python: &str, files: &Files) -> Vec<Check> {
        let site = format!("/{}", self.env.install_dir);
        let modules = if self.modules.is_empty() {
            "none found".to_string()
        } else {
            self.modules.join(", ")
        };
        vec![
            Check {
                description: format!(
                    "{} is {} in {site}, with no other copy beside it",
                    p.name, p.target
                ),
                command: self.guard(
                    python,
                    files,
                    &["installed", "--site", &site, "--name", p.name],
                ),
                exit_code: 0,
                stdout: OutputMatch::Equals(p.target.clone()),
            },
            Check {
                description: format!(
                    "the modules of {} that imported before still import ({modules})",
                    p.name
                ),
                command: self.guard(python, files, &["imports", "--state", &files.state]),
                exit_code: 0,
                stdout: OutputMatch::Any,
            },
            Check {
                description: format!("pip check shows no new problem in {site}"),
                command: self.guard(python, files, &["pip-check", "--state", &files.state]),
                exit_code: 0,
                stdout: OutputMatch::Any,
            },
        ]
    }

    /// `PY guard.py ARGS...`.
    fn guard(&self, python: &str, files: &Files, args: &[&str]) -> Command {
        let mut argv = vec![python.to_string(), files.guard.clone()];
        argv.extend(args.iter().map(|a| a.to_string()));
        self.command(argv)
    }

    /// The version of the pip that runs: the environment's own, or the one
    /// salve brings.
    fn pip_version(&self) -> &str {
        self.env.pip.as_deref().unwrap_or(bootstrap::VERSION)
    }

    /// The fetched pip wheel, for an environment without pip.
    fn bootstrap_pip(&self) -> Option<String> {
        self.env
            .pip
            .is_none()
            .then(|| bootstrap::entry_point(&self.context.staging_dir))
    }

    /// `PY -m pip install` (or `PY <wheel>/pip install`) and the options
    /// every install of this environment takes.
    fn pip_install(&self, python: &str) -> Vec<String> {
        let mut argv = vec![python.to_string()];
        match self.bootstrap_pip() {
            Some(wheel) => argv.push(wheel),
            None => argv.extend(["-m".to_string(), "pip".to_string()]),
        }
        argv.extend(
            [
                "install",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--no-input",
                "--upgrade-strategy",
                "only-if-needed",
            ]
            .map(String::from),
        );
        if self.env.kind == Kind::User {
            argv.push("--user".into());
        }
        if self.env.externally_managed
            && environment::pip_can_break_system_packages(self.pip_version())
        {
            argv.push("--break-system-packages".into());
        }
        argv.extend(index_options(&self.context.sources));
        if let Some(ca) = &self.context.ca_bundle {
            argv.extend(["--cert".to_string(), ca.clone()]);
        }
        argv
    }

    /// The task's directory in staging.
    fn work_dir(&self) -> String {
        let staging = self.context.staging_dir.trim_end_matches('/');
        format!("{staging}/pip-task-{}", self.serial)
    }

    /// A command of this environment: run from `/` (so a working directory
    /// full of application modules cannot shadow pip's), without writing
    /// bytecode for the tools themselves, with temporary files in the
    /// task's staging directory rather than the image's `/tmp`, as the
    /// site's user.
    fn command(&self, argv: Vec<String>) -> Command {
        let mut command = Command::new(argv)
            .cwd("/")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("TMPDIR", self.work_dir());
        if let Some(user) = &self.env.user {
            command = command
                .env("HOME", user.home.clone())
                .user(user.name.clone());
        }
        // The guard runs `pip check` with the same pip.
        if let Some(wheel) = self.bootstrap_pip() {
            command = command.env("SALVE_PIP", wheel);
        }
        command
    }
}

/// `--index-url` and `--extra-index-url` for the indexes among the sources
/// the user named (see [`index::indexes`]); none when they are the plugin's
/// defaults, so the image's own pip configuration applies.
fn index_options(sources: &[String]) -> Vec<String> {
    let trimmed = |s: &str| s.trim_end_matches('/').to_string();
    let given: Vec<String> = sources.iter().map(|s| trimmed(s)).collect();
    let defaults: Vec<String> = DEFAULT_SOURCES.iter().map(|s| trimmed(s)).collect();
    if given == defaults {
        return Vec::new();
    }
    let mut options = Vec::new();
    for (n, index) in index::indexes(sources).enumerate() {
        let flag = if n == 0 {
            "--index-url"
        } else {
            "--extra-index-url"
        };
        options.extend([flag.to_string(), index.clone()]);
    }
    options
}
