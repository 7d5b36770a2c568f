//! Limits on what a plugin may return.
//!
//! A plugin is untrusted code: a result that is too large or inconsistent
//! ("nonsense") fails that plugin's call with a message saying what was
//! wrong, before the rest of the host looks at it. The limits are far above
//! anything a real ecosystem produces.

use super::{Check, Command, DetectOutcome, InstalledPackage, PlanOutcome, Probe, Release, Step};

/// Longest version string.
pub const MAX_VERSION: usize = 256;
/// Longest package name or key.
pub const MAX_NAME: usize = 512;
/// Longest path.
pub const MAX_PATH: usize = 4096;
/// Longest free text (descriptions, reasons, attribute values).
pub const MAX_TEXT: usize = 64 * 1024;
/// Most packages one detect may return.
pub const MAX_PACKAGES: usize = 1_000_000;
/// Most probes one call may ask for.
pub const MAX_PROBES: usize = 64;
/// Most releases for one package.
pub const MAX_RELEASES: usize = 100_000;
/// Most tasks in one plan.
pub const MAX_TASKS: usize = 10_000;
/// Most steps plus checks in one plan, over all tasks.
pub const MAX_STEPS: usize = 100_000;
/// Most bytes of file contents one plan may write.
pub const MAX_WRITTEN: usize = 256 * 1024 * 1024;

fn text(what: &str, value: &str, limit: usize) -> Result<(), String> {
    if value.len() > limit {
        return Err(format!(
            "{what} of {} bytes (the limit is {limit})",
            value.len()
        ));
    }
    Ok(())
}

/// A version string.
pub fn version(what: &str, v: &str) -> Result<(), String> {
    text(what, v, MAX_VERSION)?;
    if v.trim().is_empty() {
        return Err(format!("an empty {what}"));
    }
    Ok(())
}

fn command(c: &Command) -> Result<(), String> {
    if c.argv.is_empty() || c.argv[0].is_empty() {
        return Err("a command without a program".into());
    }
    if c.argv.len() > 4096 || c.env.len() > 4096 {
        return Err(format!(
            "a command with {} arguments and {} variables",
            c.argv.len(),
            c.env.len()
        ));
    }
    for a in c.argv.iter().chain(c.env.iter().flat_map(|(k, v)| [k, v])) {
        text("a command argument", a, MAX_TEXT)?;
    }
    if let Some(cwd) = &c.cwd {
        text("a working directory", cwd, MAX_PATH)?;
    }
    Ok(())
}

fn probes(p: &[Probe]) -> Result<(), String> {
    if p.len() > MAX_PROBES {
        return Err(format!("{} probes (the limit is {MAX_PROBES})", p.len()));
    }
    for probe in p {
        text("a probe id", &probe.id, MAX_NAME)?;
        command(&probe.command)?;
    }
    Ok(())
}

/// One detected package.
pub fn package(p: &InstalledPackage) -> Result<(), String> {
    text("a package name", &p.name, MAX_NAME)?;
    text("a package key", &p.key, MAX_NAME)?;
    if p.key.is_empty() {
        return Err(format!("package {:?} with an empty key", p.name));
    }
    version("package version", &p.version)?;
    text("a package path", &p.path, MAX_PATH)?;
    text("a package scope", &p.scope, MAX_PATH)?;
    if p.attributes.len() > 64 {
        return Err(format!("{} attributes on one package", p.attributes.len()));
    }
    for (k, v) in &p.attributes {
        text("an attribute name", k, MAX_NAME)?;
        text("an attribute value", v, MAX_TEXT)?;
    }
    Ok(())
}

/// The result of `detect`.
pub fn detect(d: &DetectOutcome) -> Result<(), String> {
    match d {
        DetectOutcome::Packages(list) => {
            if list.len() > MAX_PACKAGES {
                return Err(format!(
                    "{} packages (the limit is {MAX_PACKAGES})",
                    list.len()
                ));
            }
            list.iter().try_for_each(package)
        }
        DetectOutcome::Probes(p) => probes(p),
    }
}

/// The result of `releases`.
pub fn releases(r: &[Release]) -> Result<(), String> {
    if r.len() > MAX_RELEASES {
        return Err(format!(
            "{} releases (the limit is {MAX_RELEASES})",
            r.len()
        ));
    }
    for release in r {
        version("release version", &release.version)?;
        if let Some(reason) = &release.unusable {
            text("a reason", reason, MAX_TEXT)?;
        }
    }
    Ok(())
}

fn check(c: &Check) -> Result<(), String> {
    text("a check description", &c.description, MAX_TEXT)?;
    command(&c.command)
}

/// The result of `plan`, given how many updates it was asked for.
pub fn plan(p: &PlanOutcome, updates: usize) -> Result<(), String> {
    let tasks = match p {
        PlanOutcome::Probes(p) => return probes(p),
        PlanOutcome::Tasks(t) => t,
    };
    if tasks.len() > MAX_TASKS {
        return Err(format!(
            "a plan of {} tasks (the limit is {MAX_TASKS})",
            tasks.len()
        ));
    }
    let steps: usize = tasks.iter().map(|t| t.steps.len() + t.checks.len()).sum();
    if steps > MAX_STEPS {
        return Err(format!(
            "a plan of {steps} steps and checks (the limit is {MAX_STEPS})"
        ));
    }

    // Every update belongs to exactly one task.
    let mut owner = vec![None; updates];
    let mut written = 0usize;
    for (t, task) in tasks.iter().enumerate() {
        text("a task description", &task.description, MAX_TEXT)?;
        for &u in &task.updates {
            let slot = owner
                .get_mut(u as usize)
                .ok_or_else(|| format!("task {t} names update {u}, but there are {updates}"))?;
            if let Some(other) = slot.replace(t) {
                return Err(format!("update {u} belongs to tasks {other} and {t}"));
            }
        }
        for step in &task.steps {
            match step {
                Step::Run(c) => command(c)?,
                Step::WriteFile(f) => {
                    text("a file path", &f.path, MAX_PATH)?;
                    written += f.contents.len();
                }
                Step::Remove(path) => text("a path to remove", path, MAX_PATH)?,
                Step::Fetch(f) => {
                    text("a URL", &f.url, MAX_PATH)?;
                    if f.file_name.is_empty() || f.file_name.contains('/') || f.file_name == ".." {
                        return Err(format!("a fetch into {:?}", f.file_name));
                    }
                }
            }
        }
        task.checks.iter().try_for_each(check)?;
    }
    if written > MAX_WRITTEN {
        return Err(format!(
            "a plan writing {written} bytes (the limit is {MAX_WRITTEN})"
        ));
    }
    if let Some(u) = owner.iter().position(Option::is_none) {
        return Err(format!("update {u} belongs to no task"));
    }
    Ok(())
}
