//! Pushing: an image of the store (a manifest, or an index and its manifests) to a
//! registry, blobs before the manifests that name them, skipping what the registry has.

use std::io::Read as _;

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryOperation;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::pull::human;
use super::{Registry, RegistryError, sources};
use crate::store::{self, Digest, Store, StoreError};

/// The size of the pieces a blob is uploaded in.
const CHUNK: usize = 4 << 20;

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    /// The full reference pushed to.
    pub reference: String,
    /// The top manifest's digest (what `NAME@DIGEST` pulls).
    pub digest: String,
    /// Blobs uploaded, and their bytes.
    pub uploaded: (usize, u64),
    /// Blobs the registry already had in that repository.
    pub present: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
}

impl Registry {
    /// Push the image `manifest` (a descriptor of the store's index) to `destination`.
    /// `report` hears one line per blob.
    ///
    /// # Errors
    ///
    /// The destination is not a valid reference; the registry cannot be reached or refuses
    /// the push; a blob of the store is missing or damaged (checked before it is sent).
    pub fn push(
        &self,
        store: &Store,
        manifest: &Descriptor,
        destination: &str,
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<Pushed, RegistryError> {
        let parsed = super::parse_reference(destination)?;
        let inner = self.inner()?;
        let credentials = self.credentials(&parsed)?;
        let explain = |e| self.explain(&parsed, &credentials, e);
        let mut pushed = Pushed { reference: parsed.whole(), ..Pushed::default() };
        inner.runtime.block_on(async {
            let client = &inner.client;
            client.store_auth_if_needed(parsed.resolve_registry(), &credentials.auth).await;
            if !matches!(credentials.auth, RegistryAuth::Anonymous) {
                client.auth(&parsed, &credentials.auth, RegistryOperation::Push).await.map_err(explain)?;
            }
            let top = store::descriptor_digest(manifest)?;
            let bytes = store.read_blob(&top)?;
            let mut manifests: Vec<(Descriptor, Vec<u8>)> = Vec::new();
            if manifest.media_type() == &MediaType::ImageIndex || is_docker_list(manifest.media_type()) {
                let index: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { path: store.blob_path(&top), detail: e.to_string() })?;
                let total = index.manifests().len();
                for child in index.manifests() {
                    let digest = store::descriptor_digest(child)?;
                    if !store.has_blob(&digest) {
                        let held = index.manifests().iter().filter(|c| {
                            store::descriptor_digest(c).is_ok_and(|d| store.has_blob(&d))
                        });
                        return Err(RegistryError::Unsupported {
                            reference: parsed.whole(),
                            detail: format!(
                                "the image is a multi-platform index of which kiln's store holds {} of {total} platforms (those pulled); push one platform's image by its ID (`kiln images`) instead",
                                held.count()
                            ),
                        });
                    }
                    manifests.push((child.clone(), store.read_blob(&digest)?));
                }
            }
            manifests.push((manifest.clone(), bytes));
            let repository = format!("{}/{}", parsed.registry(), parsed.repository());
            for (descriptor, bytes) in &manifests {
                let is_list =
                    descriptor.media_type() == &MediaType::ImageIndex || is_docker_list(descriptor.media_type());
                let mut sent = Vec::new();
                if !is_list {
                    let image: ImageManifest = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                        path: store.blob_path(&store::descriptor_digest(descriptor).unwrap_or_else(|_| top.clone())),
                        detail: e.to_string(),
                    })?;
                    let mut blobs = vec![image.config().clone()];
                    blobs.extend(image.layers().iter().cloned());
                    for blob in blobs {
                        let digest = store::descriptor_digest(&blob)?;
                        self.push_blob(store, &parsed, &repository, &digest, &mut pushed, report).await.map_err(
                            |e| match e {
                                Pushing::Client(e) => explain(e),
                                Pushing::Local(e) => e,
                            },
                        )?;
                        sent.push(digest);
                    }
                }
                let digest = store::descriptor_digest(descriptor)?;
                // Child manifests go by digest, the top one by the destination's tag.
                let target = if descriptor.digest() == manifest.digest() {
                    parsed.clone()
                } else {
                    parsed.clone_with_digest(digest.to_string())
                };
                let content_type =
                    descriptor.media_type().to_string().parse().map_err(|_| RegistryError::Unsupported {
                        reference: parsed.whole(),
                        detail: format!("media type {} cannot be sent", descriptor.media_type()),
                    })?;
                client.push_manifest_raw(&target, bytes.clone(), content_type).await.map_err(explain)?;
                sent.push(digest);
                sources::record(store, &sent, &repository);
            }
            pushed.digest = top.to_string();
            Ok::<(), RegistryError>(())
        })?;
        Ok(pushed)
    }

    /// One blob: nothing if the repository has it, a mount if another repository of the
    /// registry is known to, else an upload streamed from the store (re-hashed on the way,
    /// so a damaged blob is never sent under its name).
    async fn push_blob(
        &self,
        store: &Store,
        target: &Reference,
        repository: &str,
        digest: &Digest,
        pushed: &mut Pushed,
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<(), Pushing> {
        let client = &self.inner().map_err(Pushing::Local)?.client;
        if client.blob_exists(target, digest.as_str()).await.map_err(Pushing::Client)? {
            pushed.present += 1;
            report(&format!("{digest}: already in {repository}"));
            return Ok(());
        }
        let prefix = format!("{}/", target.registry());
        for source in sources::known(store, digest) {
            let Some(repo) = source.strip_prefix(&prefix) else { continue };
            if source == repository {
                continue;
            }
            let from = Reference::with_tag(target.registry().to_string(), repo.to_string(), "latest".into());
            if client.mount_blob(target, &from, digest.as_str()).await.is_ok()
                && client.blob_exists(target, digest.as_str()).await.unwrap_or(false)
            {
                pushed.mounted += 1;
                report(&format!("{digest}: mounted from {source}"));
                return Ok(());
            }
        }
        let path = store.blob_path(digest);
        let file = std::fs::File::open(&path)
            .map_err(|source| Pushing::Local(StoreError::Io { action: "open", path: path.clone(), source }.into()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, oci_client::errors::OciDistributionError>>(2);
        // Read on a blocking thread; the check against the digest ends the stream with an
        // error before the upload is committed if the blob on disk is damaged.
        let expected = digest.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut hashing = store::HashingWriter::new(std::io::sink());
            let mut file = file;
            let mut read = 0u64;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                };
                buf.truncate(n);
                let _ = std::io::Write::write_all(&mut hashing, &buf);
                read += n as u64;
                let last = read >= size;
                if last {
                    let (_, actual, _) = hashing.finish();
                    if actual != expected {
                        let _ = tx.blocking_send(Err(std::io::Error::other(format!(
                            "blob {expected} in the store has digest {actual}: the store is damaged"
                        ))
                        .into()));
                        return;
                    }
                    let _ = tx.blocking_send(Ok(buf.into()));
                    return;
                }
                if tx.blocking_send(Ok(buf.into())).is_err() {
                    return;
                }
            }
        });
        let stream = tokio_stream(rx);
        let result = client.push_blob_stream(target, stream, digest.as_str(), Some(size)).await;
        let _ = reader.await;
        result.map_err(Pushing::Client)?;
        pushed.uploaded.0 += 1;
        pushed.uploaded.1 += size;
        report(&format!("{digest}: pushed {}", human(size)));
        Ok(())
    }
}

/// A failure while pushing a blob: the registry's (explained by the caller) or the store's.
enum Pushing {
    Client(oci_client::errors::OciDistributionError),
    Local(RegistryError),
}

fn is_docker_list(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::Other(t) if t == "application/vnd.docker.distribution.manifest.list.v2+json")
}

/// A receiver as a stream.
fn tokio_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
