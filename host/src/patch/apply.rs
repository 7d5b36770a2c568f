//! Carrying out the decisions: the plugin's plan, its tasks on snapshots,
//! and verification by a fresh `detect` before anything is kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exec::{self, Executor, RunSpec, STAGING_DIR, Task as Snapshot};
use crate::fetch;
use crate::plugin::{
    Check, Command, ImageContext, InstalledPackage, Origin, OutputMatch, PackageKind,
    PackageUpdate, PlanContext, PlanOutcome, Plugin, ProbeResult, Step, Task,
};
use crate::policy::Decision;

use super::decide::{self, Decided};
use super::{Entry, Error, MAX_PROBE_ROUNDS, Options, Status};

/// What applying one plugin's decisions did.
#[derive(Debug)]
pub struct Applied {
    /// One entry per decided copy, updated to what happened.
    pub entries: Vec<Entry>,
    /// How many tasks were kept.
    pub committed: usize,
    /// Time spent running steps and checks inside the image (the
    /// installers' own work, runtime start and stop included).
    pub in_steps: Duration,
    /// Time spent verifying tasks (a fresh `detect` of each snapshot).
    pub verifying: Duration,
}

/// Plans the updates among `decided`, runs each task on a snapshot of
/// `executor`, verifies it, and keeps it or throws it away.
///
/// # Errors
///
/// Without `--ignore-errors`: the first plugin or task failure. Always: an
/// interrupt, the run's deadline, or an executor that broke.
pub fn apply(
    plugin: &Plugin,
    decided: Vec<Decided>,
    executor: &mut dyn Executor,
    context: &PlanContext,
    fetcher: &fetch::Client,
    options: &Options,
) -> Result<Applied, Error> {
    let mut entries: Vec<Entry> = decided.iter().map(|d| d.entry.clone()).collect();
    // The copies the policy moves, and what they move to.
    let (picked, updates): (Vec<usize>, Vec<PackageUpdate>) = decided
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match &d.decision {
            Decision::Update(u) => Some((
                i,
                PackageUpdate {
                    package: d.copy.clone(),
                    target: u.to.clone(),
                    vulnerabilities: u.closes.clone(),
                },
            )),
            _ => None,
        })
        .unzip();
    if updates.is_empty() {
        return Ok(Applied {
            entries,
            ..Applied::nothing()
        });
    }

    // The plan, probing the image as the plugin asks.
    let tasks = match plan(plugin, &updates, executor, context) {
        Ok(tasks) => tasks,
        Err(Error::Plugin(e)) if options.ignore_errors => {
            let reason = e.to_string();
            for &i in &picked {
                let entry = std::mem::replace(&mut entries[i], Entry::bare("", "", "", ""));
                entries[i] = entry.left_open(Status::Failed, reason.clone(), &[]);
            }
            return Ok(Applied {
                entries,
                ..Applied::nothing()
            });
        }
        Err(e) => return Err(e),
    };

    // Each task on its own snapshot.
    let sources = options.sources_for(plugin);
    let mut committed = 0;
    let (mut in_steps, mut verifying) = (Duration::ZERO, Duration::ZERO);
    for (n, task) in tasks.iter().enumerate() {
        tracing::info!(
            "{}: task {}/{}: {}",
            plugin.info().name,
            n + 1,
            tasks.len(),
            task.description
        );
        let started = Instant::now();
        let own: Vec<&PackageUpdate> = task.updates.iter().map(|&u| &updates[u as usize]).collect();
        let mut snapshot = executor.task()?;
        let ran = run(&mut *snapshot, task, fetcher, &sources);
        in_steps += started.elapsed();
        let verified = Instant::now();
        let outcome = ran.and_then(|()| verify(plugin, &*snapshot, &context.image, &own));
        verifying += verified.elapsed();
        let failure = match outcome {
            Ok(()) => {
                snapshot.commit()?;
                committed += 1;
                None
            }
            Err(Failure::Fatal(e)) => return Err(Error::Exec(e)),
            Err(Failure::Task(reason)) => {
                snapshot.abort()?;
                Some(reason)
            }
        };
        tracing::debug!("task {} took {:?}", n + 1, started.elapsed());

        for &u in &task.updates {
            let i = picked[u as usize];
            let entry = std::mem::replace(&mut entries[i], Entry::bare("", "", "", ""));
            entries[i] = match &failure {
                None => Entry {
                    status: Status::Updated,
                    ..entry
                },
                Some(reason) => entry.left_open(Status::Failed, reason.clone(), &[]),
            };
        }
        if let Some(reason) = failure
            && !options.ignore_errors
        {
            return Err(Error::Task {
                plugin: plugin.label().to_string(),
                task: task.description.clone(),
                reason,
            });
        }
    }
    Ok(Applied {
        entries,
        committed,
        in_steps,
        verifying,
    })
}

impl Applied {
    fn nothing() -> Applied {
        Applied {
            entries: Vec::new(),
            committed: 0,
            in_steps: Duration::ZERO,
            verifying: Duration::ZERO,
        }
    }
}

/// Asks for the plan, running probes on throw-away snapshots.
fn plan(
    plugin: &Plugin,
    updates: &[PackageUpdate],
    executor: &mut dyn Executor,
    context: &PlanContext,
) -> Result<Vec<Task>, Error> {
    let mut answers: Vec<ProbeResult> = Vec::new();
    for _ in 0..MAX_PROBE_ROUNDS {
        let root: PathBuf = executor.view()?.to_path_buf();
        match plugin.plan(&root, updates, context, &answers)? {
            PlanOutcome::Tasks(tasks) => return Ok(tasks),
            PlanOutcome::Probes(probes) => {
                answers = probes
                    .iter()
                    .map(|p| decide::probe(executor, p))
                    .collect::<Result<_, _>>()?;
            }
        }
    }
    Err(Error::Probes(plugin.label().to_string()))
}

/// Why a task did not go through.
enum Failure {
    /// The task failed; the run may go on.
    Task(String),
    /// The run must stop.
    Fatal(exec::Error),
}

impl From<exec::Error> for Failure {
    fn from(e: exec::Error) -> Self {
        match e {
            exec::Error::Interrupted | exec::Error::Deadline { .. } | exec::Error::Poisoned => {
                Failure::Fatal(e)
            }
            other => Failure::Task(other.to_string()),
        }
    }
}

fn spec(command: &Command) -> RunSpec {
    RunSpec {
        argv: command.argv.clone(),
        env: command.env.clone(),
        cwd: command.cwd.clone(),
        user: command.user.clone(),
        timeout: None,
    }
}

/// Runs a task's steps, then its checks.
fn run(
    snapshot: &mut dyn Snapshot,
    task: &Task,
    fetcher: &fetch::Client,
    sources: &fetch::Sources,
) -> Result<(), Failure> {
    for step in &task.steps {
        match step {
            Step::Run(command) => {
                snapshot
                    .run(&spec(command))?
                    .check()
                    .map_err(|e| Failure::Task(e.to_string()))?;
            }
            Step::WriteFile(file) => match staged(&file.path) {
                // The staging dir is the host's, bind-mounted for runs only.
                Some(relative) => {
                    write_staged(snapshot.staging_dir(), relative, &file.contents, file.mode)?
                }
                None => snapshot.write_file(&file.path, &file.contents, file.mode)?,
            },
            Step::Remove(path) => {
                snapshot.remove(path)?;
            }
            Step::Fetch(request) => {
                let dest = snapshot.staging_dir().join(&request.file_name);
                fetcher
                    .download(&request.url, &dest, request.sha256.as_deref(), sources)
                    .map_err(|e| Failure::Task(e.to_string()))?;
            }
        }
    }
    task.checks.iter().try_for_each(|c| check(snapshot, c))
}

/// The part of an in-image path under [`STAGING_DIR`], if it is one.
fn staged(path: &str) -> Option<&str> {
    path.strip_prefix(STAGING_DIR)?
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty())
}

/// Writes a file into the staging dir. Steps can write there too, so the
/// write goes through a handle rooted at the staging dir (a link a step
/// planted cannot lead it outside) and lands by renaming a fresh file.
fn write_staged(staging: &Path, relative: &str, contents: &[u8], mode: u32) -> Result<(), Failure> {
    use cap_std::fs::{Dir, Permissions};
    use std::os::unix::fs::PermissionsExt;
    let write = || -> std::io::Result<()> {
        let dir = Dir::open_ambient_dir(staging, cap_std::ambient_authority())?;
        let (parent, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        let dir = if parent.is_empty() {
            dir
        } else {
            dir.create_dir_all(parent)?;
            dir.open_dir(parent)?
        };
        let temp = format!(".salve-write-{name}");
        dir.write(&temp, contents)?;
        dir.set_permissions(
            &temp,
            Permissions::from_std(std::fs::Permissions::from_mode(mode & 0o7777)),
        )?;
        dir.rename(&temp, &dir, name)
    };
    write().map_err(|e| Failure::Task(format!("writing {STAGING_DIR}/{relative}: {e}")))
}

/// Runs one check and compares its exit code and output.
fn check(snapshot: &mut dyn Snapshot, check: &Check) -> Result<(), Failure> {
    let output = snapshot.run(&spec(&check.command))?;
    let stdout = output.stdout_text();
    let matched = match &check.stdout {
        OutputMatch::Any => true,
        OutputMatch::Equals(expected) => stdout.trim() == expected.trim(),
        OutputMatch::Contains(expected) => stdout.contains(expected.as_str()),
    };
    if output.code() == Some(check.exit_code) && matched {
        return Ok(());
    }
    let expected = match &check.stdout {
        OutputMatch::Any => String::new(),
        OutputMatch::Equals(s) => format!(" printing {s:?}"),
        OutputMatch::Contains(s) => format!(" printing something with {s:?}"),
    };
    let tail: Vec<&str> = output
        .stdout_tail
        .iter()
        .chain(&output.stderr_tail)
        .map(String::as_str)
        .collect();
    Err(Failure::Task(format!(
        "check failed: {}: `{}` was to exit {}{expected}; it ended with {:?}{}\n{}",
        check.description,
        output.command,
        check.exit_code,
        output.exit,
        if matched || stdout.is_empty() {
            String::new()
        } else {
            format!(" printing {:?}", stdout.trim())
        },
        tail.join("\n"),
    )))
}

/// Re-detects the snapshot and checks every update of the task is in place:
/// at its path (or, when the path carries the version, alone in its scope),
/// at exactly the target (libraries) or at least the target (OS packages).
fn verify(
    plugin: &Plugin,
    snapshot: &dyn Snapshot,
    image: &ImageContext,
    updates: &[&PackageUpdate],
) -> Result<(), Failure> {
    let view: &Path = snapshot.view()?;
    let after =
        decide::detect(plugin, view, image, None).map_err(|e| Failure::Task(e.to_string()))?;
    let exact = plugin.info().kind == PackageKind::Library;
    for update in updates {
        let copy = find_copy(&after, &update.package).map_err(Failure::Task)?;
        let ordering = plugin
            .compare(&copy.version, &update.target)
            .map_err(|e| Failure::Task(e.to_string()))?;
        let in_place = if exact {
            ordering.is_eq()
        } else {
            ordering.is_ge()
        };
        if !in_place {
            let want = if exact { "" } else { "at least " };
            return Err(Failure::Task(format!(
                "after the task {} is at {}, not {want}{} (/{})",
                copy.name, copy.version, update.target, copy.path
            )));
        }
    }
    Ok(())
}

/// The copy that an update became: the one at the same path, else the only
/// one of that package in the same scope.
fn find_copy<'a>(
    after: &'a [InstalledPackage],
    before: &InstalledPackage,
) -> Result<&'a InstalledPackage, String> {
    // Vendored and foreign copies of the same package are other copies, not
    // what the update became.
    let same: Vec<&InstalledPackage> = after
        .iter()
        .filter(|c| c.key == before.key && c.scope == before.scope && c.origin == Origin::Managed)
        .collect();
    if let Some(at_path) = same.iter().find(|c| c.path == before.path) {
        return Ok(at_path);
    }
    match same.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "after the task {} is gone from /{}",
            before.name, before.scope
        )),
        many => Err(format!(
            "after the task /{} holds {} {} times ({}): a stale copy is left",
            before.scope,
            before.name,
            many.len(),
            many.iter()
                .map(|c| format!("{} at /{}", c.version, c.path))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_paths_are_those_under_the_staging_dir() {
        assert_eq!(staged("/.salve/staging/guard.py"), Some("guard.py"));
        assert_eq!(staged("/.salve/staging/a/b"), Some("a/b"));
        assert_eq!(staged("/.salve/staging"), None);
        assert_eq!(staged("/.salve/stagingx/a"), None);
        assert_eq!(staged("/etc/passwd"), None);
    }

    #[test]
    fn a_staged_write_does_not_follow_a_planted_link_out() {
        let staging = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), staging.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), staging.path().join("f")).unwrap();

        let err = write_staged(staging.path(), "sub/file", b"x", 0o644);
        assert!(
            err.is_err(),
            "a write through a link out of staging is refused"
        );
        // A link at the file's own name is replaced, not followed.
        assert!(write_staged(staging.path(), "f", b"y", 0o644).is_ok());
        assert!(
            std::fs::read_dir(outside.path()).unwrap().next().is_none(),
            "nothing written outside"
        );
        assert_eq!(std::fs::read(staging.path().join("f")).unwrap(), b"y");
    }
}
