//! `demo`: salve end to end on a fresh machine, with no image at hand.
//!
//! Builds the sample Python image with the test-image builder (or takes it
//! from the cache), writes its Trivy report, runs `salve patch` on it, then
//! validates the patched image and re-scans it:
//!
//! ```text
//! cargo run -p salve-tests --bin demo
//! ```
//!
//! Needs root, a Docker daemon, debootstrap and skopeo (`.ci/run` installs
//! and starts them). Outputs go to `target/demo/`.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use salve_tests::reports::{self, Classes};
use salve_tests::{images, require, validate};

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let missing: Vec<String> = require::IMAGE_BUILDER
        .iter()
        .filter_map(|need| need.check().err())
        .collect();
    if !missing.is_empty() {
        bail!("the demo builds a test image, but {}", missing.join("; "));
    }
    // The report needs the advisory records: find them before minutes of
    // image building, not after.
    salve_tests::advisories::load().context("loading advisories")?;

    // The image and its report.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let out = workspace.join("target/demo");
    fs_err::create_dir_all(&out)?;
    let image = images::python()?;
    let report_path = reports::write_trivy(image, &out.join("python-trivy.json"))?;
    let report = serde_json::from_slice(&fs_err::read(&report_path)?)?;
    println!("image:  {}", image.oci_ref());
    println!("report: {} ({})", report_path.display(), summary(&report));

    // salve patch, with the library findings.
    let salve = salve_tests::cli::salve_path();
    let patched = out.join("patched");
    if patched.exists() {
        fs_err::remove_dir_all(&patched)?;
    }
    let mut patch = Command::new(&salve);
    patch
        .args(["patch", "-i", &image.oci_ref(), "-r"])
        .arg(&report_path);
    patch
        .args(["--pkg-types", "library", "-o"])
        .arg(format!("oci:{}", patched.display()));
    println!("running: {patch:?}");
    let status = patch
        .status()
        .with_context(|| format!("running {}", salve.display()))?;
    if !status.success() {
        eprintln!("salve patch exited with {status}");
        return Ok(ExitCode::FAILURE);
    }

    // The patched image must be valid, and fewer findings must remain.
    validate::image(&patched)?;
    let after = reports::rescan(&patched, image, Classes::LIBRARY)?;
    println!(
        "patched: oci:{} (re-scan: {})",
        patched.display(),
        summary(&after)
    );
    Ok(ExitCode::SUCCESS)
}

/// "N findings: debian A, python-pkg B".
fn summary(report: &serde_json::Value) -> String {
    let findings = reports::findings(report);
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for finding in &findings {
        *by_kind.entry(finding.kind.clone()).or_default() += 1;
    }
    let parts: Vec<String> = by_kind
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    format!("{} findings: {}", findings.len(), parts.join(", "))
}
