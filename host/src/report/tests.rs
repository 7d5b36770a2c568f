//! Tests of report reading, on the real public reports in `shared/reports/`
//! and on small documents that each pin one rule.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::*;

/// `shared/reports/`, found beside the repository (or one of its parents),
/// which is where the project keeps it for developers and CI alike.
fn shared_reports() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared/reports"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/reports beside {} or its parents",
                manifest.display()
            )
        })
}

fn public_report(name: &str) -> Report {
    let path = shared_reports().join(name);
    let mut reports = read(&path, None).unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

/// The error and its sources, as the CLI prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        write!(text, ": {inner}").unwrap();
        source = inner.source();
    }
    text
}

fn parse_str(json: &str) -> Result<Report, Error> {
    parse(Path::new("mem.json"), json.as_bytes(), None)
}

fn parse_err(json: &str, scanner: Option<Scanner>) -> String {
    match parse(Path::new("mem.json"), json.as_bytes(), scanner) {
        Ok(report) => panic!(
            "parsed {} findings from a bad report",
            report.findings.len()
        ),
        Err(error) => chain(&error),
    }
}

/// One line per finding: the fields salve uses, for snapshots.
fn render(report: &Report) -> String {
    let mut out = format!(
        "scanner: {}\nos: {:?}\narchitecture: {:?}\nfindings: {}\n",
        report.scanner,
        report
            .os
            .as_ref()
            .map(|os| format!("{} {}", os.family, os.name)),
        report.architecture,
        report.findings.len(),
    );
    for f in &report.findings {
        writeln!(
            out,
            "{} {} {} -> {:?} [{}] {} {:?} {:?} {} {:?}",
            f.vulnerability,
            f.package,
            f.installed,
            f.fixed,
            f.fix_state,
            f.report_type,
            f.class,
            f.path,
            f.severity,
            f.title.as_deref().unwrap_or("-"),
        )
        .unwrap();
    }
    out
}

#[test]
fn every_public_report_parses_and_is_pinned() {
    let mut names: Vec<_> = fs_err::read_dir(shared_reports())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "the public report set changed: {names:?}");

    for name in names {
        let report = public_report(&name);
        assert_eq!(report.scanner, Scanner::Trivy);
        assert!(!report.findings.is_empty(), "{name}: no findings");
        insta::assert_snapshot!(name.trim_end_matches(".json"), render(&report));
    }
}

#[test]
fn directory_gives_one_report_per_json_file_in_name_order() {
    let reports = read(&shared_reports(), None).unwrap();
    let names: Vec<_> = reports
        .iter()
        .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "aquasecurity_trivy__dotnet-json-golden.json",
            "goo4422_nodejs-project__trivy-report.json",
            "jhowell-ocs_FuelTime__trivy-image-report.json",
            "nanda9_flask-python-app__trivy.json",
            "project-copacetic_copacetic__trivy_dotnet.json",
            "project-copacetic_copacetic__trivy_python_venv.json",
        ]
    );
}

#[test]
fn trivy_metadata_gives_os_and_architecture() {
    let report = public_report("nanda9_flask-python-app__trivy.json");
    assert_eq!(
        report.os,
        Some(Os {
            family: "debian".into(),
            name: "13.6".into()
        })
    );
    assert_eq!(report.architecture.as_deref(), Some("arm64"));

    let golden = public_report("aquasecurity_trivy__dotnet-json-golden.json");
    assert_eq!(golden.os, None);
    assert_eq!(golden.architecture, None);
}

#[test]
fn trivy_comma_list_is_split_and_trimmed() {
    let report = public_report("goo4422_nodejs-project__trivy-report.json");
    let qs = report.findings.iter().find(|f| f.package == "qs").unwrap();
    assert_eq!(
        qs.fixed,
        [
            "6.10.3", "6.9.7", "6.8.3", "6.7.3", "6.6.1", "6.5.3", "6.4.1", "6.3.3", "6.2.4"
        ]
    );
}

#[test]
fn trivy_lower_bound_fix_loses_its_operator() {
    let report = public_report("goo4422_nodejs-project__trivy-report.json");
    let nswg = report
        .findings
        .iter()
        .find(|f| f.vulnerability == "NSWG-ECO-516")
        .unwrap();
    assert_eq!(nswg.fixed, ["4.17.19"]);
}

#[test]
fn trivy_same_package_at_two_paths_is_two_copies() {
    let report = public_report("project-copacetic_copacetic__trivy_python_venv.json");
    let copies = group(&report.findings);
    let requests: Vec<_> = copies.iter().filter(|p| p.name == "requests").collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path,
        Some("opt/venv/lib/python3.11/site-packages")
    );
    assert_eq!(requests[0].installed, "2.28.0");
    assert_eq!(
        requests[1].path,
        Some("usr/local/lib/python3.11/site-packages")
    );
    assert_eq!(requests[1].installed, "2.28.1");
}

#[test]
fn group_gives_one_copy_per_package_and_location() {
    let report = public_report("nanda9_flask-python-app__trivy.json");
    let copies = group(&report.findings);
    let pip: Vec<_> = copies.iter().filter(|p| p.name == "pip").collect();
    assert_eq!(pip.len(), 1);
    assert_eq!(
        pip[0].findings.len(),
        5,
        "pip 24.0 has five vulnerabilities"
    );
    let total: usize = copies.iter().map(|p| p.findings.len()).sum();
    assert_eq!(total, report.findings.len());

    let report = public_report("jhowell-ocs_FuelTime__trivy-image-report.json");
    let copies = group(&report.findings);
    let wheel: Vec<_> = copies.iter().filter(|p| p.name == "wheel").collect();
    assert_eq!(
        wheel.len(),
        2,
        "wheel is vendored and top-level: two copies"
    );
}

#[test]
fn group_keeps_repeated_rows_under_one_copy() {
    let report = parse_str(
        r#"{"SchemaVersion": 2, "Results": [{"Class": "lang-pkgs", "Type": "node-pkg",
            "Vulnerabilities": [
              {"VulnerabilityID": "CVE-1", "PkgName": "qs", "PkgPath": "a/package.json",
               "InstalledVersion": "6.5.2", "FixedVersion": "6.5.3"},
              {"VulnerabilityID": "CVE-1", "PkgName": "qs", "PkgPath": "a/package.json",
               "InstalledVersion": "6.5.2", "FixedVersion": "6.5.3"},
              {"VulnerabilityID": "CVE-1", "PkgName": "qs", "PkgPath": "b/package.json",
               "InstalledVersion": "6.5.2", "FixedVersion": "6.5.3"}]}]}"#,
    )
    .unwrap();
    let copies = group(&report.findings);
    assert_eq!(copies.len(), 2);
    assert_eq!(
        (copies[0].path, copies[0].findings.len()),
        (Some("a/package.json"), 2)
    );
    assert_eq!(
        (copies[1].path, copies[1].findings.len()),
        (Some("b/package.json"), 1)
    );
}

#[test]
fn trivy_os_results_are_os_class_without_path() {
    let report = public_report("jhowell-ocs_FuelTime__trivy-image-report.json");
    let os: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.class == Class::Os)
        .collect();
    assert_eq!(os.len(), 68);
    assert!(
        os.iter()
            .all(|f| f.report_type == "debian" && f.path.is_none())
    );
    let libs: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.class == Class::Library)
        .collect();
    assert_eq!(libs.len(), 6);
    assert!(
        libs.iter()
            .all(|f| f.report_type == "python-pkg" && f.path.is_some())
    );
}

const TRIVY_MIXED: &str = r#"{
  "SchemaVersion": 2,
  "Metadata": {"OS": {"Family": "alpine", "Name": "3.20.1"}, "ImageConfig": {"architecture": "amd64"}},
  "Results": [
    {"Target": "app (alpine 3.20.1)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": [
      {"VulnerabilityID": "CVE-1", "PkgName": "busybox", "InstalledVersion": "1.36.1-r28",
       "FixedVersion": "1.36.1-r29", "Severity": "MEDIUM", "Status": "fixed", "Title": "t"},
      {"VulnerabilityID": "CVE-2", "PkgName": "busybox", "InstalledVersion": "1.36.1-r28",
       "Status": "will_not_fix", "Severity": "LOW"}
    ]},
    {"Target": "/root/.ssh/id_rsa", "Class": "secret", "Secrets": [{"RuleID": "private-key"}]},
    {"Target": "Dockerfile", "Class": "config", "Misconfigurations": [{"ID": "DS002"}]},
    {"Target": "app/Gemfile.lock", "Class": "lang-pkgs", "Type": "bundler", "Vulnerabilities": [
      {"VulnerabilityID": "CVE-3", "PkgName": "rack", "PkgPath": "/app/Gemfile.lock",
       "InstalledVersion": "2.2.3", "FixedVersion": " , 2.2.8.1 ,, 3.0.9.1 "}
    ]},
    {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg"}
  ]
}"#;

#[test]
fn trivy_reads_os_and_library_rows_and_ignores_other_classes() {
    let report = parse_str(TRIVY_MIXED).unwrap();
    assert_eq!(
        report.os,
        Some(Os {
            family: "alpine".into(),
            name: "3.20.1".into()
        })
    );
    assert_eq!(report.architecture.as_deref(), Some("amd64"));
    assert_eq!(report.findings.len(), 3);

    let [fixed, wont, rack] = &report.findings[..] else {
        unreachable!()
    };
    assert_eq!(
        (fixed.class, fixed.fixed.as_slice()),
        (Class::Os, &["1.36.1-r29".to_owned()][..])
    );
    assert_eq!(
        (fixed.fix_state, fixed.severity),
        (FixState::Fixed, Severity::Medium)
    );
    assert_eq!(fixed.scan_target.as_deref(), Some("app (alpine 3.20.1)"));
    assert!(wont.fixed.is_empty());
    assert_eq!(wont.fix_state, FixState::WontFix);
    assert_eq!(wont.title, None);

    // An unknown type is kept: only the host knows which types plugins take.
    assert_eq!(rack.report_type, "bundler");
    assert_eq!(rack.fixed, ["2.2.8.1", "3.0.9.1"]);
    assert_eq!(rack.path.as_deref(), Some("app/Gemfile.lock"));
    assert_eq!(rack.locations, ["app/Gemfile.lock"]);
    assert_eq!(
        rack.fix_state,
        FixState::Fixed,
        "a fix with no Status implies fixed"
    );
}

#[test]
fn trivy_with_empty_results_has_no_findings() {
    let report = parse_str(r#"{"SchemaVersion": 2, "Results": []}"#).unwrap();
    assert!(report.findings.is_empty());
}

const GRYPE: &str = r#"{
  "matches": [
    {
      "vulnerability": {
        "id": "GHSA-9wx4-h78v-vm56", "namespace": "github:language:python",
        "severity": "Medium", "description": "Requests leaks proxy credentials.\nMore text.",
        "fix": {"versions": ["2.31.0"], "state": "fixed"}
      },
      "artifact": {
        "name": "requests", "version": "2.25.1", "type": "python", "language": "python",
        "locations": [
          {"path": "/usr/lib/python3/site-packages/requests-2.25.1.dist-info/RECORD",
           "annotations": {"evidence": "supporting"}},
          {"path": "/usr/lib/python3/site-packages/requests-2.25.1.dist-info/METADATA",
           "annotations": {"evidence": "primary"}}
        ]
      }
    },
    {
      "vulnerability": {
        "id": "CVE-2023-5678", "namespace": "debian:distro:debian:12", "severity": "Negligible",
        "fix": {"versions": [], "state": "wont-fix"}
      },
      "artifact": {
        "name": "openssl", "version": "3.0.11-1~deb12u2", "type": "deb", "language": "",
        "locations": [{"path": "/var/lib/dpkg/status"}]
      }
    },
    {
      "vulnerability": {
        "id": "GHSA-c2qf-rxjj-qqgw", "namespace": "github:language:javascript",
        "fix": {"versions": ["5.7.2", "6.3.1", "7.5.2"], "state": "fixed"}
      },
      "artifact": {
        "name": "semver", "version": "7.5.1", "type": "npm", "language": "javascript",
        "locations": [{"path": "/app/node_modules/semver/package.json"}]
      }
    }
  ],
  "source": {"type": "image", "target": {"userInput": "x:1", "architecture": "arm64", "os": "linux"}},
  "distro": {"name": "debian", "version": "12", "idLike": []},
  "descriptor": {"name": "grype", "version": "0.80.0"}
}"#;

#[test]
fn grype_matches_become_findings() {
    let report = parse_str(GRYPE).unwrap();
    assert_eq!(report.scanner, Scanner::Grype);
    assert_eq!(
        report.os,
        Some(Os {
            family: "debian".into(),
            name: "12".into()
        })
    );
    assert_eq!(report.architecture.as_deref(), Some("arm64"));

    let [requests, openssl, semver] = &report.findings[..] else {
        unreachable!()
    };
    assert_eq!(requests.class, Class::Library);
    assert_eq!(requests.report_type, "python");
    assert_eq!(
        requests.path.as_deref(),
        Some("usr/lib/python3/site-packages/requests-2.25.1.dist-info/METADATA"),
        "the primary evidence is the copy's location"
    );
    assert_eq!(requests.locations.len(), 2);
    assert_eq!(
        requests.title.as_deref(),
        Some("Requests leaks proxy credentials.")
    );
    assert_eq!(requests.severity, Severity::Medium);

    assert_eq!(openssl.class, Class::Os);
    assert_eq!(openssl.path, None);
    assert_eq!(openssl.locations, ["var/lib/dpkg/status"]);
    assert_eq!(openssl.fix_state, FixState::WontFix);
    assert_eq!(openssl.severity, Severity::Negligible);

    assert_eq!(semver.fixed, ["5.7.2", "6.3.1", "7.5.2"]);
    assert_eq!(
        semver.path.as_deref(),
        Some("app/node_modules/semver/package.json")
    );
}

#[test]
fn grype_directory_scan_has_a_string_target_and_no_distro() {
    let json = r#"{"matches": [], "source": {"type": "directory", "target": "/src"},
                   "distro": {"name": "", "version": ""}}"#;
    let report = parse_str(json).unwrap();
    assert_eq!((report.os, report.architecture), (None, None));
}

#[test]
fn forced_scanner_must_match_the_content() {
    let report = parse(Path::new("g.json"), GRYPE.as_bytes(), Some(Scanner::Grype)).unwrap();
    assert_eq!(report.findings.len(), 3);
    assert_eq!(
        parse_err(GRYPE, Some(Scanner::Trivy)),
        "reading report mem.json: not a trivy report: it looks like grype's"
    );
    assert_eq!(
        parse_err(r#"{"Results": []}"#, Some(Scanner::Trivy)),
        "reading report mem.json: not a trivy report: the top level has no `SchemaVersion`"
    );
}

#[test]
fn scanner_names_parse_and_others_are_refused() {
    assert_eq!("trivy".parse::<Scanner>().unwrap(), Scanner::Trivy);
    assert_eq!("grype".parse::<Scanner>().unwrap(), Scanner::Grype);
    assert_eq!(
        "snyk".parse::<Scanner>().unwrap_err().to_string(),
        "unknown scanner `snyk`; expected trivy or grype"
    );
}

#[test]
fn labels_read_in_any_case() {
    assert_eq!(Severity::from_label("CRITICAL"), Severity::Critical);
    assert_eq!(Severity::from_label("Negligible"), Severity::Negligible);
    assert_eq!(Severity::from_label("severe"), Severity::Unknown);
    assert_eq!(FixState::from_label("not-fixed"), FixState::NotFixed);
    assert_eq!(FixState::from_label("affected"), FixState::NotFixed);
    assert_eq!(FixState::from_label("fix_deferred"), FixState::Deferred);
    assert_eq!(FixState::from_label("whatever"), FixState::Unknown);
}

#[test]
fn bad_reports_end_in_one_error_naming_file_and_field() {
    let cases: &[(&str, &str)] = &[
        ("", "the file is empty"),
        ("  \n\t ", "the file is empty"),
        (
            "<html>proxy error</html>",
            "not JSON: expected value at line 1, column 1",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [ {"Class": "#,
            "truncated: the JSON ends",
        ),
        ("[1, 2]", "the top level is not a JSON object but an array"),
        (
            "\"text\"",
            "the top level is not a JSON object but a string",
        ),
        ("[1, 2", "truncated: the JSON ends"),
        (
            r#"{"SchemaVersion": 2}"#,
            "the Trivy report has no `Results`",
        ),
        (
            r#"{"SchemaVersion": 1, "Results": []}"#,
            "`SchemaVersion` is 1; salve reads",
        ),
        (
            r#"{"SchemaVersion": "2", "Results": []}"#,
            "field `SchemaVersion`: invalid type: string",
        ),
        (r#"{"ArtifactName": "x"}"#, "not a report salve reads"),
        (
            r#"{"SchemaVersion": 2, "matches": []}"#,
            "not a report salve reads",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": {}}"#,
            "field `Results`: invalid type: map",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [{"Class": "os-pkgs", "Type": "debian",
                "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a",
                "InstalledVersion": "1", "FixedVersion": 2}]}]}"#,
            "field `Results[0].Vulnerabilities[0].FixedVersion`: invalid type: integer `2`, \
             expected a string",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [{"Class": "lang-pkgs", "Type": "npm",
                "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "InstalledVersion": "1"}]}]}"#,
            "field `Results[0].Vulnerabilities[0]`: missing field `PkgName`",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [{"Class": "lang-pkgs", "Type": "npm",
                "Vulnerabilities": [{"VulnerabilityID": " ", "PkgName": "a"}]}]}"#,
            "field `Results[0].Vulnerabilities[0].VulnerabilityID`: empty",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [{"Type": "npm"}]}"#,
            "field `Results[0].Class`: missing",
        ),
        (
            r#"{"SchemaVersion": 2, "Results": [{"Class": "os-pkgs", "Type": ""}]}"#,
            "field `Results[0].Type`: missing or empty",
        ),
        (
            r#"{"matches": [{"vulnerability": {"id": "x"}}]}"#,
            "field `matches[0]`: missing field `artifact`",
        ),
        (
            r#"{"matches": [{"vulnerability": {"id": "x"},
                "artifact": {"name": "a", "type": ""}}]}"#,
            "field `matches[0].artifact.type`: empty",
        ),
        (
            r#"{"matches": [], "source": {"target": 5}}"#,
            "field `source.target`: invalid type: integer `5`, expected a string or an object",
        ),
    ];
    for (json, expected) in cases {
        let message = parse_err(json, None);
        assert!(
            message.starts_with("reading report mem.json: ") && message.contains(expected),
            "for {json:?}:\n  got      {message}\n  expected {expected}"
        );
    }
}

#[test]
fn a_cut_real_report_is_truncated_not_a_panic() {
    let bytes = fs_err::read(shared_reports().join("nanda9_flask-python-app__trivy.json")).unwrap();
    for cut in [1, 100, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
        let error = parse(Path::new("cut.json"), &bytes[..cut], None).unwrap_err();
        assert!(
            matches!(
                error.problem(),
                Problem::Truncated { .. } | Problem::NotUtf8 { .. }
            ),
            "cut at {cut}: {}",
            chain(&error)
        );
    }
}

#[test]
fn non_utf8_content_is_refused_with_its_offset() {
    let message = chain(&parse(Path::new("x.json"), b"{\"a\": \"\xff\"}", None).unwrap_err());
    assert_eq!(
        message,
        "reading report x.json: not UTF-8 text (invalid byte at offset 7)"
    );
}

#[test]
fn byte_order_mark_is_skipped() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(TRIVY_MIXED.as_bytes());
    assert_eq!(
        parse(Path::new("bom.json"), &bytes, None)
            .unwrap()
            .findings
            .len(),
        3
    );
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: 200 MB of size without 200 MB of disk.
    fs_err::File::create(&path)
        .unwrap()
        .set_len(200_000_000)
        .unwrap();
    let error = read(&path, None).unwrap_err();
    assert_eq!(error.path(), path);
    assert_eq!(
        chain(&error),
        format!(
            "reading report {}: the file is 200000000 bytes, over the 134217728-byte limit \
             for a report",
            path.display()
        )
    );
}

#[test]
fn missing_file_error_names_the_path() {
    let error = read(Path::new("/nonexistent/report.json"), None).unwrap_err();
    assert_eq!(
        chain(&error),
        "reading report /nonexistent/report.json: No such file or directory (os error 2)"
    );
}

#[test]
fn directory_without_reports_is_an_error_and_bad_member_is_named() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("notes.txt"), "not a report").unwrap();
    let message = chain(&read(dir.path(), None).unwrap_err());
    assert_eq!(
        message,
        format!(
            "reading report {}: the directory holds no .json report",
            dir.path().display()
        )
    );

    fs_err::write(dir.path().join("a.json"), TRIVY_MIXED).unwrap();
    fs_err::write(dir.path().join("b.json"), "{").unwrap();
    let error = read(dir.path(), None).unwrap_err();
    assert_eq!(error.path(), dir.path().join("b.json"));
}
