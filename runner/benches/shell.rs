//! Shell-form RUN benchmark: `RUN /bin/true && /bin/true && ...` with 200 programs, run by
//! kiln's sandboxed `sh` exactly as a RUN step runs it, next to `RUN :` (the shell alone) in
//! the same process, so the difference is what the 200 spawned programs cost.
//!
//! The program is uutils coreutils' `true` when `KILN_BENCH_COREUTILS` names a
//! `coreutils.wasm` (as CI builds it), else the run-guest test fixture (`exit 0`). Target:
//! <= 3 ms per spawned command, warm.
//!
//! Run with `cargo bench -p kiln --bench shell`; prints medians.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::executor::wasi::{OutputSink, RunSpec, WasiExecutor};
use kiln::rootfs::{Content, FileData, Kind, Meta, Node, Tree, clean};
use kiln::scratch::Scratch;

const CHAIN: usize = 200;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The program file, and the command line (as the shell sees it) that makes it exit 0.
fn program() -> (PathBuf, &'static str) {
    if let Some(path) = std::env::var_os("KILN_BENCH_COREUTILS") {
        return (PathBuf::from(path), "/bin/true");
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
    (target.join("wasm32-wasip1/release/run-guest.wasm"), "/bin/true exit 0")
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let (wasm, command) = program();
    let bytes: Arc<[u8]> = Arc::from(std::fs::read(&wasm).expect("the program exists").as_slice());
    let mut tree = Tree::new();
    tree.mkdir_all(&[], "/bin", Meta::root(0o755, 0)).unwrap();
    tree.insert(
        &clean("bin/true"),
        Node {
            meta: Meta::root(0o755, 0),
            kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes.clone()) })),
        },
    )
    .unwrap();
    let scratch_dir = work.path().join("scratch");
    std::fs::create_dir_all(&scratch_dir).unwrap();
    let scratch = Arc::new(Scratch::new(&scratch_dir));
    let sandbox = WasiExecutor::new(Some(work.path().join("compiled")));
    let env = vec![("PATH".to_string(), "/bin".to_string())];
    let chain = vec![command; CHAIN].join(" && ");
    let run = |tree: Tree, script: &str| {
        let argv = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
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
        let start = Instant::now();
        let (tree, outcome) = sandbox.run(tree, scratch.clone(), &spec);
        let elapsed = start.elapsed();
        let outcome = outcome.expect("the step runs");
        assert_eq!(outcome.status, 0, "{}", String::from_utf8_lossy(&outcome.output));
        (tree, elapsed)
    };
    // Warm up: compile the shell and the program once (the on-disk cache is then warm).
    let (mut tree, first) = run(tree, &chain);
    let mut alone = Vec::new();
    let mut chained = Vec::new();
    for _ in 0..15 {
        let (t, d) = run(tree, ":");
        alone.push(d);
        let (t, d) = run(t, &chain);
        chained.push(d);
        tree = t;
    }
    let (alone, chained) = (median(alone), median(chained));
    let per_command = chained.saturating_sub(alone) / CHAIN as u32;
    println!("shell    program {} ({} bytes)", wasm.display(), bytes.len());
    println!("shell    first run (compiles the shell and the program): {}", ms(first));
    println!("shell    RUN : (the shell alone), median of 15: {}", ms(alone));
    println!("shell    RUN {CHAIN} x `{command}` chained with &&, median of 15: {}", ms(chained));
    println!("shell    per spawned command: {}   target <= 3 ms", ms(per_command));
}
