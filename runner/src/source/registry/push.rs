//! Pushing: an image of the store (a manifest, or an index and its manifests) to a
//! registry, blobs before the manifests that name them, skipping what the registry has.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::pull::human;
use super::session::{Access, Session};
use super::{Registry, RegistryError, sources};
use crate::store::{self, Digest, Store, StoreError};

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

impl Pushed {
    /// One line for people: the digest, and what was uploaded, already there or mounted.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} blob(s) uploaded, {} bytes; {} already there; {} mounted)",
            self.digest, self.uploaded.0, self.uploaded.1, self.present, self.mounted
        )
    }
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
        let session = Session::new(self, &parsed, &credentials, Access::Push)?;
        let mut pushed = Pushed { reference: parsed.whole(), ..Pushed::default() };
        inner.runtime.block_on(async {
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
                        push_blob(&session, store, &repository, &digest, &mut pushed, report).await?;
                        sent.push(digest);
                    }
                }
                let digest = store::descriptor_digest(descriptor)?;
                // Child manifests go by digest, the top one by the destination's tag (or
                // digest, when it names one).
                let name = if descriptor.digest() == manifest.digest() {
                    parsed.digest().or(parsed.tag()).unwrap_or("latest").to_string()
                } else {
                    digest.to_string()
                };
                session.put_manifest(&name, descriptor.media_type().as_ref(), bytes).await?;
                sent.push(digest);
                sources::record(store, &sent, &repository);
            }
            pushed.digest = top.to_string();
            Ok::<(), RegistryError>(())
        })?;
        Ok(pushed)
    }
}

/// One blob: nothing if the repository has it, a mount if another repository of the
/// registry is known to, else an upload streamed from the store (re-hashed on the way, so a
/// damaged blob is never sent under its name).
async fn push_blob(
    session: &Session<'_>,
    store: &Store,
    repository: &str,
    digest: &Digest,
    pushed: &mut Pushed,
    report: &(dyn Fn(&str) + Sync),
) -> Result<(), RegistryError> {
    if session.has_blob(digest).await? {
        pushed.present += 1;
        report(&format!("{digest}: already in {repository}"));
        return Ok(());
    }
    let (registry, _) = repository.split_once('/').unwrap_or((repository, ""));
    let prefix = format!("{registry}/");
    for source in sources::known(store, digest) {
        let Some(repo) = source.strip_prefix(&prefix) else { continue };
        if source == repository {
            continue;
        }
        if session.mount(digest, repo).await.unwrap_or(false) && session.has_blob(digest).await.unwrap_or(false) {
            pushed.mounted += 1;
            report(&format!("{digest}: mounted from {source}"));
            return Ok(());
        }
    }
    let path = store.blob_path(digest);
    let size = std::fs::metadata(&path)
        .map_err(|source| RegistryError::Store(StoreError::Io { action: "open", path: path.clone(), source }))?
        .len();
    session.upload(&path, size, digest).await?;
    pushed.uploaded.0 += 1;
    pushed.uploaded.1 += size;
    report(&format!("{digest}: pushed {}", human(size)));
    Ok(())
}

fn is_docker_list(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::Other(t) if t == "application/vnd.docker.distribution.manifest.list.v2+json")
}
