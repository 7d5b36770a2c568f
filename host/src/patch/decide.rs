//! What each vulnerable copy moves to: detect, join, and the policy.

use std::collections::HashMap;
use std::path::Path;

use crate::exec::{Executor, RunSpec};
use crate::plugin::{
    DetectOutcome, ImageContext, InstalledPackage, Origin, PackageKind, Plugin, Probe, ProbeResult,
};
use crate::policy::{self, Decision, Vulnerability};
use crate::report::{self, Finding};
use crate::target;

use super::{Entry, Error, MAX_PROBE_ROUNDS, Options, Status};

/// The policy's decision for one copy, with the entry that reports it.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The copy (as detected, or as the report describes it without an
    /// image).
    pub copy: InstalledPackage,
    /// The policy's decision.
    pub decision: Decision,
    /// The summary row.
    pub entry: Entry,
}

/// Runs one probe command in the image and answers it.
pub type Prober<'a> = &'a mut dyn FnMut(&Probe) -> Result<ProbeResult, crate::exec::Error>;

/// What the plugin's `detect` finds under `root`, running the probes it
/// asks for through `prober`.
///
/// # Errors
///
/// The plugin failed, asked for probes without a prober, or asked too often.
pub fn detect(
    plugin: &Plugin,
    root: &Path,
    context: &ImageContext,
    mut prober: Option<Prober<'_>>,
) -> Result<Vec<InstalledPackage>, Error> {
    let mut answers: Vec<ProbeResult> = Vec::new();
    for _ in 0..MAX_PROBE_ROUNDS {
        match plugin.detect(root, context, &answers)? {
            DetectOutcome::Packages(found) => return Ok(found),
            DetectOutcome::Probes(probes) => {
                let Some(run) = prober.as_mut() else {
                    return Err(Error::ProbesWithoutImage(plugin.label().to_string()));
                };
                answers = probes.iter().map(&mut **run).collect::<Result<_, _>>()?;
            }
        }
    }
    Err(Error::Probes(plugin.label().to_string()))
}

/// Runs a probe in a throw-away snapshot of the workspace.
///
/// # Errors
///
/// The executor failed (a command that fails is an answer, not an error).
pub fn probe(
    executor: &mut dyn Executor,
    probe: &Probe,
) -> Result<ProbeResult, crate::exec::Error> {
    let spec = RunSpec {
        argv: probe.command.argv.clone(),
        env: probe.command.env.clone(),
        cwd: probe.command.cwd.clone(),
        user: probe.command.user.clone(),
        timeout: None,
    };
    let output = executor.probe(&spec)?;
    Ok(ProbeResult {
        id: probe.id.clone(),
        exit_code: output.code().unwrap_or(-1),
        stdout: output.stdout_text().into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Decides for the findings of one plugin against what the image holds.
/// Returns the decisions for copies the plugin may move, and entries for
/// everything else (copies another manager owns, findings whose package is
/// not in the image).
pub fn decide(
    plugin: &Plugin,
    findings: &[Finding],
    installed: &[InstalledPackage],
    options: &Options,
) -> (Vec<Decided>, Vec<Entry>) {
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut key = |name: &str| -> String {
        keys.entry(name.to_string())
            .or_insert_with(|| match plugin.package_key(name) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!("{e}; matching {name:?} by its spelling");
                    name.to_string()
                }
            })
            .clone()
    };
    let (targets, unmatched) = target::resolve(findings, installed, &mut key);
    let name = &plugin.info().name;

    let mut entries = Vec::new();
    for u in unmatched {
        let ids: Vec<String> = u.findings.iter().map(|f| f.vulnerability.clone()).collect();
        let location = u
            .path
            .as_deref()
            .map(|p| format!("/{p}"))
            .unwrap_or_default();
        let reason = match &u.path {
            Some(p) => format!("not in the image at /{p} (nor anywhere {name} looks)"),
            None => "not installed in the image".to_string(),
        };
        entries.push(
            Entry::bare(name, &u.package, &location, &u.installed).left_open(
                Status::NotInstalled,
                reason,
                &ids,
            ),
        );
    }

    let mut decided = Vec::new();
    for t in targets {
        let location = location(&t.copy);
        let ids: Vec<String> = t.findings.iter().map(|f| f.vulnerability.clone()).collect();
        let reason = match &t.copy.origin {
            Origin::Managed => None,
            Origin::Foreign(why) | Origin::Unsupported(why) => Some(why.clone()),
            Origin::Vendored(v) => Some(format!(
                "vendored inside {} (/{}); only moving {} replaces it",
                v.parent, v.parent_path, v.parent
            )),
        };
        if let Some(reason) = reason {
            let entry = Entry::bare(name, &t.copy.name, &location, &t.copy.version);
            entries.push(entry.left_open(Status::Skipped, reason, &ids));
            continue;
        }
        let decision = select(plugin, &t.copy, &t.findings, options);
        let entry = Entry::from_decision(name, &t.copy.name, &location, &t.copy.version, &decision);
        decided.push(Decided {
            copy: t.copy,
            decision,
            entry,
        });
    }
    (decided, entries)
}

/// Decides for the findings of one plugin as the report describes them,
/// without looking at an image (`salve plan -r`).
pub fn decide_without_image(
    plugin: &Plugin,
    findings: &[Finding],
    options: &Options,
) -> Vec<Decided> {
    report::group(findings)
        .into_iter()
        .map(|package| {
            let copy = InstalledPackage {
                name: package.name.to_string(),
                key: plugin
                    .package_key(package.name)
                    .unwrap_or_else(|_| package.name.to_string()),
                version: package.installed.to_string(),
                path: package.path.unwrap_or_default().to_string(),
                scope: String::new(),
                origin: Origin::Managed,
                attributes: Vec::new(),
            };
            let owned: Vec<Finding> = package.findings.iter().map(|f| (*f).clone()).collect();
            let decision = select(plugin, &copy, &owned, options);
            let entry = Entry::from_decision(
                &plugin.info().name,
                &copy.name,
                &location(&copy),
                &copy.version,
                &decision,
            );
            Decided {
                copy,
                decision,
                entry,
            }
        })
        .collect()
}

/// The policy's choice for one copy, asking the plugin's index first.
fn select(
    plugin: &Plugin,
    copy: &InstalledPackage,
    findings: &[Finding],
    options: &Options,
) -> Decision {
    let info = plugin.info();
    let releases = if options.offline || info.kind == PackageKind::Os {
        None
    } else {
        match plugin.releases(copy, &options.sources_for(plugin)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "{e}; deciding {} from the report's fixed versions alone",
                    copy.name
                );
                None
            }
        }
    };
    let vulnerabilities: Vec<Vulnerability<'_>> =
        findings.iter().map(Vulnerability::from).collect();
    let decision = policy::select(&policy::Query {
        versions: plugin,
        installed: &copy.version,
        vulnerabilities: &vulnerabilities,
        releases: releases.as_deref(),
        kind: info.kind,
        always_latest: info.always_latest.contains(&copy.key),
        options: options.policy,
    });
    tracing::debug!(
        "{} {} at /{}: {decision}",
        copy.name,
        copy.version,
        copy.path
    );
    decision
}

/// How the summary shows where a copy is.
pub(super) fn location(copy: &InstalledPackage) -> String {
    if copy.path.is_empty() {
        String::new()
    } else {
        format!("/{}", copy.path)
    }
}
