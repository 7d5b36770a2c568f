//! What the policy decided for a package copy, and why, in words.

use std::fmt;

use crate::plugin::Bump;
use crate::report::FixState;

use super::{Level, Vulnerability};

/// The policy's decision for one package copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Move the copy to another version.
    Update(Update),
    /// The installed version already closes every vulnerability listed.
    AlreadyFixed {
        /// The vulnerabilities it closes.
        vulnerabilities: Vec<String>,
    },
    /// Leave the copy as it is.
    Skip(Skip),
}

/// A move from the installed version to a target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Update {
    /// The installed version.
    pub from: String,
    /// The target: exact for libraries, a minimum for OS packages.
    pub to: String,
    /// The size of the move.
    pub bump: Bump,
    /// The vulnerabilities the move closes.
    pub closes: Vec<String>,
    /// Vulnerabilities the installed version already closes (and the
    /// target keeps closed).
    pub already_fixed: Vec<String>,
    /// The vulnerabilities that stay open, each with its reason.
    pub open: Vec<Open>,
}

/// Why a copy is left as it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    /// Why, for the copy as a whole.
    pub reason: SkipReason,
    /// Vulnerabilities the installed version already closes.
    pub already_fixed: Vec<String>,
    /// Every other vulnerability, each with its own reason.
    pub open: Vec<Open>,
}

impl Skip {
    /// The skip of a copy whose scanner type no loaded plugin takes: each
    /// of its vulnerabilities stays open, unassessed.
    pub fn no_plugin(report_type: &str, vulnerabilities: &[Vulnerability<'_>]) -> Self {
        let reason = SkipReason::NoPlugin {
            report_type: report_type.to_owned(),
        };
        Skip {
            reason,
            already_fixed: Vec::new(),
            open: unassessed(vulnerabilities),
        }
    }
}

/// Each distinct vulnerability, open and unassessed.
pub(super) fn unassessed(vulnerabilities: &[Vulnerability<'_>]) -> Vec<Open> {
    let mut open: Vec<Open> = Vec::new();
    for vulnerability in vulnerabilities {
        if !open.iter().any(|o| o.id == vulnerability.id) {
            let id = vulnerability.id.to_owned();
            open.push(Open {
                id,
                reason: OpenReason::Unassessed,
            });
        }
    }
    open
}

/// A vulnerability left open, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Open {
    /// The vulnerability's id.
    pub id: String,
    /// Why it stays open.
    pub reason: OpenReason,
}

/// Why one vulnerability stays open.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OpenReason {
    /// No fixed version is published.
    NoFix {
        /// What the data source says.
        state: FixState,
    },
    /// None of its fixed versions is a version of the ecosystem.
    InvalidFix {
        /// The first fixed version refused.
        version: String,
        /// Why.
        error: String,
    },
    /// A version the policy allows closes it, but the chosen one closes more.
    TradeOff {
        /// The lowest version that would close it.
        version: String,
        /// What moving there instead would leave open.
        leaves_open: Vec<String>,
    },
    /// The versions that close it re-open a vulnerability the installed
    /// version fixes (the fix lies on another release line).
    Reopens {
        /// The lowest version that would close it.
        version: String,
        /// What it would re-open.
        reopens: Vec<String>,
    },
    /// Its fix is a bigger move than the patch level allows.
    OutsideLevel {
        /// The lowest version that would close it.
        version: String,
        /// The size of that move.
        bump: Bump,
    },
    /// Only a pre-release closes it.
    Prerelease {
        /// The lowest pre-release that would close it.
        version: String,
    },
    /// The package index does not offer the fixed version.
    NotOffered {
        /// The fixed version.
        version: String,
    },
    /// The package index offers the fixed version, but it cannot be
    /// installed at this location.
    Unusable {
        /// The fixed version.
        version: String,
        /// Why, as the plugin says.
        why: String,
    },
    /// No version newer than the installed one closes it.
    NoRelease,
    /// The copy was skipped before its vulnerabilities could be weighed
    /// (see the skip's reason).
    Unassessed,
}

/// Why a copy is left as it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SkipReason {
    /// None of its vulnerabilities has a published fix.
    NoFix,
    /// The installed version is missing or not a version of the ecosystem.
    InvalidInstalled {
        /// The installed version as the report gives it.
        version: String,
        /// Why it is refused.
        error: String,
    },
    /// None of the fixed versions is a version of the ecosystem.
    InvalidFixes,
    /// Fixes exist, but only as bigger moves than the patch level allows.
    OutsideLevel {
        /// The level in force.
        level: Level,
        /// The installed version.
        installed: String,
        /// The installed release line, for people (`1.25.x`), when the
        /// version's spelling shows one.
        line: Option<String>,
        /// What a wider level would do.
        hint: Option<Hint>,
    },
    /// Only pre-releases fix it.
    OnlyPrerelease {
        /// What allowing pre-releases would move to.
        hint: Option<String>,
    },
    /// Every version that closes a vulnerability re-opens another.
    WouldReopen,
    /// The index offers none of the fixed versions, or none usable here.
    NotOffered,
    /// No newer version closes any of its vulnerabilities.
    NoRelease,
    /// No loaded plugin takes the scanner's type for this package.
    NoPlugin {
        /// The scanner's type.
        report_type: String,
    },
    /// The plugin failed to order versions it had accepted.
    Ordering {
        /// What failed.
        detail: String,
    },
}

/// What a wider patch level would do for a skipped copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hint {
    /// The level.
    pub level: Level,
    /// The version it would move to.
    pub to: String,
}

/// The word for a move's size.
pub(super) fn bump_word(bump: Bump) -> &'static str {
    match bump {
        Bump::None => "no",
        Bump::Patch => "patch",
        Bump::Minor => "minor",
        Bump::Major => "major",
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list(ids: &[String]) -> String {
    match ids {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Update(update) => {
                write!(
                    f,
                    "update {} -> {} ({})",
                    update.from,
                    update.to,
                    bump_word(update.bump)
                )?;
                write!(f, ", closes {}", update.closes.len())?;
                if !update.open.is_empty() {
                    write!(f, ", leaves {} open", update.open.len())?;
                }
                Ok(())
            }
            Decision::AlreadyFixed { .. } => f.write_str("already fixed"),
            Decision::Skip(skip) => write!(f, "skip: {}", skip.reason),
        }
    }
}

impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.id, self.reason)
    }
}

impl fmt::Display for OpenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenReason::NoFix {
                state: FixState::Unknown | FixState::NotFixed | FixState::Fixed,
            } => f.write_str("no fixed version is published"),
            OpenReason::NoFix { state } => write!(f, "no fixed version is published: {state}"),
            OpenReason::InvalidFix { version, error } => {
                write!(
                    f,
                    "its fixed version {version:?} is not a valid version: {error}"
                )
            }
            OpenReason::TradeOff {
                version,
                leaves_open,
            } => {
                write!(
                    f,
                    "{version} would close it but leave {} open",
                    list(leaves_open)
                )
            }
            OpenReason::Reopens { version, reopens } => write!(
                f,
                "{version} would close it but re-open {}, which the installed version fixes",
                list(reopens)
            ),
            OpenReason::OutsideLevel { version, bump } => write!(
                f,
                "fixed in {version}, a {} move; --library-patch-level {} allows it",
                bump_word(*bump),
                Level::for_bump(*bump)
            ),
            OpenReason::Prerelease { version } => {
                write!(
                    f,
                    "fixed only in the pre-release {version}; --allow-prereleases allows it"
                )
            }
            OpenReason::NotOffered { version } => {
                write!(
                    f,
                    "fixed in {version}, which the package index does not offer"
                )
            }
            OpenReason::Unusable { version, why } => {
                write!(
                    f,
                    "fixed in {version}, which cannot be installed here: {why}"
                )
            }
            OpenReason::NoRelease => {
                f.write_str("no version newer than the installed one fixes it")
            }
            OpenReason::Unassessed => f.write_str("not assessed: the package was skipped"),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NoFix => {
                f.write_str("no fixed version is published for its vulnerabilities")
            }
            SkipReason::InvalidInstalled { version, .. } if version.is_empty() => {
                f.write_str("the report gives no installed version")
            }
            SkipReason::InvalidInstalled { version, error } => {
                write!(
                    f,
                    "the installed version {version:?} is not a valid version: {error}"
                )
            }
            SkipReason::InvalidFixes => {
                f.write_str("none of its fixed versions is a valid version")
            }
            SkipReason::OutsideLevel {
                level,
                installed,
                line,
                hint,
            } => {
                match line {
                    Some(line) => write!(f, "no fix on {line}")?,
                    None => write!(f, "no fix within a {level} move of {installed}")?,
                }
                match hint {
                    Some(hint) => write!(
                        f,
                        "; --library-patch-level {} would move to {}",
                        hint.level, hint.to
                    ),
                    None => Ok(()),
                }
            }
            SkipReason::OnlyPrerelease { hint: Some(to) } => write!(
                f,
                "only a pre-release fixes it; --allow-prereleases would move to {to}"
            ),
            SkipReason::OnlyPrerelease { hint: None } => f.write_str("only a pre-release fixes it"),
            SkipReason::WouldReopen => f.write_str(
                "every version that fixes one of its vulnerabilities re-opens one the installed \
                 version fixes",
            ),
            SkipReason::NotOffered => f.write_str(
                "the package index offers no version that fixes it and can be installed here",
            ),
            SkipReason::NoRelease => {
                f.write_str("no version newer than the installed one fixes its vulnerabilities")
            }
            SkipReason::NoPlugin { report_type } => write!(f, "no plugin handles {report_type}"),
            SkipReason::Ordering { detail } => {
                write!(f, "the plugin could not order its versions: {detail}")
            }
        }
    }
}
