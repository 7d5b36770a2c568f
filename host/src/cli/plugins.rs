//! `salve plugins`: what is loaded, and what could not be.

use clap::Args;

use salve::plugin::{PackageKind, Registry};

use super::{Exit, Global};

/// Arguments of `salve plugins` (none of its own).
#[derive(Debug, Args)]
pub struct PluginsArgs {}

/// Lists the plugins as a table, or as JSON with `--json`.
pub fn run(global: &Global, _args: &PluginsArgs) -> anyhow::Result<Exit> {
    let registry = Registry::load(&global.plugin_options())?;

    if global.json {
        let plugins: Vec<_> = registry
            .plugins()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.info().name,
                    "version": p.info().version,
                    "kind": p.info().kind,
                    "report_types": p.info().report_types,
                    "source": p.source().to_string(),
                })
            })
            .collect();
        let failures: Vec<_> = registry
            .failures()
            .iter()
            .map(|f| serde_json::json!({ "source": f.source_.to_string(), "error": f.reason }))
            .collect();
        let doc = serde_json::json!({ "plugins": plugins, "failures": failures });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING);
        table.set_header(["NAME", "VERSION", "KIND", "REPORT TYPES", "SOURCE"]);
        for p in registry.plugins() {
            let kind = match p.info().kind {
                PackageKind::Os => "os",
                PackageKind::Library => "library",
            };
            table.add_row([
                p.info().name.as_str(),
                p.info().version.as_str(),
                kind,
                &p.info().report_types.join(", "),
                &p.source().to_string(),
            ]);
        }
        println!("{table}");
        for f in registry.failures() {
            eprintln!("not loaded: {f}");
        }
    }

    Ok(if registry.failures().is_empty() {
        Exit::Success
    } else {
        Exit::Partial
    })
}
