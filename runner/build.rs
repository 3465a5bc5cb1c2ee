//! Builds the WebAssembly components kiln embeds: the Dockerfile and Earthfile frontends and
//! kiln's sandboxed shell, all for `wasm32-wasip2`.
//!
//! `cargo build` of the `kiln` crate alone must give a working binary, so this script runs
//! nested `cargo build`s (profile `wasm-frontend`) in their own target directory
//! (`<target>/wasm-frontends`, shared by all profiles, so a nested build never waits on the
//! outer build's lock), then copies each component to `OUT_DIR` for `include_bytes!`.
//!
//! `KILN_DOCKERFILE_WASM=<path>`, `KILN_EARTHFILE_WASM=<path>` and `KILN_SH_WASM=<path>` skip
//! a nested build and embed that file instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One embedded component.
struct Embedded {
    /// The file name in `OUT_DIR`.
    out: &'static str,
    /// The variable that names a prebuilt file.
    prebuilt_var: &'static str,
    /// Workspace paths whose change rebuilds it.
    inputs: &'static [&'static str],
    /// `cargo build` arguments selecting the crate.
    cargo_args: &'static [&'static str],
    /// The built file, relative to `<target>/wasm32-wasip2/wasm-frontend`.
    built: &'static str,
    /// What it is, for messages.
    what: &'static str,
    /// The nested build's target directory under `<target>`. The Earthfile frontend has one
    /// of its own: it depends on the Dockerfile frontend's library, and building that as a
    /// dependency (without the `component` feature) would overwrite the Dockerfile component.
    target_subdir: &'static str,
}

const EMBEDDED: &[Embedded] = &[
    Embedded {
        out: "dockerfile.wasm",
        prebuilt_var: "KILN_DOCKERFILE_WASM",
        inputs: &["frontends/dockerfile", "ir", "wit/kiln-build.wit"],
        cargo_args: &["-p", "kiln-dockerfile", "--lib", "--features", "component"],
        built: "kiln_dockerfile.wasm",
        what: "the Dockerfile frontend",
        target_subdir: "wasm-frontends",
    },
    Embedded {
        out: "earthfile.wasm",
        prebuilt_var: "KILN_EARTHFILE_WASM",
        inputs: &["frontends/earthfile", "ir", "wit/kiln-build.wit"],
        cargo_args: &["-p", "kiln-earthfile", "--lib", "--features", "component"],
        built: "kiln_earthfile.wasm",
        what: "the Earthfile frontend",
        target_subdir: "wasm-frontends-earthfile",
    },
    Embedded {
        out: "sh.wasm",
        prebuilt_var: "KILN_SH_WASM",
        inputs: &["shell", "wit/sandbox"],
        cargo_args: &["-p", "kiln-sh", "--bin", "sh"],
        built: "sh.wasm",
        what: "kiln's shell",
        target_subdir: "wasm-frontends",
    },
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("runner/ lives in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for input in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    for component in EMBEDDED {
        build(component, &workspace, &out_dir);
    }
}

fn build(component: &Embedded, workspace: &Path, out_dir: &Path) {
    let dest = out_dir.join(component.out);
    println!("cargo:rerun-if-env-changed={}", component.prebuilt_var);
    if let Some(prebuilt) = env::var_os(component.prebuilt_var) {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        std::fs::copy(&prebuilt, &dest).unwrap_or_else(|e| {
            panic!("{}={}: cannot copy: {e}", component.prebuilt_var, Path::new(&prebuilt).display())
        });
        return;
    }
    for input in component.inputs {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    ensure_wasm_target();
    let target_dir = find_target_dir(out_dir).join(component.target_subdir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--locked"])
        .args(component.cargo_args)
        .args(["--target", "wasm32-wasip2", "--profile", "wasm-frontend"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host; do not let them leak into the wasm build
    // (clippy's wrapper, host RUSTFLAGS, coverage instrumentation, ...).
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CLIPPY_ARGS",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", component.what));
    if !status.success() {
        panic!(
            "building {} for wasm32-wasip2 failed ({status}).\n\
             If the wasm32-wasip2 target is missing, install it: rustup target add wasm32-wasip2",
            component.what
        );
    }
    let built = target_dir.join("wasm32-wasip2/wasm-frontend").join(component.built);
    std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
}

/// Make sure the toolchain can build `wasm32-wasip2`. `rust-toolchain.toml` lists the
/// target, but rustup only installs listed targets together with a new toolchain; on a
/// machine that already has the toolchain, add the target here so that `cargo build` alone
/// works on a fresh clone.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(&rustc).args(["--print", "sysroot"]).output() else {
        return;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        return;
    }
    println!(
        "cargo:warning=installing the wasm32-wasip2 target with rustup (needed to build kiln's embedded components)"
    );
    match Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status() {
        Ok(status) if status.success() => {}
        _ => println!("cargo:warning=could not install wasm32-wasip2; run: rustup target add wasm32-wasip2"),
    }
}

/// The workspace target directory: the ancestor of `OUT_DIR` that cargo marked with
/// `CACHEDIR.TAG`, or `OUT_DIR` itself when there is none.
fn find_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map_or_else(|| out_dir.to_path_buf(), Path::to_path_buf)
}
