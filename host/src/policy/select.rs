//! The selection rules described in [`super`].

use std::cmp::Ordering;
use std::collections::HashMap;

use tracing::debug;

use crate::plugin::{Bump, PackageKind};
use crate::report::FixState;

use super::decision::{Decision, Hint, Open, OpenReason, Skip, SkipReason, Update, unassessed};
use super::{Level, Options, Query};

/// Decides where one package copy moves.
///
/// Never fails: an invalid installed version, or a plugin that cannot order
/// versions it accepted, is a [`Decision::Skip`] that says so.
pub fn select(query: &Query<'_>) -> Decision {
    let decision = match Selector::new(query).decide() {
        Ok(decision) => decision,
        Err(Fault(detail)) => skip_unassessed(query, SkipReason::Ordering { detail }),
    };
    debug!(installed = query.installed, %decision, "policy decision");
    decision
}

/// A version call that failed on versions the plugin had accepted.
struct Fault(String);

/// One vulnerability, its repeated rows merged and its fixes parsed.
struct Vuln<'a> {
    id: &'a str,
    state: FixState,
    /// The fixes that are versions of the ecosystem, in report order.
    fixes: Vec<&'a str>,
    /// The newest of them.
    newest: Option<&'a str>,
    /// The first fix that is not a version, and why.
    invalid: Option<(&'a str, String)>,
}

/// A version the copy could move to, weighed against the vulnerabilities.
struct Candidate<'a> {
    version: &'a str,
    prerelease: bool,
    bump: Bump,
    /// Indexes of the vulnerabilities it closes.
    closes: Vec<usize>,
    /// Indexes of vulnerabilities the installed version closes and it does
    /// not.
    reopens: Vec<usize>,
}

struct Selector<'q, 'a> {
    query: &'q Query<'a>,
    /// `parse` answers so far: `Ok(prerelease)` or why it is no version.
    parsed: HashMap<&'a str, Result<bool, String>>,
    /// Whether pre-releases may be targets: allowed by the user, or the
    /// installed version is one.
    allow_prereleases: bool,
}

impl<'q, 'a> Selector<'q, 'a> {
    fn new(query: &'q Query<'a>) -> Self {
        let allow_prereleases = query.options.allow_prereleases;
        Selector {
            query,
            parsed: HashMap::new(),
            allow_prereleases,
        }
    }

    fn decide(&mut self) -> Result<Decision, Fault> {
        let query = self.query;
        let installed = query.installed.trim();
        let installed_prerelease = match self.parse(installed) {
            Ok(prerelease) => prerelease,
            Err(error) => {
                let version = installed.to_owned();
                return Ok(skip_unassessed(
                    query,
                    SkipReason::InvalidInstalled { version, error },
                ));
            }
        };
        self.allow_prereleases |= installed_prerelease;
        let vulns = self.vulns()?;

        // What the installed version already closes needs no move.
        let (mut already, mut needy, mut unfixable) = (Vec::new(), Vec::new(), Vec::new());
        for (index, vuln) in vulns.iter().enumerate() {
            if vuln.newest.is_none() {
                unfixable.push(index);
            } else if self.closes(installed, vuln)? {
                already.push(index);
            } else {
                needy.push(index);
            }
        }
        let ids = |indexes: &[usize]| indexes.iter().map(|&i| vulns[i].id.to_owned()).collect();
        let open: Vec<Open> = unfixable
            .iter()
            .map(|&i| unfixable_open(&vulns[i]))
            .collect();
        if needy.is_empty() {
            if unfixable.is_empty() {
                return Ok(Decision::AlreadyFixed {
                    vulnerabilities: ids(&already),
                });
            }
            let no_fix = unfixable.iter().any(|&i| vulns[i].invalid.is_none());
            let reason = if no_fix {
                SkipReason::NoFix
            } else {
                SkipReason::InvalidFixes
            };
            return Ok(Decision::Skip(Skip {
                reason,
                already_fixed: ids(&already),
                open,
            }));
        }

        if query.kind == PackageKind::Os {
            return self.os_update(&vulns, &already, &needy, open);
        }
        self.library_update(&vulns, &already, &needy, open)
    }

    /// Libraries move to the allowed version that closes the most.
    fn library_update(
        &mut self,
        vulns: &[Vuln<'a>],
        already: &[usize],
        needy: &[usize],
        mut open: Vec<Open>,
    ) -> Result<Decision, Fault> {
        let candidates = self.candidates(vulns, already)?;
        let chosen = self.choose(&candidates, needy)?;

        // Say why each vulnerability the move leaves open stays open.
        let mut reasons = Vec::new();
        for &index in needy {
            if chosen.is_some_and(|target| target.closes.contains(&index)) {
                continue;
            }
            let reason = self.open_reason(vulns, index, &candidates, chosen)?;
            reasons.push(reason.clone());
            open.push(Open {
                id: vulns[index].id.to_owned(),
                reason,
            });
        }
        open.sort_by_key(|o| vulns.iter().position(|v| v.id == o.id));

        let ids = |indexes: &mut dyn Iterator<Item = usize>| {
            indexes.map(|i| vulns[i].id.to_owned()).collect::<Vec<_>>()
        };
        let already_fixed = ids(&mut already.iter().copied());
        let Some(target) = chosen else {
            let reason = self.skip_reason(&reasons);
            return Ok(Decision::Skip(Skip {
                reason,
                already_fixed,
                open,
            }));
        };
        let closes = ids(&mut needy.iter().copied().filter(|i| target.closes.contains(i)));
        Ok(Decision::Update(Update {
            from: self.query.installed.trim().to_owned(),
            to: target.version.to_owned(),
            bump: target.bump,
            closes,
            already_fixed,
            open,
        }))
    }

    /// Whether the level and the pre-release rule let the copy move here.
    fn allowed(&self, candidate: &Candidate<'_>) -> bool {
        let query = self.query;
        (query.always_latest || query.options.level.allows(candidate.bump))
            && (self.allow_prereleases || !candidate.prerelease)
    }

    /// The best allowed candidate that closes something the installed
    /// version does not and re-opens nothing.
    fn choose<'c>(
        &self,
        candidates: &'c [Candidate<'a>],
        needy: &[usize],
    ) -> Result<Option<&'c Candidate<'a>>, Fault> {
        let mut chosen: Option<&'c Candidate<'a>> = None;
        for candidate in candidates.iter().filter(|c| self.allowed(c)) {
            let closes_needy = candidate.closes.iter().any(|i| needy.contains(i));
            if !closes_needy || !candidate.reopens.is_empty() {
                continue;
            }
            chosen = match chosen {
                Some(best) if !self.better(candidate, best)? => Some(best),
                _ => Some(candidate),
            };
        }
        Ok(chosen)
    }

    /// Merges repeated rows of one vulnerability and parses its fixes.
    fn vulns(&mut self) -> Result<Vec<Vuln<'a>>, Fault> {
        let mut vulns: Vec<Vuln<'a>> = Vec::new();
        for row in self.query.vulnerabilities {
            let position = vulns.iter().position(|v| v.id == row.id);
            let index = position.unwrap_or_else(|| {
                let vuln = Vuln {
                    id: row.id,
                    state: row.state,
                    fixes: vec![],
                    newest: None,
                    invalid: None,
                };
                vulns.push(vuln);
                vulns.len() - 1
            });
            for fix in row.fixed.iter().map(|f| f.trim()) {
                let vuln = &mut vulns[index];
                if vuln.fixes.contains(&fix) {
                    continue;
                }
                match self.parse(fix) {
                    Ok(_) => vuln.fixes.push(fix),
                    Err(error) => {
                        debug!(id = row.id, fix, %error, "fixed version is not a version");
                        vuln.invalid.get_or_insert((fix, error));
                    }
                }
            }
        }

        for vuln in &mut vulns {
            vuln.newest = self.highest(vuln.fixes.iter().copied())?;
        }
        Ok(vulns)
    }

    /// OS packages move to at least the highest fix: the distribution's
    /// repositories decide the exact version, so neither the level nor the
    /// pre-release rule applies.
    fn os_update(
        &mut self,
        vulns: &[Vuln<'a>],
        already: &[usize],
        needy: &[usize],
        open: Vec<Open>,
    ) -> Result<Decision, Fault> {
        if self.query.releases.is_some() {
            debug!("releases given for an OS package; the package manager decides instead");
        }
        let Some(to) = self.highest(needy.iter().filter_map(|&i| vulns[i].newest))? else {
            return Err(Fault("an OS package to update has no fix to aim at".into()));
        };
        let installed = self.query.installed.trim();
        Ok(Decision::Update(Update {
            from: installed.to_owned(),
            to: to.to_owned(),
            bump: self.bump(installed, to)?,
            closes: needy.iter().map(|&i| vulns[i].id.to_owned()).collect(),
            already_fixed: already.iter().map(|&i| vulns[i].id.to_owned()).collect(),
            open,
        }))
    }

    /// The versions newer than the installed one that the copy could move
    /// to: the usable releases when the index was asked, else the fixes.
    fn candidates(
        &mut self,
        vulns: &[Vuln<'a>],
        already: &[usize],
    ) -> Result<Vec<Candidate<'a>>, Fault> {
        let versions: Vec<&'a str> = match self.query.releases {
            Some(releases) => releases
                .iter()
                .filter(|r| r.unusable.is_none())
                .map(|r| r.version.trim())
                .collect(),
            None => vulns.iter().flat_map(|v| v.fixes.iter().copied()).collect(),
        };

        let installed = self.query.installed.trim();
        let mut candidates: Vec<Candidate<'a>> = Vec::new();
        for version in versions {
            let prerelease = match self.parse(version) {
                Ok(prerelease) => prerelease,
                Err(error) => {
                    debug!(version, %error, "the index offers a release that is not a version");
                    continue;
                }
            };
            let newer = self.cmp(version, installed)? == Ordering::Greater;
            if !newer || candidates.iter().any(|c| c.version == version) {
                continue;
            }
            let mut closes = Vec::new();
            for (index, vuln) in vulns.iter().enumerate() {
                if self.closes(version, vuln)? {
                    closes.push(index);
                }
            }
            let reopens = already
                .iter()
                .copied()
                .filter(|i| !closes.contains(i))
                .collect();
            let bump = self.bump(installed, version)?;
            candidates.push(Candidate {
                version,
                prerelease,
                bump,
                closes,
                reopens,
            });
        }
        Ok(candidates)
    }

    /// Whether `a` beats `b`: the newer for always-latest packages;
    /// otherwise the one closing more, then the smaller move, then the
    /// lower version.
    fn better(&self, a: &Candidate<'_>, b: &Candidate<'_>) -> Result<bool, Fault> {
        if self.query.always_latest {
            return Ok(self.cmp(a.version, b.version)? == Ordering::Greater);
        }
        Ok(match a.closes.len().cmp(&b.closes.len()) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match a.bump.cmp(&b.bump) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => self.cmp(a.version, b.version)? == Ordering::Less,
            },
        })
    }

    /// Why the vulnerability at `index` stays open, by the first bound that
    /// stops every version closing it.
    fn open_reason(
        &mut self,
        vulns: &[Vuln<'a>],
        index: usize,
        candidates: &[Candidate<'a>],
        chosen: Option<&Candidate<'a>>,
    ) -> Result<OpenReason, Fault> {
        let query = self.query;
        let closing: Vec<&Candidate<'a>> = candidates
            .iter()
            .filter(|c| c.closes.contains(&index))
            .collect();
        let ids = |indexes: &mut dyn Iterator<Item = usize>| {
            indexes.map(|i| vulns[i].id.to_owned()).collect::<Vec<_>>()
        };

        // Within the policy, but another version won or it re-opens something.
        if let Some(c) = self.lowest(closing.iter().copied().filter(|c| self.allowed(c)))? {
            if !c.reopens.is_empty() {
                let reopens = ids(&mut c.reopens.iter().copied());
                return Ok(OpenReason::Reopens {
                    version: c.version.to_owned(),
                    reopens,
                });
            }
            let leaves_open = match chosen {
                Some(t) => ids(&mut t.closes.iter().copied().filter(|i| !c.closes.contains(i))),
                None => Vec::new(),
            };
            return Ok(OpenReason::TradeOff {
                version: c.version.to_owned(),
                leaves_open,
            });
        }

        // Past the level, or only as a pre-release.
        let allow_prereleases = self.allow_prereleases;
        let stable = closing
            .iter()
            .copied()
            .filter(|c| allow_prereleases || !c.prerelease);
        if let Some(c) = self.lowest(stable)? {
            return Ok(OpenReason::OutsideLevel {
                version: c.version.to_owned(),
                bump: c.bump,
            });
        }
        if let Some(c) = self.lowest(closing.iter().copied())? {
            return Ok(OpenReason::Prerelease {
                version: c.version.to_owned(),
            });
        }

        // The index was asked and lacks the fix, or cannot install it here.
        if let Some(releases) = query.releases {
            let installed = query.installed.trim();
            for &fix in &vulns[index].fixes {
                if self.cmp(fix, installed)? != Ordering::Greater {
                    continue;
                }
                let mut offered = None;
                for release in releases {
                    let version = release.version.trim();
                    if self.parse(version).is_ok() && self.cmp(version, fix)? == Ordering::Equal {
                        offered = Some(release);
                        break;
                    }
                }
                let version = fix.to_owned();
                return Ok(match offered.and_then(|r| r.unusable.as_ref()) {
                    Some(why) => OpenReason::Unusable {
                        version,
                        why: why.clone(),
                    },
                    None if offered.is_none() => OpenReason::NotOffered { version },
                    None => continue,
                });
            }
        }
        Ok(OpenReason::NoRelease)
    }

    /// Why nothing moves, from the reasons its vulnerabilities stay open.
    fn skip_reason(&self, reasons: &[OpenReason]) -> SkipReason {
        let query = self.query;
        let any = |f: fn(&OpenReason) -> bool| reasons.iter().any(f);
        if any(|r| matches!(r, OpenReason::OutsideLevel { .. })) {
            let level = query.options.level;
            let normalized = query
                .versions
                .parse(query.installed.trim())
                .ok()
                .map(|i| i.normalized);
            return SkipReason::OutsideLevel {
                level,
                installed: query.installed.trim().to_owned(),
                line: normalized.and_then(|n| line(&n, level)),
                hint: self.level_hint(),
            };
        }
        if any(|r| matches!(r, OpenReason::Prerelease { .. })) {
            let options = Options {
                allow_prereleases: true,
                ..query.options
            };
            let hint = match super::select(&Query { options, ..*query }) {
                Decision::Update(update) => Some(update.to),
                _ => None,
            };
            return SkipReason::OnlyPrerelease { hint };
        }
        if any(|r| matches!(r, OpenReason::Reopens { .. })) {
            return SkipReason::WouldReopen;
        }
        if any(|r| {
            matches!(
                r,
                OpenReason::NotOffered { .. } | OpenReason::Unusable { .. }
            )
        }) {
            return SkipReason::NotOffered;
        }
        SkipReason::NoRelease
    }

    /// What the nearest wider level that moves the copy would move it to.
    fn level_hint(&self) -> Option<Hint> {
        let query = self.query;
        let mut level = query.options.level;
        while let Some(wider) = level.wider() {
            level = wider;
            let options = Options {
                level,
                ..query.options
            };
            if let Decision::Update(update) = super::select(&Query { options, ..*query }) {
                return Some(Hint {
                    level,
                    to: update.to,
                });
            }
        }
        None
    }

    /// The highest of some versions.
    fn highest(&self, versions: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, Fault> {
        let mut highest = None;
        for version in versions {
            match highest {
                Some(h) if self.cmp(version, h)? != Ordering::Greater => {}
                _ => highest = Some(version),
            }
        }
        Ok(highest)
    }

    /// The lowest of some candidates.
    fn lowest<'c>(
        &self,
        candidates: impl Iterator<Item = &'c Candidate<'a>>,
    ) -> Result<Option<&'c Candidate<'a>>, Fault>
    where
        'a: 'c,
    {
        let mut lowest: Option<&'c Candidate<'a>> = None;
        for c in candidates {
            match lowest {
                Some(l) if self.cmp(c.version, l.version)? != Ordering::Less => {}
                _ => lowest = Some(c),
            }
        }
        Ok(lowest)
    }

    /// Whether `version` closes `vuln`. A comma list names one fix per
    /// release line, so: at or past the newest fix closes it; below every
    /// fix leaves it open; otherwise the version is past some fix, and
    /// closes it unless it sits on the release line of the next higher fix
    /// (that line was fixed later, at that fix). So with "2.0.7, 1.26.18",
    /// 1.26.18 and 1.27.1 close it and 2.0.5 does not; with "4.19.2,
    /// 5.0.0-beta.3", 4.20.0 closes it.
    fn closes(&self, version: &str, vuln: &Vuln<'a>) -> Result<bool, Fault> {
        let Some(newest) = vuln.newest else {
            return Ok(false);
        };
        if self.cmp(version, newest)? != Ordering::Less {
            return Ok(true);
        }
        let mut past_one = false;
        let mut next_above: Option<&str> = None;
        for &fix in &vuln.fixes {
            if self.cmp(version, fix)? != Ordering::Less {
                past_one = true;
            } else if match next_above {
                Some(above) => self.cmp(fix, above)? == Ordering::Less,
                None => true,
            } {
                next_above = Some(fix);
            }
        }
        let Some(above) = next_above.filter(|_| past_one) else {
            return Ok(false);
        };
        Ok(!matches!(
            self.bump(above, version)?,
            Bump::None | Bump::Patch
        ))
    }

    /// Parses once per distinct string: `Ok(prerelease)` or why not.
    fn parse(&mut self, version: &'a str) -> Result<bool, String> {
        if version.is_empty() {
            return Err("empty".into());
        }
        let versions = self.query.versions;
        self.parsed
            .entry(version)
            .or_insert_with(|| versions.parse(version).map(|info| info.prerelease))
            .clone()
    }

    fn cmp(&self, a: &str, b: &str) -> Result<Ordering, Fault> {
        self.query
            .versions
            .compare(a, b)
            .map_err(|e| Fault(format!("comparing {a} with {b}: {e}")))
    }

    fn bump(&self, a: &str, b: &str) -> Result<Bump, Fault> {
        self.query
            .versions
            .classify(a, b)
            .map_err(|e| Fault(format!("classifying {a} against {b}: {e}")))
    }
}

/// The open entry of a vulnerability that has no usable fix.
fn unfixable_open(vuln: &Vuln<'_>) -> Open {
    let reason = match &vuln.invalid {
        Some((version, error)) => OpenReason::InvalidFix {
            version: (*version).to_owned(),
            error: error.clone(),
        },
        None => OpenReason::NoFix { state: vuln.state },
    };
    Open {
        id: vuln.id.to_owned(),
        reason,
    }
}

/// A skip decided before the vulnerabilities could be weighed.
fn skip_unassessed(query: &Query<'_>, reason: SkipReason) -> Decision {
    let open = unassessed(query.vulnerabilities);
    Decision::Skip(Skip {
        reason,
        already_fixed: Vec::new(),
        open,
    })
}

/// The release line of a version for people (`1.25.x` at the patch level,
/// `1.x` at the minor level), when its canonical spelling starts with plain
/// numbers. Display only: ordering never looks at it.
fn line(normalized: &str, level: Level) -> Option<String> {
    let numbers: Vec<&str> = normalized
        .split('.')
        .take_while(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    match (level, numbers.as_slice()) {
        (Level::Patch, [major, minor, ..]) => Some(format!("{major}.{minor}.x")),
        (Level::Minor, [major, ..]) => Some(format!("{major}.x")),
        _ => None,
    }
}
