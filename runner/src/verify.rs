//! `kiln build --verify-reproducible`: the pieces that check a build against itself.
//!
//! A check builds the target twice, each time into a scratch store of its own that starts
//! with the main store's images but no cached steps, and compares the two results: equal
//! manifests, or a report of what differs, layer by layer and file by file. This module
//! only reads the main store (its blobs are hard-linked, never changed) and never tags.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageManifest};

use crate::store::{HashingWriter, Store, StoreError, descriptor_digest};

/// A store at `dir` holding what `main` holds (blobs hard-linked, or copied where links are
/// impossible; the same tags) but no cached build steps. Compiled programs are shared, as
/// they do not change what a build produces.
pub fn scratch_store(main: &Store, dir: &Path) -> Result<Store, StoreError> {
    let store = Store::open(dir)?;
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { action, path, source }
    };
    let from = main.root().join("blobs/sha256");
    let to = dir.join("blobs/sha256");
    for entry in std::fs::read_dir(&from).map_err(io("read", &from))?.flatten() {
        let target = to.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).map_err(io("copy into", &target))?;
        }
    }
    let index = std::fs::read(main.root().join("index.json")).map_err(io("read", &main.root().join("index.json")))?;
    store.write_atomic(&dir.join("index.json"), &index)?;
    #[cfg(unix)]
    {
        let compiled = main.root().join("compiled");
        if compiled.is_dir() {
            let _ = std::os::unix::fs::symlink(&compiled, dir.join("compiled"));
        }
    }
    Ok(store)
}

/// What differs between two built images, as lines for the user; empty when they are the
/// same image.
pub fn differences(a: &Store, a_manifest: &Descriptor, b: &Store, b_manifest: &Descriptor) -> Vec<String> {
    let mut out = Vec::new();
    if a_manifest.digest() == b_manifest.digest() {
        return out;
    }
    out.push(format!("manifests differ: {} vs {}", a_manifest.digest(), b_manifest.digest()));
    let read =
        |store: &Store, d: &Descriptor| -> Option<ImageManifest> { store.read_json(&descriptor_digest(d).ok()?).ok() };
    let (Some(ma), Some(mb)) = (read(a, a_manifest), read(b, b_manifest)) else {
        out.push("  (a manifest cannot be read)".into());
        return out;
    };
    if ma.config().digest() != mb.config().digest() {
        let config = |store: &Store, m: &ImageManifest| -> serde_json::Value {
            descriptor_digest(m.config()).ok().and_then(|d| store.read_json(&d).ok()).unwrap_or(serde_json::Value::Null)
        };
        let (ca, cb) = (config(a, &ma), config(b, &mb));
        out.push(format!("config differs: {} vs {}", ma.config().digest(), mb.config().digest()));
        if let (Some(oa), Some(ob)) = (ca.as_object(), cb.as_object()) {
            for key in oa.keys().chain(ob.keys().filter(|k| !oa.contains_key(*k))) {
                if oa.get(key) != ob.get(key) {
                    out.push(format!(
                        "  config field {key}: {} vs {}",
                        short(oa.get(key).map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into())),
                        short(ob.get(key).map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into()))
                    ));
                }
            }
        }
    }
    let (la, lb) = (ma.layers(), mb.layers());
    if la.len() != lb.len() {
        out.push(format!("layer count differs: {} vs {}", la.len(), lb.len()));
    }
    for (i, (x, y)) in la.iter().zip(lb.iter()).enumerate() {
        if x.digest() == y.digest() {
            continue;
        }
        out.push(format!("layer {} differs: {} vs {}", i + 1, x.digest(), y.digest()));
        let (ea, eb) = (entries(a, x), entries(b, y));
        for (path, sa) in &ea {
            match eb.get(path) {
                None => out.push(format!("  /{path}: only in the first build")),
                Some(sb) if sb != sa => out.push(format!("  /{path}: {sa} vs {sb}")),
                Some(_) => {}
            }
        }
        for path in eb.keys().filter(|p| !ea.contains_key(*p)) {
            out.push(format!("  /{path}: only in the second build"));
        }
    }
    out
}

fn short(text: String) -> String {
    if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
}

/// Every entry of a layer: its path, and a summary of its type, metadata and content.
fn entries(store: &Store, layer: &Descriptor) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(digest) = descriptor_digest(layer) else { return out };
    let Ok(blob) = store.open_blob(&digest) else { return out };
    let Ok(stream) = crate::layer::decompress(blob) else { return out };
    let mut archive = tar::Archive::new(stream);
    let Ok(list) = archive.entries() else { return out };
    for entry in list.flatten() {
        let mut entry = entry;
        let header = entry.header().clone();
        let path = entry.path().map(|p| p.to_string_lossy().trim_end_matches('/').to_string()).unwrap_or_default();
        let mut hashing = HashingWriter::new(std::io::sink());
        let _ = std::io::copy(&mut entry, &mut hashing);
        let (_, content, _) = hashing.finish();
        let link = header.link_name().ok().flatten().map(|l| format!(" -> {}", l.display())).unwrap_or_default();
        out.insert(
            path,
            format!(
                "{:?} mode {:o} owner {}:{} mtime {} size {} sha256 {}{link}",
                header.entry_type(),
                header.mode().unwrap_or(0),
                header.uid().unwrap_or(0),
                header.gid().unwrap_or(0),
                header.mtime().unwrap_or(0),
                header.size().unwrap_or(0),
                &content.hex()[..16],
            ),
        );
    }
    out
}
