//! Tests of the policy: the issue's table and more cases, in one
//! data-driven table, plus the flag rules.
//!
//! The version rules come from [`versions`]: pip's and npm's are the real
//! bundled plugins, compiled to WebAssembly and called through the plugin
//! host. The NuGet and OS cases use [`DottedTestScheme`], a plain test
//! scheme, until the dotnet and OS plugins exist; switching a scheme to its
//! plugin is one line in `versions`.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use crate::plugin::{self, Bump, PackageKind, Registry, Release, VersionInfo};
use crate::report::FixState;

use super::*;

/// The ecosystems the cases are written in.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    Pip,
    Npm,
    /// NuGet-like versions and the OS cases.
    Dotted,
}

fn versions(scheme: Scheme) -> &'static dyn Versions {
    match scheme {
        Scheme::Pip => bundled("pip"),
        Scheme::Npm => bundled("npm"),
        Scheme::Dotted => &DottedTestScheme,
    }
}

/// A bundled plugin, loaded once per test run.
fn bundled(name: &str) -> &'static plugin::Plugin {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        Registry::load(&plugin::Options::default()).expect("the plugin runtime starts")
    });
    registry
        .get(name)
        .unwrap_or_else(|| panic!("no bundled {name} plugin: {:?}", registry.failures()))
}

/// A test scheme, not any ecosystem's: up to four dot-separated numbers
/// (missing ones are 0), optionally `-label` for a pre-release, which sorts
/// before the release; labels compare as text. Enough for NuGet's
/// four-part versions and for OS cases that need no epochs or tildes.
struct DottedTestScheme;

impl DottedTestScheme {
    fn version(text: &str) -> Result<([u64; 4], Option<&str>), String> {
        let (numbers, label) = match text.split_once('-') {
            Some((numbers, label)) if !label.is_empty() => (numbers, Some(label)),
            Some(_) => return Err(format!("{text:?}: empty pre-release label")),
            None => (text, None),
        };
        let mut parts = [0; 4];
        let pieces: Vec<&str> = numbers.split('.').collect();
        if pieces.len() > 4 {
            return Err(format!("{text:?}: more than four parts"));
        }
        for (slot, piece) in parts.iter_mut().zip(pieces) {
            *slot = piece
                .parse()
                .map_err(|_| format!("{text:?}: {piece:?} is not a number"))?;
        }
        Ok((parts, label))
    }

    fn order(a: &str, b: &str) -> Result<Ordering, String> {
        let ((pa, la), (pb, lb)) = (Self::version(a)?, Self::version(b)?);
        Ok(pa.cmp(&pb).then(match (la, lb) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        }))
    }
}

impl Versions for DottedTestScheme {
    fn parse(&self, version: &str) -> Result<VersionInfo, String> {
        let (_, label) = Self::version(version)?;
        Ok(VersionInfo {
            normalized: version.to_owned(),
            prerelease: label.is_some(),
        })
    }

    fn compare(&self, a: &str, b: &str) -> Result<Ordering, String> {
        Self::order(a, b)
    }

    fn classify(&self, a: &str, b: &str) -> Result<Bump, String> {
        let ((pa, _), (pb, _)) = (Self::version(a)?, Self::version(b)?);
        Ok(if Self::order(a, b)? == Ordering::Equal {
            Bump::None
        } else if pa[0] != pb[0] {
            Bump::Major
        } else if pa[1] != pb[1] {
            Bump::Minor
        } else {
            Bump::Patch
        })
    }
}

/// What a case expects.
#[derive(Clone, Debug)]
enum Expect {
    /// Moves to `to`; the vulnerabilities at these indexes stay open.
    Update {
        to: &'static str,
        open: &'static [usize],
    },
    /// Already fixed.
    AlreadyFixed,
    /// Skipped; the decision reads exactly so.
    Skip(&'static str),
}

/// One policy case: the package, its vulnerabilities' fixed versions as
/// a scanner writes them (one string per vulnerability, comma lists
/// allowed), and what each listed level gives.
#[derive(Clone)]
struct Case {
    name: &'static str,
    scheme: Scheme,
    installed: &'static str,
    fixes: &'static [&'static str],
    levels: &'static [Level],
    expect: Expect,
    kind: PackageKind,
    always_latest: bool,
    allow_prereleases: bool,
    /// `(version, unusable reason)` when the index was asked.
    releases: Option<&'static [(&'static str, Option<&'static str>)]>,
}

const LIB: Case = Case {
    name: "",
    scheme: Scheme::Pip,
    installed: "",
    fixes: &[],
    levels: &[Level::Patch],
    expect: Expect::AlreadyFixed,
    kind: PackageKind::Library,
    always_latest: false,
    allow_prereleases: false,
    releases: None,
};

use Level::{Major, Minor, Patch};

const CASES: &[Case] = &[
    // The issue's table, row by row.
    Case {
        name: "patch picks the patch fix and leaves the major one open",
        installed: "1.26.16",
        fixes: &["1.26.19", "2.0.6", "1.26.17"],
        expect: Expect::Update {
            to: "1.26.19",
            open: &[1],
        },
        ..LIB
    },
    Case {
        name: "patch with no fix on the installed line skips and names the next level",
        installed: "1.25.5",
        fixes: &["1.26.19", "2.0.6", "1.27.1"],
        expect: Expect::Skip(
            "skip: no fix on 1.25.x; --library-patch-level minor would move to 1.27.1",
        ),
        ..LIB
    },
    Case {
        name: "comma list is one fix per line: the installed line's fix closes it",
        installed: "1.26.16",
        fixes: &["2.0.7, 1.26.18"],
        expect: Expect::Update {
            to: "1.26.18",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "minor takes the minor fix and leaves the major one open",
        installed: "1.26.16",
        fixes: &["1.27.1", "2.0.6"],
        levels: &[Minor],
        expect: Expect::Update {
            to: "1.27.1",
            open: &[1],
        },
        ..LIB
    },
    Case {
        name: "major closes everything with the major fix",
        installed: "1.26.16",
        fixes: &["1.26.19", "1.27.1", "2.0.6"],
        levels: &[Major],
        expect: Expect::Update {
            to: "2.0.6",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "major prefers the smallest move that closes all",
        installed: "1.26.16",
        fixes: &["1.26.18, 2.0.6"],
        levels: &[Major],
        expect: Expect::Update {
            to: "1.26.18",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a patch fix beats a minor one at minor and major",
        installed: "2.6.0",
        fixes: &["2.6.1, 2.7.0"],
        levels: &[Minor, Major],
        expect: Expect::Update {
            to: "2.6.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "major takes the one version that closes both",
        installed: "41.0.6",
        fixes: &["41.0.8, 42.0.4", "43.0.1"],
        levels: &[Major],
        expect: Expect::Update {
            to: "43.0.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a PEP 440 post-release is a patch move",
        installed: "2.0.0",
        fixes: &["2.0.0.post1"],
        expect: Expect::Update {
            to: "2.0.0.post1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a pre-release fix is not taken by default",
        installed: "1.0.0",
        fixes: &["1.0.1rc1"],
        expect: Expect::Skip(
            "skip: only a pre-release fixes it; --allow-prereleases would move to 1.0.1rc1",
        ),
        ..LIB
    },
    Case {
        name: "never a downgrade: a PEP 440 pre-release 10.0a1 is past 9.0",
        installed: "10.0a1",
        fixes: &["9.0"],
        levels: &[Major],
        expect: Expect::AlreadyFixed,
        ..LIB
    },
    Case {
        name: "NuGet installed past its line's fix is already fixed",
        scheme: Scheme::Dotted,
        installed: "8.0.6",
        fixes: &["6.0.10, 8.0.5"],
        expect: Expect::AlreadyFixed,
        ..LIB
    },
    Case {
        name: "NuGet's fourth part is a patch move",
        scheme: Scheme::Dotted,
        installed: "4.0.0",
        fixes: &["4.0.0.1"],
        expect: Expect::Update {
            to: "4.0.0.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "certifi moves to the newest release the index offers",
        installed: "2021.10.8",
        fixes: &["2022.12.7"],
        levels: &[Patch, Minor, Major],
        always_latest: true,
        releases: Some(&[
            ("2021.10.8", None),
            ("2022.12.7", None),
            ("2024.2.2", None),
            ("2023.5.7", None),
            ("2024.7.4rc1", None),
        ]),
        expect: Expect::Update {
            to: "2024.2.2",
            open: &[],
        },
        ..LIB
    },
    // More cases.
    Case {
        name: "certifi without the index moves to the highest fix",
        installed: "2021.10.8",
        fixes: &["2022.12.7", "2023.7.22"],
        always_latest: true,
        expect: Expect::Update {
            to: "2023.7.22",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "every fix older than the installed version means already fixed",
        installed: "1.26.16",
        fixes: &["1.26.15", "1.25.0"],
        levels: &[Patch, Major],
        expect: Expect::AlreadyFixed,
        ..LIB
    },
    Case {
        name: "a PEP 440 release candidate moves to its final release",
        installed: "1.0rc1",
        fixes: &["1.0"],
        expect: Expect::Update {
            to: "1.0",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "an installed pre-release may move to a later pre-release",
        scheme: Scheme::Npm,
        installed: "1.2.4-beta.0",
        fixes: &["1.2.4-beta.1"],
        expect: Expect::Update {
            to: "1.2.4-beta.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "--allow-prereleases takes a pre-release fix",
        scheme: Scheme::Npm,
        installed: "1.2.3",
        fixes: &["1.2.4-beta.1"],
        allow_prereleases: true,
        expect: Expect::Update {
            to: "1.2.4-beta.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a release candidate is skipped for the final release beside it",
        installed: "1.2.3",
        fixes: &["1.2.10rc1", "1.2.9"],
        expect: Expect::Update {
            to: "1.2.9",
            open: &[0],
        },
        ..LIB
    },
    Case {
        name: "npm: the line fix among many branches",
        scheme: Scheme::Npm,
        installed: "6.5.2",
        fixes: &["6.10.3, 6.9.7, 6.8.3, 6.7.3, 6.6.1, 6.5.3, 6.4.1, 6.3.3, 6.2.4"],
        expect: Expect::Update {
            to: "6.5.3",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "npm: one patch version closes a line fix and a later plain fix",
        scheme: Scheme::Npm,
        installed: "0.1.7",
        fixes: &["1.9.0, 0.1.10, 8.0.0, 3.3.0, 6.3.0", "0.1.12"],
        expect: Expect::Update {
            to: "0.1.12",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "npm: no fix on 2.3.x, minor would take the 2.5 line",
        scheme: Scheme::Npm,
        installed: "2.3.3",
        fixes: &["2.5.4, 3.0.4, 4.0.4"],
        expect: Expect::Skip(
            "skip: no fix on 2.3.x; --library-patch-level minor would move to 2.5.4",
        ),
        ..LIB
    },
    Case {
        name: "npm: repeated fixes of one package are weighed together",
        scheme: Scheme::Npm,
        installed: "4.17.15",
        fixes: &["4.17.19", "4.17.21", "4.17.19"],
        expect: Expect::Update {
            to: "4.17.21",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "npm: a v0 minor bump is a minor move",
        scheme: Scheme::Npm,
        installed: "0.10.0",
        fixes: &["0.17.0"],
        levels: &[Minor],
        expect: Expect::Update {
            to: "0.17.0",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a major-only fix names the major level",
        scheme: Scheme::Dotted,
        installed: "12.0.1",
        fixes: &["13.0.1"],
        expect: Expect::Skip(
            "skip: no fix on 12.0.x; --library-patch-level major would move to 13.0.1",
        ),
        ..LIB
    },
    Case {
        name: "minor with no minor fix names the major level",
        installed: "1.26.16",
        fixes: &["2.0.6", "2.1.0"],
        levels: &[Minor],
        expect: Expect::Skip(
            "skip: no fix on 1.x; --library-patch-level major would move to 2.1.0",
        ),
        ..LIB
    },
    Case {
        name: "a version on a line between two fixed lines is past the fix below it",
        installed: "1.26.16",
        fixes: &["1.26.18, 2.0.7", "1.27.1"],
        levels: &[Minor],
        expect: Expect::Update {
            to: "1.27.1",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "express: 4.20.0 closes a fix listed as 4.19.2, 5.0.0-beta.3",
        scheme: Scheme::Npm,
        installed: "4.17.1",
        fixes: &["4.19.2, 5.0.0-beta.3", "4.20.0, 5.0.0"],
        levels: &[Minor],
        expect: Expect::Update {
            to: "4.20.0",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a version on a fixed line below its fix is still open",
        installed: "2.0.5",
        fixes: &["1.26.18, 2.0.7"],
        levels: &[Patch],
        expect: Expect::Update {
            to: "2.0.7",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a tie is broken by the smaller move, and the other fix says why it is open",
        installed: "1.26.16",
        fixes: &["1.26.18, 1.27.9", "1.27.1"],
        releases: Some(&[("1.26.18", None), ("1.27.1", None)]),
        levels: &[Minor],
        expect: Expect::Update {
            to: "1.26.18",
            open: &[1],
        },
        ..LIB
    },
    Case {
        name: "a move that would re-open an installed fix is refused",
        installed: "1.26.18",
        fixes: &["1.26.18, 1.27.9", "1.27.1"],
        releases: Some(&[("1.26.18", None), ("1.27.1", None)]),
        levels: &[Minor],
        expect: Expect::Skip(
            "skip: every version that fixes one of its vulnerabilities re-opens one the \
             installed version fixes",
        ),
        ..LIB
    },
    Case {
        name: "the same with the later fix on the index moves past both",
        installed: "1.26.18",
        fixes: &["1.26.18, 1.27.9", "1.27.1"],
        releases: Some(&[("1.26.18", None), ("1.27.1", None), ("1.27.9", None)]),
        levels: &[Minor],
        expect: Expect::Update {
            to: "1.27.9",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "a vulnerability without a fix stays open beside the update",
        installed: "3.1.4",
        fixes: &["3.1.5", ""],
        expect: Expect::Update {
            to: "3.1.5",
            open: &[1],
        },
        ..LIB
    },
    Case {
        name: "no fix at all is a skip",
        installed: "3.1.4",
        fixes: &["", ""],
        expect: Expect::Skip("skip: no fixed version is published for its vulnerabilities"),
        ..LIB
    },
    Case {
        name: "an installed version that is not a version is a skip",
        installed: "not-a-version",
        fixes: &["1.0"],
        expect: Expect::Skip(
            "skip: the installed version \"not-a-version\" is not a valid version: plugin pip \
             0.1.0: parse-version: \"not-a-version\" is not a PEP 440 version: expected version \
             to start with a number, but no leading ASCII digits were found",
        ),
        ..LIB
    },
    Case {
        name: "a missing installed version is a skip",
        installed: "",
        fixes: &["1.0"],
        expect: Expect::Skip("skip: the report gives no installed version"),
        ..LIB
    },
    Case {
        name: "fixes that are not versions are a skip",
        installed: "1.0",
        fixes: &["n/a"],
        expect: Expect::Skip("skip: none of its fixed versions is a valid version"),
        ..LIB
    },
    Case {
        name: "with the index asked, the next usable release stands in for a missing fix",
        installed: "1.26.16",
        fixes: &["1.26.19"],
        releases: Some(&[
            ("1.26.17", None),
            ("1.26.21", Some("yanked")),
            ("1.26.20", None),
            ("1.26.22", None),
        ]),
        expect: Expect::Update {
            to: "1.26.20",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "with the index asked, a fix it lacks is a skip",
        installed: "1.26.16",
        fixes: &["1.26.19"],
        releases: Some(&[("1.26.16", None), ("1.26.17", None)]),
        expect: Expect::Skip(
            "skip: the package index offers no version that fixes it and can be installed here",
        ),
        ..LIB
    },
    Case {
        name: "OS packages move to the highest fix whatever the level",
        scheme: Scheme::Dotted,
        kind: PackageKind::Os,
        installed: "1.36.1",
        fixes: &["1.36.3", "2.0.1", "1.36.2", ""],
        levels: &[Patch, Major],
        expect: Expect::Update {
            to: "2.0.1",
            open: &[3],
        },
        ..LIB
    },
    Case {
        name: "OS packages take a pre-release-looking fix the distribution published",
        scheme: Scheme::Dotted,
        kind: PackageKind::Os,
        installed: "3.0.10",
        fixes: &["3.0.11-deb12u3"],
        expect: Expect::Update {
            to: "3.0.11-deb12u3",
            open: &[],
        },
        ..LIB
    },
    Case {
        name: "OS packages already at the fix are already fixed",
        scheme: Scheme::Dotted,
        kind: PackageKind::Os,
        installed: "3.0.13",
        fixes: &["3.0.13"],
        expect: Expect::AlreadyFixed,
        ..LIB
    },
];

fn split(fixes: &str) -> Vec<String> {
    fixes
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ids(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("V{i}")).collect()
}

/// Runs a case at one level.
fn decide(case: &Case, level: Level) -> Decision {
    let versions = versions(case.scheme);
    let fixed: Vec<Vec<String>> = case.fixes.iter().map(|f| split(f)).collect();
    let ids = ids(case.fixes.len());
    let vulnerabilities: Vec<Vulnerability<'_>> = ids
        .iter()
        .zip(&fixed)
        .map(|(id, fixed)| Vulnerability::fixed_in(id, fixed))
        .collect();
    let releases: Option<Vec<Release>> = case.releases.map(|releases| {
        releases
            .iter()
            .map(|(version, why)| Release {
                version: (*version).to_owned(),
                unusable: why.map(str::to_owned),
            })
            .collect()
    });
    select(&Query {
        versions,
        installed: case.installed,
        vulnerabilities: &vulnerabilities,
        releases: releases.as_deref(),
        kind: case.kind,
        always_latest: case.always_latest,
        options: Options {
            level,
            allow_prereleases: case.allow_prereleases,
        },
    })
}

/// Every vulnerability is accounted for exactly once.
fn check_accounting(case: &Case, decision: &Decision) {
    let (closed, already, open): (&[String], &[String], &[Open]) = match decision {
        Decision::Update(u) => (&u.closes, &u.already_fixed, &u.open),
        Decision::Skip(s) => (&[], &s.already_fixed, &s.open),
        Decision::AlreadyFixed { vulnerabilities } => (&[], vulnerabilities, &[]),
    };
    let mut seen = HashSet::new();
    let all = closed
        .iter()
        .chain(already)
        .chain(open.iter().map(|o| &o.id));
    for id in all {
        assert!(
            seen.insert(id.clone()),
            "{}: {id} accounted twice: {decision:?}",
            case.name
        );
    }
    assert_eq!(seen.len(), case.fixes.len(), "{}: {decision:?}", case.name);
}

/// Runs a case at each of its levels; the failures, described.
fn run_case(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    for &level in case.levels {
        let decision = decide(case, level);
        check_accounting(case, &decision);
        let ok = match (&case.expect, &decision) {
            (Expect::Update { to, open }, Decision::Update(update)) => {
                let open_ids: Vec<String> = open.iter().map(|i| format!("V{i}")).collect();
                let got: Vec<String> = update.open.iter().map(|o| o.id.clone()).collect();
                update.to == *to && got == open_ids
            }
            (Expect::AlreadyFixed, Decision::AlreadyFixed { .. }) => true,
            (Expect::Skip(text), Decision::Skip(_)) => decision.to_string() == *text,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} ({:?}, level {level}):\n  expected {:?}\n  got      {decision}\n  {decision:?}",
                case.name, case.scheme, case.expect
            ));
        }
    }
    failures
}

fn assert_all_pass(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_of_cases() {
    let failures: Vec<String> = CASES.iter().flat_map(run_case).collect();
    assert_all_pass(&failures);
}

#[test]
fn the_issues_plain_version_rows_hold_for_npm_too() {
    // The first eight rows of the issue's table use versions that are valid
    // node semver as well; npm's own rules must give the same answers.
    let rows = &CASES[..8];
    assert_eq!(rows[7].installed, "41.0.6", "the table's rows moved");
    let failures: Vec<String> = rows
        .iter()
        .map(|row| Case {
            scheme: Scheme::Npm,
            ..row.clone()
        })
        .flat_map(|case| run_case(&case))
        .collect();
    assert_all_pass(&failures);
}

#[test]
fn updates_are_never_downgrades_and_stay_within_the_level() {
    for case in CASES
        .iter()
        .filter(|c| c.kind == PackageKind::Library && !c.always_latest)
    {
        let scheme = versions(case.scheme);
        for &level in case.levels {
            if let Decision::Update(update) = decide(case, level) {
                let order = scheme.compare(&update.to, case.installed).unwrap();
                assert_eq!(order, Ordering::Greater, "{}: {update:?}", case.name);
                let bump = scheme.classify(case.installed, &update.to).unwrap();
                assert_eq!(bump, update.bump, "{}", case.name);
                assert!(level.allows(bump), "{}: {bump:?} at {level}", case.name);
            }
        }
    }
}

fn find(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name:?}"))
}

fn open_reasons(decision: &Decision) -> Vec<String> {
    let open = match decision {
        Decision::Update(u) => &u.open,
        Decision::Skip(s) => &s.open,
        Decision::AlreadyFixed { .. } => return Vec::new(),
    };
    open.iter().map(ToString::to_string).collect()
}

#[test]
fn open_vulnerabilities_say_what_would_close_them() {
    let case = find("patch picks the patch fix and leaves the major one open");
    let decision = decide(case, Patch);
    assert_eq!(
        decision.to_string(),
        "update 1.26.16 -> 1.26.19 (patch), closes 2, leaves 1 open"
    );
    assert_eq!(
        open_reasons(&decision),
        ["V1: fixed in 2.0.6, a major move; --library-patch-level major allows it"]
    );

    let case = find("a tie is broken by the smaller move, and the other fix says why it is open");
    assert_eq!(
        open_reasons(&decide(case, Minor)),
        ["V1: 1.27.1 would close it but leave V0 open"]
    );

    let case = find("a move that would re-open an installed fix is refused");
    let Decision::Skip(skip) = decide(case, Minor) else {
        panic!("not a skip")
    };
    assert_eq!(skip.already_fixed, ["V0"]);
    assert_eq!(
        open_reasons(&Decision::Skip(skip)),
        ["V1: 1.27.1 would close it but re-open V0, which the installed version fixes"]
    );

    let case = find("a release candidate is skipped for the final release beside it");
    assert_eq!(
        open_reasons(&decide(case, Patch)),
        ["V0: fixed only in the pre-release 1.2.10rc1; --allow-prereleases allows it"]
    );

    let case = find("with the index asked, a fix it lacks is a skip");
    assert_eq!(
        open_reasons(&decide(case, Patch)),
        ["V0: fixed in 1.26.19, which the package index does not offer"]
    );
}

#[test]
fn a_fix_the_index_cannot_install_here_says_why() {
    let case = Case {
        name: "unusable",
        installed: "2.31.0",
        fixes: &["2.32.4"],
        releases: Some(&[(
            "2.32.4",
            Some("requires Python >=3.12; the environment has 3.11"),
        )]),
        ..LIB
    };
    let decision = decide(&case, Patch);
    assert_eq!(
        decision.to_string(),
        "skip: the package index offers no version that fixes it and can be installed here"
    );
    assert_eq!(
        open_reasons(&decision),
        [
            "V0: fixed in 2.32.4, which cannot be installed here: requires Python >=3.12; the \
             environment has 3.11"
        ]
    );
}

#[test]
fn no_fix_reason_carries_the_vendor_state() {
    let fixed: Vec<String> = Vec::new();
    let vulnerabilities = [Vulnerability {
        id: "CVE-1",
        fixed: &fixed,
        state: FixState::WontFix,
    }];
    let decision = select(&Query {
        versions: &DottedTestScheme,
        installed: "1.0",
        vulnerabilities: &vulnerabilities,
        releases: None,
        kind: PackageKind::Os,
        always_latest: false,
        options: Options::default(),
    });
    assert_eq!(
        decision.to_string(),
        "skip: no fixed version is published for its vulnerabilities"
    );
    assert_eq!(
        open_reasons(&decision),
        ["CVE-1: no fixed version is published: the vendor will not fix it"]
    );
}

/// A plugin that accepts versions and then cannot order them.
struct Broken;

impl Versions for Broken {
    fn parse(&self, version: &str) -> Result<VersionInfo, String> {
        Ok(VersionInfo {
            normalized: version.to_owned(),
            prerelease: false,
        })
    }
    fn compare(&self, _: &str, _: &str) -> Result<Ordering, String> {
        Err("plugin trapped".into())
    }
    fn classify(&self, _: &str, _: &str) -> Result<Bump, String> {
        Err("plugin trapped".into())
    }
}

#[test]
fn a_plugin_that_cannot_order_its_versions_skips_the_package() {
    let fixed = ["1.1".to_owned()];
    let vulnerabilities = [
        Vulnerability::fixed_in("CVE-1", &fixed),
        Vulnerability::fixed_in("CVE-1", &fixed),
    ];
    let decision = select(&Query {
        versions: &Broken,
        installed: "1.0",
        vulnerabilities: &vulnerabilities,
        releases: None,
        kind: PackageKind::Library,
        always_latest: false,
        options: Options::default(),
    });
    assert_eq!(
        decision.to_string(),
        "skip: the plugin could not order its versions: comparing 1.0 with 1.1: plugin trapped"
    );
    assert_eq!(
        open_reasons(&decision),
        ["CVE-1: not assessed: the package was skipped"]
    );
}

#[test]
fn decisions_serialize_for_machines() {
    let case = find("patch picks the patch fix and leaves the major one open");
    let json = serde_json::to_value(decide(case, Patch)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "decision": "update", "from": "1.26.16", "to": "1.26.19", "bump": "patch",
            "closes": ["V0", "V2"], "already_fixed": [],
            "open": [{"id": "V1", "reason": {"kind": "outside-level", "version": "2.0.6",
                                             "bump": "major"}}]
        })
    );
}

#[test]
fn package_types_parse_and_refuse_anything_else() {
    let parse = |s: &str| s.parse::<PackageTypes>().map_err(|e| e.to_string());
    assert_eq!(
        parse("os"),
        Ok(PackageTypes {
            os: true,
            library: false
        })
    );
    assert_eq!(
        parse("library"),
        Ok(PackageTypes {
            os: false,
            library: true
        })
    );
    assert_eq!(
        parse("os,library"),
        Ok(PackageTypes {
            os: true,
            library: true
        })
    );
    assert_eq!(
        parse("library,os"),
        Ok(PackageTypes {
            os: true,
            library: true
        })
    );
    assert_eq!(
        PackageTypes::default(),
        PackageTypes {
            os: true,
            library: false
        }
    );
    assert_eq!(
        parse("os,lib"),
        Err("unknown package type `lib` in `os,lib`; expected os, library or os,library".into())
    );
    assert!(parse("").is_err());
    assert!(parse("os,").is_err());
    assert!(parse("os, library").is_err());
}

#[test]
fn levels_parse_and_need_libraries() {
    assert_eq!("patch".parse::<Level>().unwrap(), Patch);
    assert_eq!("minor".parse::<Level>().unwrap(), Minor);
    assert_eq!("major".parse::<Level>().unwrap(), Major);
    assert_eq!(
        "latest".parse::<Level>().unwrap_err().to_string(),
        "unknown patch level `latest`; expected patch, minor or major"
    );

    let os = PackageTypes::default();
    let both = PackageTypes {
        os: true,
        library: true,
    };
    assert_eq!(os.library_level(None).unwrap(), Patch);
    assert_eq!(both.library_level(None).unwrap(), Patch);
    assert_eq!(both.library_level(Some(Major)).unwrap(), Major);
    assert_eq!(
        os.library_level(Some(Minor)).unwrap_err().to_string(),
        "--library-patch-level minor applies to libraries, which --pkg-types leaves out; add \
         them with --pkg-types os,library or --pkg-types library"
    );
}

#[test]
fn levels_allow_moves_up_to_their_size() {
    assert!(Patch.allows(Bump::Patch) && !Patch.allows(Bump::Minor));
    assert!(Minor.allows(Bump::Minor) && !Minor.allows(Bump::Major));
    assert!(Major.allows(Bump::Major));
    assert!(!Major.allows(Bump::None), "staying put is not a move");
}

#[test]
fn a_type_no_plugin_takes_is_skipped_with_its_name() {
    let fixed = ["2.2.8.1".to_owned()];
    let vulnerabilities = [
        Vulnerability::fixed_in("CVE-1", &fixed),
        Vulnerability::fixed_in("CVE-1", &fixed),
    ];
    let decision = Decision::Skip(Skip::no_plugin("bundler", &vulnerabilities));
    assert_eq!(decision.to_string(), "skip: no plugin handles bundler");
    assert_eq!(
        open_reasons(&decision),
        ["CVE-1: not assessed: the package was skipped"]
    );
}

/// The stand-in scheme for a report type, for the public reports' library
/// findings; OS types have no honest stand-in here.
fn scheme_for(report_type: &str) -> Option<Scheme> {
    match report_type {
        "python-pkg" => Some(Scheme::Pip),
        "node-pkg" => Some(Scheme::Npm),
        "dotnet-core" => Some(Scheme::Dotted),
        _ => None,
    }
}

#[test]
fn public_reports_library_decisions_are_pinned() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reports"))
        .find(|dir| dir.is_dir())
        .expect("shared/reports beside the repository");
    let reports = crate::report::read(&dir, None).unwrap();

    let mut out = String::new();
    for report in &reports {
        out.push_str(&format!(
            "# {}\n",
            report.path.file_name().unwrap().to_string_lossy()
        ));
        for package in crate::report::group(&report.findings) {
            let Some(scheme) = scheme_for(package.report_type) else {
                continue;
            };
            let versions = versions(scheme);
            let vulnerabilities: Vec<Vulnerability<'_>> = package
                .findings
                .iter()
                .map(|f| Vulnerability::from(*f))
                .collect();
            out.push_str(&format!(
                "{} {} at {:?}\n",
                package.name, package.installed, package.path
            ));
            for level in [Patch, Major] {
                let decision = select(&Query {
                    versions,
                    installed: package.installed,
                    vulnerabilities: &vulnerabilities,
                    releases: None,
                    kind: PackageKind::Library,
                    always_latest: package.name == "certifi",
                    options: Options {
                        level,
                        allow_prereleases: false,
                    },
                });
                out.push_str(&format!("  {level}: {decision}\n"));
                for open in open_reasons(&decision) {
                    out.push_str(&format!("    open {open}\n"));
                }
            }
        }
    }
    insta::assert_snapshot!(out);
}
