//! The instruction cache: what a build step produced, by a key that names everything the
//! step depends on, so an unchanged step is skipped on the next build.
//!
//! Entries live in the store's `cache/` directory as small JSON files, one per key, written
//! atomically (concurrent builds writing the same key write the same thing). An entry holds
//! the image config after the step and the layer the step added, which is an ordinary blob
//! of the store. Nothing here trusts an entry: a file that does not parse, or whose layer is
//! missing or does not match its digest, is a miss, and the step runs again and overwrites
//! it. This module never decides what a key contains; the builder does.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::ImageConfig;
use crate::store::{Digest, HashingWriter, Store};

/// A cache key: a sha256 over the parts that decide a step's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// The key of `parts` (each length-prefixed, so no two lists of parts collide).
    pub fn of(parts: &[&[u8]]) -> Key {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Key(hex::encode(hasher.finalize()))
    }

    /// A key derived from this one and more parts.
    pub fn then(&self, parts: &[&[u8]]) -> Key {
        let mut all: Vec<&[u8]> = vec![self.0.as_bytes()];
        all.extend_from_slice(parts);
        Key::of(&all)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A layer a cached step added.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedLayer {
    /// The compressed blob's digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: String,
}

/// What a step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The image config after the step (history included).
    pub config: ImageConfig,
    /// The layer it added, if any.
    pub layer: Option<CachedLayer>,
}

/// The cache of one store.
pub struct Cache<'a> {
    store: &'a Store,
    dir: PathBuf,
}

impl<'a> Cache<'a> {
    /// The cache in `store`.
    pub fn new(store: &'a Store) -> Self {
        Cache { store, dir: store.root().join("cache") }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.json", key.as_str()))
    }

    /// The entry for `key`, if there is a sound one: it parses, and its layer is in the store
    /// with the digest it claims. (Verifying costs one read of the compressed blob.)
    pub fn get(&self, key: &Key) -> Option<Entry> {
        let text = std::fs::read(self.path(key)).ok()?;
        let entry: Entry = match serde_json::from_slice(&text) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(key = key.as_str(), "ignoring a cache entry that does not parse: {e}");
                return None;
            }
        };
        if let Some(layer) = &entry.layer {
            let digest = Digest::parse(&layer.digest).ok()?;
            // Applying the layer checks its tar against this.
            Digest::parse(&layer.diff_id).ok()?;
            if !self.blob_matches(&digest, layer.size) {
                tracing::warn!(
                    key = key.as_str(),
                    "ignoring a cache entry whose layer {} is missing or damaged",
                    layer.digest
                );
                return None;
            }
        }
        Some(entry)
    }

    fn blob_matches(&self, digest: &Digest, size: u64) -> bool {
        let Ok(mut file) = self.store.open_blob(digest) else { return false };
        let mut hashing = HashingWriter::new(std::io::sink());
        if std::io::copy(&mut file, &mut hashing).is_err() {
            return false;
        }
        let (_, actual, written) = hashing.finish();
        written == size && actual == *digest
    }

    /// Remove the entries that can only miss (unreadable, or their layer is gone, as after
    /// `Store::prune`), except those written at or after `keep_since` (a build still running
    /// may be writing them). Returns how many went.
    pub fn prune(&self, keep_since: Option<std::time::SystemTime>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let young = keep_since.is_some_and(|since| {
                entry.metadata().and_then(|m| m.modified()).is_ok_and(|modified| modified >= since)
            });
            if young {
                continue;
            }
            let parsed: Option<Entry> =
                std::fs::read(entry.path()).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let useful = match parsed {
                None => false,
                // No layer (an empty COPY, say): nothing of it can be gone.
                Some(Entry { layer: None, .. }) => true,
                Some(Entry { layer: Some(layer), .. }) => {
                    Digest::parse(&layer.digest).is_ok_and(|d| self.store.has_blob(&d))
                }
            };
            if !useful && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Record what the step with `key` produced. A failure to write only costs a rebuild
    /// next time, so it is logged, not returned.
    pub fn put(&self, key: &Key, entry: &Entry) {
        let result = std::fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| serde_json::to_vec(entry).map_err(|e| e.to_string()))
            .and_then(|bytes| self.store.write_atomic(&self.path(key), &bytes).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(key = key.as_str(), "cannot write a cache entry: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(Key::of(&[b"ab", b"c"]), Key::of(&[b"a", b"bc"]));
        assert_eq!(Key::of(&[b"x"]).then(&[b"y"]), Key::of(&[b"x"]).then(&[b"y"]));
        assert_ne!(Key::of(&[b"x"]).then(&[b"y"]), Key::of(&[b"x"]).then(&[b"z"]));
    }

    #[test]
    fn a_damaged_entry_or_layer_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Cache::new(&store);
        let (digest, size) = store.put_bytes(b"layer bytes").unwrap();
        let key = Key::of(&[b"step"]);
        let entry = Entry {
            config: ImageConfig::default(),
            layer: Some(CachedLayer { digest: digest.as_str().into(), size, diff_id: Digest::of(b"tar").to_string() }),
        };
        cache.put(&key, &entry);
        assert!(cache.get(&key).is_some());
        // The blob changes under the entry: not used.
        std::fs::write(store.blob_path(&digest), b"other bytes").unwrap();
        assert!(cache.get(&key).is_none());
        // The entry itself is garbage: not used.
        std::fs::write(cache.path(&key), b"{not json").unwrap();
        assert!(cache.get(&key).is_none());
        assert!(cache.get(&Key::of(&[b"never written"])).is_none());
    }
}
