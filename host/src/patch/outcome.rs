//! What happened to each package copy: the rows of salve's summary.

use crate::plugin::Bump;
use crate::policy::{Decision, Open};

/// One package copy (or a package the report names that the image lacks),
/// and what salve decided or did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The plugin that handled it, or the report's type when none did.
    pub ecosystem: String,
    /// The package name, as the image (or else the report) spells it.
    pub package: String,
    /// Where the copy is: its metadata path (`/usr/lib/...`); empty for OS
    /// packages.
    pub location: String,
    /// The installed version.
    pub installed: String,
    /// The version it moves (or moved, or would move) to.
    pub target: Option<String>,
    /// The size of that move.
    pub bump: Option<Bump>,
    /// What happened.
    pub status: Status,
    /// Why, for skips and failures.
    pub reason: Option<String>,
    /// Vulnerabilities the move closes (closed, once `updated`).
    pub closes: Vec<String>,
    /// Vulnerabilities the installed version already closes.
    pub already_fixed: Vec<String>,
    /// Vulnerabilities that stay open, each with its reason.
    pub open: Vec<OpenVulnerability>,
}

/// A vulnerability left open, and why, in words.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpenVulnerability {
    /// Its id.
    pub id: String,
    /// Why it stays open.
    pub reason: String,
}

impl From<&Open> for OpenVulnerability {
    fn from(o: &Open) -> Self {
        OpenVulnerability {
            id: o.id.clone(),
            reason: o.reason.to_string(),
        }
    }
}

/// What happened to a package copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The policy chose a target (`salve plan`, or before running).
    Update,
    /// Moved to the target and verified.
    Updated,
    /// Its task failed or did not verify; nothing of it was kept.
    Failed,
    /// Left as it is; see the reason.
    Skipped,
    /// The installed version already closes every vulnerability listed.
    AlreadyFixed,
    /// The report names it, but the image does not have it there.
    NotInstalled,
}

impl Status {
    /// The word the summary table shows.
    pub fn word(self) -> &'static str {
        match self {
            Status::Update => "update",
            Status::Updated => "updated",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::AlreadyFixed => "already fixed",
            Status::NotInstalled => "not installed",
        }
    }
}

impl Entry {
    /// The entry for a policy decision about one copy.
    pub fn from_decision(
        ecosystem: &str,
        package: &str,
        location: &str,
        installed: &str,
        decision: &Decision,
    ) -> Entry {
        let mut entry = Entry::bare(ecosystem, package, location, installed);
        match decision {
            Decision::Update(u) => {
                entry.status = Status::Update;
                entry.target = Some(u.to.clone());
                entry.bump = Some(u.bump);
                entry.closes = u.closes.clone();
                entry.already_fixed = u.already_fixed.clone();
                entry.open = u.open.iter().map(Into::into).collect();
            }
            Decision::AlreadyFixed { vulnerabilities } => {
                entry.status = Status::AlreadyFixed;
                entry.already_fixed = vulnerabilities.clone();
            }
            Decision::Skip(s) => {
                entry.status = Status::Skipped;
                entry.reason = Some(s.reason.to_string());
                entry.already_fixed = s.already_fixed.clone();
                entry.open = s.open.iter().map(Into::into).collect();
            }
        }
        entry
    }

    /// An entry with nothing decided yet.
    pub fn bare(ecosystem: &str, package: &str, location: &str, installed: &str) -> Entry {
        Entry {
            ecosystem: ecosystem.to_string(),
            package: package.to_string(),
            location: location.to_string(),
            installed: installed.to_string(),
            target: None,
            bump: None,
            status: Status::Skipped,
            reason: None,
            closes: Vec::new(),
            already_fixed: Vec::new(),
            open: Vec::new(),
        }
    }

    /// Marks a skip or failure: every vulnerability stays open with the
    /// same reason.
    pub fn left_open(mut self, status: Status, reason: String, ids: &[String]) -> Entry {
        let mut open: Vec<OpenVulnerability> = Vec::new();
        for id in ids.iter().chain(self.closes.iter()) {
            if !open.iter().any(|o| &o.id == id) && !self.open.iter().any(|o| &o.id == id) {
                open.push(OpenVulnerability {
                    id: id.clone(),
                    reason: reason.clone(),
                });
            }
        }
        self.open.extend(open);
        self.closes.clear();
        self.status = status;
        self.reason = Some(reason);
        self
    }
}
