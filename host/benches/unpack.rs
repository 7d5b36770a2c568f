//! Unpack throughput next to `tar -x` of the same layers, and the bytes an output costs.
//!
//! Run as root: `cargo bench -p salve --bench unpack`. The image is `$SALVE_BENCH_IMAGE`
//! (any reference salve reads, e.g. `oci:/var/tmp/salve-testbed/python-.../oci:python`),
//! else the test bed's cached Python image, else a layer made from the host's `/usr/share`.
//! Each layer is unpacked `$SALVE_BENCH_RUNS` times (default 3) into a fresh directory by
//! salve and by GNU tar; the medians are printed. Goal: salve within 1.5x of tar.
//!
//! Then the image is written, unchanged plus one small layer, to an OCI layout next to the
//! input, into a copy of the input layout, and to a docker-archive; the bytes written are
//! printed next to the size of the new layer, config and manifests (the goal for layouts).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use salve::image::{self, Destination, Image, Patch, Reference};
use salve::layer::{self, Compression};
use salve::unpack;

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("the unpack benchmark needs root (unpacking sets owners and makes devices)");
        std::process::exit(2);
    }
    let runs: usize = std::env::var("SALVE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let scratch = tempfile::tempdir_in("/var/tmp").expect("a scratch directory in /var/tmp");
    let reference = bench_image(scratch.path());
    let image =
        image::open(&reference, None).unwrap_or_else(|e| panic!("opening {reference}: {e}"));
    println!("image: {reference} ({} layers)", image.layers().len());

    unpack_throughput(&image, scratch.path(), runs);
    output_bytes(&image, &reference, scratch.path());
}

/// The image to measure (see the file's docs).
fn bench_image(scratch: &Path) -> Reference {
    if let Ok(reference) = std::env::var("SALVE_BENCH_IMAGE") {
        return reference
            .parse()
            .expect("SALVE_BENCH_IMAGE is a valid reference");
    }
    let testbed = Path::new("/var/tmp/salve-testbed");
    if let Ok(entries) = std::fs::read_dir(testbed) {
        for entry in entries.flatten() {
            let oci = entry.path().join("oci");
            if entry.file_name().to_string_lossy().starts_with("python-")
                && oci.join("index.json").is_file()
            {
                return Reference::OciLayout {
                    path: oci,
                    tag: None,
                };
            }
        }
    }

    // No test image: a one-layer image of the host's /usr/share (real files, many small).
    println!("no test-bed image; using a layer made from /usr/share");
    let layer = scratch.join("usr-share.tar.gz");
    sh(&format!("tar -C / -czf {} usr/share", layer.display()));
    let layout = scratch.join("usr-share-oci");
    sh(&format!(
        "skopeo --version >/dev/null && mkdir -p {0} && umoci init --layout {0} && \
         umoci new --image {0}:bench && umoci raw add-layer --image {0}:bench {1}",
        layout.display(),
        layer.display()
    ));
    Reference::OciLayout {
        path: layout,
        tag: Some("bench".into()),
    }
}

fn sh(script: &str) {
    let status = Command::new("sh")
        .args(["-ec", script])
        .status()
        .expect("running sh");
    assert!(status.success(), "{script} failed");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn unpack_throughput(image: &Image, scratch: &Path, runs: usize) {
    println!("\nunpack, median of {runs} runs, MB/s of uncompressed tar:");
    println!(
        "{:<16} {:>6} {:>9} {:>10} {:>10} {:>8}",
        "layer", "comp", "tar MB", "salve", "tar -x", "ratio"
    );
    let (mut salve_total, mut tar_total, mut bytes_total) = (Duration::ZERO, Duration::ZERO, 0u64);
    for layer in image.layers() {
        let blob = layer_blob(layer, scratch);
        let size = uncompressed_size(layer);
        let mut salve_times = Vec::new();
        let mut tar_times = Vec::new();
        for run in 0..runs {
            let dir = scratch.join(format!("salve-{run}"));
            let start = Instant::now();
            unpack::into_dir(layer, &dir).unwrap_or_else(|e| panic!("unpacking: {e}"));
            salve_times.push(start.elapsed());
            std::fs::remove_dir_all(&dir).expect("removing the unpacked layer");

            let dir = scratch.join(format!("tar-{run}"));
            std::fs::create_dir_all(&dir).expect("creating a directory for tar");
            let flag = match layer.compression() {
                Compression::Gzip => "-z",
                Compression::Zstd => "--zstd",
                Compression::None => "--no-auto-compress",
            };
            let start = Instant::now();
            let status = Command::new("tar")
                .args(["-x", flag, "--numeric-owner", "--xattrs", "-f"])
                .arg(&blob)
                .arg("-C")
                .arg(&dir)
                .status()
                .expect("running tar");
            tar_times.push(start.elapsed());
            assert!(status.success(), "tar -x failed on {}", blob.display());
            std::fs::remove_dir_all(&dir).expect("removing the tar output");
        }
        let (salve, tar) = (median(salve_times), median(tar_times));
        salve_total += salve;
        tar_total += tar;
        bytes_total += size;
        let mbps = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
        println!(
            "{:<16} {:>6} {:>9.1} {:>10.1} {:>10.1} {:>7.2}x",
            &layer.digest().digest()[..12],
            layer.compression().to_string(),
            size as f64 / 1e6,
            mbps(salve),
            mbps(tar),
            salve.as_secs_f64() / tar.as_secs_f64()
        );
    }
    let mbps = |d: Duration| bytes_total as f64 / 1e6 / d.as_secs_f64();
    println!(
        "{:<16} {:>6} {:>9.1} {:>10.1} {:>10.1} {:>7.2}x   (goal: <= 1.50x)",
        "all layers",
        "",
        bytes_total as f64 / 1e6,
        mbps(salve_total),
        mbps(tar_total),
        salve_total.as_secs_f64() / tar_total.as_secs_f64()
    );
}

/// A file holding the layer blob, for tar to read (the source may be an archive).
fn layer_blob(layer: &image::Layer, scratch: &Path) -> PathBuf {
    let path = scratch.join(format!("blob-{}", layer.digest().digest()));
    let mut out = std::fs::File::create(&path).expect("creating the blob copy");
    std::io::copy(&mut layer.open().expect("opening the blob"), &mut out)
        .expect("copying the blob");
    path
}

fn uncompressed_size(layer: &image::Layer) -> u64 {
    std::io::copy(
        &mut layer.open_tar().expect("opening the layer"),
        &mut std::io::sink(),
    )
    .expect("reading the layer")
}

fn output_bytes(image: &Image, reference: &Reference, scratch: &Path) {
    // A small change, as a patch run leaves it.
    let upper = scratch.join("upper");
    std::fs::create_dir_all(upper.join("etc")).expect("creating the upper dir");
    std::fs::write(upper.join("etc/patched"), "patched by the benchmark\n")
        .expect("writing a file");
    let new = layer::write(&upper, Compression::Gzip, None, &scratch.join("new"))
        .expect("writing the layer");
    let patch = Patch::now("benchmark");
    let input_bytes: u64 = image.layers().iter().map(|l| l.size()).sum();

    println!("\nbytes written for the patched image (input layers: {input_bytes} bytes):");
    let mut targets = vec![
        (
            "new OCI layout",
            Destination::OciLayout {
                path: scratch.join("out-layout"),
                tag: None,
            },
        ),
        (
            "docker-archive",
            Destination::DockerArchive {
                path: scratch.join("out.tar"),
                name: None,
            },
        ),
    ];
    if let Reference::OciLayout { path, .. } = reference {
        // Into (a hard-linked copy of) the input layout, as `-o oci:SAME_DIR` does.
        let copy = scratch.join("in-copy");
        sh(&format!("cp -al {} {}", path.display(), copy.display()));
        targets.insert(
            1,
            (
                "input OCI layout",
                Destination::OciLayout {
                    path: copy,
                    tag: None,
                },
            ),
        );
    }
    for (what, destination) in targets {
        let tag = match destination {
            Destination::DockerArchive { .. } => "salve-bench/image:patched",
            _ => "patched",
        };
        let written = image::write(image, Some(&new), &patch, &destination, Some(tag))
            .unwrap_or_else(|e| panic!("writing {destination}: {e}"));
        println!(
            "{what:<18} {:>12} bytes written; the new layer is {} bytes, the rest {} bytes",
            written.bytes_written,
            new.size,
            written.bytes_written.saturating_sub(new.size)
        );
    }
}
