//! The image's own `node` and `npm`, which run every plan.
//!
//! Their versions decide what salve can do: npm 7 is the first with
//! `--omit`/`--include` and the lockfile npm reads today, npm 8.3 the first
//! with `overrides`, and npm 11.2 the first whose overrides apply reliably
//! to a lockfile's hoisted copies (see [`OverrideForm`]). Files cannot tell
//! which `npm` the image's `PATH` finds first, so detection asks the image
//! with two probes.

use nodejs_semver::Version;
use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{Answers, Command, ImageContext, Probe};

use crate::version;

/// Probe id for `npm --version`.
pub const NPM_PROBE: &str = "npm-version";
/// Probe id for `node --version`.
pub const NODE_PROBE: &str = "node-version";

/// The `PATH` of an image that does not set one (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a plan pins a transitive dependency with npm `overrides`.
///
/// npm 8.3 to 11.1 load a lockfile so that a copy's override rules reach
/// only the dependents that sort before it (npm/cli#4232 and its many
/// duplicates): a root rule `"qs@6.7.0": "6.7.3"` moves `qs` for
/// `body-parser` but not for `express`, and `npm ls` then calls the tree
/// invalid. Rules keyed by each dependent (`"express@4.17.1": {"qs":
/// "6.7.3"}`) are applied by those versions; npm 11.2 rewrote override
/// propagation and applies the narrower root selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideForm {
    /// `"name@installed": "target"` at the top of `overrides`.
    Selector,
    /// `"dependent@version": {"name": "target"}` for each dependent.
    PerDependent,
}

/// The versions of the image's `npm` and `node`, when known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tools {
    /// `npm --version`.
    pub npm: Option<Version>,
    /// `node --version`.
    pub node: Option<Version>,
}

impl Tools {
    /// The probes that ask the image for its versions, or `None` when no
    /// directory of the image's `PATH` holds an `npm`.
    pub fn probes(image: &Image, context: &ImageContext) -> Option<Vec<Probe>> {
        let path = context.env_var("PATH").unwrap_or(DEFAULT_PATH);
        let has_npm = path
            .split(':')
            .filter(|dir| !dir.is_empty())
            .any(|dir| image.is_file(&format!("{}/npm", dir.trim_end_matches('/'))));
        if !has_npm {
            return None;
        }
        Some(vec![
            Probe {
                id: NPM_PROBE.into(),
                command: Command::new(["npm", "--version"]),
            },
            Probe {
                id: NODE_PROBE.into(),
                command: Command::new(["node", "--version"]),
            },
        ])
    }

    /// The versions the probes answered; a probe that failed or printed
    /// something else leaves its version unknown.
    pub fn from_answers(answers: &Answers) -> Tools {
        let read = |id: &str| {
            answers
                .get(id)
                .filter(|a| a.exit_code == 0)
                .and_then(|a| a.stdout.lines().map(str::trim).find(|l| !l.is_empty()))
                .and_then(|line| version::parse(line).ok())
        };
        Tools {
            npm: read(NPM_PROBE),
            node: read(NODE_PROBE),
        }
    }

    /// Why this npm cannot patch a project at all, if it cannot.
    pub fn npm_unusable(&self) -> Option<String> {
        match &self.npm {
            None => Some(
                "the image has no working npm on its PATH to install with \
                 (`npm --version` failed or printed no version)"
                    .into(),
            ),
            Some(v) if v.major() < 7 => Some(format!(
                "npm {v} in the image predates npm 7, which salve needs to update a \
                 project in place; upgrade npm in the image first"
            )),
            Some(_) => None,
        }
    }

    /// Why this npm cannot pin a transitive dependency, if it cannot.
    pub fn overrides_unsupported(&self) -> Option<String> {
        match &self.npm {
            Some(v) if *v < Version::from((8, 3, 0)) => Some(format!(
                "npm {v} in the image has no `overrides` (npm 8.3 or later), which salve \
                 needs to move a transitive dependency"
            )),
            _ => None,
        }
    }

    /// The override form this npm applies correctly.
    pub fn override_form(&self) -> OverrideForm {
        match &self.npm {
            Some(v) if *v >= Version::from((11, 2, 0)) => OverrideForm::Selector,
            _ => OverrideForm::PerDependent,
        }
    }
}

#[cfg(test)]
mod tests {
    use salve_plugin_sdk::ProbeResult;

    use super::*;

    fn answer(id: &str, exit_code: i32, stdout: &str) -> ProbeResult {
        ProbeResult {
            id: id.into(),
            exit_code,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn versions_come_from_successful_probes() {
        let tools = Tools::from_answers(&Answers(vec![
            answer(NPM_PROBE, 0, "9.2.0\n"),
            answer(NODE_PROBE, 0, "v18.20.4\n"),
        ]));
        assert_eq!(tools.npm, Some(Version::from((9, 2, 0))));
        assert_eq!(tools.node, Some(Version::from((18, 20, 4))));
        assert_eq!(tools.override_form(), OverrideForm::PerDependent);
        assert_eq!(tools.npm_unusable(), None);
        assert_eq!(tools.overrides_unsupported(), None);
    }

    #[test]
    fn a_failed_probe_leaves_npm_unknown_and_unusable() {
        let tools = Tools::from_answers(&Answers(vec![answer(NPM_PROBE, 127, "")]));
        assert_eq!(tools.npm, None);
        assert!(tools.npm_unusable().unwrap().contains("no working npm"));
    }

    #[test]
    fn old_npms_are_refused_with_the_version_they_lack() {
        let six = Tools::from_answers(&Answers(vec![answer(NPM_PROBE, 0, "6.14.18")]));
        assert!(six.npm_unusable().unwrap().contains("npm 6.14.18"));
        let eight = Tools::from_answers(&Answers(vec![answer(NPM_PROBE, 0, "8.1.2")]));
        assert_eq!(eight.npm_unusable(), None);
        assert!(eight.overrides_unsupported().unwrap().contains("npm 8.3"));
        let eleven = Tools::from_answers(&Answers(vec![answer(NPM_PROBE, 0, "11.2.0")]));
        assert_eq!(eleven.override_form(), OverrideForm::Selector);
    }

    #[test]
    fn probes_only_when_path_has_npm() {
        let root = tempfile::tempdir().unwrap();
        let image = Image::at(root.path());
        let context = ImageContext::default();
        assert_eq!(Tools::probes(&image, &context), None);
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        std::fs::write(root.path().join("usr/bin/npm"), "").unwrap();
        let probes = Tools::probes(&image, &context).unwrap();
        assert_eq!(probes[0].command.argv, vec!["npm", "--version"]);
    }
}
