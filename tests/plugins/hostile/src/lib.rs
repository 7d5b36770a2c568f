//! A plugin that misbehaves on purpose. What it does is chosen by the first
//! line of the file `/hostile` in the image it is given (for `detect` and
//! `plan`) or by the version string (for `parse-version`).

use std::cmp::Ordering;

use salve_plugin_sdk::prelude::*;

/// Size of the absurd strings and lists.
const TEN_MB: usize = 10 * 1024 * 1024;

struct Hostile;

fn behaviour(image: &Image) -> String {
    image
        .read_optional("hostile")
        .ok()
        .flatten()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocate_4_gib() -> usize {
    // 64 chunks of 64 MiB, each touched so it is really used.
    let mut chunks = Vec::new();
    for _ in 0..64 {
        chunks.push(vec![7u8; 64 * 1024 * 1024]);
    }
    std::hint::black_box(&chunks).len()
}

/// Reads a path with plain `std::fs`, bypassing the SDK's in-image link
/// resolution, as a malicious plugin would.
fn read_raw(path: &str) -> Result<Detected, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Detected::Packages(vec![InstalledPackage {
            name: text.chars().take(200).collect(),
            key: "leak".into(),
            version: "1".into(),
            path: path.into(),
            scope: String::new(),
            origin: Origin::Managed,
            attributes: vec![],
        }])),
        Err(e) => Err(Error::Failed(format!("reading {path} was refused: {e}"))),
    }
}

impl Plugin for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PackageKind::Library,
            report_types: vec!["hostile-pkg".into()],
            default_sources: vec![],
            always_latest: vec![],
        }
    }

    fn parse_version(v: &str) -> Result<VersionInfo, String> {
        let normalized = if v == "huge" {
            "9".repeat(TEN_MB)
        } else {
            v.to_string()
        };
        Ok(VersionInfo {
            normalized,
            prerelease: false,
        })
    }

    fn compare(a: &str, b: &str) -> Result<Ordering, String> {
        if a == "loop" {
            spin();
        }
        Ok(a.cmp(b))
    }

    fn detect(image: &Image, _: &ImageContext, _: &Answers) -> Result<Detected, Error> {
        match behaviour(image).as_str() {
            "loop" => spin(),
            "alloc" => Err(Error::Failed(format!(
                "allocated {} chunks",
                allocate_4_gib()
            ))),
            "trap" => panic!("the hostile plugin panics on purpose"),
            "escape-dotdot" => read_raw("/../../../../../etc/passwd"),
            "escape-absolute-link" => read_raw("/etc-link/passwd"),
            "escape-relative-link" => read_raw("/up/etc/passwd"),
            "huge-version" => Ok(Detected::Packages(vec![InstalledPackage {
                name: "huge".into(),
                key: "huge".into(),
                version: "1".repeat(TEN_MB),
                path: String::new(),
                scope: String::new(),
                origin: Origin::Managed,
                attributes: vec![],
            }])),
            _ => Ok(Detected::Packages(vec![])),
        }
    }

    fn plan(
        image: &Image,
        updates: &[PackageUpdate],
        _: &PlanContext,
        _: &Answers,
    ) -> Result<Planned, Error> {
        let steps = match behaviour(image).as_str() {
            "huge-plan" => 10_000_000,
            "over-limit-plan" => 100_001,
            _ => 0,
        };
        let task = Task {
            description: "too much".into(),
            updates: (0..updates.len() as u32).collect(),
            steps: vec![Step::Remove(String::new()); steps],
            checks: vec![],
        };
        Ok(Planned::Tasks(vec![task]))
    }
}

salve_plugin_sdk::export_plugin!(Hostile);
