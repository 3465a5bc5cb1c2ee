//! Pulling: a reference's manifest (picked from an index by platform), its config and
//! layers, each verified against its digest as it streams into the store, then a tag.

use futures_util::{StreamExt as _, TryStreamExt as _};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde_json::Value;

use super::session::{Access, Session};
use super::{Registry, RegistryError, sources};
use crate::image::{self, pick_platform as pick, platform_of};
use crate::limits::MAX_JSON_DOCUMENT;
use crate::store::{self, Digest, Store, StoreError};

/// Manifest media types kiln reads.
const ACCEPTED: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How many blobs download at once.
const PARALLEL_DOWNLOADS: usize = 3;

/// An image now in the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The tag it got (`docker.io/library/alpine:latest`).
    pub name: String,
    /// What the tag names: the index the registry sent, or the manifest when it sent one.
    /// An index is kept whole, so another platform can be pulled into it later; the store
    /// then holds only the platforms pulled.
    pub tagged: Descriptor,
    /// The platform's manifest.
    pub manifest: Descriptor,
    /// The platform picked from an index, if the reference named one.
    pub platform: Option<String>,
    /// Blobs downloaded, and their bytes (blobs already in the store are not).
    pub downloaded: (usize, u64),
}

/// The media type a manifest document declares, else what its shape says.
pub(super) fn declared_media_type(bytes: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = doc.get("mediaType").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    if doc.get("manifests").is_some() {
        Some(MediaType::ImageIndex.to_string())
    } else if doc.get("config").is_some() {
        Some(MediaType::ImageManifest.to_string())
    } else {
        None
    }
}

fn is_index(media_type: &str) -> bool {
    image::is_index(&media_type_of(media_type))
}

pub(super) fn media_type_of(text: &str) -> MediaType {
    match text {
        "application/vnd.oci.image.manifest.v1+json" => MediaType::ImageManifest,
        "application/vnd.oci.image.index.v1+json" => MediaType::ImageIndex,
        other => MediaType::Other(other.to_string()),
    }
}

impl Registry {
    /// Pull `reference` into the store and tag it with its full name. From an index, the
    /// first of `platforms` it offers is taken. `report` hears one line per event.
    ///
    /// # Errors
    ///
    /// The reference is invalid; the registry cannot be reached, refuses access, or has no
    /// such image or platform; content does not match its digest; the store fails. Nothing
    /// is tagged then, and no blob that failed its check is kept.
    pub fn pull(
        &self,
        store: &Store,
        reference: &str,
        platforms: &[String],
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<Pulled, RegistryError> {
        let parsed = super::parse_reference(reference)?;
        let inner = self.inner()?;
        let credentials = self.credentials(&parsed)?;
        let session = Session::new(self, &parsed, &credentials, Access::Pull)?;
        let whole = parsed.whole();
        let mismatch = |what: String, expected: &str, actual: &Digest| RegistryError::DigestMismatch {
            reference: whole.clone(),
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
        };
        let unsupported = |detail: String| RegistryError::Unsupported { reference: whole.clone(), detail };

        inner.runtime.block_on(async {
            if let Some(named) = parsed.digest()
                && Digest::parse(named).is_err()
            {
                return Err(unsupported(format!("it names its manifest by {named}; kiln checks sha256 digests only")));
            }
            let first = parsed.digest().or(parsed.tag()).unwrap_or("latest");
            let (mut bytes, mut digest) = session.manifest(first, "the manifest", &ACCEPTED).await?;
            let mut picked_platform = None;
            let mut index_doc: Option<(Vec<u8>, Digest, String)> = None;
            for _ in 0..2 {
                let media = declared_media_type(&bytes).ok_or_else(|| {
                    unsupported(
                        "the registry sent a manifest kiln cannot read (no mediaType, config or manifests)".into(),
                    )
                })?;
                if !is_index(&media) {
                    break;
                }
                let index: ImageIndex =
                    serde_json::from_slice(&bytes).map_err(|e| unsupported(format!("its index is malformed: {e}")))?;
                let entry = pick(&index, platforms).ok_or_else(|| {
                    let offered: Vec<String> = index.manifests().iter().filter_map(platform_of).collect();
                    unsupported(format!(
                        "it has no image for {} (it offers {}); choose one with --platform",
                        platforms.join(" or "),
                        offered.join(", ")
                    ))
                })?;
                picked_platform = platform_of(entry);
                let child = Digest::parse(entry.digest().as_ref()).map_err(|_| {
                    unsupported(format!("its index names a manifest by {}, which kiln cannot check", entry.digest()))
                })?;
                let (child_bytes, child_digest) =
                    session.manifest(child.as_str(), "the platform's manifest", &ACCEPTED).await?;
                index_doc = Some((bytes, digest, media.clone()));
                (bytes, digest) = (child_bytes, child_digest);
            }
            let media = declared_media_type(&bytes).unwrap_or_default();
            if is_index(&media) {
                return Err(unsupported("its index names another index; kiln follows one level".into()));
            }
            let version = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["schemaVersion"].as_i64());
            if version != Some(2) {
                return Err(unsupported(
                    "it uses Docker's schema 1 manifest, which kiln does not read; re-push it with a current tool"
                        .into(),
                ));
            }
            let manifest: ImageManifest =
                serde_json::from_slice(&bytes).map_err(|e| unsupported(format!("its manifest is malformed: {e}")))?;
            // The config is a JSON document too, read whole later: bounded like a manifest.
            if manifest.config().size() > MAX_JSON_DOCUMENT {
                return Err(unsupported(format!(
                    "its config {} is {} bytes, more than {}, the most kiln reads of a JSON document (the image is broken or hostile)",
                    manifest.config().digest(),
                    manifest.config().size(),
                    crate::limits::human_size(MAX_JSON_DOCUMENT)
                )));
            }

            // Config and layers, verified as they stream into the store.
            let mut wanted: Vec<&Descriptor> = vec![manifest.config()];
            wanted.extend(manifest.layers().iter());
            let mut missing = Vec::new();
            for d in &wanted {
                let digest = Digest::parse(d.digest().as_ref())
                    .map_err(|_| unsupported(format!("it names a blob by {}, which kiln cannot check", d.digest())))?;
                if !store.has_blob(&digest) {
                    missing.push(((*d).clone(), digest));
                }
            }
            // The first failure stops the rest: their writers are dropped, and with them
            // what they had written.
            let downloaded = futures_util::stream::iter(missing.iter())
                .map(|(d, digest)| {
                    let session = &session;
                    let mismatch = &mismatch;
                    async move {
                        let mut writer = store.blob_writer()?;
                        session.blob(d, digest, &mut writer, &store.tmp_dir()).await?;
                        let (_, size) = writer.commit_checked(Some(digest)).map_err(|e| match e {
                            StoreError::DigestMismatch { actual, .. } => mismatch(
                                format!("blob {digest}"),
                                digest.as_str(),
                                &Digest::parse(&actual).unwrap_or_else(|_| Digest::of(b"")),
                            ),
                            other => other.into(),
                        })?;
                        report(&format!("{digest}: downloaded {}", human(size)));
                        Ok::<u64, RegistryError>(size)
                    }
                })
                .buffer_unordered(PARALLEL_DOWNLOADS)
                .try_fold((0usize, 0u64), |(n, total), size| async move { Ok((n + 1, total + size)) })
                .await?;

            // The manifest last: only a complete image is ever tagged.
            store.import_blob(&digest, &mut &bytes[..])?;
            let descriptor = store::descriptor(media_type_of(&media), &digest, bytes.len() as u64);
            let mut all: Vec<Digest> = missing.into_iter().map(|(_, d)| d).collect();
            all.push(digest);
            let tagged = match index_doc {
                Some((index_bytes, index_digest, index_media)) => {
                    store.import_blob(&index_digest, &mut &index_bytes[..])?;
                    all.push(index_digest.clone());
                    store::descriptor(media_type_of(&index_media), &index_digest, index_bytes.len() as u64)
                }
                None => descriptor.clone(),
            };
            let name = whole.clone();
            store.tag(std::slice::from_ref(&name), &tagged)?;
            sources::record(store, &all, &format!("{}/{}", parsed.registry(), parsed.repository()));
            Ok(Pulled { name, tagged, manifest: descriptor, platform: picked_platform, downloaded })
        })
    }
}

/// A byte count for people.
pub(super) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_picked_in_order_of_preference() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1,"platform":{"os":"wasip1","architecture":"wasm"}}]}"#,
        )
        .unwrap();
        let got = |w: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            pick(&index, &w).map(|d| d.digest().to_string()[7..8].to_string())
        };
        assert_eq!(got(&["wasip2/wasm", "wasip1/wasm", "linux/amd64"]).as_deref(), Some("3"));
        assert_eq!(got(&["linux/amd64"]).as_deref(), Some("2"));
        assert_eq!(got(&["linux/arm64"]).as_deref(), Some("1"), "a variant is matched by os/arch");
        assert_eq!(got(&["linux/riscv64"]), None);
    }

    #[test]
    fn media_types_are_read_from_the_document() {
        const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
        assert_eq!(
            declared_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(declared_media_type(format!(r#"{{"mediaType":"{DOCKER_LIST}"}}"#).as_bytes()).unwrap(), DOCKER_LIST);
        assert!(is_index(DOCKER_LIST));
        assert_eq!(human(1536), "1.5 KiB");
    }
}
