//! Outputs of a build besides store tags: an OCI layout directory, an OCI archive, a
//! `docker load` archive, the final filesystem as plain files, and the image's WebAssembly
//! program as a Wasm OCI artifact (its content is [`crate::exporter::wasm`]'s).
//!
//! An output never deletes what was at its destination: `local` writes into the directory
//! and replaces only the paths the image has (`local.rs`); `oci` and `wasm` add the image to an
//! existing OCI layout and refuse any other non-empty directory (`layout.rs`); archives
//! replace the file at the destination, and only once complete. No output goes into kiln's
//! store or over the part of the build context the build reads (`destination.rs`): the
//! caller checks with [`check`] before building, and [`write`] checks again.
//!
//! Files appear whole or not at all, and a failed or interrupted (Ctrl-C) export leaves
//! no temporary file behind (`newfile.rs`).

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageManifest};

use crate::image::ImageConfig;
use crate::rootfs::Tree;
use crate::store::{self, Digest, Store, StoreError};

mod destination;
mod layout;
mod local;
mod newfile;
pub mod wasm;

pub use destination::{Protected, Refusal, Relation};
pub use layout::MAX_INDEX_JSON;

/// One `-o` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=oci,dest=DIR`: an OCI image layout directory.
    Oci(PathBuf),
    /// `type=oci-archive,dest=FILE`: the same layout as a tar file.
    OciArchive(PathBuf),
    /// `type=docker,dest=FILE`: an archive `docker load` accepts.
    Docker(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem as files.
    Local(PathBuf),
    /// `type=wasm,dest=DIR`: the image's WebAssembly program as a one-component Wasm OCI
    /// artifact, in an OCI layout directory.
    Wasm(PathBuf),
    /// `type=registry[,name=REF]` (or `type=image,push=true`): push to a registry, under
    /// `name` (comma-free; repeat the output for several) or else every `-t` name.
    Registry(Vec<String>),
}

/// A `-o` value kiln cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    /// A field without `=`.
    #[error("invalid output field {field:?} in {text:?}")]
    Field {
        /// The field.
        field: String,
        /// The whole value.
        text: String,
    },
    /// `push=` neither true nor false.
    #[error("push={value:?} in {text:?}: use push=true or push=false")]
    Push {
        /// The value given.
        value: String,
        /// The whole value.
        text: String,
    },
    /// An option kiln does not know.
    #[error("unknown output option {option:?} in {text:?} (kiln knows type=, dest=, name= and push=)")]
    Option {
        /// The option.
        option: String,
        /// The whole value.
        text: String,
    },
    /// `type=image` without `push=true`.
    #[error("output {text:?}: images are always stored; add push=true to push them")]
    ImageWithoutPush {
        /// The whole value.
        text: String,
    },
    /// No `dest=` for an output that writes files.
    #[error("output {text:?} needs dest=PATH")]
    NoDest {
        /// The whole value.
        text: String,
    },
    /// A type kiln does not know.
    #[error("unknown output type {kind:?}: use oci, oci-archive, docker, local, wasm or registry")]
    Type {
        /// The type given.
        kind: String,
    },
}

/// Parse `-o` the way `docker build` does: `type=...,dest=...`, or a bare path for `local`.
///
/// # Errors
/// The value is not one kiln can read.
pub fn parse_output(text: &str) -> Result<Output, OutputSpecError> {
    if !text.contains('=') {
        return Ok(Output::Local(PathBuf::from(text)));
    }
    let whole = || text.to_string();
    let mut kind = None;
    let mut dest = None;
    let mut names = Vec::new();
    let mut push = false;
    for field in text.split(',') {
        let (key, value) =
            field.split_once('=').ok_or_else(|| OutputSpecError::Field { field: field.to_string(), text: whole() })?;
        match key.trim() {
            "type" => kind = Some(value.trim().to_string()),
            "dest" => dest = Some(PathBuf::from(value.trim())),
            "name" => names.push(value.trim().to_string()),
            "push" => {
                push = match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => return Err(OutputSpecError::Push { value: other.to_string(), text: whole() }),
                }
            }
            other => return Err(OutputSpecError::Option { option: other.to_string(), text: whole() }),
        }
    }
    match kind.as_deref() {
        Some("registry") => return Ok(Output::Registry(names)),
        Some("image") if push => return Ok(Output::Registry(names)),
        Some("image") => return Err(OutputSpecError::ImageWithoutPush { text: whole() }),
        _ => {}
    }
    let dest = dest.ok_or_else(|| OutputSpecError::NoDest { text: whole() })?;
    match kind.as_deref() {
        Some("oci") => Ok(Output::Oci(dest)),
        Some("oci-archive") => Ok(Output::OciArchive(dest)),
        Some("docker") => Ok(Output::Docker(dest)),
        Some("local") | None => Ok(Output::Local(dest)),
        Some("wasm") => Ok(Output::Wasm(dest)),
        Some(other) => Err(OutputSpecError::Type { kind: other.to_string() }),
    }
}

impl Output {
    /// How progress names it (`OCI layout DIR`, `registry NAME`).
    pub fn describe(&self) -> String {
        match self {
            Output::Oci(p) => format!("OCI layout {}", p.display()),
            Output::OciArchive(p) => format!("OCI archive {}", p.display()),
            Output::Docker(p) => format!("docker archive {}", p.display()),
            Output::Local(p) => format!("directory {}", p.display()),
            Output::Wasm(p) => format!("Wasm OCI artifact {}", p.display()),
            Output::Registry(names) => format!("registry {}", names.join(", ")),
        }
    }
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("output {dest}: {problem}")]
pub struct ExportError {
    /// The destination, as given.
    pub dest: String,
    /// What went wrong.
    pub problem: Problem,
}

/// What went wrong with an output.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The destination is kiln's store or the build context (see [`Refusal`]).
    #[error("{0}")]
    Refused(Refusal),
    /// A directory output's destination is a file.
    #[error("refused: it is not a directory; give a directory (it is created if missing)")]
    NotADirectory,
    /// An archive's destination is a directory.
    #[error("refused: it is a directory; give the path of the archive file to write, such as DIR/image.tar")]
    IsADirectory,
    /// A layout output's destination holds files but no OCI layout.
    #[error(
        "refused: the directory is not empty and is not an OCI layout (it has no oci-layout file), and kiln never \
         deletes what is there; give a new or empty directory, or an OCI layout to add the image to"
    )]
    NotALayout,
    /// The destination's `index.json` cannot be read as an OCI image index.
    #[error("{}: {detail}; repair or remove it, or give another destination", path.display())]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A `local` output's destination has a directory where the image has something else, or
    /// the other way round.
    #[error(
        "refused: {} is a {here} and the image has a {image} there{}; kiln replaces files and links but never \
         deletes a directory or writes through a link to make room: move it away, or give another destination",
        path.display(),
        if *more > 0 { format!(" (and {more} more paths like it)") } else { String::new() }
    )]
    Conflict {
        /// The path in the destination.
        path: PathBuf,
        /// What it is there.
        here: &'static str,
        /// What it is in the image.
        image: &'static str,
        /// How many other paths conflict.
        more: usize,
    },
    /// The build was asked to stop (Ctrl-C) while the output was written.
    #[error("interrupted; {left}")]
    Interrupted {
        /// What the destination holds now.
        left: &'static str,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What kiln was doing.
        action: &'static str,
        /// Which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed, or holds a damaged blob of the image.
    #[error(transparent)]
    Store(StoreError),
    /// The image cannot be exported this way (a Wasm artifact of an image without a program).
    #[error(transparent)]
    Wasm(wasm::WasmArtifactError),
    /// A bug in kiln, not in the output.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExportError {
    /// Whether the export stopped because the build was interrupted.
    pub fn interrupted(&self) -> bool {
        matches!(self.problem, Problem::Interrupted { .. })
    }
}

/// The destination of a file or directory output.
fn destination(output: &Output) -> Option<&Path> {
    match output {
        Output::Oci(p) | Output::OciArchive(p) | Output::Docker(p) | Output::Local(p) | Output::Wasm(p) => Some(p),
        Output::Registry(_) => None,
    }
}

/// Whether `output` may be written where it says, as far as can be told before building: not
/// into the store or the part of the build context the build reads, not a directory output
/// over a file or an archive over a directory, not a layout over a non-empty directory that
/// is not one.
///
/// # Errors
///
/// Why not, naming the destination.
pub fn check(output: &Output, protected: &Protected) -> Result<(), ExportError> {
    let Some(dest) = destination(output) else { return Ok(()) };
    let fail = |problem| ExportError { dest: dest.display().to_string(), problem };
    let io = |action, source| fail(Problem::Io { action, path: dest.to_path_buf(), source });
    protected.check(dest).map_err(|e| io("resolve", e))?.map_err(|r| fail(Problem::Refused(r)))?;
    let found = destination::inspect(dest).map_err(|e| io("look at", e))?;
    use destination::Found;
    let problem = match (output, found) {
        (Output::OciArchive(_) | Output::Docker(_), Found::EmptyDir | Found::Layout | Found::OtherDir) => {
            Problem::IsADirectory
        }
        (Output::OciArchive(_) | Output::Docker(_), _) => return Ok(()),
        (_, Found::NotDir) => Problem::NotADirectory,
        (Output::Oci(_) | Output::Wasm(_), Found::OtherDir) => Problem::NotALayout,
        _ => return Ok(()),
    };
    Err(fail(problem))
}

/// The blobs an image consists of: manifest, config, layers.
fn image_blobs(store: &Store, manifest: &Descriptor) -> Result<(ImageManifest, Vec<Digest>), StoreError> {
    let digest = store::descriptor_digest(manifest)?;
    let parsed: ImageManifest = store.manifest(&digest)?;
    let mut blobs = vec![digest, store::descriptor_digest(parsed.config())?];
    for layer in parsed.layers() {
        blobs.push(store::descriptor_digest(layer)?);
    }
    blobs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    blobs.dedup();
    Ok((parsed, blobs))
}

/// The tag part of `name:tag`.
fn tag_of(name: &str) -> &str {
    crate::image::split_tag(name).1.unwrap_or("latest")
}

/// The descriptors `index.json` lists: one per name, or one unnamed.
fn index_entries(manifest: &Descriptor, names: &[String]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![manifest.clone()];
    }
    names
        .iter()
        .map(|name| {
            let mut d = manifest.clone();
            let mut annotations = std::collections::HashMap::new();
            annotations.insert(store::REF_NAME.to_string(), tag_of(name).to_string());
            annotations.insert("io.containerd.image.name".to_string(), name.clone());
            d.set_annotations(Some(annotations));
            d
        })
        .collect()
}

/// The `manifest.json` that `docker load` reads.
fn docker_manifest(parsed: &ImageManifest, names: &[String]) -> Result<serde_json::Value, StoreError> {
    let config = store::descriptor_digest(parsed.config())?;
    let layers: Vec<String> = parsed
        .layers()
        .iter()
        .map(|l| store::descriptor_digest(l).map(|d| format!("blobs/sha256/{}", d.hex())))
        .collect::<Result<_, _>>()?;
    Ok(serde_json::json!([{
        "Config": format!("blobs/sha256/{}", config.hex()),
        "RepoTags": names,
        "Layers": layers,
    }]))
}

/// Write one output, after checking its destination again (see [`check`]). Returns a note
/// for the user, if any.
///
/// # Errors
///
/// The destination is refused, or cannot be written, or the build was interrupted: the
/// error says what the destination holds then.
pub fn write(
    store: &Store,
    manifest: &Descriptor,
    names: &[String],
    tree: &Tree,
    output: &Output,
    protected: &Protected,
) -> Result<Option<String>, ExportError> {
    let internal = || ExportError {
        dest: "registry".into(),
        problem: Problem::Internal("registry outputs are pushed by the caller".into()),
    };
    let Some(dest) = destination(output) else { return Err(internal()) };
    check(output, protected)?;
    let fail = |problem| ExportError { dest: dest.display().to_string(), problem };
    let damaged = |e: StoreError| fail(Problem::Store(e));
    let from_store = |digests: Vec<Digest>| -> Vec<layout::Blob<'_>> {
        digests.into_iter().map(|digest| layout::Blob { digest, source: layout::Source::Store(store) }).collect()
    };
    match output {
        Output::Oci(_) => {
            let (_, blobs) = image_blobs(store, manifest).map_err(damaged)?;
            layout::write_layout(dest, &from_store(blobs), &index_entries(manifest, names)).map_err(fail)?;
            Ok(None)
        }
        Output::OciArchive(_) | Output::Docker(_) => {
            let (parsed, blobs) = image_blobs(store, manifest).map_err(damaged)?;
            let docker = match output {
                Output::Docker(_) => Some(docker_manifest(&parsed, names).map_err(damaged)?),
                _ => None,
            };
            layout::write_archive(dest, &from_store(blobs), &index_entries(manifest, names), docker).map_err(fail)?;
            Ok(None)
        }
        Output::Wasm(_) => {
            let (parsed, _) = image_blobs(store, manifest).map_err(damaged)?;
            let config_digest = store::descriptor_digest(parsed.config()).map_err(damaged)?;
            let config: ImageConfig = store.read_json(&config_digest).map_err(damaged)?;
            let artifact = wasm::package(&config, tree).map_err(|e| fail(Problem::Wasm(e)))?;
            let blobs: Vec<layout::Blob<'_>> = artifact
                .blobs
                .iter()
                .map(|b| layout::Blob { digest: b.digest.clone(), source: layout::Source::Bytes(&b.bytes) })
                .collect();
            layout::write_layout(dest, &blobs, &index_entries(&artifact.manifest, names)).map_err(fail)?;
            Ok(None)
        }
        Output::Local(_) => {
            let notes = local::write(tree, dest).map_err(fail)?;
            let mut said = Vec::new();
            if notes.skipped > 0 {
                said.push(format!("skipped {} device or FIFO entries (they need privileges)", notes.skipped));
            }
            if notes.unprivileged > 0 {
                said.push(format!(
                    "wrote {} setuid or setgid files without those bits (the image keeps them)",
                    notes.unprivileged
                ));
            }
            Ok((!said.is_empty()).then(|| format!("{}: {}", dest.display(), said.join("; "))))
        }
        Output::Registry(_) => Err(internal()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_flags() {
        assert_eq!(parse_output("type=oci,dest=out").unwrap(), Output::Oci("out".into()));
        assert_eq!(parse_output("type=docker,dest=a.tar").unwrap(), Output::Docker("a.tar".into()));
        assert_eq!(parse_output("dir").unwrap(), Output::Local("dir".into()));
        assert_eq!(parse_output("type=registry").unwrap(), Output::Registry(vec![]));
        assert_eq!(parse_output("type=image,name=r/a:1,push=true").unwrap(), Output::Registry(vec!["r/a:1".into()]));
        assert!(parse_output("type=image,name=r/a:1").is_err());
        assert!(parse_output("type=nope,dest=x").is_err());
        assert!(parse_output("type=oci").is_err());
        assert_eq!(parse_output("type=wasm,dest=out").unwrap(), Output::Wasm("out".into()));
        let no_dest = parse_output("type=wasm").unwrap_err();
        assert!(no_dest.to_string().contains("needs dest=PATH"), "{no_dest}");
        assert!(parse_output("type=nope,dest=x").unwrap_err().to_string().contains("wasm"));
        assert_eq!(tag_of("a/b:1.0"), "1.0");
        assert_eq!(tag_of("localhost:5000/a"), "latest");
    }
}
