//! Test-image recipes: the TOML files in `tests/recipes/`.
//!
//! A recipe is either a base (a `[debootstrap]` table: a root file system
//! made by `debootstrap` and imported as one layer) or a child of another
//! recipe (`parent`) with `[[step]]`s, each a shell script run in a container
//! of the image so far and committed as one layer, the way `docker build`
//! makes one layer per `RUN`. `[[expect]]` lists what the steps must have
//! installed; the builder checks it against the built image's contents.
//!
//! The recipes are compiled into this crate, so the builder works from any
//! directory, and their bytes are part of the cache key.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::inventory::Ecosystem;

/// Bump when the builder changes what it makes from the same recipe, so that
/// cached images built by an older builder are not reused.
pub const BUILDER_VERSION: u32 = 1;

/// The recipes in `tests/recipes/`, by name.
const SOURCES: &[(&str, &str)] = &[
    (
        "debian-bookworm",
        include_str!("../recipes/debian-bookworm.toml"),
    ),
    ("python", include_str!("../recipes/python.toml")),
    ("node", include_str!("../recipes/node.toml")),
];

/// A recipe that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No file in `tests/recipes/` has this name.
    #[error("no recipe named {0:?} in tests/recipes")]
    Unknown(String),
    /// The TOML does not parse or has wrong fields.
    #[error("reading tests/recipes/{name}.toml")]
    Parse {
        /// The recipe's name.
        name: String,
        /// What the TOML parser said.
        #[source]
        source: toml::de::Error,
    },
    /// The fields parse but do not make a recipe.
    #[error("tests/recipes/{name}.toml: {problem}")]
    Invalid {
        /// The recipe's name.
        name: String,
        /// What is wrong, naming the field.
        problem: String,
    },
}

/// One test image's recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The recipe's name, equal to its file name without `.toml`.
    pub name: String,
    /// The image's Docker tag, also written in the docker-archive.
    pub tag: String,
    /// The recipe this one builds on; absent for a base.
    pub parent: Option<String>,
    /// How to make a base image.
    pub debootstrap: Option<Debootstrap>,
    /// The build steps, one layer each.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// What the steps must have installed.
    #[serde(default, rename = "expect")]
    pub expects: Vec<Expect>,
    /// The recipe file's bytes, for the cache key.
    #[serde(skip)]
    pub source: String,
}

/// How a base image's root file system is made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debootstrap {
    /// The Debian suite, e.g. `bookworm`.
    pub suite: String,
    /// The debootstrap variant, e.g. `minbase`.
    pub variant: String,
    /// The archive to install from.
    pub mirror: String,
    /// A shell script run in the new root file system before it is imported.
    pub setup: String,
    /// Dockerfile instructions applied at import (`ENV`, `CMD`...).
    #[serde(default)]
    pub changes: Vec<String>,
}

/// One build step: a script run in the image, committed as one layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step does; becomes the layer's history comment.
    pub comment: String,
    /// The shell script (run with `/bin/sh -c` after `set -eu`).
    pub run: String,
    /// Dockerfile instructions applied at commit (`ENV`, `WORKDIR`, `CMD`...).
    #[serde(default)]
    pub changes: Vec<String>,
}

/// Packages a recipe's steps must have installed in one directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The packages' ecosystem.
    pub ecosystem: Ecosystem,
    /// The directory holding the packages' metadata, relative to the root.
    pub dir: String,
    /// `"name version"` pairs.
    pub packages: Vec<String>,
}

impl Expect {
    /// The expected packages as (name, version) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.packages
            .iter()
            .filter_map(|entry| entry.split_once(' '))
    }
}

/// Reads the recipe called `name` from `tests/recipes/`.
pub fn load(name: &str) -> Result<Recipe, Error> {
    let (_, source) = SOURCES
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| Error::Unknown(name.to_owned()))?;
    let mut recipe: Recipe = toml::from_str(source).map_err(|source| Error::Parse {
        name: name.to_owned(),
        source,
    })?;
    recipe.source = (*source).to_owned();

    let invalid = |problem: &str| Error::Invalid {
        name: name.to_owned(),
        problem: problem.into(),
    };
    if recipe.name != name {
        return Err(invalid("field `name` differs from the file name"));
    }
    match (&recipe.parent, &recipe.debootstrap) {
        (Some(_), Some(_)) => return Err(invalid("has both `parent` and `[debootstrap]`")),
        (None, None) => return Err(invalid("needs either `parent` or `[debootstrap]`")),
        (None, Some(_)) if !recipe.steps.is_empty() => {
            return Err(invalid("a `[debootstrap]` base takes no `[[step]]`"));
        }
        _ => {}
    }
    if !recipe.tag.contains(':') {
        return Err(invalid("field `tag` needs a `:TAG` part"));
    }
    if let Some(bad) = recipe
        .expects
        .iter()
        .flat_map(|e| &e.packages)
        .find(|p| !p.contains(' '))
    {
        return Err(invalid(&format!(
            "`expect.packages` entry {bad:?} is not \"name version\""
        )));
    }
    Ok(recipe)
}

/// The names of all recipes, bases first.
pub fn names() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(name, _)| *name)
}

impl Recipe {
    /// The cache key: a hash of the builder version, the scripts the builder
    /// runs in containers, this recipe and its parents, so that editing any
    /// of them rebuilds the image.
    pub fn key(&self) -> Result<String, Error> {
        let mut hasher = Sha256::new();
        hasher.update(format!("salve-testbed builder {BUILDER_VERSION}\n"));
        for script in crate::images::SCRIPTS {
            hasher.update(script);
        }
        hasher.update(&self.source);
        if let Some(parent) = &self.parent {
            hasher.update(load(parent)?.key()?);
        }
        Ok(hex::encode(hasher.finalize())[..16].to_owned())
    }

    /// The tag inside the OCI layout (the part after `:` in [`Recipe::tag`]).
    pub fn oci_tag(&self) -> &str {
        self.tag.rsplit_once(':').map_or("latest", |(_, tag)| tag)
    }

    /// What the steps must have installed, as (ecosystem, dir) -> name -> version.
    pub fn expected(&self) -> BTreeMap<(Ecosystem, &str), BTreeMap<&str, &str>> {
        let mut expected: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
        for expect in &self.expects {
            let entry = expected
                .entry((expect.ecosystem, expect.dir.as_str()))
                .or_default();
            entry.extend(expect.pairs());
        }
        expected
    }
}
