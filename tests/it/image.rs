//! Images end to end: real Debian images from the test bed, read, unpacked, changed, written,
//! then checked by skopeo, umoci and Docker itself.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use salve::image::{self, Destination, Image, Patch, Reference};
use salve::layer::{self, Compression};
use salve::unpack::LayerCache;
use salve_tests::{BuiltImage, images, require, validate};
use sha2::{Digest, Sha256};

/// The test-bed image with several layers (Debian base plus Python steps).
fn python(test: &str) -> Option<&'static BuiltImage> {
    if !require::image_builder(test) {
        return None;
    }
    Some(images::python().unwrap_or_else(|e| panic!("building the python test image: {e}")))
}

fn open(reference: &str) -> Image {
    let reference: Reference = reference.parse().unwrap();
    image::open(&reference, None).unwrap_or_else(|e| panic!("opening {reference}: {e}"))
}

fn sha256_file(path: &Path) -> String {
    let mut file = fs_err::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf).unwrap() {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `docker load`s a docker-archive and runs `sh -c script` in it; returns stdout.
fn docker_run(archive: &Path, tag: &str, script: &str) -> String {
    run("docker", &["load", "-i", &archive.display().to_string()]);
    let out = run(
        "docker",
        &["run", "--rm", "--network", "none", tag, "sh", "-c", script],
    );
    run("docker", &["rmi", "-f", tag]);
    out
}

/// The sha256 of every member under `blobs/sha256/` of an archive, by name.
fn archive_blobs(path: &Path) -> BTreeMap<String, String> {
    let mut blobs = BTreeMap::new();
    let mut archive = tar::Archive::new(fs_err::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            let mut hasher = Sha256::new();
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).unwrap();
            hasher.update(&buf);
            blobs.insert(
                hex.to_owned(),
                format!("sha256:{}", hex::encode(hasher.finalize())),
            );
        }
    }
    blobs
}

#[test]
fn round_trip_without_change_is_accepted_by_skopeo_umoci_and_docker() {
    let Some(built) = python("round_trip_without_change") else {
        return;
    };
    let input = open(&built.oci_ref());
    assert!(
        input.layers().len() > 1,
        "the python image has several layers"
    );

    // Unpacking gives one directory per layer, bottom first, cached.
    let cache_root = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(cache_root.path()).unwrap();
    let dirs = cache.unpack(&input).unwrap();
    assert_eq!(dirs.len(), input.layers().len());
    assert!(dirs[0].join("etc/debian_version").is_file());
    assert_eq!(
        cache.unpack(&input).unwrap(),
        dirs,
        "second run unpacks nothing new"
    );

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let archive = out.path().join("image.tar");
    let oci_archive = out.path().join("image.oci.tar");
    let patch = Patch::now("no change");
    for destination in [
        Destination::OciLayout {
            path: layout.clone(),
            tag: None,
        },
        Destination::DockerArchive {
            path: archive.clone(),
            name: Some(format!("salve-e2e/python:{}-patched", built.oci_tag)),
        },
        Destination::OciArchive {
            path: oci_archive.clone(),
            tag: None,
        },
    ] {
        let written = image::write(&input, None, &patch, &destination, None).unwrap();
        assert_eq!(written.layers, input.layers().len());
        assert_eq!(written.name.tag, format!("{}-patched", built.oci_tag));
    }

    // Independent readers accept every output.
    validate::image(&layout).unwrap();
    validate::image(&archive).unwrap();
    run(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", oci_archive.display())],
    );
    let tag = format!("{}-patched", built.oci_tag);
    run(
        "umoci",
        &["stat", "--image", &format!("{}:{tag}", layout.display())],
    );
    let bundle = out.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            &bundle.display().to_string(),
        ],
    );
    assert!(bundle.join("rootfs/etc/debian_version").is_file());

    // Every layer blob is the input's, byte for byte.
    let blobs = image::write(
        &input,
        None,
        &patch,
        &Destination::OciLayout {
            path: out.path().join("again"),
            tag: None,
        },
        None,
    )
    .unwrap();
    assert!(
        blobs.bytes_written < 64 << 10,
        "layers were hard-linked, not copied: {} bytes",
        blobs.bytes_written
    );
    let in_archive = archive_blobs(&archive);
    for layer in input.layers() {
        let hex = layer.digest().digest();
        let original = built.oci_layout.join("blobs/sha256").join(hex);
        assert_eq!(
            sha256_file(&layout.join("blobs/sha256").join(hex)),
            sha256_file(&original)
        );
        assert_eq!(in_archive.get(hex), Some(&layer.digest().to_string()));
    }

    // Docker loads and runs it.
    if require::docker("round_trip_without_change (docker run)") {
        let name = format!("salve-e2e/python:{tag}");
        let out = docker_run(
            &archive,
            &name,
            "cat /etc/debian_version && python3 --version",
        );
        assert!(out.starts_with("12."), "{out}");
    }
}

#[test]
fn docker_archive_input_round_trips_with_the_same_layers() {
    let Some(built) = python("docker_archive_input_round_trips") else {
        return;
    };
    let from_archive = open(&built.docker_archive_ref());
    let from_layout = open(&built.oci_ref());
    let diff_ids = |i: &Image| {
        i.layers()
            .iter()
            .map(|l| l.diff_id().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(diff_ids(&from_archive), diff_ids(&from_layout));
    assert_eq!(from_archive.config().env(), from_layout.config().env());
    assert_eq!(from_archive.name().unwrap().to_string(), built.tag);

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let destination = Destination::OciLayout {
        path: layout.clone(),
        tag: Some("copy".into()),
    };
    image::write(&from_archive, None, &Patch::now("copy"), &destination, None).unwrap();
    validate::image(&layout).unwrap();
    let reopened = open(&format!("oci:{}:copy", layout.display()));
    assert_eq!(diff_ids(&reopened), diff_ids(&from_layout));
    for layer in from_archive.layers() {
        assert_eq!(
            layer.digest(),
            layer.diff_id(),
            "docker save layers are uncompressed"
        );
        assert_eq!(
            sha256_file(&layout.join("blobs/sha256").join(layer.digest().digest())),
            layer.digest().to_string()
        );
    }
}

/// Makes an overlay upper dir by hand, as the executor leaves it: a new file, a changed
/// file, a deleted file (0/0 char device) and an opaque directory.
fn upper_dir(root: &Path) -> PathBuf {
    let upper = root.join("upper");
    fs_err::create_dir_all(upper.join("etc")).unwrap();
    fs_err::write(upper.join("etc/salve-patched"), "yes\n").unwrap();
    fs_err::write(upper.join("etc/motd"), "patched motd\n").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/issue"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs_err::create_dir_all(upper.join("usr/share/doc")).unwrap();
    fs_err::write(upper.join("usr/share/doc/only-this"), "x").unwrap();
    rustix::fs::setxattr(
        upper.join("usr/share/doc"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    upper
}

#[test]
fn a_change_is_seen_by_docker_run_and_a_deleted_file_is_gone() {
    let Some(built) = python("a_change_is_seen_by_docker_run") else {
        return;
    };
    let input = open(&built.oci_ref());
    let dirs = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(dirs.path().join("cache")).unwrap();
    let lower = cache.unpack(&input).unwrap();
    assert!(
        lower[0].join("etc/issue").is_file(),
        "the base has /etc/issue"
    );

    let upper = upper_dir(dirs.path());
    let new = layer::write(&upper, Compression::Gzip, None, &dirs.path().join("blobs")).unwrap();
    let mut patch = Patch::now("salve: test change");
    patch
        .labels
        .insert("org.example.patched".into(), "yes".into());
    let archive = dirs.path().join("patched.tar");
    let destination = Destination::DockerArchive {
        path: archive.clone(),
        name: None,
    };
    let name = "salve-e2e/python:e2e-change";
    let written = image::write(&input, Some(&new), &patch, &destination, Some(name)).unwrap();
    assert_eq!(written.layers, input.layers().len() + 1);
    validate::image(&archive).unwrap();

    // The new image keeps the original config and records the patch.
    let patched = open(&format!("docker-archive:{}", archive.display()));
    assert_eq!(patched.config().env(), input.config().env());
    assert_eq!(
        patched.config().raw()["config"]["Cmd"],
        input.config().raw()["config"]["Cmd"]
    );
    let labels = patched.config().labels();
    assert_eq!(labels[image::BASE_DIGEST_LABEL], input.digest().to_string());
    assert_eq!(
        labels[image::BASE_LAYERS_LABEL],
        input.layers().len().to_string()
    );
    assert_eq!(labels["org.example.patched"], "yes");
    let history = patched.config().raw()["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["comment"], "salve: test change");
    assert_eq!(patched.previous_patch().unwrap().diff_id(), &new.diff_id);
    let blobs = archive_blobs(&archive);
    for layer in input.layers() {
        assert_eq!(
            blobs.get(layer.digest().digest()),
            Some(&layer.digest().to_string())
        );
    }

    // The unpacked patch layer is the upper dir again, in overlay form.
    let again = cache
        .unpack_layers(std::slice::from_ref(patched.previous_patch().unwrap()))
        .unwrap();
    let issue = again[0].join("etc/issue").symlink_metadata().unwrap();
    assert!(issue.file_type().is_char_device());

    if require::docker("a_change_is_seen_by_docker_run (docker run)") {
        let script = "cat /etc/salve-patched /etc/motd; test ! -e /etc/issue && echo issue-gone; \
                      ls /usr/share/doc";
        let out = docker_run(&archive, name, script);
        assert_eq!(out, "yes\npatched motd\nissue-gone\nonly-this\n");
    }
}

#[test]
fn patching_a_patched_image_replaces_the_previous_patch_layer() {
    let Some(built) = python("patching_a_patched_image") else {
        return;
    };
    let input = open(&built.oci_ref());
    let dirs = tempfile::tempdir().unwrap();
    let upper = upper_dir(dirs.path());
    let first = layer::write(&upper, Compression::Gzip, None, &dirs.path().join("blobs")).unwrap();
    let layout = dirs.path().join("layout");
    let destination = Destination::OciLayout {
        path: layout.clone(),
        tag: None,
    };
    image::write(
        &input,
        Some(&first),
        &Patch::now("first"),
        &destination,
        Some("p1"),
    )
    .unwrap();

    let patched = open(&format!("oci:{}:p1", layout.display()));
    assert_eq!(patched.base_layers().len(), input.layers().len());
    assert_eq!(patched.base_digest(), input.digest());
    fs_err::write(upper.join("etc/second"), "2").unwrap();
    let second = layer::write(&upper, Compression::Zstd, None, &dirs.path().join("blobs")).unwrap();
    // Never into the layout the input came from: salve leaves its input be.
    let err = image::write(
        &patched,
        Some(&second),
        &Patch::now("second"),
        &destination,
        Some("p2"),
    )
    .unwrap_err();
    assert!(matches!(err, image::Error::OutputIsInput(_)), "{err}");
    let again = dirs.path().join("again");
    let again_destination = Destination::OciLayout {
        path: again.clone(),
        tag: None,
    };
    image::write(
        &patched,
        Some(&second),
        &Patch::now("second"),
        &again_destination,
        Some("p2"),
    )
    .unwrap();
    validate::image(&again).unwrap();

    let twice = open(&format!("oci:{}:p2", again.display()));
    assert_eq!(
        twice.layers().len(),
        input.layers().len() + 1,
        "one patch layer, not two"
    );
    assert_eq!(twice.previous_patch().unwrap().diff_id(), &second.diff_id);
    assert_eq!(
        twice.config().labels()[image::BASE_DIGEST_LABEL],
        input.digest().to_string()
    );
    let history = twice.config().raw()["history"].as_array().unwrap();
    let comments: Vec<&str> = history
        .iter()
        .filter_map(|h| h["comment"].as_str())
        .collect();
    assert!(
        comments.contains(&"second") && !comments.contains(&"first"),
        "{comments:?}"
    );
    // The first image's layout is untouched.
    assert_eq!(
        open(&format!("oci:{}", layout.display())).digest(),
        patched.digest()
    );
}

#[test]
fn a_platform_the_image_lacks_is_an_error_naming_both() {
    let Some(built) = python("a_platform_the_image_lacks") else {
        return;
    };
    let reference: Reference = built.oci_ref().parse().unwrap();
    let wanted = "linux/s390x".parse().unwrap();
    let err = image::open(&reference, Some(&wanted))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64"),
        "{err}"
    );
}

/// The Docker daemon's major version, when one answers.
fn docker_major() -> Option<u32> {
    let output = Command::new("docker")
        .args(["version", "-f", "{{.Server.Version}}"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_zstd_patch_layer_makes_a_valid_docker_archive() {
    let Some(built) = python("a_zstd_patch_layer") else {
        return;
    };
    let input = open(&built.oci_ref());
    let dirs = tempfile::tempdir().unwrap();
    let upper = upper_dir(dirs.path());
    let new = layer::write(&upper, Compression::Zstd, None, &dirs.path().join("blobs")).unwrap();
    let archive = dirs.path().join("zstd.tar");
    let name = "salve-e2e/python:zstd";
    let destination = Destination::DockerArchive {
        path: archive.clone(),
        name: None,
    };
    image::write(
        &input,
        Some(&new),
        &Patch::now("zstd"),
        &destination,
        Some(name),
    )
    .unwrap();
    validate::image(&archive).unwrap();
    let back = open(&format!("docker-archive:{}", archive.display()));
    assert_eq!(
        back.previous_patch().unwrap().compression(),
        Compression::Zstd
    );

    // Docker reads zstd layers from 23.0 on; older daemons fail `docker load` on them.
    match docker_major() {
        Some(major) if major >= 23 => {
            assert_eq!(
                docker_run(&archive, name, "cat /etc/salve-patched"),
                "yes\n"
            );
        }
        found => eprintln!("not running the zstd image: Docker {found:?} predates zstd layers"),
    }
}
