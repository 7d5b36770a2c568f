//! Feeds arbitrary bytes to the report parser, as each scanner and with
//! the format recognised from the content.
//!
//! Beyond "no panic", a report that parses must hold what the rest of
//! salve relies on: every finding has an id, a package and a type; paths
//! are relative; fixed versions are trimmed and not empty; and grouping
//! loses no finding.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

// The host's report module, compiled here from its own source (it uses
// nothing else of the host), so fuzzing does not build the whole engine.
#[allow(dead_code, unused_imports)]
#[path = "../../host/src/report/mod.rs"]
mod report;

use report::Scanner;

fuzz_target!(|data: &[u8]| {
    for scanner in [None, Some(Scanner::Trivy), Some(Scanner::Grype)] {
        let Ok(report) = report::parse(Path::new("fuzz.json"), data, scanner) else {
            continue;
        };
        assert!(scanner.is_none_or(|s| s == report.scanner));
        for finding in &report.findings {
            assert!(!finding.vulnerability.is_empty() && !finding.package.is_empty());
            assert!(!finding.report_type.is_empty());
            assert!(finding.fixed.iter().all(|f| !f.is_empty() && f.trim() == f));
            let paths = finding.path.iter().chain(&finding.locations);
            assert!(
                paths
                    .into_iter()
                    .all(|p| !p.is_empty() && !p.starts_with('/'))
            );
        }
        let grouped: usize = report::group(&report.findings)
            .iter()
            .map(|p| p.findings.len())
            .sum();
        assert_eq!(grouped, report.findings.len());
    }
});
