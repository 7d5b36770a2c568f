//! The plugin host against real components: the example plugin, and
//! plugins that misbehave on purpose (`tests/plugins/`). Every misbehaviour
//! must fail that plugin's call with a message naming the plugin and its
//! version, and the host must go on serving the others.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use salve::plugin::{DetectOutcome, ImageContext, Limits, Options, Registry};
use salve_tests::cli::salve;

/// Builds the test plugins (once per test run) and returns the directory
/// holding their `.wasm` files.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = workspace.join("target").join("test-plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let packages = [
            "salve-plugin-example",
            "salve-test-plugin-hostile",
            "salve-test-plugin-hostile-net",
            "salve-test-plugin-future-wit",
        ];
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&workspace)
            .args([
                "build",
                "--target",
                "wasm32-wasip2",
                "--profile",
                "plugin",
                "--target-dir",
            ])
            .arg(&target);
        for p in packages {
            cmd.args(["-p", p]);
        }
        let status = cmd
            .status()
            .expect("running cargo to build the test plugins");
        assert!(status.success(), "building the test plugins failed");

        let dir = target.join("collected");
        std::fs::create_dir_all(&dir).unwrap();
        for p in packages {
            let file = format!("{}.wasm", p.replace('-', "_"));
            let built = target.join("wasm32-wasip2").join("plugin").join(&file);
            std::fs::copy(&built, dir.join(&file)).unwrap();
        }
        dir
    })
}

/// A registry of the bundled plugins plus the test plugins, with a short
/// time budget so the endless loop ends quickly.
fn registry() -> Registry {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    Registry::load(&Options {
        plugin_dirs: vec![plugin_dir().to_path_buf()],
        cache_dir: Some(cache.path().to_path_buf()),
        limits: Limits {
            time: Duration::from_secs(2),
            ..Limits::default()
        },
        ..Options::default()
    })
    .unwrap()
}

/// An image root whose `/hostile` file selects the misbehaviour.
fn image_doing(behaviour: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hostile"), behaviour).unwrap();
    std::os::unix::fs::symlink("/etc", root.path().join("etc-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", root.path().join("up")).unwrap();
    root
}

fn detect_error(registry: &Registry, behaviour: &str) -> String {
    let hostile = registry.get("hostile").expect("the hostile plugin loads");
    let root = image_doing(behaviour);
    match hostile.detect(root.path(), &ImageContext::default(), &[]) {
        Ok(outcome) => panic!("{behaviour}: detect succeeded with {outcome:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_endless_loop_runs_out_of_time_and_names_the_plugin() {
    let registry = registry();
    let started = std::time::Instant::now();
    let err = detect_error(&registry, "loop");
    assert_eq!(
        err,
        "plugin hostile 0.1.0: detect: ran past its time budget of 2s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn allocating_4_gib_hits_the_memory_budget() {
    let err = detect_error(&registry(), "alloc");
    assert_eq!(
        err,
        "plugin hostile 0.1.0: detect: tried to use more than its memory budget of 512 MiB"
    );
}

#[test]
fn a_panic_is_a_crash_of_that_plugin() {
    let err = detect_error(&registry(), "trap");
    assert!(
        err.starts_with("plugin hostile 0.1.0: detect: crashed: "),
        "{err}"
    );
}

#[test]
fn reads_outside_the_image_root_are_refused() {
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first_line = host_passwd.lines().next().unwrap().to_string();
    let registry = registry();
    let hostile = registry.get("hostile").unwrap();
    for behaviour in [
        "escape-dotdot",
        "escape-absolute-link",
        "escape-relative-link",
    ] {
        // The image has its own /etc/passwd: a path that climbs above the
        // root may land on it (`/..` is `/` inside the image, as in a
        // container), never on the host's.
        let root = image_doing(behaviour);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), "image-root:x:0:0\n").unwrap();
        match hostile.detect(root.path(), &ImageContext::default(), &[]) {
            Ok(DetectOutcome::Packages(found)) => {
                assert_eq!(found.len(), 1, "{behaviour}: {found:?}");
                assert!(
                    found[0].name.starts_with("image-root:"),
                    "{behaviour} read something outside the image: {:?}",
                    found[0].name
                );
            }
            Ok(other) => panic!("{behaviour}: {other:?}"),
            Err(e) => {
                let err = e.to_string();
                assert!(
                    err.starts_with("plugin hostile 0.1.0: detect: reading /")
                        && err.contains("was refused"),
                    "{behaviour}: {err}"
                );
                assert!(
                    !err.contains(&first_line),
                    "{behaviour} leaked the host's /etc/passwd: {err}"
                );
            }
        }
    }
}

#[test]
fn a_plugin_using_the_network_does_not_load() {
    let registry = registry();
    let failure = registry
        .failures()
        .iter()
        .find(|f| {
            f.source_
                .to_string()
                .ends_with("salve_test_plugin_hostile_net.wasm")
        })
        .expect("hostile-net is refused");
    assert!(
        failure.reason.starts_with("it imports `wasi:sockets/")
            && failure
                .reason
                .ends_with("plugins get no network; they fetch through the host"),
        "{failure}"
    );
    assert!(registry.get("hostile-net").is_none());
}

#[test]
fn a_plugin_for_another_contract_version_is_refused() {
    let registry = registry();
    let failure = registry
        .failures()
        .iter()
        .find(|f| {
            f.source_
                .to_string()
                .ends_with("salve_test_plugin_future_wit.wasm")
        })
        .expect("future-wit is refused");
    assert_eq!(
        failure.reason,
        "built for salve:plugin@0.2.0; this salve accepts salve:plugin@0.1.x \
         (rebuild the plugin with a matching salve-plugin-sdk)"
    );
}

#[test]
fn a_plan_of_ten_million_steps_fails_that_plugin() {
    let registry = registry();
    let hostile = registry.get("hostile").unwrap();
    let root = image_doing("huge-plan");
    let err = hostile
        .plan(root.path(), &[], &Default::default(), &[])
        .expect_err("a plan of 10 million steps is refused")
        .to_string();
    // Either the plugin cannot even build it within its memory budget, or
    // the host refuses the result: both name the plugin.
    assert!(
        err == "plugin hostile 0.1.0: plan: tried to use more than its memory budget of 512 MiB"
            || err.starts_with("plugin hostile 0.1.0: plan: returned a plan of 10000000 steps"),
        "{err}"
    );
}

#[test]
fn a_plan_over_the_step_limit_is_nonsense() {
    let registry = registry();
    let root = image_doing("over-limit-plan");
    let err = registry
        .get("hostile")
        .unwrap()
        .plan(root.path(), &[], &Default::default(), &[]);
    assert_eq!(
        err.unwrap_err().to_string(),
        "plugin hostile 0.1.0: plan: returned a plan of 100001 steps and checks \
         (the limit is 100000)"
    );
}

#[test]
fn a_ten_megabyte_version_is_nonsense() {
    let registry = registry();
    assert_eq!(
        detect_error(&registry, "huge-version"),
        "plugin hostile 0.1.0: detect: returned package version of 10485760 bytes \
         (the limit is 256)"
    );
    let err = registry
        .get("hostile")
        .unwrap()
        .parse_version("huge")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin hostile 0.1.0: parse-version: returned normalized version of 10485760 bytes \
         (the limit is 256)"
    );
}

#[test]
fn the_host_goes_on_after_every_misbehaviour() {
    let registry = registry();
    for behaviour in [
        "loop",
        "alloc",
        "trap",
        "huge-version",
        "escape-dotdot",
        "escape-absolute-link",
        "escape-relative-link",
    ] {
        detect_error(&registry, behaviour);
    }
    let hostile = registry.get("hostile").unwrap();
    for behaviour in ["huge-plan", "over-limit-plan"] {
        let root = image_doing(behaviour);
        hostile
            .plan(root.path(), &[], &Default::default(), &[])
            .expect_err(behaviour);
    }
    assert!(registry.get("hostile-net").is_none());

    // The same runtime still serves a well-behaved plugin.
    let example = registry.get("example").expect("the example plugin loads");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("opt/example/packages")).unwrap();
    std::fs::write(root.path().join("opt/example/packages/zlib"), "1.2.3\n").unwrap();
    let DetectOutcome::Packages(found) = example
        .detect(root.path(), &ImageContext::default(), &[])
        .unwrap()
    else {
        panic!("the example plugin asked for probes")
    };
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].key.as_str(), found[0].version.as_str()),
        ("zlib", "1.2.3")
    );
    assert_eq!(
        example.compare("1.10", "1.9").unwrap(),
        std::cmp::Ordering::Greater
    );
}

#[test]
fn salve_plugins_lists_the_example_plugin_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        plugin_dir().join("salve_plugin_example.wasm"),
        dir.path().join("example.wasm"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = salve()
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(dir.path())
        .env("SALVE_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let example = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "example")
        .expect("example is listed");
    assert_eq!(example["version"], "0.1.0");
    assert_eq!(example["kind"], "library");
    assert_eq!(example["report_types"], serde_json::json!(["example-pkg"]));
    assert_eq!(
        example["source"],
        dir.path().join("example.wasm").display().to_string()
    );
}

/// The rows `salve plugins --json` prints with `SALVE_PLUGIN_PATH` set to
/// `path` (or unset), by plugin name; the command must succeed.
fn listed(path: Option<&str>) -> std::collections::BTreeMap<String, serde_json::Value> {
    let cache = tempfile::tempdir().unwrap();
    let mut command = salve();
    command
        .args(["plugins", "--json"])
        .env("SALVE_CACHE_DIR", cache.path());
    match path {
        Some(path) => command.env("SALVE_PLUGIN_PATH", path),
        None => command.env_remove("SALVE_PLUGIN_PATH"),
    };
    let out = command.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

#[test]
fn salve_plugins_lists_the_bundled_plugins() {
    let rows = listed(None);
    let pip = &rows["pip"];
    assert_eq!(pip["kind"], "library");
    assert_eq!(pip["source"], "bundled (pip)");
    let pip_types = pip["report_types"].as_array().unwrap();
    assert!(pip_types.contains(&"python-pkg".into()), "{pip}");
    let npm = &rows["npm"];
    assert_eq!(npm["kind"], "library");
    assert_eq!(npm["source"], "bundled (npm)");
    assert!(
        npm["report_types"]
            .as_array()
            .unwrap()
            .contains(&"node-pkg".into()),
        "{npm}"
    );
    assert!(!rows.contains_key("example"), "{rows:?}");
}

#[test]
fn salve_plugin_path_adds_plugin_directories() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::copy(
        plugin_dir().join("salve_plugin_example.wasm"),
        b.path().join("example.wasm"),
    )
    .unwrap();
    let path = format!("{}:{}", a.path().display(), b.path().display());
    let rows = listed(Some(&path));
    assert_eq!(
        rows["example"]["source"],
        b.path().join("example.wasm").display().to_string()
    );
    assert_eq!(rows["pip"]["source"], "bundled (pip)");
}

#[test]
fn a_broken_plugin_file_is_reported_and_the_rest_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        plugin_dir().join("salve_plugin_example.wasm"),
        dir.path().join("a.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.wasm"), b"\0asm garbage").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = salve()
        .args(["plugins", "--plugin-dir"])
        .arg(dir.path())
        .env("SALVE_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("example"), "{stdout}");
    let b = dir.path().join("b.wasm").display().to_string();
    assert!(
        stderr.contains(&format!(
            "not loaded: {b}: not a valid WebAssembly component"
        )),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3));
}
