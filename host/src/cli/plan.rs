//! `salve plan`: every decision, without changing any image.

use clap::Args;

use salve::exec::Executor;
use salve::image::{Platform, Reference};
use salve::patch::{self, Entry};
use salve::plugin::Registry;
use salve::session::Session;

use super::choices::Choices;
use super::{Exit, Global, summary};

/// Arguments of `salve plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Reports and bounds.
    #[command(flatten)]
    pub choices: Choices,

    /// Also look into this image: findings are matched to what is really
    /// installed, and those whose package is not there are marked (needs
    /// root, to mount the image's layers).
    #[arg(short, long, value_name = "IMAGE")]
    pub image: Option<Reference>,

    /// The platform to pick from a multi-platform image [default: the
    /// host's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
}

/// Prints the decisions.
pub fn run(global: &Global, args: &PlanArgs) -> anyhow::Result<Exit> {
    let reports = args.choices.read_reports()?;
    let options = args.choices.options(false)?;
    let registry = Registry::load(&global.plugin_options())?;
    for failure in registry.failures() {
        tracing::warn!("plugin not loaded: {failure}");
    }

    let routed = patch::route(&reports, &registry, &options);
    let mut entries: Vec<Entry> = Vec::new();
    match &args.image {
        None => {
            if !global.quiet {
                eprintln!(
                    "note: without -i IMAGE the plan follows the report alone: copies that \
                     apt owns or another package vendors look movable, and indexes that need \
                     the environment (Python's version for pip) are not asked; pass -i IMAGE \
                     to decide as salve patch does"
                );
            }
            for (plugin, findings) in &routed.groups {
                let decided = patch::decide_without_image(plugin, findings, &options);
                entries.extend(decided.into_iter().map(|d| d.entry));
            }
        }
        Some(image) => {
            let mut session = Session::open(image, args.platform.as_ref(), &global.cache_dir())?;
            let context = session.context();
            let mut workspace = session.workspace(session.setup())?;
            for (plugin, findings) in &routed.groups {
                let view = workspace.view()?.to_path_buf();
                let mut prober = |p: &salve::plugin::Probe| patch::probe(&mut workspace, p);
                let installed = patch::detect(plugin, &view, &context, Some(&mut prober))?;
                let (decided, others) = patch::decide(plugin, findings, &installed, &options);
                entries.extend(decided.into_iter().map(|d| d.entry));
                entries.extend(others);
            }
        }
    }
    entries.extend(routed.entries);

    if global.json {
        let doc = serde_json::json!({ "entries": entries });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", summary::table(&entries));
    }
    Ok(Exit::Success)
}
