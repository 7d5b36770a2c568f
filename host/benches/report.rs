//! Parse time and peak memory of `report::read` on a 50 MB Trivy report.
//!
//! The report is made from a real one (`shared/reports/nanda9_...json`,
//! 194 findings with full descriptions and CVSS data), its results repeated
//! until the file passes 50 MB, and written pretty-printed as Trivy writes
//! it. Peak memory is the heap high-water mark during the read, counted by
//! a wrapping allocator, so it covers the file's bytes, the borrowed
//! document and the findings.
//!
//! Run: `cargo bench -p salve --bench report`. Goals: under 0.5 s, and a
//! peak under three times the file's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TARGET_SIZE: usize = 50_000_000;
const RUNS: usize = 7;

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("trivy-50mb.json");
    let size = write_report(&path);

    // One untimed read warms the page cache, as a report just written is.
    let findings = salve::report::read(&path, None).expect("bench report parses")[0]
        .findings
        .len();

    let mut times: Vec<Duration> = Vec::new();
    let mut peak = 0;
    for _ in 0..RUNS {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let start = Instant::now();
        let reports = salve::report::read(&path, None).expect("bench report parses");
        times.push(start.elapsed());
        peak = peak.max(PEAK.load(Ordering::Relaxed) - before);
        drop(reports);
    }
    times.sort();

    let mb = |bytes: usize| bytes as f64 / 1e6;
    println!(
        "report: {:.1} MB of Trivy JSON, {findings} findings",
        mb(size)
    );
    println!(
        "parse:  min {:.3} s, median {:.3} s over {RUNS} runs (goal: under 0.5 s)",
        times[0].as_secs_f64(),
        times[RUNS / 2].as_secs_f64()
    );
    println!(
        "memory: peak heap {:.1} MB during a read, {:.2}x the file (goal: under 3x)",
        mb(peak),
        peak as f64 / size as f64
    );
}

/// Writes the 50 MB report and returns its size.
fn write_report(path: &Path) -> usize {
    let source = shared_report();
    let text = std::fs::read(&source).expect("public report readable");
    let mut document: serde_json::Value = serde_json::from_slice(&text).expect("public report");
    let results = document["Results"].as_array().expect("Results").clone();

    // Each copy's targets and ids differ, as a big image's would.
    let copies = TARGET_SIZE / text.len() + 1;
    let mut repeated = Vec::new();
    for copy in 0..copies {
        for result in &results {
            let mut result = result.clone();
            for vulnerability in result["Vulnerabilities"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                let id = format!(
                    "{}-{copy}",
                    vulnerability["VulnerabilityID"].as_str().unwrap_or("")
                );
                vulnerability["VulnerabilityID"] = id.into();
            }
            repeated.push(result);
        }
    }
    document["Results"] = repeated.into();

    let bytes = serde_json::to_vec_pretty(&document).expect("serializable");
    std::fs::write(path, &bytes).expect("bench report written");
    bytes.len()
}

/// `shared/reports/nanda9_flask-python-app__trivy.json`, beside the
/// repository or one of its parents.
fn shared_report() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reports/nanda9_flask-python-app__trivy.json"))
        .find(|path| path.is_file())
        .expect("shared/reports beside the repository")
}
