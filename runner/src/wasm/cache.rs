//! On-disk cache of compiled components, so a warm run only deserializes.
//!
//! An entry is `<dir>/<sha256 of the wasm>-<engine hash>.cwasm`: the engine hash covers
//! wasmtime's version and every compilation setting, so an upgrade or a config change misses
//! instead of loading incompatible code. Entries are written to a temporary file and renamed
//! into place, so a reader never sees half an entry; a corrupt or stale entry is recompiled
//! and replaced.
//!
//! The cache directory belongs to the user running kiln (it lives in kiln's store, or where
//! KILN_COMPILE_CACHE says, checked by `store::compiled_dir` as the store is). Loading
//! an entry runs the machine code in it, so kiln trusts that directory as much as its own
//! binary; it never loads compiled code from anywhere else.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache entry for a component with this digest under this engine.
pub fn entry_path(dir: &Path, engine: &Engine, wasm_digest: &str) -> PathBuf {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{wasm_digest}-{:016x}.cwasm", hasher.finish()))
}

/// A [`Hasher`] over sha256, for what wasmtime only exposes as `impl Hash`: unlike the
/// standard library's `DefaultHasher`, its output is specified and does not change with the
/// Rust release kiln is built with.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
    }
}

/// Load the component from the cache, or compile it (and store it when `dir` is given).
///
/// # Errors
/// The bytes do not compile as a component.
pub fn load_or_compile(engine: &Engine, wasm: &[u8], digest: &str, dir: Option<&Path>) -> wasmtime::Result<Component> {
    load_or_compile_with(engine, digest, dir, || Ok(wasm.to_vec()))
}

/// Like [`load_or_compile`], producing the component's bytes only when the cache misses
/// (adapting a WASI preview 1 module to a component is worth skipping).
///
/// # Errors
/// `produce` fails, or its bytes do not compile as a component.
pub fn load_or_compile_with(
    engine: &Engine,
    digest: &str,
    dir: Option<&Path>,
    produce: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, produce()?);
    };
    let path = entry_path(dir, engine, digest);
    if path.is_file() {
        match deserialize(engine, &path) {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cached component unusable; recompiling")
            }
        }
    }
    let component = Component::new(engine, produce()?)?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::debug!(path = %path.display(), error = %e, "cannot cache the compiled component");
    }
    Ok(component)
}

#[allow(unsafe_code, reason = "loading precompiled code is unsafe by API; see the SAFETY note")]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of this same engine
    // configuration (the name carries the engine's compatibility hash), written atomically
    // into kiln's own store by this user; wasmtime additionally checks the header and the
    // compatibility metadata and refuses a mismatch.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(dir: &Path, path: &Path, component: &Component) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
