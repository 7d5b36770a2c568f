//! `salve patch`: the main job.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use salve::exec::{self, CA_BUNDLE, Executor, Network, STAGING_DIR};
use salve::image::Patch;
use salve::patch::{self, Entry, Status};
use salve::plugin::{PlanContext, Registry};
use salve::{fetch, session::Session};

use super::choices::Choices;
use super::sandbox::{ImageArgs, SandboxArgs, install_ctrl_c};
use super::{Exit, Global, summary};

/// Arguments of `salve patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The image in and out.
    #[command(flatten)]
    pub image: ImageArgs,

    /// Reports and bounds.
    #[command(flatten)]
    pub choices: Choices,

    /// Report a package or ecosystem that fails and go on with the rest;
    /// the exit code is then 3.
    #[arg(long)]
    pub ignore_errors: bool,

    /// How steps run.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// Patches the image.
pub fn run(global: &Global, args: &PatchArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let interrupt = exec::Interrupt::new();
    install_ctrl_c(&interrupt)?;

    // Inputs first, so bad flags and reports fail before any work.
    let options = args.choices.options(args.ignore_errors)?;
    let reports = args.choices.read_reports()?;
    let destination = args.image.destination()?;
    let fetcher = fetch::Client::new(args.sandbox.ca_bundle.as_deref())?;
    let mut plugin_options = global.plugin_options();
    plugin_options.fetcher = Some(fetcher.clone());
    let registry = Registry::load(&plugin_options)?;
    for failure in registry.failures() {
        tracing::warn!("plugin not loaded: {failure}");
    }

    // The image and a workspace over it.
    let mut session = Session::open(
        &args.image.image,
        args.image.platform.as_ref(),
        &global.cache_dir(),
    )?;
    session.check_destination(&destination, args.image.tag.as_deref())?;
    let mut setup = session.setup();
    args.sandbox.apply(&mut setup, &interrupt);
    let image_context = session.context();
    let plan_context = |sources: Vec<String>| PlanContext {
        image: image_context.clone(),
        staging_dir: STAGING_DIR.to_string(),
        ca_bundle: setup.ca_bundle.as_ref().map(|_| CA_BUNDLE.to_string()),
        sources,
        network: setup.network == Network::Host,
    };
    let routed = patch::route(&reports, &registry, &options);
    let mut entries: Vec<Entry> = Vec::new();
    let mut committed = 0;
    let (mut in_steps, mut verifying) = (Duration::ZERO, Duration::ZERO);
    let mut workspace = session.workspace(setup.clone())?;

    // Each ecosystem in turn: detect, decide, plan, apply.
    for (plugin, findings) in &routed.groups {
        let view = workspace.view()?.to_path_buf();
        let mut prober = |p: &salve::plugin::Probe| patch::probe(&mut workspace, p);
        let installed = match patch::detect(plugin, &view, &image_context, Some(&mut prober)) {
            Ok(found) => found,
            Err(patch::Error::Plugin(e)) if args.ignore_errors => {
                entries.extend(failed_ecosystem(
                    &plugin.info().name,
                    findings,
                    &e.to_string(),
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (decided, others) = patch::decide(plugin, findings, &installed, &options);
        entries.extend(others);
        let context = plan_context(options.sources_for(plugin).as_slice().to_vec());
        let applied = patch::apply(
            plugin,
            decided,
            &mut workspace,
            &context,
            &fetcher,
            &options,
        )?;
        committed += applied.committed;
        in_steps += applied.in_steps;
        verifying += applied.verifying;
        entries.extend(applied.entries);
    }
    entries.extend(routed.entries);
    let upper = Box::new(workspace).finish()?;
    if interrupt.is_triggered() {
        bail!(exec::Error::Interrupted);
    }

    // One new layer, or nothing to write.
    let layer = if committed > 0 {
        session.layer(&upper, args.sandbox.compression)?
    } else {
        None
    };
    let written = match &layer {
        Some(layer) => {
            let patch = Patch {
                comment: history(previous_moves(session.image()), &entries),
                labels: Default::default(),
                created: session.epoch(),
            };
            let written = session.write(
                Some(layer),
                &patch,
                &destination,
                args.image.tag.as_deref(),
                &interrupt,
            )?;
            Some(written)
        }
        None => None,
    };

    // The summary.
    let failed = entries.iter().any(|e| e.status == Status::Failed);
    if global.json {
        let image = written.as_ref().map(|w| {
            serde_json::json!({
                "name": w.name.to_string(),
                "destination": destination.to_string(),
                "manifest_digest": w.manifest_digest.to_string(),
                "config_digest": w.config_digest.to_string(),
                "layers": w.layers,
            })
        });
        let timings = serde_json::json!({
            "total_ms": started.elapsed().as_millis(),
            "steps_ms": in_steps.as_millis(),
            "verify_ms": verifying.as_millis(),
        });
        let doc = serde_json::json!({ "image": image, "entries": entries, "timings": timings });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", summary::table(&entries));
        if !global.quiet {
            match &written {
                Some(w) => eprintln!(
                    "wrote {} to {destination} ({}, one patch layer of {} bytes)",
                    w.name,
                    w.manifest_digest,
                    layer.as_ref().map_or(0, |l| l.size)
                ),
                None => eprintln!("nothing was changed, so no image was written"),
            }
        }
    }
    Ok(if failed { Exit::Partial } else { Exit::Success })
}

/// Entries for the findings of an ecosystem whose plugin failed.
fn failed_ecosystem(name: &str, findings: &[salve::report::Finding], reason: &str) -> Vec<Entry> {
    salve::report::group(findings)
        .into_iter()
        .map(|p| {
            let ids: Vec<String> = p.findings.iter().map(|f| f.vulnerability.clone()).collect();
            let location = p.path.map(|x| format!("/{x}")).unwrap_or_default();
            Entry::bare(name, p.name, &location, p.installed).left_open(
                Status::Failed,
                reason.to_string(),
                &ids,
            )
        })
        .collect()
}

/// The moves a previous salve patch recorded in its history entry, when the
/// image is one: its layer carries on into the new one.
fn previous_moves(image: &salve::image::Image) -> Vec<String> {
    if image.previous_patch().is_none() {
        return Vec::new();
    }
    let history = image
        .config()
        .raw()
        .get("history")
        .and_then(|h| h.as_array());
    let comment = history
        .and_then(|h| {
            h.iter()
                .rev()
                .find_map(|e| e.get("comment").and_then(|c| c.as_str()))
        })
        .unwrap_or_default();
    match comment
        .strip_prefix("salve ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((_, moves)) => moves
            .split(", ")
            .map(str::to_string)
            .filter(|m| !m.is_empty())
            .collect(),
        None => Vec::new(),
    }
}

/// The history comment of the patch layer: every move it carries.
fn history(mut moves: Vec<String>, entries: &[Entry]) -> String {
    for e in entries.iter().filter(|e| e.status == Status::Updated) {
        let target = e.target.as_deref().unwrap_or("?");
        moves.push(format!(
            "{} {} {} -> {target}",
            e.ecosystem, e.package, e.installed
        ));
    }
    let mut comment = format!("salve {}: {}", env!("CARGO_PKG_VERSION"), moves.join(", "));
    if comment.len() > 4000 {
        let cut = comment
            .char_indices()
            .nth(3990)
            .map_or(comment.len(), |(i, _)| i);
        comment.truncate(cut);
        comment.push_str(" ...");
    }
    comment
}
