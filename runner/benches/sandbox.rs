//! RUN sandbox benchmark, two figures:
//!
//! - spawn: a cached WASI program (its compiled form on disk) run to completion in the
//!   sandbox, from finding it on PATH to its exit status. The program is uutils coreutils
//!   (`true`) when `KILN_BENCH_COREUTILS` names a `coreutils.wasm`, else the run-guest test
//!   fixture (built for wasm32-wasip1 here). Target: <= 3 ms.
//! - snapshot: after changing one file in a rootfs of 50,000 files, collect the change and
//!   write it as a layer into a store. Target: <= 50 ms.
//!
//! Run with `cargo bench -p kiln --bench sandbox`; prints medians.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::executor::wasi::{OutputSink, RunSpec, WasiExecutor};
use kiln::layer;
use kiln::rootfs::{Content, FileData, Kind, Meta, Node, Tree, clean};
use kiln::scratch::Scratch;
use kiln::store::Store;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn file(text: &str) -> Node {
    let bytes: Arc<[u8]> = Arc::from(text.as_bytes());
    Node {
        meta: Meta::root(0o644, 0),
        kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) })),
    }
}

/// The program to spawn, and the argv that makes it exit 0 at once.
fn program() -> (PathBuf, Vec<String>) {
    if let Some(path) = std::env::var_os("KILN_BENCH_COREUTILS") {
        return (PathBuf::from(path), vec!["coreutils".into(), "true".into()]);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target = workspace.join("target/bench-guests");
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&workspace)
        .args(["build", "--release", "-p", "kiln-run-guest", "--target", "wasm32-wasip1", "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the run-guest fixture failed");
    (target.join("wasm32-wasip1/release/run-guest.wasm"), vec!["guest".into(), "exit".into(), "0".into()])
}

fn spawn_bench(work: &Path) {
    let (wasm, argv) = program();
    let bytes = std::fs::read(&wasm).expect("the program exists");
    let name = argv[0].clone();
    let mut tree = Tree::new();
    tree.mkdir_all(&[], "/bin", Meta::root(0o755, 0)).unwrap();
    let data: Arc<[u8]> = Arc::from(bytes.as_slice());
    tree.insert(
        &clean(&format!("bin/{name}")),
        Node {
            meta: Meta::root(0o755, 0),
            kind: Kind::File(Arc::new(FileData { size: data.len() as u64, content: Content::Bytes(data) })),
        },
    )
    .unwrap();
    let scratch_dir = work.join("scratch");
    std::fs::create_dir_all(&scratch_dir).unwrap();
    let scratch = Arc::new(Scratch::new(&scratch_dir));
    let sandbox = WasiExecutor::new(Some(work.join("compiled")));
    let env = vec![("PATH".to_string(), "/bin".to_string())];
    let spec = RunSpec {
        argv: &argv,
        env: &env,
        cwd: "/",
        owner: (0, 0),
        epoch: 0,
        seed: 1,
        memory: 1 << 30,
        timeout: None,
        output_limit: 1 << 20,
        output_budget: u64::MAX,
        processes: 64,
        sink: OutputSink::Capture,
        binds: &[],
        stop: None,
    };
    // First run: adapt and compile, fill the cache.
    let start = Instant::now();
    let (t, outcome) = sandbox.run(tree, scratch.clone(), &spec);
    let first = start.elapsed();
    assert_eq!(outcome.expect("runs").status, 0);
    let mut tree = t;
    let mut warm = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let (t, outcome) = sandbox.run(tree, scratch.clone(), &spec);
        warm.push(start.elapsed());
        assert_eq!(outcome.expect("runs").status, 0);
        tree = t;
    }
    // A new sandbox (as in a new `kiln build`): the compiled program comes from the disk cache.
    let mut from_disk = Vec::new();
    for _ in 0..10 {
        let fresh = WasiExecutor::new(Some(work.join("compiled")));
        let start = Instant::now();
        let (t, outcome) = fresh.run(tree, scratch.clone(), &spec);
        from_disk.push(start.elapsed());
        assert_eq!(outcome.expect("runs").status, 0);
        tree = t;
    }
    println!("spawn    program {} ({} bytes)", wasm.display(), bytes.len());
    println!("spawn    first run (adapt + compile + cache): {}", ms(first));
    println!(
        "spawn    compiled form on disk, first spawn in a build (read + hash + load), median of 10: {}",
        ms(median(from_disk))
    );
    println!("spawn    cached, later spawns in a build, median of 30: {}   target <= 3 ms", ms(median(warm)));
}

fn snapshot_bench(work: &Path) {
    let store = Store::open(&work.join("store")).unwrap();
    let mut tree = Tree::new();
    for i in 0..50_000 {
        let dir = format!("/usr/share/pkg{}/sub{}", i % 500, i % 7);
        if i < 3500 {
            tree.mkdir_all(&[], &dir, Meta::root(0o755, 0)).unwrap();
        }
        tree.insert(&clean(&format!("{dir}/file{i}")), file("content of a small file\n")).unwrap();
    }
    tree.forget_changes();
    let mut times = Vec::new();
    for round in 0..15 {
        tree.insert(&clean("/usr/share/pkg7/sub0/file7"), file(&format!("changed {round}\n"))).unwrap();
        let start = Instant::now();
        let changes = tree.take_changes();
        let layer = layer::write_changes(&store, &tree, &changes, Some(0), u64::MAX).unwrap().expect("one change");
        times.push(start.elapsed());
        assert!(layer.size < 1024);
    }
    println!(
        "snapshot 1 file changed in a rootfs of 50,000 files, median of 15: {}   target <= 50 ms",
        ms(median(times))
    );
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    snapshot_bench(work.path());
    spawn_bench(work.path());
}
