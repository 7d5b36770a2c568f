//! `salve patch` and `salve plan`, stage by stage.
//!
//! ```text
//! reports ─► route ──► per plugin: detect ─► resolve ─► decide ─► plan ─► apply ─► verify
//!            (type)              (image)    (target)   (policy)  (tasks)  (exec)   (re-detect)
//! ```
//!
//! - [`route`] sends each finding to the plugin that declares its report
//!   type, or records why none takes it;
//! - per plugin, `detect` lists what the image really holds, [`target`]
//!   joins findings to those copies, and the [`policy`] picks each copy's
//!   target using the plugin's own version rules and, unless offline, what
//!   its index offers;
//! - [`apply`] asks the plugin for a plan and runs its tasks one by one on
//!   snapshots; a task is kept only if its steps and checks pass **and** a
//!   fresh `detect` of its snapshot shows every target in place. With
//!   `--ignore-errors` a failed task is thrown away and the rest go on.
//!
//! [`target`]: crate::target

mod apply;
mod decide;
pub mod outcome;
mod route;

use std::collections::BTreeMap;

pub use apply::{Applied, apply};
pub use decide::{Decided, decide, decide_without_image, detect, probe};
pub use outcome::{Entry, OpenVulnerability, Status};
pub use route::{Routed, route};

use crate::plugin::{self, Plugin};
use crate::{fetch, policy};

/// How many times a plugin may ask for probes in one call sequence.
pub const MAX_PROBE_ROUNDS: usize = 4;

/// The user's choices for a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Which kinds of package are patched (`--pkg-types`).
    pub package_types: policy::PackageTypes,
    /// Patch level and pre-releases.
    pub policy: policy::Options,
    /// Go on past a failed package or ecosystem (`--ignore-errors`).
    pub ignore_errors: bool,
    /// Sources per plugin name, replacing the plugin's defaults.
    pub sources: BTreeMap<String, Vec<String>>,
    /// Do not ask package indexes which releases exist.
    pub offline: bool,
}

impl Options {
    /// The sources a plugin may fetch from: the user's, else its defaults.
    pub fn sources_for(&self, plugin: &Plugin) -> fetch::Sources {
        match self.sources.get(&plugin.info().name) {
            Some(user) => fetch::Sources::new(user),
            None => fetch::Sources::new(&plugin.info().default_sources),
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin failed and `--ignore-errors` was not given.
    #[error(transparent)]
    Plugin(#[from] plugin::Error),
    /// The executor failed (mounts, the runtime, an interrupt, the deadline).
    #[error(transparent)]
    Exec(#[from] crate::exec::Error),
    /// A task failed and `--ignore-errors` was not given.
    #[error("{plugin}: {task}: {reason}\nhint: --ignore-errors keeps what the other tasks did")]
    Task {
        /// The plugin's label.
        plugin: String,
        /// The task's description.
        task: String,
        /// What failed.
        reason: String,
    },
    /// A plugin kept asking for probes.
    #[error("plugin {0}: asked for probes more than {MAX_PROBE_ROUNDS} times")]
    Probes(String),
    /// A plugin asked for probes where no image is at hand.
    #[error("plugin {0}: asked to run probes, which needs an image (-i)")]
    ProbesWithoutImage(String),
}
