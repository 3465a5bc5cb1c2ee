//! Shared test helpers, one implementation each: a `kiln` command with its own store and the
//! suite's compile cache, running it under a deadline, the workspace paths, files, FIFOs,
//! shell scripts, signals and digests, and what tests need built on first use: the fixtures
//! (hostile frontend, run guests) and the WASI tools of `scripts/wasm-tools`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runner/ is in the workspace").to_path_buf()
}

/// The workspace target directory (where the kiln binary under test lives).
pub fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_kiln"));
    bin.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Where the kilns the tests start keep compiled WebAssembly (`KILN_COMPILE_CACHE`): one
/// directory for the whole suite, kept from one run to the next, so each frontend, the shell
/// and each RUN program is compiled once instead of once per test store. kiln creates it
/// (mode 0700) on first use.
pub fn compile_cache() -> PathBuf {
    target_dir().join("test-compile-cache")
}

/// The `kiln` under test with nothing from the caller's kiln environment, and the suite's
/// [`compile_cache`].
pub fn kiln() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("KILN_COMPILE_CACHE", compile_cache())
        .env_remove("KILN_HOME")
        .env_remove("KILN_LOG")
        .env_remove("KILN_INSECURE_REGISTRIES")
        .env_remove("KILN_REGISTRY_TIMEOUT")
        .env_remove("KILN_ALLOW_NONDISTRIBUTABLE_ARTIFACTS");
    cmd
}

/// A scratch directory with a kiln store in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Write a file under the sandbox and return its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// The bytes of the file `name` under the sandbox.
    pub fn read(&self, name: &str) -> Vec<u8> {
        read(&self.dir.path().join(name))
    }

    /// Copy the file `from` to `name` under the sandbox and return its path.
    pub fn copy(&self, name: &str, from: &Path) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, &path).unwrap_or_else(|e| panic!("copy {} to {name}: {e}", from.display()));
        path
    }

    /// `kiln` with this sandbox's store and Docker client configuration, the suite's
    /// [`compile_cache`], and nothing from the caller's kiln environment.
    pub fn kiln(&self) -> Command {
        let mut cmd = kiln();
        // Registry credentials too: `kiln login` writes Docker's config there.
        cmd.env("KILN_HOME", self.root())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .current_dir(self.dir.path());
        cmd
    }

    /// [`Self::kiln`] with compiled modules in the store's own `compiled/`, as without
    /// `KILN_COMPILE_CACHE`: for tests of that cache or of everything the store holds.
    pub fn kiln_own_compile_cache(&self) -> Command {
        let mut cmd = self.kiln();
        cmd.env_remove("KILN_COMPILE_CACHE");
        cmd
    }
}

/// Run and capture.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("kiln runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How long one kiln may run before a test calls it hung (see [`run_within`]).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Run `cmd` with its output captured (read as it comes, so a flood cannot block it), and
/// fail the test if it runs past `limit`: it is killed first, so a hang cannot stall the
/// suite. Returns the output and how long it ran.
pub fn run_within(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kiln starts");
    let (out, err) = capture(&mut child);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kiln") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap();
            let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(4000)..]).into_owned();
            panic!("kiln did not finish within {limit:?} and was killed; the end of its stderr:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    (output, started.elapsed())
}

/// A thread reading a pipe to its end.
pub type Reader = std::thread::JoinHandle<Vec<u8>>;

/// Read `from` to its end in a thread of its own.
pub fn drain(mut from: impl Read + Send + 'static) -> Reader {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// Threads that read the child's stdout and stderr (both piped) to their end.
pub fn capture(child: &mut Child) -> (Reader, Reader) {
    (drain(child.stdout.take().expect("stdout is piped")), drain(child.stderr.take().expect("stderr is piped")))
}

/// Send the signal `name` (`INT`, `TERM`) to `child` with kill(1); whether kill succeeded.
pub fn signal(child: &Child, name: &str) -> bool {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    status.is_ok_and(|s| s.success())
}

/// Whether the tests run as root (who reads files whatever their mode, and may mount).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// A file's bytes; the test fails naming the path if it cannot be read.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A file's text; the test fails naming the path if it cannot be read.
pub fn read_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Make a FIFO at `path` with mkfifo(1).
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `sh -c SCRIPT` in `dir`: for trees no test thread may build with relative paths (the
/// working directory is the whole test process's).
pub fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh").args(["-c", script]).current_dir(dir).status().expect("sh runs");
    assert!(status.success(), "sh -c {script:?} failed");
}

/// Copy `from` to `to` (files and directories), skipping a store's lock and scratch (`lock`,
/// `tmp` at the top); files under paths for which `link` holds are hard-linked where possible.
pub fn copy_tree(from: &Path, to: &Path, link: &dyn Fn(&Path) -> bool) {
    fn walk(root: &Path, dir: &Path, to: &Path, link: &dyn Fn(&Path) -> bool) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap();
            if rel == Path::new("lock") || rel == Path::new("tmp") {
                continue;
            }
            let dest = to.join(rel);
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
                walk(root, &path, to, link);
            } else if !(link(rel) && std::fs::hard_link(&path, &dest).is_ok()) {
                std::fs::copy(&path, &dest).unwrap();
            }
        }
    }
    std::fs::create_dir_all(to).unwrap();
    walk(from, from, to, link);
}

/// The hostile frontend component (tests/fixtures/hostile-frontend), built once per test run.
pub fn hostile_frontend() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_dir().join("test-frontends");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(workspace())
                .args(["build", "-p", "kiln-hostile-frontend", "--lib", "--features", "component"])
                .args(["--target", "wasm32-wasip2", "--profile", "wasm-frontend", "--target-dir"])
                .arg(&target)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the hostile frontend fixture failed");
            target.join("wasm32-wasip2/wasm-frontend/kiln_hostile_frontend.wasm")
        })
        .clone()
}

/// The run-guest fixture (tests/fixtures/run-guest) as (WASI preview 1 module, preview 2
/// component), built once per test run.
pub fn run_guests() -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_dir().join("test-guests");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            for triple in ["wasm32-wasip1", "wasm32-wasip2"] {
                let status = Command::new(&cargo)
                    .current_dir(workspace())
                    .args(["build", "--release", "-p", "kiln-run-guest", "--target", triple, "--target-dir"])
                    .arg(&target)
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS")
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building the run-guest fixture for {triple} failed");
            }
            (target.join("wasm32-wasip1/release/run-guest.wasm"), target.join("wasm32-wasip2/release/run-guest.wasm"))
        })
        .clone()
}

/// A WASI tool built for wasm32-wasip1 by `scripts/wasm-tools` (the recipe CI runs too), into
/// the target directory's `wasm-tools/NAME/bin/FILE`. The script skips a tool already built;
/// the first build of each takes a few minutes.
fn wasm_tool(name: &str, file: &str) -> PathBuf {
    let wasm = target_dir().join("wasm-tools").join(name).join("bin").join(file);
    if !wasm.is_file() {
        let status = Command::new(workspace().join("scripts/wasm-tools"))
            .arg(name)
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("scripts/wasm-tools runs");
        assert!(status.success(), "scripts/wasm-tools {name} failed");
        assert!(wasm.is_file(), "scripts/wasm-tools {name} did not leave {}", wasm.display());
    }
    wasm
}

/// uutils coreutils 0.12 built for wasm32-wasip1 from crates.io, built once.
pub fn coreutils() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| wasm_tool("coreutils", "coreutils.wasm")).clone()
}

/// wasm-tools 1.263 built for wasm32-wasip1 from crates.io, built once.
pub fn wasm_tools() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| wasm_tool("wasm-tools", "wasm-tools.wasm")).clone()
}
