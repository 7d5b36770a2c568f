//! Planning: turning updates into npm runs that leave each project
//! consistent.
//!
//! Per root (an application, or a global package's own tree), each direct
//! dependency and each transitive package name is its own task, so that one
//! package npm cannot move does not sink the others; tasks run in order and
//! each builds on what the tasks before it left.
//!
//! - a **direct** dependency gets a new spec in `package.json` (npm refuses
//!   overrides of direct dependencies, EOVERRIDE): first the exact target,
//!   so that npm installs exactly that version, then the user's own style
//!   (`^4.19.2`), which the locked version satisfies;
//! - a **transitive** copy is pinned with an `overrides` entry, then
//!   `npm install` reconciles the lockfile and `node_modules`. The entry is
//!   as narrow as the image's npm applies correctly (see
//!   [`OverrideForm`]): `"qs@6.7.0": "6.7.3"` on npm 11.2 and later, else
//!   one entry per dependent, keyed by the dependent's version
//!   (`"express@4.17.1": {"qs": "6.7.3"}`), so that the pin lapses by
//!   itself if that dependent moves;
//! - a **global package** moves with `npm install -g name@version`.
//!
//! Direct and transitive moves in one project interact: a new express
//! brings its own qs and cookie. When both kinds move, the plan first asks
//! for a dry run of the direct moves (a probe: `npm install
//! --package-lock-only` on a copy of the lockfile) and then runs the direct
//! moves first, pins only the copies they leave below their targets (keyed
//! by the new dependents), and merely checks the copies they replaced.
//! Without a dry run (no lockfile, or no direct move), transitive names go
//! first, a package before the packages that require it.
//!
//! Every npm run skips install scripts, the audit and funding calls, keeps
//! its cache in the staging directory, trusts the run's CA bundle, and
//! neither installs nor removes development dependencies: it includes them
//! when they are on disk and omits them when they are not.
//!
//! Checks: the dependents of each moved copy load the target version,
//! `npm ls` is clean, the lockfile still agrees with `package.json` (`npm ci
//! --dry-run`, on a copy of the two files: npm 9's dry run empties
//! `node_modules` first), and a before/after listing of the whole tree
//! shows no change that is not a target or something a target needs.
//!
//! What was learned running these plans by hand on Debian bookworm's
//! nodejs 18.20 and npm 9.2.0 (a debootstrapped root with `chroot`, and the
//! test bed's `salve-testbed/node:bookworm` image with `docker exec`), on
//! npm 10.8.2 and on npm 11.19 (an application with express 4.17.1, axios
//! 0.19.0, mkdirp 0.5.1 and rc 1.2.8 locked, lodash as a development
//! dependency):
//!
//! - npm 9.2 and 10.8 ignore a root selector for a hoisted copy whose
//!   dependents sort after it in the lockfile (`cookie`, required by
//!   `express`; `send`, required by `serve-static`), and `npm ls` then
//!   reports the copy invalid; per-dependent entries moved every copy tried
//!   (qs, cookie, send, body-parser, path-to-regexp, ini, both minimists,
//!   follow-redirects), `npm ls` and `npm ci --dry-run` passed, and a
//!   second `npm install` changed nothing. npm 11.19 moved all nine in
//!   place with selectors;
//! - with per-dependent entries npm may place the new copy under the
//!   dependent instead of where the old one was (minimist 0.0.8 moved from
//!   `node_modules/minimist` to `node_modules/mkdirp/node_modules/minimist`
//!   on 9.2; npm 11 nests `send` under both of its dependents), so checks
//!   follow what the dependents load, not the old path;
//! - a dependent's key that names a direct dependency needs `".":
//!   "$name"`, or npm reads the key's version as an override of the direct
//!   dependency and stops with EOVERRIDE;
//! - `npm install` converts a version 1 lockfile to version 3 (fetching
//!   each package's metadata once); version 2 and 3 lockfiles keep their
//!   version;
//! - `--no-package-lock` (a global package's tree, or a project without a
//!   lockfile) still writes `node_modules/.package-lock.json`; plans remove
//!   it where the image had none;
//! - npm resolves a root's whole development tree just to omit it, so an
//!   installed global package's `devDependencies` are dropped first;
//! - npm 9's `npm ci --dry-run` empties `node_modules` before it looks, so
//!   the lockfile check runs on a copy of the two files.

use std::collections::BTreeMap;

use nodejs_semver::Version;
use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{
    Answers, Check, Command, Error, Origin, OutputMatch, PackageUpdate, PlanContext, Planned,
    Probe, ProbeResult, Step, Task, host,
};

use crate::detect::attr;
use crate::project::{GLOBAL_DIRS, Kind, Manager, Project, Root};
use crate::script::{self, Dependent, DryRun, Edits, Target};
use crate::tools::{OverrideForm, Tools};
use crate::tree::{Tree, join};
use crate::{name, spec, version};

/// The registry npm uses unless told otherwise.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// Plans every update, or asks for the dry runs it needs first.
///
/// A project where both direct and transitive dependencies move is planned
/// against the tree the direct moves lead to: a new express brings its own
/// qs and cookie, which may already be fixed (nothing to pin) or still
/// vulnerable at a version nobody detected (pin that one). The `dry-run`
/// probe applies the direct moves to a copy of the lockfile and reports it.
///
/// # Errors
///
/// An update names an invalid package or version, a copy salve may not
/// move, or a copy that is no longer in the image as detected; a root
/// cannot be read; a probe's answer cannot be read.
pub fn plan(
    image: &Image,
    updates: &[PackageUpdate],
    context: &PlanContext,
    answers: &Answers,
) -> Result<Planned, Error> {
    let mut by_scope: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, update) in updates.iter().enumerate() {
        validate(update)?;
        by_scope.entry(&update.package.scope).or_default().push(i);
    }
    let mut tasks = Vec::new();
    let mut probes = Vec::new();
    for (scope, indexes) in by_scope {
        let (globals, inside): (Vec<usize>, Vec<usize>) = indexes
            .into_iter()
            .partition(|&i| updates[i].package.attribute(attr::DEPENDENCY) == Some("global"));
        for i in globals {
            tasks.push(global_move(&updates[i], i, context)?);
        }
        if inside.is_empty() {
            continue;
        }
        let mut planner = Planner::new(image, scope, updates, context)?;
        let split = planner.split(&inside)?;
        if let Some(probe) = planner.dry_run(&split) {
            match answers.get(&probe.id) {
                Some(answer) => planner.future = future(answer),
                None => {
                    probes.push(probe);
                    continue;
                }
            }
        }
        tasks.extend(planner.tasks(split)?);
    }
    if probes.is_empty() {
        Ok(Planned::Tasks(tasks))
    } else {
        Ok(Planned::Probes(probes))
    }
}

/// The tree a dry run reported; `None` when the direct moves fail there
/// (their tasks will fail the same way and say why) or the answer cannot
/// be read, and the plan falls back to today's tree.
fn future(answer: &ProbeResult) -> Option<DryRun> {
    if answer.exit_code != 0 {
        host::debug(&format!(
            "{}: the dry run failed ({}); planning against today's tree: {}",
            answer.id, answer.exit_code, answer.stderr
        ));
        return None;
    }
    match serde_json::from_str(answer.stdout.trim()) {
        Ok(tree) => Some(tree),
        Err(e) => {
            host::warn(&format!(
                "{}: the dry run printed no tree ({e}); planning against today's tree",
                answer.id
            ));
            None
        }
    }
}

/// Why an update cannot be planned; each names the copy's path.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The package name breaks npm's rules.
    #[error("/{path}: {reason}")]
    Name {
        /// The copy's `package.json`.
        path: String,
        /// What is wrong with the name.
        reason: String,
    },
    /// The target is not a version.
    #[error("/{path}: target {reason}")]
    Target {
        /// The copy's `package.json`.
        path: String,
        /// What is wrong with the target.
        reason: String,
    },
    /// Detection said salve may not move the copy.
    #[error("/{path}: {name} {version} is not a copy salve may move: {why}")]
    NotMovable {
        /// The copy's `package.json`.
        path: String,
        /// Its name.
        name: String,
        /// Its version.
        version: String,
        /// What detection said.
        why: String,
    },
    /// The image no longer holds the copy as detected.
    #[error("/{path}: {why}; detect again")]
    Stale {
        /// The copy's `package.json`.
        path: String,
        /// What differs.
        why: String,
    },
    /// A copy marked global outside the global directories.
    #[error("/{path}: a global package outside {}", GLOBAL_DIRS.join(" and "))]
    NotGlobal {
        /// The copy's `package.json`.
        path: String,
    },
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        Error::InvalidInput(refusal.to_string())
    }
}

/// Refuses an update that must not reach a command line.
fn validate(update: &PackageUpdate) -> Result<(), Refusal> {
    let package = &update.package;
    let path = || package.path.clone();
    name::validate(&package.name).map_err(|reason| Refusal::Name {
        path: path(),
        reason,
    })?;
    target(update)?;
    let why = match &package.origin {
        Origin::Managed => return Ok(()),
        Origin::Foreign(why) | Origin::Unsupported(why) => why.clone(),
        Origin::Vendored(parent) => format!("it ships inside {}", parent.parent),
    };
    Err(Refusal::NotMovable {
        path: path(),
        name: package.name.clone(),
        version: package.version.clone(),
        why,
    })
}

/// The update's target as a version.
fn target(update: &PackageUpdate) -> Result<Version, Refusal> {
    version::parse(&update.target).map_err(|reason| Refusal::Target {
        path: update.package.path.clone(),
        reason,
    })
}

/// The npm command line every run shares.
#[derive(Clone, Debug)]
struct Npm {
    /// Options after the subcommand.
    options: Vec<String>,
}

impl Npm {
    fn new(context: &PlanContext) -> Npm {
        let cache = join(&context.staging_dir, "npm-cache");
        let mut options: Vec<String> = [
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--cache",
            cache.as_str(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(ca) = &context.ca_bundle {
            options.extend(["--cafile".to_string(), ca.clone()]);
        }
        // The user's sources when they chose some; otherwise the project's
        // own .npmrc (or npm's default) decides.
        if let Some(registry) = context.sources.first()
            && context.sources != [DEFAULT_REGISTRY]
        {
            options.extend(["--registry".to_string(), registry.clone()]);
        }
        Npm { options }
    }

    /// The shared options followed by `extra`.
    fn options_with(&self, extra: &[&str]) -> Vec<String> {
        let mut all = self.options.clone();
        all.extend(extra.iter().map(|s| s.to_string()));
        all
    }

    /// `npm <words...> <options> <extra...>` in `cwd`.
    fn command(&self, words: &[&str], extra: &[&str], cwd: &str) -> Command {
        let mut argv: Vec<String> = std::iter::once("npm")
            .chain(words.iter().copied())
            .map(String::from)
            .collect();
        argv.extend(self.options.iter().cloned());
        argv.extend(extra.iter().map(|s| s.to_string()));
        Command::new(argv)
            .cwd(cwd)
            .env("npm_config_update_notifier", "false")
    }
}

/// A check that `command` exits 0, whatever it prints.
fn succeeds(description: String, command: Command) -> Check {
    Check {
        description,
        command,
        exit_code: 0,
        stdout: OutputMatch::Any,
    }
}

/// The task moving a globally installed package.
fn global_move(update: &PackageUpdate, index: usize, context: &PlanContext) -> Result<Task, Error> {
    let package = &update.package;
    let global_dir = GLOBAL_DIRS
        .iter()
        .find(|d| package.scope.starts_with(&format!("{d}/")))
        .ok_or_else(|| Refusal::NotGlobal {
            path: package.path.clone(),
        })?;
    let prefix = format!("/{}", global_dir.trim_end_matches("/lib/node_modules"));
    let lib = format!("{prefix}/lib");
    let target = target(update)?.to_string();
    let spec = format!("{}@{target}", package.name);
    let before = join(&context.staging_dir, "npm-tree-before.json");
    let npm = Npm::new(context);

    let steps = vec![
        Step::Run(script::snapshot(&lib, &before)),
        Step::Run(npm.command(&["install", "-g", &spec], &["--prefix", &prefix], "/")),
    ];
    let moved = Target {
        name: package.name.clone(),
        location: format!("node_modules/{}", package.name),
        version: target.clone(),
        dependents: vec![Dependent::root()],
    };
    let checks = vec![
        Check {
            description: format!("{} reads {target}", package.name),
            command: script::versions(&lib, &package.name, &[String::new()]),
            exit_code: 0,
            stdout: OutputMatch::Equals(target.clone()),
        },
        succeeds(
            format!(
                "only {} and what it needs changed in /{global_dir}",
                package.name
            ),
            script::compare(&lib, &before, &[moved]),
        ),
        succeeds(
            format!("npm ls is clean for /{}", package.scope),
            npm.command(
                &["ls", "--all"],
                &["--omit=dev"],
                &format!("/{}", package.scope),
            ),
        ),
    ];
    Ok(Task {
        description: format!("npm install -g {spec} (was {})", package.version),
        updates: vec![index as u32],
        steps,
        checks,
    })
}

/// Plans the updates inside one root.
struct Planner<'a> {
    updates: &'a [PackageUpdate],
    context: &'a PlanContext,
    project: Project,
    tools: Tools,
    npm: Npm,
    /// `/app`: the root as commands see it.
    dir: String,
    /// Whether the image had `node_modules/.package-lock.json` here.
    had_hidden_lockfile: bool,
    /// For each copy, the locations (`""`: the root) that require it.
    required_by: BTreeMap<String, Vec<String>>,
    /// The tree the direct moves lead to, when a dry run told.
    future: Option<DryRun>,
}

/// `(update index, location)` of the copies of one package at one version.
type Group = Vec<(usize, String)>;

/// Transitive copies by package name, then by installed version.
type ByName = BTreeMap<String, BTreeMap<String, Group>>;

/// A root's updates, sorted for planning.
struct Split {
    /// `(update, location)` of direct dependencies.
    direct: Group,
    /// Transitive copies.
    transitive: ByName,
}

/// Copies of one package at one version that a pin moves to one target.
struct Heirs {
    /// The installed version.
    installed: String,
    /// The target.
    target: String,
    /// Each copy's location and what requires it.
    copies: Vec<(String, Vec<Required>)>,
}

/// A copy requiring another, with what an override key needs.
#[derive(Clone, Debug)]
struct Required {
    location: String,
    dir_name: String,
    version: String,
}

impl<'a> Planner<'a> {
    fn new(
        image: &'a Image,
        scope: &str,
        updates: &'a [PackageUpdate],
        context: &'a PlanContext,
    ) -> Result<Planner<'a>, Error> {
        let global_dir = GLOBAL_DIRS
            .iter()
            .find(|d| scope.starts_with(&format!("{d}/")));
        let kind = match global_dir {
            Some(d) => Kind::Global {
                global_dir: d.to_string(),
            },
            None => Kind::App {
                manager: Manager::Npm,
                workspace: None,
            },
        };
        let root = Root {
            dir: scope.to_string(),
            kind,
        };
        let project = Project::load(image, root)?;
        // Every copy of a scope carries the same tool versions.
        let first = updates.iter().find(|u| u.package.scope == scope);
        let tool = |key: &str| {
            first
                .and_then(|u| u.package.attribute(key))
                .and_then(|v| version::parse(v).ok())
        };
        let tools = Tools {
            npm: tool(attr::NPM_VERSION),
            node: tool(attr::NODE_VERSION),
        };
        let required_by = project
            .tree
            .dependents()
            .into_iter()
            .map(|(to, froms)| {
                (
                    to.to_string(),
                    froms.into_iter().map(String::from).collect(),
                )
            })
            .collect();
        Ok(Planner {
            required_by,
            updates,
            context,
            had_hidden_lockfile: image.exists(&join(scope, "node_modules/.package-lock.json")),
            dir: format!("/{scope}"),
            project,
            tools,
            npm: Npm::new(context),
            future: None,
        })
    }

    fn tree(&self) -> &Tree {
        &self.project.tree
    }

    /// Sorts `indexes` into direct and transitive updates.
    fn split(&self, indexes: &[usize]) -> Result<Split, Error> {
        let mut split = Split {
            direct: Vec::new(),
            transitive: BTreeMap::new(),
        };
        for &i in indexes {
            let location = self.location(&self.updates[i])?;
            let copy = &self.tree().copies[&location];
            if self.is_direct(&location) {
                split.direct.push((i, location));
            } else {
                split
                    .transitive
                    .entry(copy.dir_name.clone())
                    .or_default()
                    .entry(copy.version.clone())
                    .or_default()
                    .push((i, location));
            }
        }
        Ok(split)
    }

    /// The probe that shows where the direct moves lead, when transitive
    /// copies move too and a lockfile can tell.
    fn dry_run(&self, split: &Split) -> Option<Probe> {
        if split.direct.is_empty() || split.transitive.is_empty() {
            return None;
        }
        self.project.lockfile.as_ref()?;
        let mut edits = Edits::default();
        for (i, location) in &split.direct {
            let copy = &self.tree().copies[location];
            let (section, _) = self.tree().manifest.declared(&copy.dir_name)?;
            let target = target(&self.updates[*i]).ok()?.to_string();
            edits
                .specs
                .push((section.into(), copy.dir_name.clone(), target));
        }
        let watch: Vec<String> = split.transitive.keys().cloned().collect();
        let dir = join(&self.context.staging_dir, "npm-dry-run");
        let npm_args = self.npm.options_with(&[self.dev_option()]);
        let command = script::dry_run(&self.dir, &dir, &edits, &watch, &npm_args)
            .env("npm_config_update_notifier", "false");
        Some(Probe {
            id: format!("dry-run:{}", self.dir),
            command,
        })
    }

    /// The tasks: with a dry run, direct moves first and then what they
    /// leave to pin; without, transitive names (what others need first),
    /// then direct moves.
    fn tasks(&self, split: Split) -> Result<Vec<Task>, Error> {
        let mut tasks = Vec::new();
        let direct = |tasks: &mut Vec<Task>| -> Result<(), Error> {
            for (i, location) in &split.direct {
                tasks.push(self.respec(*i, location)?);
            }
            Ok(())
        };
        if self.future.is_some() {
            direct(&mut tasks)?;
        }
        for name in self.leaves_first(&split.transitive) {
            tasks.push(self.pin(&name, &split.transitive[&name])?);
        }
        if self.future.is_none() {
            direct(&mut tasks)?;
        }
        Ok(tasks)
    }

    /// Transitive names ordered so that a package comes before the packages
    /// that require it (pinning qs before body-parser moves keeps the new
    /// body-parser from being checked against a qs pin it is not held to),
    /// alphabetically otherwise.
    fn leaves_first(&self, transitive: &ByName) -> Vec<String> {
        let needs = |name: &str| -> Vec<&str> {
            transitive[name]
                .values()
                .flatten()
                .flat_map(|(_, location)| self.tree().edges(location))
                .filter(|n| transitive.contains_key(*n) && *n != name)
                .collect()
        };
        let mut order: Vec<String> = Vec::new();
        let mut pending: Vec<&String> = transitive.keys().collect();
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|name| needs(name).iter().all(|n| order.iter().any(|o| o == n)))
                .unwrap_or(0); // a cycle: take the first alphabetically
            order.push(pending.remove(ready).clone());
        }
        order
    }

    /// The update's copy, which must still be in the tree as detected.
    fn location(&self, update: &PackageUpdate) -> Result<String, Error> {
        let package = &update.package;
        let stale = |why: &str| Refusal::Stale {
            path: package.path.clone(),
            why: why.to_string(),
        };
        let location = package
            .path
            .strip_prefix(&format!("{}/", package.scope))
            .and_then(|p| p.strip_suffix("/package.json"))
            .ok_or_else(|| stale("the path is not a package.json under its scope"))?;
        let copy = self
            .tree()
            .copies
            .get(location)
            .ok_or_else(|| stale("no such copy in the image"))?;
        if copy.version != package.version {
            return Err(stale(&format!("the image has version {}", copy.version)).into());
        }
        Ok(location.to_string())
    }

    fn is_direct(&self, location: &str) -> bool {
        let copy = &self.tree().copies[location];
        location == format!("node_modules/{}", copy.dir_name)
            && self.tree().manifest.declared(&copy.dir_name).is_some()
    }

    /// Options that keep development dependencies as they are on disk.
    fn dev_option(&self) -> &'static str {
        if self.project.dev_installed {
            "--include=dev"
        } else {
            "--omit=dev"
        }
    }

    /// Options for `npm install` in this root.
    fn install_options(&self) -> Vec<&'static str> {
        let mut options = vec![self.dev_option()];
        if self.project.lockfile.is_none() {
            // No lockfile to keep in step, and none to create.
            options.push("--no-package-lock");
        }
        options
    }

    /// The task for the copies of one transitive package: each installed
    /// version pinned to its own target, or, when the direct moves already
    /// replaced it, checked. All versions of a name go in one task: with npm
    /// 9, pinning one version after another was moved (and its copy placed
    /// elsewhere) left the second pin unapplied, while both at once worked.
    fn pin(&self, name: &str, by_version: &BTreeMap<String, Group>) -> Result<Task, Error> {
        let mut edits = Edits::default();
        let mut targets = Vec::new();
        let mut checks = Vec::new();
        let mut moves = Vec::new();
        for (installed, group) in by_version {
            let target = self.highest_target(group)?;
            let heirs = self.heirs(name, installed, &target, group);
            if heirs.is_empty() {
                // The direct moves replaced every copy; check that they did.
                for (_, location) in group {
                    checks.push(Check {
                        description: format!(
                            "{name} {installed} at {location} was replaced by {target} or later"
                        ),
                        command: script::fixed(&self.dir, location, &target),
                        exit_code: 0,
                        stdout: OutputMatch::Equals("fixed".into()),
                    });
                }
                moves.push(format!("{installed} replaced by the direct moves"));
                continue;
            }
            for heir in &heirs {
                let requirers: Vec<&Required> = heir.copies.iter().flat_map(|(_, r)| r).collect();
                edits
                    .overrides
                    .extend(self.overrides(name, heir, &requirers));
                for (location, required) in &heir.copies {
                    targets.push(Target {
                        name: name.to_string(),
                        location: location.clone(),
                        version: target.clone(),
                        dependents: required.iter().map(Required::dependent).collect(),
                    });
                }
                let froms: Vec<String> = requirers.iter().map(|r| r.location.clone()).collect();
                checks.push(self.loads(name, &dedup(froms), &target));
                moves.push(format!("{} to {target}", heir.installed));
            }
        }
        let indexes = by_version
            .values()
            .flatten()
            .map(|(i, _)| *i as u32)
            .collect();
        let description = format!(
            "pin {name} {} in {} (npm overrides)",
            moves.join(", "),
            self.dir
        );
        if edits.overrides.is_empty() {
            return Ok(Task {
                description: format!("check {name} in {}: {}", self.dir, moves.join(", ")),
                updates: indexes,
                steps: Vec::new(),
                checks,
            });
        }
        Ok(self.task(description, indexes, &edits, None, &targets, checks))
    }

    /// The copies of `name@installed` to pin: the detected ones, or, after
    /// a dry run, the copies of `name` below `target` that the same packages
    /// (by name) still require.
    fn heirs(
        &self,
        name: &str,
        installed: &str,
        target: &str,
        group: &[(usize, String)],
    ) -> Vec<Heirs> {
        let today: Vec<(String, Vec<Required>)> = group
            .iter()
            .map(|(_, location)| (location.clone(), self.required(location)))
            .collect();
        let Some(future) = &self.future else {
            return vec![Heirs {
                installed: installed.to_string(),
                target: target.to_string(),
                copies: today,
            }];
        };
        let requirers: Vec<&str> = today
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.dir_name.as_str()))
            .collect();
        let below =
            |v: &str| version::compare(v, target).is_ok_and(|o| o == std::cmp::Ordering::Less);
        let mut by_version: BTreeMap<String, Vec<(String, Vec<Required>)>> = BTreeMap::new();
        for copy in future
            .copies
            .iter()
            .filter(|c| c.name == name && below(&c.version))
        {
            let required: Vec<Required> = copy
                .dependents
                .iter()
                .filter(|d| !d.location.is_empty())
                .map(|d| Required {
                    location: d.location.clone(),
                    dir_name: dir_name(&d.location).to_string(),
                    version: d.version.clone(),
                })
                .collect();
            if required
                .iter()
                .any(|r| requirers.contains(&r.dir_name.as_str()))
            {
                by_version
                    .entry(copy.version.clone())
                    .or_default()
                    .push((copy.location.clone(), required));
            }
        }
        by_version
            .into_iter()
            .map(|(installed, copies)| Heirs {
                installed,
                target: target.to_string(),
                copies,
            })
            .collect()
    }

    /// What requires the copy at `location` today, the root left out.
    fn required(&self, location: &str) -> Vec<Required> {
        self.required_by
            .get(location)
            .into_iter()
            .flatten()
            .filter_map(|from| {
                self.tree().copies.get(from).map(|c| Required {
                    location: from.clone(),
                    dir_name: c.dir_name.clone(),
                    version: c.version.clone(),
                })
            })
            .collect()
    }

    /// The `overrides` entries that move `heirs` to their target.
    fn overrides(
        &self,
        name: &str,
        heirs: &Heirs,
        requirers: &[&Required],
    ) -> Vec<(Vec<String>, String)> {
        let target = heirs.target.clone();
        let selector = || vec![(vec![format!("{name}@{}", heirs.installed)], target.clone())];
        if self.tools.override_form() == OverrideForm::Selector {
            return selector();
        }
        let mut entries = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for required in requirers {
            let key = format!("{}@{}", required.dir_name, required.version);
            if keys.contains(&key) {
                continue;
            }
            keys.push(key.clone());
            if self.tree().manifest.declared(&required.dir_name).is_some() {
                // Without it npm reads the key's version as an override of
                // the direct dependency itself (EOVERRIDE).
                let reference = format!("${}", required.dir_name);
                entries.push((vec![key.clone(), ".".into()], reference));
            }
            entries.push((vec![key, name.to_string()], target.clone()));
        }
        if entries.is_empty() {
            // Nothing requires the copy: only a selector can name it.
            return selector();
        }
        entries
    }

    /// A check that the copies at `dependents` load `name` at `version`.
    fn loads(&self, name: &str, dependents: &[String], version: &str) -> Check {
        Check {
            description: format!("what required {name} in {} loads {version}", self.dir),
            command: script::versions(&self.dir, name, dependents),
            exit_code: 0,
            stdout: OutputMatch::Equals(version.to_string()),
        }
    }

    /// The task giving a direct dependency a new spec.
    fn respec(&self, index: usize, location: &str) -> Result<Task, Error> {
        let update = &self.updates[index];
        let copy = &self.tree().copies[location];
        let (section, old_spec) = self
            .tree()
            .manifest
            .declared(&copy.dir_name)
            .ok_or_else(|| Error::Failed(format!("{} is not declared", copy.dir_name)))?;
        let target = target(update)?;
        let exact = target.to_string();
        let styled = spec::restyle(old_spec, &target);
        let set = |spec: &str| Edits {
            specs: vec![(section.to_string(), copy.dir_name.clone(), spec.to_string())],
            ..Edits::default()
        };
        let restyle = (styled != exact).then(|| set(&styled));
        let moved = Target {
            name: copy.dir_name.clone(),
            location: location.to_string(),
            version: exact.clone(),
            dependents: vec![Dependent::root()],
        };
        let description = format!(
            "move {} {} to {exact} in {} ({section} {:?} -> {styled:?})",
            copy.dir_name, copy.version, self.dir, old_spec
        );
        let loads = self.loads(&copy.dir_name, &[String::new()], &exact);
        Ok(self.task(
            description,
            vec![index as u32],
            &set(&exact),
            restyle.as_ref(),
            &[moved],
            vec![loads],
        ))
    }

    /// The highest target of a group; copies of one version normally get
    /// the same one, and the highest satisfies every copy's level.
    fn highest_target(&self, group: &[(usize, String)]) -> Result<String, Error> {
        let mut best: Option<Version> = None;
        for (i, _) in group {
            let t = target(&self.updates[*i])?;
            if best.as_ref().is_some_and(|b| *b != t) {
                host::debug(&format!(
                    "copies of one version got different targets; taking the highest of {} and {t}",
                    best.as_ref().map(Version::to_string).unwrap_or_default()
                ));
            }
            if best.as_ref().is_none_or(|b| t > *b) {
                best = Some(t);
            }
        }
        best.map(|b| b.to_string())
            .ok_or_else(|| Error::Failed("an empty group of updates".into()))
    }

    /// One task: snapshot, edit, install, (restyle); `checks` first, then
    /// the checks every task of a root shares.
    fn task(
        &self,
        description: String,
        updates: Vec<u32>,
        edits: &Edits,
        restyle: Option<&Edits>,
        targets: &[Target],
        mut checks: Vec<Check>,
    ) -> Task {
        let staging = &self.context.staging_dir;
        let before = join(staging, "npm-tree-before.json");
        let ci_dir = join(staging, "npm-ci");
        let manifest = join(&self.dir, "package.json");
        let options = self.install_options();

        let mut edits = edits.clone();
        if matches!(self.project.root.kind, Kind::Global { .. })
            && !self.tree().manifest.dev_dependencies.is_empty()
        {
            // An installed package's development dependencies are never
            // installed, but npm resolves their whole tree (registry calls
            // for packages that may no longer resolve) just to omit it.
            edits.remove.push("devDependencies".into());
        }
        let mut steps = vec![
            Step::Run(script::snapshot(&self.dir, &before)),
            Step::Run(script::edit(&manifest, &edits)),
            Step::Run(self.npm.command(&["install"], &options, &self.dir)),
        ];
        if let Some(restyle) = restyle {
            // The lockfile pins the exact target, which the user's style
            // admits; only the lockfile's copy of the spec changes.
            steps.push(Step::Run(script::edit(&manifest, restyle)));
            if self.project.lockfile.is_some() {
                let mut lock_only = options.clone();
                lock_only.push("--package-lock-only");
                steps.push(Step::Run(self.npm.command(
                    &["install"],
                    &lock_only,
                    &self.dir,
                )));
            }
        }
        if !self.had_hidden_lockfile {
            let hidden = join(&self.dir, "node_modules/.package-lock.json");
            steps.push(Step::Run(script::forget(&hidden)));
        }
        if self.project.lockfile.is_some() {
            steps.push(Step::Run(script::stage_lock(&self.dir, &ci_dir)));
        }

        checks.extend([
            succeeds(
                format!("npm ls is clean in {}", self.dir),
                self.npm
                    .command(&["ls", "--all"], &[self.dev_option()], &self.dir),
            ),
            succeeds(
                format!(
                    "only the targets and what they need changed in {}",
                    self.dir
                ),
                script::compare(&self.dir, &before, targets),
            ),
        ]);
        if let Some(lockfile) = self.project.lockfile_name() {
            checks.push(succeeds(
                format!(
                    "{lockfile} agrees with package.json in {} (npm ci --dry-run)",
                    self.dir
                ),
                self.npm
                    .command(&["ci", "--dry-run"], &[self.dev_option()], &ci_dir),
            ));
        }
        Task {
            description,
            updates,
            steps,
            checks,
        }
    }
}

impl Required {
    fn dependent(&self) -> Dependent {
        Dependent {
            location: self.location.clone(),
            version: self.version.clone(),
        }
    }
}

impl Dependent {
    /// The root itself.
    fn root() -> Dependent {
        Dependent {
            location: String::new(),
            version: String::new(),
        }
    }
}

/// The directory name of the copy at `location` (`@scope/name` included).
fn dir_name(location: &str) -> &str {
    let cut = location
        .rfind("node_modules/")
        .map_or(0, |i| i + "node_modules/".len());
    &location[cut..]
}

/// `items` sorted, without repeats.
fn dedup(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}
