//! How long the bundled plugins take to become ready, and what one call
//! costs. Prints figures; asserts nothing about time.
//!
//! Run: `cargo bench -p salve --bench plugins`
//!
//! - cold: `Registry::load` with an empty cache of compiled components
//!   (every bundled plugin compiled by Cranelift, in parallel);
//! - warm: the same with the cache filled by the previous run (components
//!   deserialized from disk);
//! - compare: one `compare` call on the pip plugin (a fresh sandboxed
//!   instance per call, as in real use).

use std::time::{Duration, Instant};

use salve::plugin::{Options, Registry};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn load(cache: &std::path::Path) -> (Registry, Duration) {
    let started = Instant::now();
    let registry = Registry::load(&Options {
        cache_dir: Some(cache.to_path_buf()),
        ..Options::default()
    })
    .expect("the plugin runtime starts");
    (registry, started.elapsed())
}

fn main() {
    // Cold: a fresh cache directory each time.
    let mut cold = Vec::new();
    for _ in 0..5 {
        let cache = tempfile::tempdir().expect("a temporary directory");
        cold.push(load(cache.path()).1);
    }

    // Warm: one cache, filled once, then reused.
    let cache = tempfile::tempdir().expect("a temporary directory");
    let (registry, _) = load(cache.path());
    let names: Vec<String> = registry
        .plugins()
        .iter()
        .map(|p| p.label().to_string())
        .collect();
    if !registry.failures().is_empty() {
        for f in registry.failures() {
            eprintln!("not loaded: {f}");
        }
    }
    let warm: Vec<Duration> = (0..20).map(|_| load(cache.path()).1).collect();

    // One compare call, averaged over many.
    let pip = registry
        .get("pip")
        .expect("the bundled pip plugin is loaded");
    let calls = 2_000;
    let mut per_call = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..calls {
            pip.compare("1.26.16", "1.26.19")
                .expect("pip orders two valid versions");
        }
        per_call.push(started.elapsed() / calls);
    }

    println!("bundled plugins: {}", names.join(", "));
    println!(
        "ready, cold (compile):      median {:>9.1?} of 5",
        median(cold)
    );
    println!(
        "ready, warm (cached):       median {:>9.1?} of 20",
        median(warm)
    );
    println!(
        "pip compare, one call:      median {:>9.1?} of 5 x {calls}",
        median(per_call)
    );
}
