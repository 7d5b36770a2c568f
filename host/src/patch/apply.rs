//! Carrying out the decisions: the plugin's plan, its tasks on snapshots,
//! and verification by a fresh `detect` before anything is kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exec::{self, Executor, RunSpec, STAGING_DIR, Task as Snapshot};
use crate::fetch;
use crate::plugin::{
    Check, Command, ImageContext, InstalledPackage, Origin, OutputMatch, PackageUpdate,
    PlanContext, PlanOutcome, Plugin, Probe, ProbeResult, Step, Task,
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
        let outcome = ran.and_then(|()| verify(plugin, &mut *snapshot, &context.image, &own));
        verifying += verified.elapsed();
        let (failure, reached) = match outcome {
            Ok(versions) => {
                snapshot.commit()?;
                committed += 1;
                (None, versions)
            }
            Err(Failure::Fatal(e)) => return Err(Error::Exec(e)),
            Err(Failure::Task(reason)) => {
                snapshot.abort()?;
                (Some(reason), Vec::new())
            }
        };
        tracing::debug!("task {} took {:?}", n + 1, started.elapsed());

        for (k, &u) in task.updates.iter().enumerate() {
            let i = picked[u as usize];
            let entry = std::mem::replace(&mut entries[i], Entry::bare("", "", "", ""));
            entries[i] = match &failure {
                None => updated(entry, reached.get(k)),
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

/// The entry of a verified update; when the copy went past its target, the
/// version it is really at becomes the entry's target.
fn updated(entry: Entry, now: Option<&String>) -> Entry {
    match now {
        Some(version) if entry.target.as_ref() != Some(version) => {
            tracing::info!(
                "{} {} went to {version}, past its target {}",
                entry.ecosystem,
                entry.package,
                entry.target.as_deref().unwrap_or("?")
            );
            Entry {
                status: Status::Updated,
                target: Some(version.clone()),
                ..entry
            }
        }
        _ => Entry {
            status: Status::Updated,
            ..entry
        },
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

/// Re-detects the snapshot and checks every update of the task is in place.
/// Returns the version each update's copy is now at, in order.
///
/// A copy still at its path must have reached its target (a stale copy
/// left beside a new one, as pip would leave a second dist-info, fails
/// here). A copy whose path is gone (pip's dist-info carries the version,
/// npm may relocate a copy) must have a managed copy of the same package in
/// the same scope that reached it. Reaching means at least the target: an
/// install may go past it (npm moving a direct dependency brings newer
/// copies of what it needs), which still closes what the target closes.
fn verify(
    plugin: &Plugin,
    snapshot: &mut dyn Snapshot,
    image: &ImageContext,
    updates: &[&PackageUpdate],
) -> Result<Vec<String>, Failure> {
    // Probes the plugin asks for run in the task's own snapshot: they are
    // read-only questions (`npm --version`), asked of the changed image.
    let view: PathBuf = snapshot.view()?.to_path_buf();
    let mut prober = |probe: &Probe| -> Result<ProbeResult, exec::Error> {
        let output = snapshot.run(&spec(&probe.command))?;
        Ok(ProbeResult {
            id: probe.id.clone(),
            exit_code: output.code().unwrap_or(-1),
            stdout: output.stdout_text().into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    };
    let after = decide::detect(plugin, &view, image, Some(&mut prober))
        .map_err(|e| Failure::Task(e.to_string()))?;
    let reached = |copy: &InstalledPackage, target: &str| -> Result<bool, Failure> {
        let ordering = plugin
            .compare(&copy.version, target)
            .map_err(|e| Failure::Task(e.to_string()))?;
        Ok(ordering.is_ge())
    };

    let mut now = Vec::new();
    for update in updates {
        let before = &update.package;
        // Vendored and foreign copies of the same package are other copies.
        let same: Vec<&InstalledPackage> = after
            .iter()
            .filter(|c| {
                c.key == before.key && c.scope == before.scope && c.origin == Origin::Managed
            })
            .collect();
        let copy = match same.iter().find(|c| c.path == before.path) {
            Some(at_path) if reached(at_path, &update.target)? => *at_path,
            Some(at_path) => {
                return Err(Failure::Task(format!(
                    "after the task {} at /{} is still at {}, not {}",
                    at_path.name, at_path.path, at_path.version, update.target
                )));
            }
            None => {
                let mut found = None;
                for c in &same {
                    if reached(c, &update.target)? {
                        found = Some(*c);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    Failure::Task(if same.is_empty() {
                        format!(
                            "after the task {} is gone from /{}",
                            before.name, before.scope
                        )
                    } else {
                        let seen: Vec<String> = same
                            .iter()
                            .map(|c| format!("{} at /{}", c.version, c.path))
                            .collect();
                        format!(
                            "after the task no copy of {} in /{} reaches {} ({})",
                            before.name,
                            before.scope,
                            update.target,
                            seen.join(", ")
                        )
                    })
                })?
            }
        };
        now.push(copy.version.clone());
    }
    Ok(now)
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
