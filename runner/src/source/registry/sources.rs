//! Which registry repositories are known to hold a blob: recorded when a blob is pulled from
//! or pushed to one, so a later push to another repository of the same registry can mount
//! it there instead of uploading it again (the distribution protocol's cross-repository
//! mount).
//!
//! Kept in the store as `sources/<hex>`, one `registry/repository` a line. The records are
//! hints, never trusted: a mount the registry refuses falls back to an upload, and losing a
//! record to a concurrent writer only costs an upload.

use std::path::PathBuf;

use crate::store::{Digest, Store};

/// At most this many repositories are remembered per blob.
const MAX_SOURCES: usize = 16;

fn path(store: &Store, digest: &Digest) -> PathBuf {
    store.root().join("sources").join(digest.hex())
}

/// The repositories (`registry/repository`) known to hold `digest`.
pub fn known(store: &Store, digest: &Digest) -> Vec<String> {
    std::fs::read_to_string(path(store, digest))
        .map(|text| text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Remember that `repository` (`registry/repository`) holds each of `digests`. Failing to
/// remember is not an error: the record only saves uploads.
pub fn record(store: &Store, digests: &[Digest], repository: &str) {
    let dir = store.root().join("sources");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for digest in digests {
        let mut repos = known(store, digest);
        if repos.iter().any(|r| r == repository) {
            continue;
        }
        repos.insert(0, repository.to_string());
        repos.truncate(MAX_SOURCES);
        let mut text = repos.join("\n");
        text.push('\n');
        if let Err(e) = store.write_atomic(&path(store, digest), text.as_bytes()) {
            tracing::debug!("cannot record where {digest} came from: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_repository_once_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::of(b"x");
        assert!(known(&store, &d).is_empty());
        record(&store, std::slice::from_ref(&d), "r:5000/a");
        record(&store, std::slice::from_ref(&d), "r:5000/b");
        record(&store, std::slice::from_ref(&d), "r:5000/a");
        assert_eq!(known(&store, &d), ["r:5000/b", "r:5000/a"]);
    }
}
