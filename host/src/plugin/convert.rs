//! Conversions between the generated bindings and the host's own types.

use super::runtime::bindings::salve::plugin::types as wit;
use super::*;

impl From<wit::PackageKind> for PackageKind {
    fn from(k: wit::PackageKind) -> Self {
        match k {
            wit::PackageKind::Os => PackageKind::Os,
            wit::PackageKind::Library => PackageKind::Library,
        }
    }
}

impl From<wit::Bump> for Bump {
    fn from(b: wit::Bump) -> Self {
        match b {
            wit::Bump::None => Bump::None,
            wit::Bump::Patch => Bump::Patch,
            wit::Bump::Minor => Bump::Minor,
            wit::Bump::Major => Bump::Major,
        }
    }
}

impl From<wit::Ordering> for std::cmp::Ordering {
    fn from(o: wit::Ordering) -> Self {
        match o {
            wit::Ordering::Less => std::cmp::Ordering::Less,
            wit::Ordering::Equal => std::cmp::Ordering::Equal,
            wit::Ordering::Greater => std::cmp::Ordering::Greater,
        }
    }
}

impl From<wit::VersionInfo> for VersionInfo {
    fn from(v: wit::VersionInfo) -> Self {
        VersionInfo {
            normalized: v.normalized,
            prerelease: v.prerelease,
        }
    }
}

impl From<wit::Release> for Release {
    fn from(r: wit::Release) -> Self {
        Release {
            version: r.version,
            unusable: r.unusable,
        }
    }
}

impl From<wit::Origin> for Origin {
    fn from(o: wit::Origin) -> Self {
        match o {
            wit::Origin::Managed => Origin::Managed,
            wit::Origin::Foreign(m) => Origin::Foreign(m),
            wit::Origin::Vendored(v) => Origin::Vendored(VendoredIn {
                parent: v.parent,
                parent_path: v.parent_path,
            }),
            wit::Origin::Unsupported(m) => Origin::Unsupported(m),
        }
    }
}

impl From<&Origin> for wit::Origin {
    fn from(o: &Origin) -> Self {
        match o {
            Origin::Managed => wit::Origin::Managed,
            Origin::Foreign(m) => wit::Origin::Foreign(m.clone()),
            Origin::Vendored(v) => wit::Origin::Vendored(wit::VendoredIn {
                parent: v.parent.clone(),
                parent_path: v.parent_path.clone(),
            }),
            Origin::Unsupported(m) => wit::Origin::Unsupported(m.clone()),
        }
    }
}

impl From<wit::InstalledPackage> for InstalledPackage {
    fn from(p: wit::InstalledPackage) -> Self {
        InstalledPackage {
            name: p.name,
            key: p.key,
            version: p.version,
            path: p.path,
            scope: p.scope,
            origin: p.origin.into(),
            attributes: p.attributes,
        }
    }
}

impl From<&InstalledPackage> for wit::InstalledPackage {
    fn from(p: &InstalledPackage) -> Self {
        wit::InstalledPackage {
            name: p.name.clone(),
            key: p.key.clone(),
            version: p.version.clone(),
            path: p.path.clone(),
            scope: p.scope.clone(),
            origin: (&p.origin).into(),
            attributes: p.attributes.clone(),
        }
    }
}

impl From<&ImageContext> for wit::ImageContext {
    fn from(i: &ImageContext) -> Self {
        wit::ImageContext {
            os: i.os.clone(),
            architecture: i.architecture.clone(),
            variant: i.variant.clone(),
            env: i.env.clone(),
            working_dir: i.working_dir.clone(),
            user: i.user.clone(),
        }
    }
}

impl From<wit::Command> for Command {
    fn from(c: wit::Command) -> Self {
        Command {
            argv: c.argv,
            env: c.env,
            cwd: c.cwd,
            user: c.user,
        }
    }
}

impl From<wit::Probe> for Probe {
    fn from(p: wit::Probe) -> Self {
        Probe {
            id: p.id,
            command: p.command.into(),
        }
    }
}

impl From<&ProbeResult> for wit::ProbeResult {
    fn from(r: &ProbeResult) -> Self {
        wit::ProbeResult {
            id: r.id.clone(),
            exit_code: r.exit_code,
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
        }
    }
}

impl From<wit::DetectOutcome> for DetectOutcome {
    fn from(d: wit::DetectOutcome) -> Self {
        match d {
            wit::DetectOutcome::Packages(p) => {
                DetectOutcome::Packages(p.into_iter().map(Into::into).collect())
            }
            wit::DetectOutcome::Probes(p) => {
                DetectOutcome::Probes(p.into_iter().map(Into::into).collect())
            }
        }
    }
}

impl From<&PackageUpdate> for wit::PackageUpdate {
    fn from(u: &PackageUpdate) -> Self {
        wit::PackageUpdate {
            package: (&u.package).into(),
            target: u.target.clone(),
            vulnerabilities: u.vulnerabilities.clone(),
        }
    }
}

impl From<&PlanContext> for wit::PlanContext {
    fn from(c: &PlanContext) -> Self {
        wit::PlanContext {
            image: (&c.image).into(),
            staging_dir: c.staging_dir.clone(),
            ca_bundle: c.ca_bundle.clone(),
            sources: c.sources.clone(),
            network: c.network,
        }
    }
}

impl From<wit::Step> for Step {
    fn from(s: wit::Step) -> Self {
        match s {
            wit::Step::Run(c) => Step::Run(c.into()),
            wit::Step::WriteFile(f) => Step::WriteFile(FileWrite {
                path: f.path,
                contents: f.contents,
                mode: f.mode,
            }),
            wit::Step::Remove(p) => Step::Remove(p),
            wit::Step::Fetch(f) => Step::Fetch(FetchRequest {
                url: f.url,
                file_name: f.file_name,
                sha256: f.sha256,
            }),
        }
    }
}

impl From<wit::Check> for Check {
    fn from(c: wit::Check) -> Self {
        Check {
            description: c.description,
            command: c.command.into(),
            exit_code: c.exit_code,
            stdout: match c.stdout {
                wit::OutputMatch::Any => OutputMatch::Any,
                wit::OutputMatch::Equals(s) => OutputMatch::Equals(s),
                wit::OutputMatch::Contains(s) => OutputMatch::Contains(s),
            },
        }
    }
}

impl From<wit::Task> for Task {
    fn from(t: wit::Task) -> Self {
        Task {
            description: t.description,
            updates: t.updates,
            steps: t.steps.into_iter().map(Into::into).collect(),
            checks: t.checks.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::PlanOutcome> for PlanOutcome {
    fn from(p: wit::PlanOutcome) -> Self {
        match p {
            wit::PlanOutcome::Tasks(t) => {
                PlanOutcome::Tasks(t.into_iter().map(Into::into).collect())
            }
            wit::PlanOutcome::Probes(p) => {
                PlanOutcome::Probes(p.into_iter().map(Into::into).collect())
            }
        }
    }
}

/// The text of a plugin's own error.
pub(super) fn plugin_error(e: wit::PluginError) -> String {
    match e {
        wit::PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        wit::PluginError::Unsupported(m) => format!("unsupported: {m}"),
        wit::PluginError::Failed(m) => m,
    }
}
