//! The SDK for salve ecosystem plugins.
//!
//! salve patches vulnerable packages inside container images. Each package
//! ecosystem (pip, npm, apt...) is a plugin: a WebAssembly component, built
//! for `wasm32-wasip2`, that implements the `salve:plugin` WIT contract in
//! `wit/plugin.wit`. A plugin reads the image's files (read-only), lists
//! what is installed, orders its ecosystem's versions, and turns updates
//! into steps; the host does everything else (reports, policy, the sandbox,
//! layers).
//!
//! With this crate a plugin is one trait implementation and one macro call:
//!
//! ```
//! use salve_plugin_sdk::prelude::*;
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             name: "hello".into(),
//!             version: "0.1.0".into(),
//!             kind: PackageKind::Library,
//!             report_types: vec!["hello-pkg".into()],
//!             default_sources: vec![],
//!             always_latest: vec![],
//!         }
//!     }
//!
//!     fn parse_version(v: &str) -> Result<VersionInfo, String> {
//!         v.parse::<u64>().map_err(|e| e.to_string())?;
//!         Ok(VersionInfo { normalized: v.into(), prerelease: false })
//!     }
//!
//!     fn compare(a: &str, b: &str) -> Result<std::cmp::Ordering, String> {
//!         let n = |v: &str| v.parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
//!         Ok(n(a)?.cmp(&n(b)?))
//!     }
//!
//!     fn detect(image: &Image, _: &ImageContext, _: &Answers) -> Result<Detected, Error> {
//!         let _ = image.read_optional("etc/hello-version")?;
//!         Ok(Detected::Packages(vec![]))
//!     }
//!
//!     fn plan(_: &Image, _: &[PackageUpdate], _: &PlanContext, _: &Answers)
//!         -> Result<Planned, Error> {
//!         Ok(Planned::Tasks(vec![]))
//!     }
//! }
//!
//! salve_plugin_sdk::export_plugin!(Hello);
//! ```
//!
//! Because the trait's methods take an [`image::Image`], the same code runs
//! natively in `cargo test` against an ordinary directory that stands in for
//! an image. See `sdk/README.md` for the tutorial and `plugins/` for real
//! plugins.

#![deny(missing_docs)]

pub mod host;
pub mod image;
pub mod metadata;
mod types;
pub mod version;

#[cfg(target_arch = "wasm32")]
mod guest;

use std::cmp::Ordering;

pub use image::Image;
pub use types::*;

/// The WIT package version this SDK implements. The host refuses plugins
/// built for a version it does not accept.
pub const WIT_VERSION: &str = "0.1.0";

/// An ecosystem plugin. Implement it on a unit struct and pass that struct
/// to [`export_plugin!`].
///
/// Every call is independent: the host may run each in a fresh instance, so
/// keep no state between calls.
pub trait Plugin {
    /// Who the plugin is and what report types it takes.
    fn info() -> PluginInfo;

    /// Parses a version string.
    ///
    /// # Errors
    ///
    /// The string is not a version of this ecosystem; say why.
    fn parse_version(version: &str) -> Result<VersionInfo, String>;

    /// Orders two versions.
    ///
    /// # Errors
    ///
    /// Either is invalid; name it.
    fn compare(a: &str, b: &str) -> Result<Ordering, String>;

    /// How far apart two versions are. The default compares the first two
    /// dot-separated numbers of each (major, minor).
    ///
    /// # Errors
    ///
    /// Either is invalid.
    fn classify(a: &str, b: &str) -> Result<Bump, String> {
        if Self::compare(a, b)? == Ordering::Equal {
            return Ok(Bump::None);
        }
        let leading = |v: &str| -> Vec<String> {
            v.split(['.', '-', '+'])
                .take(2)
                .map(str::to_string)
                .collect()
        };
        let (la, lb) = (leading(a), leading(b));
        Ok(if la.first() != lb.first() {
            Bump::Major
        } else if la.get(1) != lb.get(1) {
            Bump::Minor
        } else {
            Bump::Patch
        })
    }

    /// The key of a package name as a scanner spells it; must equal
    /// [`InstalledPackage::key`] for the same package. The default is the
    /// name itself, right for ecosystems whose names are case-sensitive
    /// and unnormalised (npm); pip overrides it with PEP 503.
    fn package_key(name: &str) -> String {
        name.to_string()
    }

    /// Lists what is installed in the image, or asks for probes first.
    ///
    /// # Errors
    ///
    /// The image cannot be read the way the plugin needs.
    fn detect(image: &Image, context: &ImageContext, answers: &Answers) -> Result<Detected, Error>;

    /// The releases the index offers for a copy's package, with the ones
    /// that cannot be installed at its location marked. `None` (the default)
    /// means the plugin does not ask an index.
    ///
    /// # Errors
    ///
    /// The index answered with something the plugin cannot read.
    fn releases(
        package: &InstalledPackage,
        sources: &[String],
    ) -> Result<Option<Vec<Release>>, Error> {
        let _ = (package, sources);
        Ok(None)
    }

    /// Turns updates into tasks, or asks for probes first.
    ///
    /// # Errors
    ///
    /// An update cannot be planned.
    fn plan(
        image: &Image,
        updates: &[PackageUpdate],
        context: &PlanContext,
        answers: &Answers,
    ) -> Result<Planned, Error>;
}

/// The names a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::host::{self, FetchError, Response};
    pub use crate::image::{Find, Image};
    pub use crate::version::Version;
    pub use crate::{
        Answers, Bump, Check, Command, Detected, Error, FetchRequest, FileWrite, ImageContext,
        InstalledPackage, Origin, OutputMatch, PackageKind, PackageUpdate, PlanContext, Planned,
        Plugin, PluginInfo, Probe, ProbeResult, Release, Step, Task, VendoredIn, VersionInfo,
    };
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Failed(e.to_string())
    }
}

/// Exports a [`Plugin`] implementation as the component's `salve:plugin`
/// world. Call it once, at the crate root of the plugin. On targets other
/// than `wasm32` it expands to nothing, so the plugin's code can be tested
/// natively.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // Natively nothing is exported, but the plugin counts as used, so
        // its code does not warn as dead in native builds and tests.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::PluginInfo = <$plugin as $crate::Plugin>::info;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::bindings::exports::salve::plugin::plugin as iface;
            use $crate::__private::bindings::salve::plugin::types as wit;

            struct SalveComponent;

            impl iface::Guest for SalveComponent {
                fn info() -> wit::PluginInfo {
                    $crate::__private::info::<$plugin>()
                }
                fn parse_version(version: String) -> Result<wit::VersionInfo, String> {
                    $crate::__private::parse_version::<$plugin>(version)
                }
                fn compare(a: String, b: String) -> Result<wit::Ordering, String> {
                    $crate::__private::compare::<$plugin>(a, b)
                }
                fn classify(a: String, b: String) -> Result<wit::Bump, String> {
                    $crate::__private::classify::<$plugin>(a, b)
                }
                fn package_key(name: String) -> String {
                    <$plugin as $crate::Plugin>::package_key(&name)
                }
                fn detect(
                    image: wit::ImageContext,
                    answers: Vec<wit::ProbeResult>,
                ) -> Result<wit::DetectOutcome, wit::PluginError> {
                    $crate::__private::detect::<$plugin>(image, answers)
                }
                fn releases(
                    package: wit::InstalledPackage,
                    sources: Vec<String>,
                ) -> Result<Option<Vec<wit::Release>>, wit::PluginError> {
                    $crate::__private::releases::<$plugin>(package, sources)
                }
                fn plan(
                    updates: Vec<wit::PackageUpdate>,
                    context: wit::PlanContext,
                    answers: Vec<wit::ProbeResult>,
                ) -> Result<wit::PlanOutcome, wit::PluginError> {
                    $crate::__private::plan::<$plugin>(updates, context, answers)
                }
            }

            $crate::__private::bindings::__export_ecosystem!(
                SalveComponent with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Not public API: what [`export_plugin!`] expands to.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::guest::*;
}
