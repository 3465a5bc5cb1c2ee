//! Builds the Dockerfile frontend as a `wasm32-wasip2` component and embeds it in `kiln`.
//!
//! `cargo build` of the `kiln` crate alone must give a working binary, so this script runs a
//! nested `cargo build` of `kiln-dockerfile` for `wasm32-wasip2` (profile `wasm-frontend`,
//! feature `component`) in its own target directory (`<target>/wasm-frontends`, shared by all
//! profiles, so the nested build never waits on the outer build's lock), then copies the
//! component to `OUT_DIR/dockerfile.wasm` for `include_bytes!`.
//!
//! `KILN_DOCKERFILE_WASM=<path>` skips the nested build and embeds that file instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("runner/ lives in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out_dir.join("dockerfile.wasm");

    println!("cargo:rerun-if-env-changed=KILN_DOCKERFILE_WASM");
    if let Some(prebuilt) = env::var_os("KILN_DOCKERFILE_WASM") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        std::fs::copy(&prebuilt, &dest)
            .unwrap_or_else(|e| panic!("KILN_DOCKERFILE_WASM={}: cannot copy: {e}", Path::new(&prebuilt).display()));
        return;
    }
    for input in ["frontends/dockerfile", "ir", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    ensure_wasm_target();
    let target_dir = find_target_dir(&out_dir).join("wasm-frontends");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--locked", "-p", "kiln-dockerfile", "--lib", "--features", "component"])
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
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the Dockerfile frontend: {e}"));
    if !status.success() {
        panic!(
            "building the Dockerfile frontend component failed ({status}).\n\
             If the wasm32-wasip2 target is missing, install it: rustup target add wasm32-wasip2"
        );
    }
    let built = target_dir.join("wasm32-wasip2/wasm-frontend/kiln_dockerfile.wasm");
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
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup (needed to build the Dockerfile frontend)");
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
