//! Runs the pip plugin's plan for real in a Docker container, the way the
//! host will: detect on the image's exported root, plan, then run each
//! task's steps and checks inside a container of the image, with a staging
//! directory and the host's CA bundle mounted.
//!
//! This is a development aid, not the host: it runs tasks one after another
//! in one container and does not roll a failed task back. It prints every
//! command, its output, and each check's verdict, then `docker diff`.
//!
//! ```text
//! cargo run -p salve-plugin-pip --example docker_run -- IMAGE ROOTFS [SCOPE:]KEY=VERSION...
//! ```
//!
//! `ROOTFS` is the image's file system unpacked (`docker export` of a
//! container of it); `SCOPE` (an install directory such as
//! `opt/venv/lib/python3.11/site-packages`) picks one environment's copy.

use std::path::Path;
use std::process::{Command as Process, ExitCode};

use salve_plugin_pip::{DEFAULT_SOURCES, Pip};
use salve_plugin_sdk::prelude::*;

const STAGING: &str = "/salve/staging";
const CA_IN_IMAGE: &str = "/salve/ca.pem";
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, rootfs, wanted @ ..] = args.as_slice() else {
        eprintln!("usage: docker_run IMAGE ROOTFS [SCOPE:]KEY=VERSION...");
        return ExitCode::from(2);
    };
    match run(image, Path::new(rootfs), wanted) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(image: &str, rootfs: &Path, wanted: &[String]) -> Result<bool, String> {
    let context = PlanContext {
        image: ImageContext {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..ImageContext::default()
        },
        staging_dir: STAGING.into(),
        ca_bundle: Some(CA_IN_IMAGE.into()),
        sources: DEFAULT_SOURCES.map(String::from).to_vec(),
        network: true,
    };

    // Detect, and show what was found.
    let view = Image::at(rootfs);
    let Detected::Packages(found) =
        Pip::detect(&view, &context.image, &Answers::default()).map_err(|e| e.to_string())?
    else {
        return Err("detect asked for probes".into());
    };
    for p in &found {
        println!(
            "found {} {} at /{} [{:?}]",
            p.name, p.version, p.path, p.origin
        );
    }

    // Updates: every managed copy of each wanted key (in the scope, if given).
    let mut updates = Vec::new();
    for spec in wanted {
        let (selector, target) = spec
            .split_once('=')
            .ok_or(format!("{spec}: expected KEY=VERSION"))?;
        let (scope, key) = selector.rsplit_once(':').unwrap_or(("", selector));
        let copies: Vec<&InstalledPackage> = found
            .iter()
            .filter(|p| p.key == key && p.origin == Origin::Managed)
            .filter(|p| scope.is_empty() || p.scope == scope)
            .collect();
        if copies.is_empty() {
            return Err(format!("{spec}: no managed copy"));
        }
        updates.extend(copies.into_iter().map(|p| PackageUpdate {
            package: p.clone(),
            target: target.into(),
            vulnerabilities: vec![],
        }));
    }
    let Planned::Tasks(tasks) =
        Pip::plan(&view, &updates, &context, &Answers::default()).map_err(|e| e.to_string())?
    else {
        return Err("plan asked for probes".into());
    };

    // One container for the whole run, staging and CA mounted.
    let staging = tempfile::tempdir().map_err(|e| e.to_string())?;
    let container = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "-v",
        &format!("{}:{STAGING}", staging.path().display()),
        "-v",
        &format!("{HOST_CA}:{CA_IN_IMAGE}:ro"),
        "-e",
        &format!("PIP_CERT={CA_IN_IMAGE}"),
        image,
        "sleep",
        "infinity",
    ])?
    .1
    .trim()
    .to_string();

    let mut all_passed = true;
    for task in &tasks {
        println!("\n=== task: {}", task.description);
        let passed = run_task(&container, staging.path(), task)?;
        println!("=== {}", if passed { "PASSED" } else { "FAILED" });
        all_passed &= passed;
    }

    // What changed outside site directories is what should not have.
    let diff = docker(&["diff", &container])?.1;
    let (in_sites, elsewhere): (Vec<&str>, Vec<&str>) =
        diff.lines().partition(|l| l.contains("-packages/"));
    println!(
        "\n=== docker diff: {} change(s) inside site directories; elsewhere:",
        in_sites.len()
    );
    println!("{}", elsewhere.join("\n"));
    docker(&["rm", "-f", &container])?;
    Ok(all_passed)
}

fn run_task(container: &str, staging: &Path, task: &Task) -> Result<bool, String> {
    for step in &task.steps {
        match step {
            Step::WriteFile(f) => {
                let name = f
                    .path
                    .strip_prefix(&format!("{STAGING}/"))
                    .ok_or(format!("{}: this driver writes only into staging", f.path))?;
                std::fs::write(staging.join(name), &f.contents).map_err(|e| e.to_string())?;
                println!("--- wrote {}", f.path);
            }
            Step::Run(command) => {
                let (code, stdout, stderr) = exec(container, command)?;
                println!("--- run {:?} -> {code}\n{stdout}{stderr}", command.argv);
                if code != 0 {
                    return Ok(false);
                }
            }
            Step::Fetch(f) => {
                // As the host does: download, check the digest, into staging.
                let to = staging.join(&f.file_name);
                let out = Process::new("curl")
                    .args(["-sSfL", "-o"])
                    .arg(&to)
                    .arg(&f.url)
                    .output()
                    .map_err(|e| format!("curl: {e}"))?;
                if !out.status.success() {
                    println!(
                        "--- fetch {} failed: {}",
                        f.url,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    return Ok(false);
                }
                let sum = Process::new("sha256sum")
                    .arg(&to)
                    .output()
                    .map_err(|e| e.to_string())?;
                let digest = String::from_utf8_lossy(&sum.stdout);
                let digest = digest.split_whitespace().next().unwrap_or_default();
                let ok = f.sha256.as_deref().is_none_or(|want| want == digest);
                println!(
                    "--- fetched {} (sha256 {digest}{})",
                    f.file_name,
                    if ok { "" } else { ", MISMATCH" }
                );
                if !ok {
                    return Ok(false);
                }
            }
            other => return Err(format!("this driver cannot run {other:?}")),
        }
    }
    let mut passed = true;
    for check in &task.checks {
        let (code, stdout, stderr) = exec(container, &check.command)?;
        let output_ok = match &check.stdout {
            OutputMatch::Any => true,
            OutputMatch::Equals(text) => stdout.trim() == text.trim(),
            OutputMatch::Contains(text) => stdout.contains(text.as_str()),
        };
        let ok = code == check.exit_code && output_ok;
        println!(
            "--- check {}: {} (exit {code}, stdout {:?}){}",
            check.description,
            if ok { "ok" } else { "FAILED" },
            stdout.trim(),
            if stderr.is_empty() {
                String::new()
            } else {
                format!("\n{stderr}")
            }
        );
        passed &= ok;
    }
    Ok(passed)
}

fn exec(container: &str, command: &Command) -> Result<(i32, String, String), String> {
    let mut args: Vec<String> = vec!["exec".into()];
    if let Some(cwd) = &command.cwd {
        args.extend(["-w".into(), cwd.clone()]);
    }
    if let Some(user) = &command.user {
        args.extend(["-u".into(), user.clone()]);
    }
    for (k, v) in &command.env {
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    args.push(container.into());
    args.extend(command.argv.iter().cloned());
    let out = Process::new("docker")
        .args(&args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn docker(args: &[&str]) -> Result<(i32, String), String> {
    let out = Process::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((0, String::from_utf8_lossy(&out.stdout).into_owned()))
}
