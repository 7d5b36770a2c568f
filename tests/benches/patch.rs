//! `salve patch` on the Python test image, against doing the same by hand.
//!
//! By hand means what people do without salve: `docker run` the image with
//! the host's CA bundle mounted and `pip install` the same versions salve
//! chose into each environment, then `docker commit` and `docker save`.
//! Prints the median of several runs of each, their ratio, and where salve's
//! time goes: inside the image's steps (pip's own work and runc), verifying
//! (a fresh detect per task), and the rest (reports, plugins, policy, the
//! index lookups, snapshots, writing the layer and the image).
//!
//! ```text
//! cargo bench -p salve-tests --bench patch      # as root, with a Docker daemon
//! SALVE_BENCH_RUNS=5 cargo bench -p salve-tests --bench patch
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use salve_tests::cli::salve;
use salve_tests::{images, reports, require};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn millis(doc: &Value, key: &str) -> Duration {
    Duration::from_millis(doc["timings"][key].as_u64().unwrap_or(0))
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} exited with {status}", args.join(" "));
    }
    Ok(())
}

/// The pip commands that install what salve installed, per environment.
fn hand_commands(doc: &Value) -> Vec<String> {
    let mut venv = Vec::new();
    let mut system = Vec::new();
    for e in doc["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == "updated")
    {
        let spec = format!(
            "{}=={}",
            e["package"].as_str().unwrap_or_default(),
            e["target"].as_str().unwrap_or_default()
        );
        if e["location"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/app/.venv/")
        {
            venv.push(spec);
        } else {
            system.push(spec);
        }
    }
    let mut commands = Vec::new();
    if !venv.is_empty() {
        commands.push(format!(
            "/app/.venv/bin/python -m pip install --no-cache-dir {}",
            venv.join(" ")
        ));
    }
    if !system.is_empty() {
        commands.push(format!(
            "/usr/bin/python3 -m pip install --no-cache-dir --break-system-packages {}",
            system.join(" ")
        ));
    }
    commands
}

fn main() -> Result<()> {
    if !require::all("the patch benchmark", require::IMAGE_BUILDER) {
        return Ok(());
    }
    let runs: usize = std::env::var("SALVE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let image = images::python()?;
    image.load_into_docker()?;
    let scratch = tempfile::tempdir()?;
    let report = reports::write_trivy(image, &scratch.path().join("trivy.json"))?;

    // salve patch, each run into a fresh output.
    let mut salve_times = Vec::new();
    let (mut steps, mut verify) = (Vec::new(), Vec::new());
    let mut first: Option<Value> = None;
    for n in 0..runs {
        let out = scratch.path().join(format!("salve-{n}"));
        let started = Instant::now();
        let output = salve()
            .args(["patch", "-q", "--json", "-i", &image.oci_ref(), "-r"])
            .arg(&report)
            .args(["--pkg-types", "library", "-o"])
            .arg(format!("oci:{}", out.display()))
            .output()?;
        let took = started.elapsed();
        if !output.status.success() {
            bail!(
                "salve patch failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let doc: Value = serde_json::from_slice(&output.stdout)?;
        salve_times.push(took);
        steps.push(millis(&doc, "steps_ms"));
        verify.push(millis(&doc, "verify_ms"));
        first.get_or_insert(doc);
    }
    let doc = first.context("at least one run")?;

    // The same installs by hand.
    let commands = hand_commands(&doc);
    let ca = images::host_ca_bundle();
    let (mut hand_times, mut pip_times) = (Vec::new(), Vec::new());
    for n in 0..runs {
        let name = format!("salve-bench-hand-{}-{n}", std::process::id());
        let tag = format!("salve-bench/hand:{n}");
        let archive = scratch.path().join(format!("hand-{n}.tar"));
        let started = Instant::now();
        run(
            "docker",
            &[
                "run",
                "--name",
                &name,
                "--network",
                "host",
                "-v",
                &format!("{}:/bench-ca.crt:ro", ca.display()),
                "-e",
                "PIP_CERT=/bench-ca.crt",
                "--entrypoint",
                "sh",
                &image.tag,
                "-c",
                &commands.join(" && "),
            ],
        )?;
        pip_times.push(started.elapsed());
        run("docker", &["commit", &name, &tag])?;
        run(
            "docker",
            &["save", "-o", &archive.display().to_string(), &tag],
        )?;
        hand_times.push(started.elapsed());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    }

    let (salve_median, hand_median) = (median(salve_times), median(hand_times));
    let pip_median = median(pip_times);
    let (steps_median, verify_median) = (median(steps), median(verify));
    let own = salve_median.saturating_sub(steps_median + verify_median);
    println!("packages moved: {}", commands.join("; "));
    println!("salve patch:                    median {salve_median:>8.1?} of {runs}");
    println!("  inside the image (pip, runc): median {steps_median:>8.1?}");
    println!("  verifying (re-detect):        median {verify_median:>8.1?}");
    println!("  salve's own work:             about  {own:>8.1?}");
    println!("by hand (run + commit + save):  median {hand_median:>8.1?} of {runs}");
    println!("  docker run with pip install:  median {pip_median:>8.1?}");
    println!(
        "ratio salve / by hand:          {:.2}",
        salve_median.as_secs_f64() / hand_median.as_secs_f64()
    );
    Ok(())
}
