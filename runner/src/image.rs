//! Images as documents and names: the config (with Docker's extensions), references
//! (`name[:tag]`, `oci-layout://DIR[:TAG|@DIGEST]`), tag rules, and choosing a platform from
//! an index. Loading an image is [`crate::source::image`]'s.
//!
//! The config is kiln's own serde model rather than `oci-spec`'s, because Docker images
//! carry fields the OCI type drops (`Healthcheck`, `OnBuild`, `Shell`, `ArgsEscaped`), and a
//! base image's config must survive a round trip untouched: unknown fields are kept.
//!
//! This module touches no file: it only reads and writes values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `config` inside an image config: how a container runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub volumes: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub shell: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Docker's health check (durations in nanoseconds; 0 means "inherit").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layer tars, bottom first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".into(), diff_ids: Vec::new() }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image config document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "the fields are the image spec's own, documented there")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub history: Vec<History>,
    /// Fields kiln does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// `os/architecture[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// A value of `Env`.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.config.env.iter().find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
    }

    /// Set `key=value` in `Env`, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.config.env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
            Some(existing) => *existing = entry,
            None => self.config.env.push(entry),
        }
    }
}

/// RFC 3339 text for a Unix time.
pub fn rfc3339(seconds: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag in kiln's store (normalised to `name:tag`).
    Store(String),
    /// An OCI image layout directory, optionally with the tag or the digest to pick.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick.
        tag: Option<String>,
        /// The digest of the index entry to pick (`@sha256:...`).
        digest: Option<String>,
    },
}

/// Parse a reference: `oci-layout://DIR[:TAG|@DIGEST]`, or a store name (`name[:tag]`).
pub fn parse_ref(reference: &str) -> ImageRef {
    if let Some(rest) = reference.strip_prefix("oci-layout://") {
        if let Some((dir, digest)) = rest.rsplit_once('@').filter(|(dir, d)| !dir.is_empty() && d.contains(':')) {
            return ImageRef::Layout { dir: PathBuf::from(dir), tag: None, digest: Some(digest.to_string()) };
        }
        // The tag follows the last ':' unless that ':' is part of the path.
        return match split_tag(rest) {
            (dir, Some(tag)) if !dir.is_empty() => {
                ImageRef::Layout { dir: PathBuf::from(dir), tag: Some(tag.to_string()), digest: None }
            }
            _ => ImageRef::Layout { dir: PathBuf::from(rest), tag: None, digest: None },
        };
    }
    ImageRef::Store(normalize_name(reference))
}

/// `repository:tag` split at the tag's colon, if there is a tag: a colon followed by a `/`
/// belongs to a registry's port (`host:5000/app`), not to a tag.
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (name, None),
    }
}

/// `name` → `name:latest`; names with a tag or digest are kept.
pub fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') { name.to_string() } else { format!("{name}:latest") }
}

/// Check a `-t` name the way Docker does: lowercase path components of `[a-z0-9._-]`, an
/// optional `host[:port]/` prefix, an optional `:tag` of `[A-Za-z0-9_.-]{1,128}`.
///
/// # Errors
/// The name is not one Docker would take.
pub fn validate_tag(name: &str) -> Result<String, InvalidName> {
    let normalized = normalize_name(name);
    let (repo, tag) = split_tag(&normalized);
    let tag = tag.unwrap_or("latest");
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        parts.remove(0);
    }
    let repo_ok = !repo.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
    if tag_ok && repo_ok { Ok(normalized) } else { Err(InvalidName { name: name.to_string() }) }
}

/// A `-t` name Docker would not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {name:?}: use lowercase name[:tag], for example myapp:1.0")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
}

/// `os/arch[/variant]` of an index entry.
pub fn platform_of(d: &Descriptor) -> Option<String> {
    let p = d.platform().as_ref()?;
    let mut text = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        text.push('/');
        text.push_str(v);
    }
    Some(text)
}

/// Whether a media type names an index (OCI's, or Docker's manifest list).
pub fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(t) => t == "application/vnd.docker.distribution.manifest.list.v2+json",
        _ => false,
    }
}

/// Pick a manifest from an index: the first platform of `wanted` (`os/arch[/variant]`,
/// most wanted first; an `os/arch` matches any variant) that it offers, else its only entry.
pub fn pick_platform<'a>(index: &'a ImageIndex, wanted: &[String]) -> Option<&'a Descriptor> {
    let matches = |d: &Descriptor, w: &str| {
        platform_of(d).is_some_and(|p| p == w || (w.matches('/').count() == 1 && p.starts_with(&format!("{w}/"))))
    };
    wanted
        .iter()
        .find_map(|w| index.manifests().iter().find(|d| matches(d, w)))
        .or_else(|| (index.manifests().len() == 1).then(|| &index.manifests()[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_ref("alpine"), ImageRef::Store("alpine:latest".into()));
        assert_eq!(parse_ref("localhost:5000/a/b"), ImageRef::Store("localhost:5000/a/b:latest".into()));
        assert_eq!(
            parse_ref("oci-layout:///tmp/x:v1"),
            ImageRef::Layout { dir: "/tmp/x".into(), tag: Some("v1".into()), digest: None }
        );
        assert_eq!(parse_ref("oci-layout://./x"), ImageRef::Layout { dir: "./x".into(), tag: None, digest: None });
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_ref(&format!("oci-layout://./x@{digest}")),
            ImageRef::Layout { dir: "./x".into(), tag: None, digest: Some(digest) }
        );
        assert!(validate_tag("MyApp").is_err());
        assert!(validate_tag("my app").is_err());
        assert_eq!(validate_tag("registry.example:5000/team/app:1.0").unwrap(), "registry.example:5000/team/app:1.0");
        assert_eq!(validate_tag("app").unwrap(), "app:latest");
    }

    #[test]
    fn config_round_trips_unknown_fields() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":null,"Custom":1,"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"os.features":["x"]}"#;
        let mut c: ImageConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c.env("A"), Some("1"));
        c.set_env("A", "2");
        c.set_env("B", "3");
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["config"]["Custom"], 1);
        assert_eq!(back["os.features"][0], "x");
        assert_eq!(back["config"]["Env"], serde_json::json!(["A=2", "B=3"]));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
