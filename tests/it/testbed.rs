//! Tests of the test bed itself: the images it builds, the reports it
//! writes, and that its validator and scanner catch what they must.
//!
//! The synthetic-image tests need nothing from the machine. The image tests
//! need root, Docker, debootstrap and skopeo (see `require`); they build the
//! images on first use, which takes a few minutes with an empty cache.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, ensure};
use salve_tests::inventory::{self, Ecosystem};
use salve_tests::reports::{self, Classes};
use salve_tests::validate::{self, Problem};
use salve_tests::{advisories, images, recipe, require};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Synthetic images: small OCI layouts written here, to show that the
// validator and the scanner catch what they must.

/// One file of a synthetic layer: (path, content); `None` content makes a
/// directory.
type Entry<'a> = (&'a str, Option<&'a [u8]>);

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn layer_tar(entries: &[Entry<'_>]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        match content {
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                builder.append_data(&mut header, path, *bytes)?;
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                builder.append_data(&mut header, path, std::io::empty())?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

fn write_blob(root: &Path, bytes: &[u8]) -> Result<String> {
    let digest = sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    fs_err::create_dir_all(root.join("blobs/sha256"))?;
    fs_err::write(root.join("blobs/sha256").join(hex), bytes)?;
    Ok(digest)
}

/// Writes an OCI layout with one gzip blob per layer; returns the config.
fn write_layout(root: &Path, layers: &[Vec<Entry<'_>>]) -> Result<Value> {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for entries in layers {
        let tar = layer_tar(entries)?;
        diff_ids.push(sha256(&tar));
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&tar)?;
        let blob = gzip.finish()?;
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": write_blob(root, &blob)?,
            "size": blob.len(),
        }));
    }

    let history: Vec<Value> = layers
        .iter()
        .map(|_| json!({ "created_by": "test" }))
        .collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    rewrite_config(root, &config, &descriptors)?;
    fs_err::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(config)
}

/// Writes `config` and a manifest and index pointing at it and `layers`.
fn rewrite_config(root: &Path, config: &Value, layers: &[Value]) -> Result<()> {
    let config_bytes = serde_json::to_vec(config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": write_blob(root, &config_bytes)?,
            "size": config_bytes.len(),
        },
        "layers": layers,
    }))?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": write_blob(root, &manifest)?,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": "test" },
        }],
    });
    fs_err::write(root.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

fn manifest_layers(root: &Path) -> Result<Vec<Value>> {
    let index: Value = serde_json::from_slice(&fs_err::read(root.join("index.json"))?)?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index digest")?;
    let path = root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&fs_err::read(path)?)?;
    Ok(manifest["layers"].as_array().context("layers")?.clone())
}

const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n\n";

fn site_packages_layer() -> Vec<Entry<'static>> {
    vec![
        ("usr/", None),
        (
            "usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA",
            Some(METADATA),
        ),
        (
            "app/node_modules/qs/package.json",
            Some(br#"{"name":"qs","version":"6.7.0"}"#),
        ),
    ]
}

#[test]
fn validator_accepts_a_well_formed_layout_and_reports_each_broken_part() -> Result<()> {
    if !require::all(
        "validator_accepts_a_well_formed_layout",
        &[require::Need::Skopeo],
    ) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let config = write_layout(dir.path(), &[site_packages_layer()])?;
    validate::image(dir.path())?;

    // A config whose diff id is not the layer's.
    let mut wrong = config.clone();
    wrong["rootfs"]["diff_ids"][0] = json!(sha256(b"something else"));
    rewrite_config(dir.path(), &wrong, &manifest_layers(dir.path())?)?;
    let error = validate::image(dir.path()).expect_err("wrong diff id");
    ensure!(
        error
            .problems()
            .iter()
            .any(|p| matches!(p, Problem::DiffIds { .. })),
        "{error}"
    );

    // History that counts two layers for one.
    let mut wrong = config.clone();
    wrong["history"] = json!([{ "created_by": "a" }, { "created_by": "b" }]);
    rewrite_config(dir.path(), &wrong, &manifest_layers(dir.path())?)?;
    let error = validate::image(dir.path()).expect_err("wrong history");
    ensure!(
        error.problems().contains(&Problem::History {
            layers: 1,
            entries: 2
        }),
        "{error}"
    );

    // A layer blob whose bytes changed after the manifest was written.
    rewrite_config(dir.path(), &config, &manifest_layers(dir.path())?)?;
    let layers = manifest_layers(dir.path())?;
    let digest = layers[0]["digest"].as_str().context("layer digest")?;
    let blob = dir
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = fs_err::read(&blob)?;
    bytes.push(0);
    fs_err::write(&blob, bytes)?;
    let error = validate::image(dir.path()).expect_err("changed blob");
    ensure!(
        error
            .problems()
            .iter()
            .any(|p| matches!(p, Problem::Digest { blob, .. } if blob == "layer 0")),
        "{error}"
    );
    ensure!(
        error
            .problems()
            .iter()
            .any(|p| matches!(p, Problem::Size { .. })),
        "{error}"
    );
    Ok(())
}

#[test]
fn validator_rejects_a_layer_that_kept_the_build_mount() -> Result<()> {
    if !require::all(
        "validator_rejects_a_layer_that_kept_the_build_mount",
        &[require::Need::Skopeo],
    ) {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut layer = site_packages_layer();
    layer.push(("dev/salve-build/ca.crt", Some(b"")));
    write_layout(dir.path(), &[layer])?;

    let error = validate::image(dir.path()).expect_err("leftover");
    let leftover = error.problems().iter().any(
        |p| matches!(p, Problem::Leftover { layer: 0, path, .. } if path == "dev/salve-build/ca.crt"),
    );
    ensure!(leftover, "{error}");
    Ok(())
}

#[test]
fn validator_rejects_a_layer_holding_a_certificate_only_the_host_trusts() -> Result<()> {
    let foreign = validate::foreign_certificates();
    if foreign.is_empty() {
        // Nothing to leak: the host trusts only the distribution's roots.
        eprintln!("skipping: the host's CA bundle has no locally added certificate to leak");
        return Ok(());
    }
    if !require::all(
        "validator_rejects_a_layer_holding_a_certificate",
        &[require::Need::Skopeo],
    ) {
        return Ok(());
    }
    let bundle = fs_err::read(images::host_ca_bundle())?;
    let dir = tempfile::tempdir()?;
    let mut layer = site_packages_layer();
    layer.push(("etc/ssl/certs/ca-certificates.crt", Some(&bundle)));
    write_layout(dir.path(), &[layer])?;

    let error = validate::image(dir.path()).expect_err("host CA in the image");
    let flagged = error.problems().iter().any(
        |p| matches!(p, Problem::Leftover { path, .. } if path == "etc/ssl/certs/ca-certificates.crt"),
    );
    ensure!(flagged, "{error}");
    Ok(())
}

#[test]
fn scan_applies_whiteouts_and_opaque_directories_of_upper_layers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let upper = vec![
        // Removes requests from the lower layer and replaces node_modules.
        (
            "usr/lib/python3/dist-packages/.wh.requests-2.25.1.dist-info",
            Some(&b""[..]),
        ),
        ("app/node_modules/", None),
        ("app/node_modules/.wh..wh..opq", Some(&b""[..])),
        (
            "app/node_modules/express/package.json",
            Some(&br#"{"name":"express","version":"4.17.1"}"#[..]),
        ),
    ];
    write_layout(dir.path(), &[site_packages_layer(), upper])?;

    let found = inventory::scan(dir.path(), None)?;
    let names: Vec<(&str, &str, usize)> = found
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.layer))
        .collect();
    ensure!(names == [("express", "4.17.1", 1)], "{names:?}");
    Ok(())
}

#[test]
fn recipe_keys_change_with_the_recipe_and_with_its_parent() -> Result<()> {
    let base = recipe::load("debian-bookworm")?;
    let python = recipe::load("python")?;
    ensure!(base.key()? != python.key()?);

    let mut edited = python.clone();
    edited.source.push_str("\n# an edit\n");
    ensure!(
        edited.key()? != python.key()?,
        "editing a recipe must change its key"
    );

    // Every recipe parses, names an existing parent, and expects something.
    for name in recipe::names() {
        let recipe = recipe::load(name)?;
        if let Some(parent) = &recipe.parent {
            recipe::load(parent)?;
            ensure!(!recipe.expects.is_empty(), "{name} expects nothing");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The real images.

#[test]
fn python_image_is_multi_layer_valid_and_free_of_the_build_ca() -> Result<()> {
    if !require::image_builder("python_image_is_multi_layer_valid_and_free_of_the_build_ca") {
        return Ok(());
    }
    let image = images::python()?;
    let recipe = recipe::load("python")?;

    // One layer for the base, one per step, in both exports.
    for path in [&image.oci_layout, &image.docker_archive] {
        validate::image(path)?;
        let opened = salve_tests::layout::open(path)?;
        let built = opened.image(None)?;
        ensure!(
            built.layers.len() == 1 + recipe.steps.len(),
            "{} layers",
            built.layers.len()
        );
        let comments: Vec<&str> = built
            .config
            .history
            .iter()
            .skip(1)
            .filter_map(|h| h.comment.as_deref())
            .collect();
        let steps: Vec<&str> = recipe.steps.iter().map(|s| s.comment.as_str()).collect();
        ensure!(
            comments == steps,
            "history {comments:?} differs from the steps {steps:?}"
        );
    }

    // The build environment (CA bundle, installer variables) is not in the
    // image's config either.
    let env = image.inventory.config["config"]["Env"].to_string();
    for variable in [
        "PIP_CERT",
        "NODE_EXTRA_CA_CERTS",
        "npm_config_cafile",
        "salve-build",
    ] {
        ensure!(
            !env.contains(variable),
            "config Env holds {variable}: {env}"
        );
    }
    let cmd = &image.inventory.config["config"]["Cmd"];
    ensure!(*cmd == json!(["python3"]), "Cmd is {cmd}");
    Ok(())
}

#[test]
fn python_image_has_one_package_at_two_versions_in_two_environments() -> Result<()> {
    if !require::image_builder("python_image_has_one_package_at_two_versions") {
        return Ok(());
    }
    let image = images::python()?;
    let system = "usr/local/lib/python3.11/dist-packages";
    let venv = "app/.venv/lib/python3.11/site-packages";

    let in_both: Vec<(String, String)> = image
        .inventory
        .of(Ecosystem::Pypi)
        .filter(|p| p.dir == system)
        .filter_map(|p| {
            let other = image.inventory.find(Ecosystem::Pypi, venv, &p.name)?;
            (other.version != p.version).then(|| (p.version.clone(), other.version.clone()))
        })
        .collect();
    ensure!(
        !in_both.is_empty(),
        "no package differs between {system} and {venv}"
    );

    // The apt-installed copy is there too, owned by dpkg.
    let apt_idna = image
        .inventory
        .find(Ecosystem::Pypi, "usr/lib/python3/dist-packages", "idna");
    ensure!(apt_idna.is_some(), "python3-idna's idna is missing");
    ensure!(
        image
            .inventory
            .of(Ecosystem::Debian)
            .any(|p| p.name == "python3-idna")
    );
    Ok(())
}

/// How far a fix is from the installed version: 0 patch, 1 minor, 2 major.
fn distance(installed: &str, fixed: &str) -> Option<usize> {
    let installed = pep440_rs::Version::from_str(installed).ok()?;
    let fixed = pep440_rs::Version::from_str(fixed).ok()?;
    let part = |v: &pep440_rs::Version, i: usize| v.release().get(i).copied().unwrap_or(0);
    if part(&installed, 0) != part(&fixed, 0) {
        Some(2)
    } else if part(&installed, 1) != part(&fixed, 1) {
        Some(1)
    } else {
        Some(0)
    }
}

#[test]
fn python_report_flags_every_environment_with_fixes_at_patch_minor_and_major_distance() -> Result<()>
{
    if !require::image_builder("python_report_flags_every_environment") {
        return Ok(());
    }
    let image = images::python()?;
    let report = reports::trivy_for(image)?;
    let findings: Vec<_> = reports::findings(&report)
        .into_iter()
        .filter(|f| f.kind == "python-pkg")
        .collect();

    // Every finding points at metadata the image really holds, at the
    // version the image really has.
    for finding in &findings {
        let package = image
            .inventory
            .packages
            .iter()
            .find(|p| p.path == finding.path);
        let package = package.with_context(|| format!("{} is not in the image", finding.path))?;
        ensure!(package.version == finding.installed, "{finding:?}");
        ensure!(
            finding.path.ends_with(".dist-info/METADATA")
                || finding.path.ends_with(".egg-info/PKG-INFO")
        );
        ensure!(
            !finding.fixed.is_empty(),
            "{finding:?} has no fixed version"
        );
    }

    // Each environment is flagged: system, virtualenv, and apt's.
    let dirs: BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f.path.rsplitn(3, '/').nth(2))
        .collect();
    for dir in [
        "usr/local/lib/python3.11/dist-packages",
        "app/.venv/lib/python3.11/site-packages",
        "usr/lib/python3/dist-packages",
    ] {
        ensure!(dirs.contains(dir), "no finding in {dir}: {dirs:?}");
    }

    // The recipe offers the policy engine fixes at each distance.
    let distances: BTreeSet<usize> = findings
        .iter()
        .flat_map(|f| {
            f.fixed
                .split(", ")
                .filter_map(|fixed| distance(&f.installed, fixed))
        })
        .collect();
    ensure!(
        distances == BTreeSet::from([0, 1, 2]),
        "fix distances {distances:?}"
    );

    // A record with two fixed branches is listed the way Trivy lists it.
    ensure!(
        findings
            .iter()
            .any(|f| f.name == "urllib3" && f.fixed.contains(", "))
    );
    Ok(())
}

#[test]
fn python_report_fixed_versions_come_from_the_advisory_records() -> Result<()> {
    if !require::image_builder("python_report_fixed_versions_come_from_the_advisory_records") {
        return Ok(());
    }
    let image = images::python()?;
    let database = advisories::load()?;
    let report = reports::trivy_for(image)?;

    for finding in reports::findings(&report)
        .iter()
        .filter(|f| f.kind == "python-pkg")
    {
        let records = database.matching(Ecosystem::Pypi, &finding.name, &finding.installed);
        let record = records.iter().find(|m| m.vulnerability_id() == finding.id);
        let record = record.with_context(|| format!("{} has no record", finding.id))?;
        let events: Vec<&str> = record
            .advisory
            .affected
            .iter()
            .flat_map(|a| &a.ranges)
            .flat_map(|r| &r.events)
            .filter_map(|e| e.fixed.as_deref())
            .collect();
        for fixed in finding.fixed.split(", ") {
            ensure!(
                events.contains(&fixed),
                "{} {fixed} is not a fixed event of {}",
                finding.name,
                record.advisory.id
            );
        }
    }
    Ok(())
}

#[test]
fn debian_report_lists_cves_the_security_archive_fixes_for_older_installed_packages() -> Result<()>
{
    if !require::image_builder("debian_report_lists_cves") {
        return Ok(());
    }
    let image = images::debian()?;
    let report = reports::trivy_for(image)?;
    ensure!(report["Metadata"]["OS"]["Family"] == "debian");
    ensure!(
        report["Metadata"]["OS"]["Name"]
            .as_str()
            .is_some_and(|v| v.starts_with("12."))
    );

    // debootstrap of the bookworm suite alone leaves packages behind the
    // security archive; each finding names one of them at its real version,
    // with a CVE and a newer fixed version.
    let findings: Vec<_> = reports::findings(&report)
        .into_iter()
        .filter(|f| f.kind == "debian")
        .collect();
    ensure!(
        !findings.is_empty(),
        "bookworm-security fixes nothing this base holds"
    );
    for finding in &findings {
        let installed = image
            .inventory
            .of(Ecosystem::Debian)
            .find(|p| p.name == finding.name);
        ensure!(
            installed.is_some_and(|p| p.version == finding.installed),
            "{finding:?}"
        );
        ensure!(finding.id.starts_with("CVE-"), "{finding:?}");
        let (old, new) = (
            debversion::Version::from_str(&finding.installed)?,
            debversion::Version::from_str(&finding.fixed)?,
        );
        ensure!(old < new, "{finding:?}");
    }

    // The image's sources list all three suites, as debian:bookworm's do.
    let base = recipe::load("debian-bookworm")?;
    let setup = &base.debootstrap.context("base")?.setup;
    for suite in ["bookworm bookworm-updates", "bookworm-security"] {
        ensure!(setup.contains(suite));
    }
    Ok(())
}

#[test]
fn a_rescan_of_the_unchanged_image_finds_what_the_report_found() -> Result<()> {
    if !require::image_builder("a_rescan_of_the_unchanged_image") {
        return Ok(());
    }
    let image = images::python()?;
    let report = reports::trivy_for(image)?;
    for path in [&image.oci_layout, &image.docker_archive] {
        let rescan = reports::rescan(path, image, Classes::ALL)?;
        ensure!(
            reports::findings(&rescan) == reports::findings(&report),
            "{}",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn node_image_has_a_package_at_two_versions_and_a_vulnerable_global_package() -> Result<()> {
    if !require::image_builder("node_image_has_a_package_at_two_versions") {
        return Ok(());
    }
    let image = images::node()?;
    validate::image(&image.oci_layout)?;
    let report = reports::trivy_for(image)?;
    let findings: Vec<_> = reports::findings(&report)
        .into_iter()
        .filter(|f| f.kind == "node-pkg")
        .collect();

    // A package flagged at two paths with two versions.
    let mut versions_by_name: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for finding in &findings {
        versions_by_name
            .entry(&finding.name)
            .or_default()
            .insert(&finding.installed);
    }
    ensure!(
        versions_by_name.values().any(|v| v.len() > 1),
        "{versions_by_name:?}"
    );

    // The direct dependency, transitive ones, and the global package's.
    let manifest = image
        .inventory
        .find(Ecosystem::Npm, "app/node_modules", "express");
    ensure!(manifest.is_some(), "express is not in app/node_modules");
    ensure!(
        findings
            .iter()
            .any(|f| f.path == "app/node_modules/express/package.json")
    );
    ensure!(
        findings
            .iter()
            .filter(|f| f.path.starts_with("app/node_modules/") && f.name != "express")
            .count()
            >= 3
    );
    ensure!(
        findings
            .iter()
            .any(|f| f.path.starts_with("usr/local/lib/node_modules/"))
    );
    Ok(())
}

#[test]
fn a_second_build_comes_from_the_cache() -> Result<()> {
    if !require::image_builder("a_second_build_comes_from_the_cache") {
        return Ok(());
    }
    let first = images::python()?;
    let second = images::build("python")?;
    ensure!(second.dir == first.dir && second.image_id == first.image_id);
    ensure!(
        second
            .dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(&first.key))
    );
    Ok(())
}
