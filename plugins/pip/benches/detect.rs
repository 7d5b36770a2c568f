//! What `detect` and `plan` cost natively, on a synthetic image and, when
//! `SALVE_PIP_BENCH_ROOT` names one, on a real unpacked image root. Prints
//! figures; asserts nothing about time. (Inside the host the same code runs
//! as WebAssembly, and every file access is a WASI call.)
//!
//! Run: `cargo bench -p salve-plugin-pip --bench detect`
//! or:  `SALVE_PIP_BENCH_ROOT=/tmp/rootfs cargo bench -p salve-plugin-pip --bench detect`

use std::path::Path;
use std::time::{Duration, Instant};

use salve_plugin_pip::{DEFAULT_SOURCES, Pip};
use salve_plugin_sdk::prelude::*;

const RUNS: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A Debian-like image: python3.11, 400 dpkg file lists of 50 lines each,
/// 3 venvs of 200 distributions each (with RECORD and 5 package files per
/// distribution), and 2,000 unrelated directories to search for venvs.
fn synthetic(root: &Path) {
    write(root, "usr/bin/python3.11", "");
    write(
        root,
        "usr/lib/python3.11/EXTERNALLY-MANAGED",
        "[externally-managed]\n",
    );
    for i in 0..400 {
        let lines: String = (0..50)
            .map(|j| format!("/usr/share/doc/pkg{i}/file{j}\n"))
            .collect();
        write(root, &format!("var/lib/dpkg/info/pkg{i}.list"), &lines);
    }
    for v in 0..3 {
        let venv = format!("srv/app{v}/.venv");
        write(
            root,
            &format!("{venv}/pyvenv.cfg"),
            "home = /usr/bin\nversion = 3.11.2\n",
        );
        write(root, &format!("{venv}/bin/python"), "");
        let site = format!("{venv}/lib/python3.11/site-packages");
        for d in 0..200 {
            let name = format!("dist{d}");
            let info = format!("{site}/{name}-1.{d}.dist-info");
            write(
                root,
                &format!("{info}/METADATA"),
                &format!(
                    "Metadata-Version: 2.1\nName: {name}\nVersion: 1.{d}\nRequires-Dist: dist{}\n",
                    (d + 1) % 200
                ),
            );
            write(root, &format!("{info}/INSTALLER"), "pip\n");
            let record: String = (0..5).map(|f| format!("{name}/m{f}.py,,\n")).collect();
            write(root, &format!("{info}/RECORD"), &record);
            for f in 0..5 {
                write(root, &format!("{site}/{name}/m{f}.py"), "");
            }
        }
        write(
            root,
            &format!("{site}/pip-24.0.dist-info/METADATA"),
            "Name: pip\nVersion: 24.0\n",
        );
        write(root, &format!("{site}/pip-24.0.dist-info/RECORD"), "");
    }
    for i in 0..2000 {
        std::fs::create_dir_all(root.join(format!("usr/share/things/t{}/d{i}", i % 40)))
            .expect("mkdir");
    }
}

fn bench(label: &str, root: &Path) {
    let image = Image::at(root);
    let context = ImageContext {
        architecture: "amd64".into(),
        ..ImageContext::default()
    };
    let mut found = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let Ok(Detected::Packages(packages)) = Pip::detect(&image, &context, &Answers::default())
        else {
            eprintln!("{label}: detect failed");
            return;
        };
        samples.push(started.elapsed());
        found = packages;
    }
    let managed: Vec<&InstalledPackage> = found
        .iter()
        .filter(|p| p.origin == Origin::Managed)
        .collect();
    println!(
        "{label}: detect {} copies ({} managed): median {:?} over {RUNS} runs",
        found.len(),
        managed.len(),
        median(samples)
    );

    // Plan an update of (up to) 20 managed copies.
    let updates: Vec<PackageUpdate> = managed
        .iter()
        .take(20)
        .map(|p| PackageUpdate {
            package: (*p).clone(),
            target: p.version.clone(),
            vulnerabilities: vec![],
        })
        .collect();
    let plan_context = PlanContext {
        image: context,
        staging_dir: "/staging".into(),
        ca_bundle: None,
        sources: DEFAULT_SOURCES.map(String::from).to_vec(),
        network: true,
    };
    let samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let planned = Pip::plan(&image, &updates, &plan_context, &Answers::default());
            assert!(planned.is_ok(), "{label}: plan failed: {planned:?}");
            started.elapsed()
        })
        .collect();
    println!(
        "{label}: plan of {} updates: median {:?} over {RUNS} runs",
        updates.len(),
        median(samples)
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    synthetic(dir.path());
    bench(
        "synthetic (3 venvs x 200 dists, 400 dpkg lists)",
        dir.path(),
    );
    if let Some(root) = std::env::var_os("SALVE_PIP_BENCH_ROOT") {
        bench(&format!("{}", Path::new(&root).display()), Path::new(&root));
    }
}
