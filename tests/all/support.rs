//! Shared test helpers: a `kiln` command with its own store, the workspace paths, and what
//! tests need built on first use: the fixtures (hostile frontend, run guests) and the WASI
//! tools of `scripts/wasm-tools`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

    /// `kiln` with this sandbox's store and Docker client configuration, and nothing from
    /// the caller's kiln environment.
    pub fn kiln(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        // Registry credentials too: `kiln login` writes Docker's config there.
        cmd.env("KILN_HOME", self.root())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("KILN_LOG")
            .env_remove("KILN_INSECURE_REGISTRIES")
            .env_remove("KILN_REGISTRY_TIMEOUT")
            .env_remove("KILN_ALLOW_NONDISTRIBUTABLE_ARTIFACTS")
            .current_dir(self.dir.path());
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
