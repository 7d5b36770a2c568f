//! The WebAssembly side: generated bindings and the conversions between
//! them and the SDK's own types. Only built for `wasm32`. Everything here
//! is called from the code [`crate::export_plugin!`] generates.

#![allow(missing_docs)]

use crate::image::Image;
use crate::{Plugin, types as sdk};

/// Bindings generated from `wit/plugin.wit`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "salve:plugin/ecosystem",
        pub_export_macro: true,
        export_macro_name: "__export_ecosystem",
        default_bindings_module: "salve_plugin_sdk::__private::bindings",
    });
}

use bindings::salve::plugin::types as wit;

fn kind(k: sdk::PackageKind) -> wit::PackageKind {
    match k {
        sdk::PackageKind::Os => wit::PackageKind::Os,
        sdk::PackageKind::Library => wit::PackageKind::Library,
    }
}

fn origin_out(o: sdk::Origin) -> wit::Origin {
    match o {
        sdk::Origin::Managed => wit::Origin::Managed,
        sdk::Origin::Foreign(m) => wit::Origin::Foreign(m),
        sdk::Origin::Vendored(v) => wit::Origin::Vendored(wit::VendoredIn {
            parent: v.parent,
            parent_path: v.parent_path,
        }),
        sdk::Origin::Unsupported(m) => wit::Origin::Unsupported(m),
    }
}

fn origin_in(o: wit::Origin) -> sdk::Origin {
    match o {
        wit::Origin::Managed => sdk::Origin::Managed,
        wit::Origin::Foreign(m) => sdk::Origin::Foreign(m),
        wit::Origin::Vendored(v) => sdk::Origin::Vendored(sdk::VendoredIn {
            parent: v.parent,
            parent_path: v.parent_path,
        }),
        wit::Origin::Unsupported(m) => sdk::Origin::Unsupported(m),
    }
}

fn package_out(p: sdk::InstalledPackage) -> wit::InstalledPackage {
    wit::InstalledPackage {
        name: p.name,
        key: p.key,
        version: p.version,
        path: p.path,
        scope: p.scope,
        origin: origin_out(p.origin),
        attributes: p.attributes,
    }
}

fn package_in(p: wit::InstalledPackage) -> sdk::InstalledPackage {
    sdk::InstalledPackage {
        name: p.name,
        key: p.key,
        version: p.version,
        path: p.path,
        scope: p.scope,
        origin: origin_in(p.origin),
        attributes: p.attributes,
    }
}

fn image_in(i: wit::ImageContext) -> sdk::ImageContext {
    sdk::ImageContext {
        os: i.os,
        architecture: i.architecture,
        variant: i.variant,
        env: i.env,
        working_dir: i.working_dir,
        user: i.user,
    }
}

fn command_out(c: sdk::Command) -> wit::Command {
    wit::Command {
        argv: c.argv,
        env: c.env,
        cwd: c.cwd,
        user: c.user,
    }
}

fn probes_out(probes: Vec<sdk::Probe>) -> Vec<wit::Probe> {
    probes
        .into_iter()
        .map(|p| wit::Probe {
            id: p.id,
            command: command_out(p.command),
        })
        .collect()
}

fn answers_in(answers: Vec<wit::ProbeResult>) -> sdk::Answers {
    sdk::Answers(
        answers
            .into_iter()
            .map(|a| sdk::ProbeResult {
                id: a.id,
                exit_code: a.exit_code,
                stdout: a.stdout,
                stderr: a.stderr,
            })
            .collect(),
    )
}

fn step_out(s: sdk::Step) -> wit::Step {
    match s {
        sdk::Step::Run(c) => wit::Step::Run(command_out(c)),
        sdk::Step::WriteFile(f) => wit::Step::WriteFile(wit::FileWrite {
            path: f.path,
            contents: f.contents,
            mode: f.mode,
        }),
        sdk::Step::Remove(p) => wit::Step::Remove(p),
        sdk::Step::Fetch(f) => wit::Step::Fetch(wit::FetchRequest {
            url: f.url,
            file_name: f.file_name,
            sha256: f.sha256,
        }),
    }
}

fn check_out(c: sdk::Check) -> wit::Check {
    wit::Check {
        description: c.description,
        command: command_out(c.command),
        exit_code: c.exit_code,
        stdout: match c.stdout {
            sdk::OutputMatch::Any => wit::OutputMatch::Any,
            sdk::OutputMatch::Equals(s) => wit::OutputMatch::Equals(s),
            sdk::OutputMatch::Contains(s) => wit::OutputMatch::Contains(s),
        },
    }
}

fn error_out(e: sdk::Error) -> wit::PluginError {
    match e {
        sdk::Error::InvalidInput(m) => wit::PluginError::InvalidInput(m),
        sdk::Error::Unsupported(m) => wit::PluginError::Unsupported(m),
        sdk::Error::Failed(m) => wit::PluginError::Failed(m),
    }
}

pub fn info<P: Plugin>() -> wit::PluginInfo {
    let i = P::info();
    wit::PluginInfo {
        name: i.name,
        version: i.version,
        kind: kind(i.kind),
        report_types: i.report_types,
        default_sources: i.default_sources,
        always_latest: i.always_latest,
    }
}

pub fn parse_version<P: Plugin>(version: String) -> Result<wit::VersionInfo, String> {
    P::parse_version(&version).map(|v| wit::VersionInfo {
        normalized: v.normalized,
        prerelease: v.prerelease,
    })
}

pub fn compare<P: Plugin>(a: String, b: String) -> Result<wit::Ordering, String> {
    P::compare(&a, &b).map(|o| match o {
        std::cmp::Ordering::Less => wit::Ordering::Less,
        std::cmp::Ordering::Equal => wit::Ordering::Equal,
        std::cmp::Ordering::Greater => wit::Ordering::Greater,
    })
}

pub fn classify<P: Plugin>(a: String, b: String) -> Result<wit::Bump, String> {
    P::classify(&a, &b).map(|b| match b {
        sdk::Bump::None => wit::Bump::None,
        sdk::Bump::Patch => wit::Bump::Patch,
        sdk::Bump::Minor => wit::Bump::Minor,
        sdk::Bump::Major => wit::Bump::Major,
    })
}

pub fn detect<P: Plugin>(
    image: wit::ImageContext,
    answers: Vec<wit::ProbeResult>,
) -> Result<wit::DetectOutcome, wit::PluginError> {
    let found = P::detect(&Image::preopened(), &image_in(image), &answers_in(answers));
    match found.map_err(error_out)? {
        sdk::Detected::Packages(p) => Ok(wit::DetectOutcome::Packages(
            p.into_iter().map(package_out).collect(),
        )),
        sdk::Detected::Probes(p) => Ok(wit::DetectOutcome::Probes(probes_out(p))),
    }
}

pub fn releases<P: Plugin>(
    package: wit::InstalledPackage,
    sources: Vec<String>,
) -> Result<Option<Vec<wit::Release>>, wit::PluginError> {
    let found = P::releases(&package_in(package), &sources).map_err(error_out)?;
    Ok(found.map(|list| {
        list.into_iter()
            .map(|r| wit::Release {
                version: r.version,
                unusable: r.unusable,
            })
            .collect()
    }))
}

pub fn plan<P: Plugin>(
    updates: Vec<wit::PackageUpdate>,
    context: wit::PlanContext,
    answers: Vec<wit::ProbeResult>,
) -> Result<wit::PlanOutcome, wit::PluginError> {
    let updates: Vec<sdk::PackageUpdate> = updates
        .into_iter()
        .map(|u| sdk::PackageUpdate {
            package: package_in(u.package),
            target: u.target,
            vulnerabilities: u.vulnerabilities,
        })
        .collect();
    let context = sdk::PlanContext {
        image: image_in(context.image),
        staging_dir: context.staging_dir,
        ca_bundle: context.ca_bundle,
        sources: context.sources,
        network: context.network,
    };
    let planned = P::plan(
        &Image::preopened(),
        &updates,
        &context,
        &answers_in(answers),
    );
    match planned.map_err(error_out)? {
        sdk::Planned::Tasks(tasks) => Ok(wit::PlanOutcome::Tasks(
            tasks
                .into_iter()
                .map(|t| wit::Task {
                    description: t.description,
                    updates: t.updates,
                    steps: t.steps.into_iter().map(step_out).collect(),
                    checks: t.checks.into_iter().map(check_out).collect(),
                })
                .collect(),
        )),
        sdk::Planned::Probes(p) => Ok(wit::PlanOutcome::Probes(probes_out(p))),
    }
}
