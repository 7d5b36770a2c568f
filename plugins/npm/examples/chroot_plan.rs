//! Runs the npm plugin's detection and plan against a real root filesystem
//! with `chroot`, for trying plans by hand before the host's executor runs
//! them. Needs root. No snapshots: a failed task leaves its changes, so run
//! it on an overlay you can throw away.
//!
//! ```text
//! cargo run -p salve-plugin-npm --example chroot_plan -- \
//!     ROOT STAGING [CA] -- PATH=TARGET...
//! ```
//!
//! `ROOT` is the root filesystem, `STAGING` an image path that steps may
//! write to (`/.salve/staging`), `CA` an image path of a CA bundle, and each
//! `PATH=TARGET` moves the copy detected at `PATH`
//! (`app/node_modules/qs/package.json=6.7.3`).
//!
//! With `SALVE_NPM_CONTAINER=<name>` commands run in that running Docker
//! container with `docker exec` instead, and `ROOT` is the container's
//! merged root (`docker inspect -f '{{.GraphDriver.Data.MergedDir}}'`).

use std::process::ExitCode;
use std::time::Instant;

use salve_plugin_npm::Npm;
use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{
    Answers, Check, Command, Detected, ImageContext, OutputMatch, PackageUpdate, PlanContext,
    Planned, Plugin, ProbeResult, Step,
};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (head, moves) = (&args[..split], args.get(split + 1..).unwrap_or_default());
    let [root, staging, rest @ ..] = head else {
        eprintln!("usage: chroot_plan ROOT STAGING [CA] -- PATH=TARGET...");
        return ExitCode::from(2);
    };
    let ca = rest.first().cloned();
    match run(root, staging, ca, moves) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &str, staging: &str, ca: Option<String>, moves: &[String]) -> Result<bool, String> {
    let image = Image::at(root);
    let context = ImageContext {
        env: vec![("PATH".into(), PATH.into())],
        working_dir: "/".into(),
        ..ImageContext::default()
    };
    let mut env = vec![("PATH".to_string(), PATH.to_string())];
    if let Some(ca) = &ca {
        env.push(("NODE_EXTRA_CA_CERTS".into(), ca.clone()));
        env.push(("NPM_CONFIG_CAFILE".into(), ca.clone()));
    }

    let started = Instant::now();
    let mut answers = Answers::default();
    let found = loop {
        match Npm::detect(&image, &context, &answers).map_err(|e| e.to_string())? {
            Detected::Packages(found) => break found,
            Detected::Probes(probes) => {
                answers = Answers(
                    probes
                        .iter()
                        .map(|p| {
                            let (code, out, err) = chroot(root, &env, &p.command);
                            ProbeResult {
                                id: p.id.clone(),
                                exit_code: code,
                                stdout: out,
                                stderr: err,
                            }
                        })
                        .collect(),
                )
            }
        }
    };
    println!(
        "detect: {} copies in {:.2?}",
        found.len(),
        started.elapsed()
    );

    let mut updates = Vec::new();
    for m in moves {
        let (path, target) = m
            .split_once('=')
            .ok_or(format!("{m}: expected PATH=TARGET"))?;
        let package = found
            .iter()
            .find(|p| p.path == path)
            .ok_or(format!("nothing detected at {path}"))?;
        println!(
            "  {path}: {} {} {:?}",
            package.name, package.version, package.origin
        );
        updates.push(PackageUpdate {
            package: package.clone(),
            target: target.into(),
            vulnerabilities: vec![],
        });
    }
    let plan_context = PlanContext {
        image: context.clone(),
        staging_dir: staging.into(),
        ca_bundle: ca,
        sources: vec!["https://registry.npmjs.org/".into()],
        network: true,
    };
    let mut answers = Answers::default();
    let tasks = loop {
        match Npm::plan(&image, &updates, &plan_context, &answers).map_err(|e| e.to_string())? {
            Planned::Tasks(tasks) => break tasks,
            Planned::Probes(probes) => {
                for p in &probes {
                    let started = Instant::now();
                    let (code, out, err) = chroot(root, &env, &p.command);
                    println!("probe {}: exit {code} in {:.2?}", p.id, started.elapsed());
                    answers.0.push(ProbeResult {
                        id: p.id.clone(),
                        exit_code: code,
                        stdout: out,
                        stderr: err,
                    });
                }
            }
        }
    };

    let mut all_ok = true;
    for task in tasks {
        let started = Instant::now();
        println!("task: {}", task.description);
        let ok = task.steps.iter().all(|step| match step {
            Step::Run(command) => {
                let (code, out, err) = chroot(root, &env, command);
                if code != 0 {
                    println!("  step failed ({code}): {}\n{out}{err}", short(command));
                }
                code == 0
            }
            other => {
                println!("  unsupported step here: {other:?}");
                false
            }
        }) && task.checks.iter().all(|check| run_check(root, &env, check));
        println!(
            "  {} in {:.2?}",
            if ok { "ok" } else { "FAILED" },
            started.elapsed()
        );
        all_ok &= ok;
    }
    Ok(all_ok)
}

fn run_check(root: &str, env: &[(String, String)], check: &Check) -> bool {
    let (code, out, err) = chroot(root, env, &check.command);
    let matches = match &check.stdout {
        OutputMatch::Any => true,
        OutputMatch::Equals(want) => out.trim() == want.trim(),
        OutputMatch::Contains(want) => out.contains(want.as_str()),
    };
    let ok = code == check.exit_code && matches;
    let tail: String = out.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    println!(
        "  check {}: {} ({code}; {tail})",
        if ok { "ok" } else { "FAILED" },
        check.description
    );
    if !ok {
        println!("{out}{err}");
    }
    ok
}

/// Runs a command in `root` with `chroot` (or in the container named by
/// `SALVE_NPM_CONTAINER`), in its working directory.
fn chroot(root: &str, env: &[(String, String)], command: &Command) -> (i32, String, String) {
    let cwd = command.cwd.clone().unwrap_or_else(|| "/".into());
    let mut cmd;
    if let Ok(container) = std::env::var("SALVE_NPM_CONTAINER") {
        cmd = std::process::Command::new("docker");
        cmd.args(["exec", "-w", cwd.as_str()]);
        for (k, v) in env.iter().chain(&command.env) {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.arg(container);
    } else {
        cmd = std::process::Command::new("chroot");
        cmd.arg(root).args(["/usr/bin/env", "-i", "HOME=/root"]);
        for (k, v) in env.iter().chain(&command.env) {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["sh", "-c", "cd \"$0\" && exec \"$@\"", &cwd]);
    }
    cmd.args(&command.argv);
    match cmd.output() {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (-1, String::new(), e.to_string()),
    }
}

/// A command without the scripts' source, for messages.
fn short(command: &Command) -> String {
    command
        .argv
        .iter()
        .map(|a| if a.len() > 80 { "<script>" } else { a.as_str() })
        .collect::<Vec<_>>()
        .join(" ")
}
