//! The WebAssembly side of the plugin host: one wasmtime engine, compiled
//! components cached on disk, and a fresh sandboxed store for every call.
//!
//! Each call gets:
//! - WASI 0.2 without sockets (a plugin importing `wasi:sockets` does not
//!   load), without environment, arguments or stdin, with its stdout and
//!   stderr captured into the log;
//! - at most one preopen, the image root, read-only at `/`;
//! - the host interface (`log`, and `fetch` restricted to the plugin's
//!   allowed sources);
//! - a memory budget enforced by a resource limiter and a wall-clock budget
//!   enforced by epoch interruption (a ticker thread advances the epoch
//!   every [`TICK`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::fetch;

/// Bindings generated from `wit/plugin.wit`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "salve:plugin/ecosystem",
    });
}

/// How often the epoch advances; the granularity of time budgets.
pub const TICK: Duration = Duration::from_millis(10);

/// The WIT package a plugin must export, and the versions accepted.
pub const WIT_PACKAGE: &str = "salve:plugin";
/// The interface every plugin exports.
pub const WIT_EXPORT: &str = "salve:plugin/plugin";
/// Versions of the contract this host accepts: 0.1.x (while the contract is
/// 0.x, a minor bump is a breaking change).
pub const ACCEPTED_WIT: &str = "0.1";

/// Captured stdout/stderr per call; more is cut.
const OUTPUT_CAPTURE: usize = 64 * 1024;

/// Budgets for one plugin call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: usize,
    /// Wall-clock budget.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 512 * 1024 * 1024,
            time: Duration::from_secs(30),
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component for this engine.
    #[error("not a valid WebAssembly component: {0:#}")]
    Compile(wasmtime::Error),
    /// It exports no `salve:plugin` interface.
    #[error("not a salve plugin: it exports no `{WIT_EXPORT}` interface (it exports: {0})")]
    NotAPlugin(String),
    /// It implements a contract version the host does not accept.
    #[error(
        "built for {WIT_PACKAGE}@{found}; this salve accepts {WIT_PACKAGE}@{ACCEPTED_WIT}.x \
         (rebuild the plugin with a matching salve-plugin-sdk)"
    )]
    Version {
        /// The version the plugin was built for.
        found: String,
    },
    /// It imports the network.
    #[error("it imports `{0}`: plugins get no network; they fetch through the host")]
    Network(String),
    /// It imports something the host does not offer.
    #[error("it cannot be linked: {0:#}")]
    Link(wasmtime::Error),
}

/// What went wrong inside one call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its time budget.
    #[error("ran past its time budget of {0:?}")]
    Timeout(Duration),
    /// The call tried to grow memory past its budget.
    #[error("tried to use more than its memory budget of {} MiB", .0 / (1024 * 1024))]
    Memory(usize),
    /// The plugin trapped (a panic, an unreachable, a bad access).
    #[error("crashed: {0}")]
    Trap(String),
}

/// The engine, linker and ticker shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    cache_dir: Option<PathBuf>,
    limits: Limits,
    fetcher: fetch::Client,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// An engine with epoch interruption, a linker with WASI (no sockets)
    /// and the host interface, and a running epoch ticker. Compiled
    /// components are cached in `cache_dir` when given.
    ///
    /// # Errors
    ///
    /// Only if wasmtime rejects its own configuration.
    pub fn new(
        limits: Limits,
        cache_dir: Option<PathBuf>,
        fetcher: fetch::Client,
    ) -> wasmtime::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        add_wasi_without_sockets(&mut linker)?;
        bindings::salve::plugin::host::add_to_linker::<State, HasSelf>(&mut linker, |s| s)?;
        bindings::salve::plugin::types::add_to_linker::<State, HasSelf>(&mut linker, |s| s)?;

        // The ticker holds only a weak engine handle in spirit: it stops when
        // the runtime is dropped.
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("salve-plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(wasmtime::Error::from)?;

        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            limits,
            fetcher,
            stop_ticker,
        })
    }

    /// The per-call budgets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles a component, or loads it from the cache of compiled
    /// components (keyed by the bytes' SHA-256 and the engine's
    /// compatibility hash, so a different salve or CPU never sees a stale
    /// entry).
    ///
    /// # Errors
    ///
    /// The bytes are not a valid component.
    pub fn compile(&self, wasm: &[u8]) -> Result<Component, LoadError> {
        let Some(cache_path) = self.cache_path(wasm) else {
            return Component::new(&self.engine, wasm).map_err(LoadError::Compile);
        };
        if cache_path.is_file() {
            // SAFETY: `deserialize_file` trusts its input to be wasmtime's own
            // output. The file lives in salve's cache directory, is only ever
            // written by `store_compiled` below (atomically, from
            // `precompile_component`), and its name carries the source's hash
            // and this engine's compatibility hash. Anyone able to write there
            // can already replace the salve binary's user files.
            match unsafe { Component::deserialize_file(&self.engine, &cache_path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::debug!(
                    "ignoring unusable cache entry {}: {e:#}",
                    cache_path.display()
                ),
            }
        }
        let compiled = self
            .engine
            .precompile_component(wasm)
            .map_err(LoadError::Compile)?;
        store_compiled(&cache_path, &compiled);
        // SAFETY: the bytes were produced just above by this engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(LoadError::Compile)
    }

    fn cache_path(&self, wasm: &[u8]) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let dir = self.cache_dir.as_ref()?;
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let source = hex::encode(Sha256::digest(wasm));
        Some(dir.join(format!("{source}-{:016x}.cwasm", engine_hash.finish())))
    }

    /// Checks a compiled component's contract version and imports, and
    /// links it once for fast instantiation.
    ///
    /// # Errors
    ///
    /// It is not a plugin, is built for another contract version, imports
    /// the network, or imports something the host does not offer.
    pub fn prepare(&self, component: &Component) -> Result<Prepared, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let export = exports
            .iter()
            .find(|n| n.starts_with(&format!("{WIT_EXPORT}@")));
        let Some(export) = export else {
            let listed = if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            };
            return Err(LoadError::NotAPlugin(listed));
        };
        let found = export.rsplit_once('@').map(|(_, v)| v).unwrap_or_default();
        if !version_accepted(found) {
            return Err(LoadError::Version {
                found: found.to_string(),
            });
        }
        if let Some((name, _)) = ty
            .imports(&self.engine)
            .find(|(n, _)| n.starts_with("wasi:sockets/"))
        {
            return Err(LoadError::Network(name.to_string()));
        }

        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(LoadError::Link)?;
        let pre = bindings::EcosystemPre::new(pre).map_err(LoadError::Link)?;
        Ok(Prepared { pre })
    }

    /// Runs `f` against a fresh instance in a fresh store with the given
    /// preopen and allowed sources, under the runtime's budgets.
    ///
    /// # Errors
    ///
    /// The call trapped, ran out of time or memory.
    pub(crate) fn call<R>(
        &self,
        prepared: &Prepared,
        setup: &CallSetup<'_>,
        f: impl FnOnce(&bindings::Ecosystem, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true);
        if let Some(root) = setup.root {
            // A root that cannot be opened is the host's problem, not the
            // plugin's: report it as a trap-free failure before calling.
            if let Err(e) = wasi.preopened_dir(root, "/", FsPerms::ReadOnly) {
                return Err(CallError::Trap(format!(
                    "preopening {}: {e:#}",
                    root.display()
                )));
            }
        }
        let image = match setup.root {
            Some(root) => {
                match cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority()) {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        return Err(CallError::Trap(format!("opening {}: {e}", root.display())));
                    }
                }
            }
            None => None,
        };
        let state = State {
            image,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryBudget {
                limit: self.limits.memory,
                exceeded: false,
            },
            label: setup.label.to_string(),
            fetcher: self.fetcher.clone(),
            sources: setup.sources.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = self
            .limits
            .time
            .as_millis()
            .div_ceil(TICK.as_millis())
            .max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let result = prepared
            .pre
            .instantiate(&mut store)
            .and_then(|instance| f(&instance, &mut store));
        forward_output(setup.label, "stdout", &stdout);
        forward_output(setup.label, "stderr", &stderr);

        result.map_err(|e| {
            if store.data().limiter.exceeded {
                CallError::Memory(self.limits.memory)
            } else if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                CallError::Timeout(self.limits.time)
            } else {
                CallError::Trap(trap_summary(&e))
            }
        })
    }
}

/// A component checked and linked, ready to instantiate.
pub struct Prepared {
    pre: bindings::EcosystemPre<State>,
}

/// What one call may touch.
pub(crate) struct CallSetup<'a> {
    /// The image root to preopen read-only at `/`, if any.
    pub root: Option<&'a Path>,
    /// Where the plugin may fetch from.
    pub sources: fetch::Sources,
    /// `name version`, for logs.
    pub label: &'a str,
}

/// Whether a contract version is one this host accepts.
fn version_accepted(found: &str) -> bool {
    let mut parts = found.split('.');
    let major_minor = format!(
        "{}.{}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    major_minor == ACCEPTED_WIT
}

/// The first line of a trap, without wasmtime's backtrace.
fn trap_summary(e: &wasmtime::Error) -> String {
    let root = e.root_cause().to_string();
    let mut summary = root.lines().next().unwrap_or("unknown trap").to_string();
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        summary = format!("{trap}");
    }
    tracing::debug!("plugin trap: {e:?}");
    summary
}

/// Sends what a plugin printed to the log, one event per line.
fn forward_output(label: &str, stream: &str, pipe: &MemoryOutputPipe) {
    let bytes = pipe.contents();
    for line in String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        tracing::debug!(plugin = label, "{stream}: {line}");
    }
}

/// Writes a compiled component atomically; a failure only costs speed.
fn store_compiled(path: &Path, compiled: &[u8]) {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, compiled)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!("not caching the compiled plugin at {}: {e}", path.display());
    }
}

/// The store data of one call.
pub(crate) struct State {
    /// The image root, for `read-link`.
    image: Option<cap_std::fs::Dir>,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryBudget,
    label: String,
    fetcher: fetch::Client,
    sources: fetch::Sources,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `HasData` marker giving host functions `&mut State`.
struct HasSelf;

impl HasData for HasSelf {
    type Data<'a> = &'a mut State;
}

/// Refuses memory growth past the budget and remembers that it did, so the
/// resulting trap can be reported as what it is.
struct MemoryBudget {
    limit: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory budget of {} bytes exceeded", self.limit);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl bindings::salve::plugin::types::Host for State {}

impl bindings::salve::plugin::host::Host for State {
    fn log(&mut self, level: bindings::salve::plugin::host::LogLevel, message: String) {
        use bindings::salve::plugin::host::LogLevel;
        let message: String = message.chars().take(4096).collect();
        let plugin = self.label.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn read_link(&mut self, path: String) -> Result<String, String> {
        let Some(image) = &self.image else {
            return Err("no image is open in this call".into());
        };
        let relative = path.trim_start_matches('/');
        if relative.is_empty() {
            return Err("the image root is not a link".into());
        }
        image
            .read_link_contents(relative)
            .map(|target| target.to_string_lossy().into_owned())
            .map_err(|e| format!("{path}: {e}"))
    }

    fn fetch(
        &mut self,
        url: String,
        headers: Vec<(String, String)>,
    ) -> Result<bindings::salve::plugin::host::Response, bindings::salve::plugin::host::FetchError>
    {
        use bindings::salve::plugin::host::{FetchError, Response};
        tracing::debug!(plugin = self.label.as_str(), "fetch {url}");
        match self.fetcher.get(&url, &headers, &self.sources) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(fetch::Error::NotAllowed { .. }) => Err(FetchError::NotAllowed(format!(
                "{url} is not under a source allowed for this plugin"
            ))),
            Err(fetch::Error::TooLarge { limit, .. }) => Err(FetchError::TooLarge(limit)),
            Err(e) => Err(FetchError::Transport(e.to_string())),
        }
    }
}

/// Adds WASI 0.2 to the linker, every interface but `wasi:sockets`.
fn add_wasi_without_sockets(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    struct HasIo;
    impl HasData for HasIo {
        type Data<'a> = &'a mut ResourceTable;
    }

    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<State, HasIo>(l, |s| {
        &mut s.table
    })?;
    sync::io::poll::add_to_linker::<State, HasIo>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<State, HasIo>(l, |s| &mut s.table)?;
    clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    clocks::monotonic_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    filesystem::preopens::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    sync::filesystem::types::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    random::random::add_to_linker::<State, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<State, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<State, WasiRandom>(l, |s| s.wasi.random())?;
    cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_0_1_line_of_the_contract() {
        assert!(version_accepted("0.1.0"));
        assert!(version_accepted("0.1.7"));
        assert!(!version_accepted("0.2.0"));
        assert!(!version_accepted("1.1.0"));
        assert!(!version_accepted(""));
    }
}
