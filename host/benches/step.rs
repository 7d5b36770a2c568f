//! What one step costs with the native executor, next to running the same
//! command with `chroot`.
//!
//! ```text
//! sudo cargo bench -p salve --bench step
//! SALVE_BENCH_IMAGE=oci:/path/to/layout:tag SALVE_BENCH_RUNS=50 cargo bench ...
//! ```
//!
//! The image defaults to the test bed's Python image when it is cached
//! (`/var/tmp/salve-testbed/python-*/oci`, tag `bookworm`). Its layers are
//! unpacked once into `/var/tmp/salve-bench-layers`. Needs root and runc.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use salve::exec::native::Workspace;
use salve::exec::{Executor, ImageEnv, RunSpec, Setup};
use salve::image::{self, Platform};
use salve::unpack::LayerCache;

const LAYER_CACHE: &str = "/var/tmp/salve-bench-layers";

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("step bench skipped: it needs root (overlay mounts, runc)");
        return;
    }
    let Some(reference) = image_reference() else {
        eprintln!("step bench skipped: set SALVE_BENCH_IMAGE (no test bed image is cached)");
        return;
    };
    let runs: usize = std::env::var("SALVE_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);

    // The image, unpacked.
    let img = image::open(
        &reference.parse().expect("SALVE_BENCH_IMAGE"),
        Some(&Platform::host()),
    )
    .expect("opening the image");
    let cache = LayerCache::new(LAYER_CACHE).expect("opening the layer cache");
    let layers = cache.unpack(&img).expect("unpacking");
    let config = img.config();
    let env = ImageEnv::new(config.env(), config.working_dir());
    let scratch = tempfile::tempdir().expect("scratch dir");
    let new_workspace = || {
        Workspace::new(&layers, None, scratch.path(), Setup::from_host(env.clone()))
            .expect("workspace")
    };
    let truth = RunSpec::new(["/bin/true"]);

    println!(
        "one step of `/bin/true` in {reference} ({} layers), {runs} runs each",
        layers.len()
    );
    println!(
        "{:<52}{:>9}{:>9}{:>9}{:>9}",
        "", "median", "mean", "p90", "min"
    );

    // The baseline: chroot into the same tree (the workspace's read-only view).
    let mut workspace = new_workspace();
    let view = workspace.view().expect("view").to_owned();
    report("chroot VIEW /bin/true", runs, || chroot(&view));

    // runc alone, on a snapshot that stays mounted.
    {
        let mut task = workspace.task().expect("task");
        report("runc run on an open snapshot", runs, || {
            assert!(task.run(&truth).expect("run").success());
        });
    }

    // The snapshot alone: scaffold, overlay mount, unmount, removal.
    report("snapshot open + abort (mount, unmount)", runs, || {
        workspace.task().expect("task").abort().expect("abort");
    });

    // The whole step: what the issue calls one step's overhead.
    report("probe: mount, start, stop, unmount", runs, || {
        assert!(workspace.probe(&truth).expect("probe").success());
    });

    // A task that changes one file and is committed (merge, view remounted).
    report("task: write one file + commit", runs, || {
        let mut task = workspace.task().expect("task");
        task.write_file("/opt/bench", b"x", 0o644).expect("write");
        task.commit().expect("commit");
    });

    report(
        "workspace new + finish (once per run)",
        runs.min(10),
        || {
            drop(Box::new(new_workspace()).finish().expect("finish"));
        },
    );
}

/// The image to measure: `$SALVE_BENCH_IMAGE`, else the test bed's cached
/// Python image.
fn image_reference() -> Option<String> {
    if let Ok(reference) = std::env::var("SALVE_BENCH_IMAGE") {
        return Some(reference);
    }
    let cached = std::fs::read_dir("/var/tmp/salve-testbed").ok()?;
    let layout: PathBuf = cached
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("python-"))
        })?
        .join("oci");
    layout
        .is_dir()
        .then(|| format!("oci:{}:bookworm", layout.display()))
}

fn chroot(root: &Path) {
    let status = Command::new("chroot")
        .arg(root)
        .arg("/bin/true")
        .stdin(Stdio::null())
        .status()
        .expect("chroot");
    assert!(status.success());
}

/// Runs `step` `runs` times (after one warm-up) and prints its timings.
fn report(name: &str, runs: usize, mut step: impl FnMut()) {
    step();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            step();
            started.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mean = times.iter().sum::<Duration>() / runs as u32;
    let p90 = times[(runs * 9 / 10).min(runs - 1)];
    println!(
        "{name:<52}{:>9}{:>9}{:>9}{:>9}",
        ms(times[runs / 2]),
        ms(mean),
        ms(p90),
        ms(times[0])
    );
}
