//! Shared test helpers: a `kiln` command with its own store, the workspace paths, and the
//! hostile frontend fixture built for wasm32-wasip2 on first use.

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

    /// `kiln` with this sandbox's store and nothing from the caller's kiln environment.
    pub fn kiln(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.env("KILN_HOME", self.root()).env_remove("KILN_LOG").current_dir(self.dir.path());
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

/// uutils coreutils 0.12 built for wasm32-wasip1 from crates.io (about 3 minutes once; the
/// result is kept in the target directory).
pub fn coreutils() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = target_dir().join("test-tools/coreutils-0.12.0");
            let wasm = root.join("bin/coreutils.wasm");
            if !wasm.is_file() {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let status = Command::new(cargo)
                    .args(["install", "coreutils", "--version", "0.12.0", "--locked", "--target", "wasm32-wasip1"])
                    .args(["--no-default-features", "--features", "feat_wasm", "--root"])
                    .arg(&root)
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS")
                    .env("CARGO_TARGET_DIR", target_dir().join("test-tools/build"))
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building uutils coreutils for wasm32-wasip1 failed");
            }
            wasm
        })
        .clone()
}
