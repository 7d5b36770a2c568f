//! Printing what salve decided and did: a table for people, JSON for
//! machines.

use std::fmt::Write as _;

use salve::patch::{Entry, Status};
use salve::plugin::Bump;

/// Counts per status, in the order people read them.
pub fn counts(entries: &[Entry]) -> Vec<(Status, usize)> {
    let order = [
        Status::Updated,
        Status::Update,
        Status::AlreadyFixed,
        Status::Failed,
        Status::Skipped,
        Status::NotInstalled,
    ];
    order
        .into_iter()
        .map(|s| (s, entries.iter().filter(|e| e.status == s).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The table, then one line per entry with something to explain.
pub fn table(entries: &[Entry]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header([
        "ECOSYSTEM",
        "PACKAGE",
        "INSTALLED",
        "TARGET",
        "MOVE",
        "STATUS",
        "CLOSES",
        "OPEN",
        "LOCATION",
    ]);
    for e in entries {
        let bump = match e.bump {
            Some(Bump::Patch) => "patch",
            Some(Bump::Minor) => "minor",
            Some(Bump::Major) => "major",
            Some(Bump::None) | None => "",
        };
        table.add_row([
            e.ecosystem.as_str(),
            e.package.as_str(),
            e.installed.as_str(),
            e.target.as_deref().unwrap_or(""),
            bump,
            e.status.word(),
            &e.closes.len().to_string(),
            &e.open.len().to_string(),
            e.location.as_str(),
        ]);
    }
    let mut out = format!("{}\n", table.trim_fmt());

    // Details: what closes, what stays open and why, why a copy is skipped.
    let mut details = String::new();
    for e in entries {
        let mut lines = Vec::new();
        if let Some(reason) = &e.reason {
            lines.push(format!("{}: {reason}", e.status.word()));
        }
        if !e.closes.is_empty() {
            let verb = if e.status == Status::Updated {
                "closed"
            } else {
                "closes"
            };
            lines.push(format!("{verb}: {}", e.closes.join(", ")));
        }
        // Open vulnerabilities grouped by reason; a reason that only repeats
        // the skip's own ("not assessed") is left out.
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for o in &e.open {
            let reason =
                if Some(&o.reason) == e.reason.as_ref() || o.reason.starts_with("not assessed") {
                    ""
                } else {
                    o.reason.as_str()
                };
            match groups.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, ids)) => ids.push(&o.id),
                None => groups.push((reason, vec![&o.id])),
            }
        }
        for (reason, ids) in groups {
            let ids = ids.join(", ");
            lines.push(if reason.is_empty() {
                format!("open: {ids}")
            } else {
                format!("open: {ids}: {reason}")
            });
        }
        if lines.is_empty() {
            continue;
        }
        let at = if e.location.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.location)
        };
        let _ = writeln!(details, "{} {} {}{at}", e.ecosystem, e.package, e.installed);
        for line in lines {
            let _ = writeln!(details, "  {line}");
        }
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
    }
    let counts: Vec<String> = counts(entries)
        .iter()
        .map(|(s, n)| format!("{n} {}", s.word()))
        .collect();
    let _ = writeln!(
        out,
        "\n{}",
        if counts.is_empty() {
            "nothing to do".into()
        } else {
            counts.join(", ")
        }
    );
    out
}
