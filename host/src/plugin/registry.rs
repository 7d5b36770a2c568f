//! Finding, loading and choosing plugins.
//!
//! Plugins come from the binary (the bundled ones, built from `plugins/`)
//! and from plugin directories (`--plugin-dir`, `SALVE_PLUGIN_PATH`): every
//! `*.wasm` file there is a candidate. A plugin that fails to load is set
//! aside with its error and the others carry on. A plugin from a directory
//! whose name matches a bundled one replaces it, so users can try a newer
//! version without rebuilding salve.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::runtime::{self, Limits, LoadError, Runtime};
use super::{Error, ErrorKind, Info, Plugin, Source, validate};
use crate::fetch;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// How to load plugins.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Directories searched for `*.wasm` plugins, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Per-call budgets.
    pub limits: Limits,
    /// The fetch client plugins' index lookups go through.
    pub fetcher: Option<fetch::Client>,
    /// Leave the bundled plugins out (tests of external plugins).
    pub without_bundled: bool,
}

/// A plugin that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{source_}: {reason}")]
pub struct LoadFailure {
    /// Where it came from.
    pub source_: Source,
    /// Why it was refused.
    pub reason: String,
}

/// Why the registry itself could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The WebAssembly runtime could not start.
    #[error("starting the plugin runtime: {0:#}")]
    Runtime(wasmtime::Error),
    /// The fetch client could not be made.
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    /// A plugin directory could not be listed.
    #[error("listing plugin directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// The loaded plugins.
#[derive(Debug)]
pub struct Registry {
    plugins: Vec<Plugin>,
    failures: Vec<LoadFailure>,
}

impl Registry {
    /// Loads the bundled plugins and every `*.wasm` in the plugin
    /// directories, compiling (or taking from the cache) in parallel.
    ///
    /// # Errors
    ///
    /// Only when nothing can be loaded at all (the runtime does not start, a
    /// plugin directory cannot be listed). A bad plugin is a
    /// [`LoadFailure`], not an error.
    pub fn load(options: &Options) -> Result<Registry, RegistryError> {
        let fetcher = match &options.fetcher {
            Some(f) => f.clone(),
            None => fetch::Client::new(None)?,
        };
        let runtime = Runtime::new(options.limits, options.cache_dir.clone(), fetcher)
            .map_err(RegistryError::Runtime)?;
        let runtime = Arc::new(runtime);

        // Candidates: bundled first, then directories in order.
        let mut candidates: Vec<(Source, Vec<u8>)> = Vec::new();
        if !options.without_bundled {
            for (name, bytes) in bundled::BUNDLED {
                candidates.push((Source::Bundled(name), bytes.to_vec()));
            }
        }
        let mut failures = Vec::new();
        for dir in &options.plugin_dirs {
            for path in wasm_files(dir)? {
                match fs_err::read(&path) {
                    Ok(bytes) => candidates.push((Source::Path(path), bytes)),
                    Err(e) => failures.push(LoadFailure {
                        source_: Source::Path(path),
                        reason: e.to_string(),
                    }),
                }
            }
        }

        // Compile and introduce every candidate in parallel.
        let loaded: Vec<Result<Plugin, LoadFailure>> = std::thread::scope(|scope| {
            let handles: Vec<_> = candidates
                .into_iter()
                .map(|(source, bytes)| {
                    let runtime = runtime.clone();
                    scope.spawn(move || load_one(runtime, source, &bytes))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("plugin loading does not panic"))
                .collect()
        });

        // Keep one plugin per name: a later (directory) plugin replaces an
        // earlier bundled one; two from directories conflict.
        let mut plugins: Vec<Plugin> = Vec::new();
        for result in loaded {
            let plugin = match result {
                Ok(p) => p,
                Err(f) => {
                    failures.push(f);
                    continue;
                }
            };
            match plugins.iter().position(|p| p.info.name == plugin.info.name) {
                Some(i) if matches!(plugins[i].source, Source::Bundled(_)) => {
                    tracing::info!(
                        "plugin {} from {} replaces the bundled {}",
                        plugin.label,
                        plugin.source,
                        plugins[i].label
                    );
                    plugins[i] = plugin;
                }
                Some(i) => failures.push(LoadFailure {
                    reason: format!(
                        "another plugin named {:?} was loaded from {}",
                        plugin.info.name, plugins[i].source
                    ),
                    source_: plugin.source,
                }),
                None => plugins.push(plugin),
            }
        }
        plugins.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        for f in &failures {
            tracing::debug!("plugin not loaded: {f}");
        }
        Ok(Registry { plugins, failures })
    }

    /// The loaded plugins, by name.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The plugins that could not be loaded.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// The plugin with this name.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.info.name == name)
    }

    /// The plugin that handles a scanner result type (`python-pkg`), if
    /// any. Types are compared case-insensitively.
    pub fn for_report_type(&self, report_type: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| {
            p.info
                .report_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(report_type))
        })
    }
}

/// The `*.wasm` files of a directory, sorted; a missing directory has none.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!("plugin directory {} does not exist", dir.display());
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(RegistryError::Dir {
                path: dir.into(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Compiles, checks and introduces one plugin.
fn load_one(runtime: Arc<Runtime>, source: Source, bytes: &[u8]) -> Result<Plugin, LoadFailure> {
    let fail = |reason: String| LoadFailure {
        source_: source.clone(),
        reason,
    };
    let component = runtime
        .compile(bytes)
        .map_err(|e: LoadError| fail(e.to_string()))?;
    let prepared = runtime
        .prepare(&component)
        .map_err(|e| fail(e.to_string()))?;

    // Ask who it is, under the same sandbox as every other call.
    let label = match &source {
        Source::Bundled(name) => format!("bundled plugin {name}"),
        Source::Path(p) => p.display().to_string(),
    };
    let setup = runtime::CallSetup {
        root: None,
        sources: fetch::Sources::default(),
        label: &label,
    };
    let raw = runtime
        .call(&prepared, &setup, |p, s| {
            p.salve_plugin_plugin().call_info(s)
        })
        .map_err(|e| fail(format!("info: {e}")))?;
    let info = Info {
        name: raw.name,
        version: raw.version,
        kind: raw.kind.into(),
        report_types: raw.report_types,
        default_sources: raw.default_sources,
        always_latest: raw.always_latest,
    };
    check_info(&info).map_err(|e| fail(format!("info: returned {e}")))?;

    let label = format!("{} {}", info.name, info.version);
    tracing::debug!("loaded plugin {label} from {source}");
    Ok(Plugin {
        info,
        source,
        label,
        prepared,
        runtime,
    })
}

/// What a plugin may say about itself.
fn check_info(info: &Info) -> Result<(), String> {
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 32
        && info.name.starts_with(|c: char| c.is_ascii_lowercase())
        && info
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(format!(
            "the name {:?} (expected lowercase letters, digits and -)",
            truncate(&info.name)
        ));
    }
    validate::version("plugin version", &info.version)?;
    if info.report_types.is_empty() || info.report_types.len() > 64 {
        return Err(format!(
            "{} report types (expected 1 to 64)",
            info.report_types.len()
        ));
    }
    if let Some(t) = info
        .report_types
        .iter()
        .find(|t| t.is_empty() || t.len() > 64)
    {
        return Err(format!("the report type {:?}", truncate(t)));
    }
    if info.default_sources.len() > 32 || info.always_latest.len() > 256 {
        return Err("too many default sources or always-latest packages".into());
    }
    if let Some(s) = info
        .default_sources
        .iter()
        .find(|s| s.len() > 2048 || !(s.starts_with("https://") || s.starts_with("http://")))
    {
        return Err(format!(
            "the source {:?} (expected an http(s) URL)",
            truncate(s)
        ));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_string();
    }
    let cut: String = s.chars().take(80).collect();
    format!("{cut}... ({} bytes)", s.len())
}

impl Error {
    /// True when the sandbox stopped the plugin (trap, time, memory), as
    /// opposed to the plugin reporting an error itself.
    pub fn is_sandbox(&self) -> bool {
        matches!(self.kind, ErrorKind::Sandbox(_))
    }
}
