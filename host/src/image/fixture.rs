//! Small OCI layouts built in memory for unit tests (real images are in `tests/it`).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::layer::Compression;

/// Builds tar bytes from `(name, data)` files (directories implied by `name/`).
pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        if name.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
        }
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn compress(bytes: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => bytes.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(bytes, 1).unwrap(),
    }
}

fn put(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha(bytes);
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).unwrap();
    fs_err::write(blobs.join(&digest[7..]), bytes).unwrap();
    digest
}

/// Writes an OCI layout at `dir` with one image tagged `tag` made of `layers` (tar bytes).
///
/// `config` is merged into a minimal linux/amd64 config (its keys win).
pub(crate) fn layout(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    compression: Compression,
    config: Value,
) -> Value {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let blob = compress(tar, compression);
        let digest = put(dir, &blob);
        let media_type = compression.media_type().to_string();
        descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
        diff_ids.push(sha(tar));
    }
    let mut full = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| json!({"created_by": "fixture"})).collect::<Vec<_>>(),
    });
    if let Value::Object(extra) = config {
        for (k, v) in extra {
            full[k] = v;
        }
    }
    let config_bytes = serde_json::to_vec(&full).unwrap();
    let config_digest = put(dir, &config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": descriptors,
        "annotations": {"org.example.kept": "yes"},
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put(dir, &manifest_bytes);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs_err::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    full
}
