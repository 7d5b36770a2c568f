//! What `detect` and `plan` cost natively, on a synthetic image and, when
//! `SALVE_NPM_BENCH_ROOT` names one, on a real root filesystem. Prints
//! figures; asserts nothing about time. (Inside the host the same code runs
//! as WebAssembly, and every file access is a WASI call.)
//!
//! Run: `cargo bench -p salve-plugin-npm --bench detect`
//! or:  `SALVE_NPM_BENCH_ROOT=/path/to/rootfs cargo bench -p salve-plugin-npm --bench detect`

use std::path::Path;
use std::time::{Duration, Instant};

use salve_plugin_npm::Npm;
use salve_plugin_sdk::prelude::*;

const RUNS: usize = 9;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn manifest(name: &str, version: &str, deps: &[String]) -> String {
    let deps: Vec<String> = deps
        .iter()
        .map(|d| format!("\"{d}\": \"^1.0.0\""))
        .collect();
    format!(
        "{{\"name\":\"{name}\",\"version\":\"{version}\",\"dependencies\":{{{}}}}}",
        deps.join(",")
    )
}

/// An application of 1,500 hoisted copies (each needing the next three) and
/// 500 nested ones, a lockfile naming them, 800 Debian modules with their
/// dpkg file lists, and 3,000 unrelated directories to search.
fn synthetic(root: &Path) {
    write(root, "usr/bin/npm", "");
    let names: Vec<String> = (0..1500).map(|i| format!("pkg{i}")).collect();
    let mut lock = String::from("{\"lockfileVersion\":3,\"packages\":{\"\":{}");
    for (i, name) in names.iter().enumerate() {
        let deps: Vec<String> = names.iter().skip(i + 1).take(3).cloned().collect();
        write(
            root,
            &format!("app/node_modules/{name}/package.json"),
            &manifest(name, "1.0.0", &deps),
        );
        lock.push_str(&format!(
            ",\"node_modules/{name}\":{{\"version\":\"1.0.0\"}}"
        ));
        if i % 3 == 0 {
            let nested = format!("pkg{}", i + 1);
            write(
                root,
                &format!("app/node_modules/{name}/node_modules/{nested}/package.json"),
                &manifest(&nested, "2.0.0", &[]),
            );
        }
    }
    lock.push_str("}}");
    write(root, "app/package-lock.json", &lock);
    let top: Vec<String> = names.iter().take(50).cloned().collect();
    write(root, "app/package.json", &manifest("app", "1.0.0", &top));
    for i in 0..800 {
        let name = format!("deb{i}");
        write(
            root,
            &format!("usr/share/nodejs/{name}/package.json"),
            &manifest(&name, "1.0.0", &[]),
        );
        write(
            root,
            &format!("var/lib/dpkg/info/node-{name}.list"),
            &format!("/usr/share/nodejs/{name}\n/usr/share/nodejs/{name}/package.json\n"),
        );
    }
    for i in 0..3000 {
        write(root, &format!("srv/data/d{}/f{i}/readme.txt", i % 60), "x");
    }
}

fn answers() -> Answers {
    let answer = |id: &str, out: &str| ProbeResult {
        id: id.into(),
        exit_code: 0,
        stdout: out.into(),
        stderr: String::new(),
    };
    Answers(vec![
        answer("npm-version", "9.2.0\n"),
        answer("node-version", "v18.20.4\n"),
    ])
}

fn detect(image: &Image) -> Vec<InstalledPackage> {
    match Npm::detect(image, &ImageContext::default(), &answers()) {
        Ok(Detected::Packages(found)) => found,
        other => panic!("detect: {other:?}"),
    }
}

fn measure(label: &str, root: &Path) {
    let image = Image::at(root);
    let mut samples = Vec::new();
    let mut found = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        found = detect(&image);
        samples.push(started.elapsed());
    }
    let managed = found.iter().filter(|p| p.origin == Origin::Managed).count();
    println!(
        "{label}: detect {} copies ({managed} movable) in {:.1?} (median of {RUNS})",
        found.len(),
        median(samples)
    );

    // Plan every movable copy of the first application scope found.
    let Some(scope) = found
        .iter()
        .find(|p| p.origin == Origin::Managed && p.attribute("dependency") != Some("global"))
        .map(|p| p.scope.clone())
    else {
        return;
    };
    let updates: Vec<PackageUpdate> = found
        .iter()
        .filter(|p| p.scope == scope && p.origin == Origin::Managed)
        .take(20)
        .map(|p| PackageUpdate {
            package: p.clone(),
            target: "99.0.0".into(),
            vulnerabilities: vec![],
        })
        .collect();
    let context = PlanContext {
        staging_dir: "/.salve/staging".into(),
        sources: vec!["https://registry.npmjs.org/".into()],
        ..PlanContext::default()
    };
    let mut samples = Vec::new();
    let mut tasks = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        match Npm::plan(&image, &updates, &context, &Answers::default()) {
            Ok(Planned::Tasks(t)) => tasks = t.len(),
            other => panic!("plan: {other:?}"),
        }
        samples.push(started.elapsed());
    }
    println!(
        "{label}: plan {} updates in /{scope} into {tasks} tasks in {:.1?} (median of {RUNS})",
        updates.len(),
        median(samples)
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    synthetic(dir.path());
    measure("synthetic", dir.path());
    if let Some(root) = std::env::var_os("SALVE_NPM_BENCH_ROOT") {
        measure("real root", Path::new(&root));
    }
}
