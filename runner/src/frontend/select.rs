//! Which frontend parses a build file, and where its component comes from.
//!
//! The choice, first match wins:
//! 1. `--frontend REF`;
//! 2. a `# syntax=REF` parser directive at the top of the build file (BuildKit's convention);
//! 3. the file's name: a file named `Earthfile` goes to the built-in Earthfile frontend;
//! 4. the built-in Dockerfile frontend.
//!
//! A REF is a built-in name (`dockerfile`, and Docker's `docker/dockerfile:1`-style references
//! map to it; `earthfile`), a path to a `.wasm` component, or an image reference: a Wasm OCI
//! artifact whose layer (`application/wasm`) is the component, found in kiln's store or pulled
//! from its registry (every blob checked against its digest on the way).
//!
//! This module only finds bytes; [`super::Frontend::load`] checks that they are a frontend.
//! It never runs a frontend, and reads no file but the component it is pointed at, and that
//! one only if it is a regular file, no further than [`MAX_FRONTEND_SIZE`].

use std::path::{Path, PathBuf};

use oci_spec::image::{ImageManifest, MediaType};

use crate::exporter::wasm as wasm_artifact;
use crate::limits::{MAX_FRONTEND_SIZE, human_size};
use crate::source::registry::Registry;
use crate::store::{self, Store};

/// The Earthfile frontend, compiled into kiln by `build.rs`.
pub static EARTHFILE_FRONTEND: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/earthfile.wasm"));

/// A frontend compiled into kiln.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// BuildKit's Dockerfile language.
    Dockerfile,
    /// Earthly's Earthfile language.
    Earthfile,
}

impl Builtin {
    /// The component's bytes.
    pub fn wasm(self) -> &'static [u8] {
        match self {
            Builtin::Dockerfile => super::DOCKERFILE_FRONTEND,
            Builtin::Earthfile => EARTHFILE_FRONTEND,
        }
    }

    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Builtin::Dockerfile => "the built-in Dockerfile frontend",
            Builtin::Earthfile => "the built-in Earthfile frontend",
        }
    }
}

/// Where a frontend comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendRef {
    /// Compiled into kiln.
    Builtin(Builtin),
    /// A component file.
    Path(PathBuf),
    /// A Wasm OCI artifact in the store or a registry.
    Image(String),
}

/// Read a REF as written in `--frontend` or `# syntax=`.
pub fn parse_ref(text: &str) -> FrontendRef {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let repository = lower.split(['@']).next().unwrap_or("");
    let repository = crate::image::split_tag(repository).0;
    let repository = repository.strip_prefix("docker.io/").unwrap_or(repository);
    match repository {
        "dockerfile" | "docker/dockerfile" | "docker/dockerfile-upstream" => {
            return FrontendRef::Builtin(Builtin::Dockerfile);
        }
        "earthfile" | "earthly" => return FrontendRef::Builtin(Builtin::Earthfile),
        _ => {}
    }
    let pathlike = text.starts_with("./") || text.starts_with("../") || text.starts_with('/');
    if pathlike || lower.ends_with(".wasm") {
        FrontendRef::Path(PathBuf::from(text))
    } else {
        FrontendRef::Image(text.to_string())
    }
}

/// The value of a `# syntax=` parser directive and its line (1-based). Directives are the
/// `# key=value` lines at the very top of the file; the first other line ends them, as in
/// BuildKit.
pub fn syntax_directive(contents: &[u8]) -> Option<(String, u32)> {
    let text = String::from_utf8_lossy(&contents[..contents.len().min(64 << 10)]);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    for (n, line) in text.lines().enumerate() {
        let rest = line.trim().strip_prefix('#')?;
        let (key, value) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return None;
        }
        if key.eq_ignore_ascii_case("syntax") {
            let value = value.trim();
            return (!value.is_empty()).then(|| (value.to_string(), n as u32 + 1));
        }
    }
    None
}

/// Why a frontend was chosen, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--frontend`.
    Flag,
    /// `# syntax=` on this line.
    Directive(u32),
    /// The file is named `Earthfile`.
    FileName,
    /// Nothing else said.
    Default,
}

/// Choose the frontend for a build file.
pub fn choose(flag: Option<&str>, contents: &[u8], file: &Path) -> (FrontendRef, Reason) {
    if let Some(flag) = flag {
        return (parse_ref(flag), Reason::Flag);
    }
    if let Some((value, line)) = syntax_directive(contents) {
        return (parse_ref(&value), Reason::Directive(line));
    }
    let name = file.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name == "earthfile" || name.ends_with(".earth") {
        return (FrontendRef::Builtin(Builtin::Earthfile), Reason::FileName);
    }
    (FrontendRef::Builtin(Builtin::Dockerfile), Reason::Default)
}

/// A frontend component found: its bytes and how messages name it.
pub struct Fetched {
    /// The component.
    pub wasm: std::borrow::Cow<'static, [u8]>,
    /// `the built-in Dockerfile frontend`, a path, or `frontend REF (sha256:...)`.
    pub origin: String,
}

/// Why a frontend's component could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// A component file could not be read.
    #[error("cannot read the frontend {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A component file is larger than any frontend kiln loads.
    #[error(
        "the frontend {} is larger than {}, the most kiln loads as a frontend component; is it the component you meant?",
        path.display(),
        human_size(MAX_FRONTEND_SIZE)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A frontend named by path could not be read (the path is the user's, relative to where
    /// kiln runs).
    #[error("{0} (a frontend path is relative to the current directory)")]
    Path(Box<SelectError>),
    /// A frontend image, but no store to find it in.
    #[error("the frontend {name} needs kiln's store, which cannot be opened")]
    NoStore {
        /// The image.
        name: String,
    },
    /// A frontend image the store lacks, and no registry to pull it from.
    #[error("the frontend {name} is not in kiln's store; pull it with `kiln frontend pull {name}`")]
    NotInStore {
        /// The image.
        name: String,
    },
    /// A frontend image whose manifest cannot be read.
    #[error("frontend {name}: its manifest cannot be read ({error}); is it an image index?")]
    Manifest {
        /// The image.
        name: String,
        /// Why.
        error: store::StoreError,
    },
    /// An image that is not a Wasm artifact.
    #[error(
        "frontend {name} is not a Wasm artifact: kiln expects one layer of type {} (push one with `kiln frontend push FILE.wasm {name}`)",
        wasm_artifact::LAYER_MEDIA_TYPE
    )]
    NotAnArtifact {
        /// The image.
        name: String,
    },
    /// The component layer cannot be read.
    #[error("frontend {name}: {error}")]
    Component {
        /// The image.
        name: String,
        /// Why.
        error: store::StoreError,
    },
    /// The bytes are not a component that can be packaged.
    #[error("{origin}: {error}")]
    Package {
        /// Where the bytes came from.
        origin: String,
        /// Why.
        error: wasm_artifact::WasmArtifactError,
    },
    /// A registry failed (pulling the frontend, or its reference is malformed).
    #[error(transparent)]
    Registry(#[from] crate::source::registry::RegistryError),
    /// kiln's store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Get a frontend's component. An image is looked up in the store, then pulled from its
/// registry when there is one.
///
/// # Errors
/// A message naming the reference and what to do: a missing file, an image that is not in
/// the store or the registry, an image that is not a Wasm artifact.
pub fn fetch(
    reference: &FrontendRef,
    store: Option<&Store>,
    registry: Option<&Registry>,
) -> Result<Fetched, SelectError> {
    match reference {
        FrontendRef::Builtin(b) => Ok(Fetched { wasm: b.wasm().into(), origin: b.describe().to_string() }),
        FrontendRef::Path(path) => {
            let wasm = read_component(path).map_err(|e| SelectError::Path(Box::new(e)))?;
            Ok(Fetched { wasm: wasm.into(), origin: path.display().to_string() })
        }
        FrontendRef::Image(name) => {
            let store = store.ok_or_else(|| SelectError::NoStore { name: name.clone() })?;
            let descriptor = match lookup(store, name)? {
                Some(d) => d,
                None => {
                    let registry = registry.ok_or_else(|| SelectError::NotInStore { name: name.clone() })?;
                    let quiet = |_: &str| {};
                    registry.pull(store, name, &[], &quiet)?.manifest
                }
            };
            let wasm = component_of(store, name, &descriptor)?;
            Ok(Fetched { wasm: wasm.into(), origin: format!("the frontend {name} ({})", descriptor.digest()) })
        }
    }
}

/// Read a frontend component file: a regular file (a FIFO or a device is refused at once,
/// never waited on or read) of at most [`MAX_FRONTEND_SIZE`] bytes, read no further.
///
/// # Errors
/// A message naming the file: it cannot be opened, is not a regular file, or is too large.
pub fn read_component(path: &Path) -> Result<Vec<u8>, SelectError> {
    let cannot = |error: std::io::Error| SelectError::Read { path: path.to_path_buf(), error };
    let mut file = store::open_regular(path, store::Symlinks::Follow).map_err(cannot)?;
    store::read_bounded(&mut file, MAX_FRONTEND_SIZE)
        .map_err(cannot)?
        .ok_or_else(|| SelectError::TooLarge { path: path.to_path_buf() })
}

/// The store's descriptor for a frontend image, if it has one (by tag, or by digest).
fn lookup(store: &Store, name: &str) -> Result<Option<oci_spec::image::Descriptor>, SelectError> {
    let full = crate::source::registry::parse_reference(name)?;
    for candidate in [full.whole(), crate::image::normalize_name(name)] {
        if let Some(d) = store.lookup(&candidate)? {
            return Ok(Some(d));
        }
    }
    if let Some(digest) = full.digest().and_then(|d| store::Digest::parse(d).ok())
        && store.has_blob(&digest)
    {
        let size = std::fs::metadata(store.blob_path(&digest)).map(|m| m.len()).unwrap_or(0);
        return Ok(Some(store::descriptor(MediaType::ImageManifest, &digest, size)));
    }
    Ok(None)
}

/// The component a frontend image carries: its `application/wasm` layer (or its only layer),
/// read from the store with its digest checked.
fn component_of(store: &Store, name: &str, descriptor: &oci_spec::image::Descriptor) -> Result<Vec<u8>, SelectError> {
    let digest = store::descriptor_digest(descriptor)?;
    let manifest: ImageManifest =
        store.read_json(&digest).map_err(|error| SelectError::Manifest { name: name.to_string(), error })?;
    let wasm_layers: Vec<_> =
        manifest.layers().iter().filter(|l| l.media_type().to_string() == wasm_artifact::LAYER_MEDIA_TYPE).collect();
    let layer = match (wasm_layers.as_slice(), manifest.layers().as_slice()) {
        ([one], _) => *one,
        ([], [only]) => only,
        _ => {
            return Err(SelectError::NotAnArtifact { name: name.to_string() });
        }
    };
    let digest = store::descriptor_digest(layer)?;
    store
        .read_blob_up_to(&digest, MAX_FRONTEND_SIZE, "frontend components")
        .map_err(|error| SelectError::Component { name: name.to_string(), error })
}

/// Put a frontend component into the store as a Wasm OCI artifact tagged `name`; returns the
/// manifest's descriptor.
///
/// # Errors
/// When the bytes are not a component, or the store fails.
pub fn add(store: &Store, wasm: Vec<u8>, origin: &str, name: &str) -> Result<oci_spec::image::Descriptor, SelectError> {
    let artifact = wasm_artifact::package_component(wasm, crate::image::rfc3339(0), origin)
        .map_err(|error| SelectError::Package { origin: origin.to_string(), error })?;
    for blob in &artifact.blobs {
        store.put_bytes(&blob.bytes)?;
    }
    store.tag(&[name.to_string()], &artifact.manifest)?;
    Ok(artifact.manifest)
}

/// The store's tags that name frontends (Wasm artifacts), with their manifest digests.
pub fn list(store: &Store) -> Result<Vec<(String, String)>, SelectError> {
    let index = store.index()?;
    let mut out = Vec::new();
    for d in index.manifests() {
        let (Some(name), Ok(digest)) = (store::ref_name(d), store::descriptor_digest(d)) else { continue };
        let Ok(manifest) = store.read_json::<ImageManifest>(&digest) else { continue };
        if manifest.config().media_type().to_string() == wasm_artifact::CONFIG_MEDIA_TYPE {
            out.push((name.to_string(), digest.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for builtin in
            ["dockerfile", "docker/dockerfile:1", "docker/dockerfile:1.7-labs", "docker.io/docker/dockerfile@sha256:ab"]
        {
            assert_eq!(parse_ref(builtin), FrontendRef::Builtin(Builtin::Dockerfile), "{builtin}");
        }
        assert_eq!(parse_ref("earthfile"), FrontendRef::Builtin(Builtin::Earthfile));
        assert_eq!(parse_ref("./frontends/toml.wasm"), FrontendRef::Path("./frontends/toml.wasm".into()));
        assert_eq!(parse_ref("x.wasm"), FrontendRef::Path("x.wasm".into()));
        assert_eq!(parse_ref("127.0.0.1:5000/fe/toml:1"), FrontendRef::Image("127.0.0.1:5000/fe/toml:1".into()));
    }

    #[test]
    fn directives_are_read_at_the_top_only() {
        assert_eq!(
            syntax_directive(b"# syntax=docker/dockerfile:1\nFROM x\n"),
            Some(("docker/dockerfile:1".into(), 1))
        );
        assert_eq!(syntax_directive(b"# escape=`\n#  Syntax = ./a.wasm \nFROM x\n"), Some(("./a.wasm".into(), 2)));
        assert_eq!(syntax_directive(b"FROM x\n# syntax=./a.wasm\n"), None);
        assert_eq!(syntax_directive(b"# a comment\n# syntax=./a.wasm\n"), None);
        assert_eq!(syntax_directive(b"\n# syntax=./a.wasm\n"), None);
    }

    #[test]
    fn the_flag_beats_the_directive_which_beats_the_name() {
        let file = Path::new("dir/Earthfile");
        assert_eq!(choose(Some("dockerfile"), b"# syntax=./x.wasm\n", file).1, Reason::Flag);
        assert_eq!(
            choose(None, b"# syntax=./x.wasm\n", file),
            (FrontendRef::Path("./x.wasm".into()), Reason::Directive(1))
        );
        assert_eq!(choose(None, b"VERSION 0.8\n", file), (FrontendRef::Builtin(Builtin::Earthfile), Reason::FileName));
        assert_eq!(choose(None, b"FROM x\n", Path::new("Dockerfile")).1, Reason::Default);
    }
}
