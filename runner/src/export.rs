//! Outputs of a build besides store tags: an OCI layout directory, an OCI archive, a
//! `docker load` archive, the final filesystem as plain files, and the image's WebAssembly
//! program as a Wasm OCI artifact (its content is [`crate::wasm_artifact`]'s).
//!
//! Each output is written beside its destination under a temporary name and renamed into
//! place at the end, so a failed or interrupted build never leaves a half-written output
//! where the user asked for one. The `local` output writes through a cap-std capability on
//! the destination, so an image's symlinks can never redirect a write outside it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, Permissions, PermissionsExt};
use oci_spec::image::{Descriptor, ImageIndexBuilder, ImageManifest, MediaType};

use crate::image::ImageConfig;
use crate::rootfs::{self, Kind, Node, Tree};
use crate::store::{self, Digest, Store};
use crate::wasm_artifact;

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

/// Parse `-o` the way `docker build` does: `type=...,dest=...`, or a bare path for `local`.
pub fn parse_output(text: &str) -> Result<Output, String> {
    if !text.contains('=') {
        return Ok(Output::Local(PathBuf::from(text)));
    }
    let mut kind = None;
    let mut dest = None;
    let mut names = Vec::new();
    let mut push = false;
    for field in text.split(',') {
        let (key, value) =
            field.split_once('=').ok_or_else(|| format!("invalid output field {field:?} in {text:?}"))?;
        match key.trim() {
            "type" => kind = Some(value.trim().to_string()),
            "dest" => dest = Some(PathBuf::from(value.trim())),
            "name" => names.push(value.trim().to_string()),
            "push" => {
                push = match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("push={other:?} in {text:?}: use push=true or push=false")),
                }
            }
            other => {
                return Err(format!(
                    "unknown output option {other:?} in {text:?} (kiln knows type=, dest=, name= and push=)"
                ));
            }
        }
    }
    match kind.as_deref() {
        Some("registry") => return Ok(Output::Registry(names)),
        Some("image") if push => return Ok(Output::Registry(names)),
        Some("image") => {
            return Err(format!("output {text:?}: images are always stored; add push=true to push them"));
        }
        _ => {}
    }
    let dest = dest.ok_or_else(|| format!("output {text:?} needs dest=PATH"))?;
    match kind.as_deref() {
        Some("oci") => Ok(Output::Oci(dest)),
        Some("oci-archive") => Ok(Output::OciArchive(dest)),
        Some("docker") => Ok(Output::Docker(dest)),
        Some("local") | None => Ok(Output::Local(dest)),
        Some("wasm") => Ok(Output::Wasm(dest)),
        Some(other) => {
            Err(format!("unknown output type {other:?}: use oci, oci-archive, docker, local, wasm or registry"))
        }
    }
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("output {dest}: {detail}")]
pub struct ExportError {
    /// The destination.
    pub dest: String,
    /// What went wrong.
    pub detail: String,
}

fn fail(dest: &Path) -> impl Fn(String) -> ExportError + '_ {
    move |detail| ExportError { dest: dest.display().to_string(), detail }
}

/// The blobs an image consists of: manifest, config, layers.
fn image_blobs(store: &Store, manifest: &Descriptor) -> Result<(ImageManifest, Vec<Digest>), String> {
    let digest = store::descriptor_digest(manifest).map_err(|e| e.to_string())?;
    let parsed: ImageManifest = store.manifest(&digest).map_err(|e| e.to_string())?;
    let mut blobs = vec![digest, store::descriptor_digest(parsed.config()).map_err(|e| e.to_string())?];
    for layer in parsed.layers() {
        blobs.push(store::descriptor_digest(layer).map_err(|e| e.to_string())?);
    }
    Ok((parsed, blobs))
}

/// The tag part of `name:tag`.
fn tag_of(name: &str) -> &str {
    name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or("latest", |(_, t)| t)
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

/// Write an OCI layout for the image into `dir` (which must exist and be empty).
fn write_layout(store: &Store, manifest: &Descriptor, names: &[String], dir: &Path) -> Result<Vec<Digest>, String> {
    let (_, blobs) = image_blobs(store, manifest)?;
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(|e| format!("create {}: {e}", blob_dir.display()))?;
    for digest in &blobs {
        let to = blob_dir.join(digest.hex());
        let mut file = fs::File::create(&to).map_err(|e| format!("create {}: {e}", to.display()))?;
        store.copy_blob_verified(digest, &mut file).map_err(|e| e.to_string())?;
    }
    write_index(dir, manifest, names)?;
    Ok(blobs)
}

/// Write `oci-layout` and an `index.json` listing `manifest` under each of `names` into `dir`.
fn write_index(dir: &Path, manifest: &Descriptor, names: &[String]) -> Result<(), String> {
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| e.to_string())?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries(manifest, names))
        .build()
        .map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| e.to_string())?;
    fs::write(dir.join("index.json"), bytes).map_err(|e| e.to_string())
}

/// Write the image's program as a Wasm OCI artifact: an OCI layout at `dest`, atomically.
fn write_wasm(store: &Store, manifest: &Descriptor, names: &[String], tree: &Tree, dest: &Path) -> Result<(), String> {
    let (parsed, _) = image_blobs(store, manifest)?;
    let config_digest = store::descriptor_digest(parsed.config()).map_err(|e| e.to_string())?;
    let config: ImageConfig = store.read_json(&config_digest).map_err(|e| e.to_string())?;
    let artifact = wasm_artifact::package(&config, tree).map_err(|e| e.to_string())?;
    let staging = sibling_tmp(dest)?;
    let blob_dir = staging.path().join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(|e| format!("create {}: {e}", blob_dir.display()))?;
    for blob in &artifact.blobs {
        fs::write(blob_dir.join(blob.digest.hex()), &blob.bytes)
            .map_err(|e| format!("write blob {}: {e}", blob.digest))?;
    }
    write_index(staging.path(), &artifact.manifest, names)?;
    replace_dir(staging, dest)
}

/// The directory `dest` is in.
fn parent_of(dest: &Path) -> &Path {
    dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A temporary sibling of `dest`, on the same filesystem so it can be renamed over it.
fn sibling_tmp(dest: &Path) -> Result<tempfile::TempDir, String> {
    let parent = parent_of(dest);
    fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".kiln-output-")
        .tempdir_in(parent)
        .map_err(|e| format!("create a file in {}: {e}", parent.display()))
}

/// Move a finished directory over `dest`, replacing what was there.
fn replace_dir(finished: tempfile::TempDir, dest: &Path) -> Result<(), String> {
    let finished = finished.keep();
    if dest.exists() {
        let old =
            tempfile::Builder::new().prefix(".kiln-old-").tempdir_in(parent_of(dest)).map_err(|e| e.to_string())?;
        let old_path = old.path().join("old");
        fs::rename(dest, &old_path).map_err(|e| format!("move the old {} aside: {e}", dest.display()))?;
        fs::rename(&finished, dest).map_err(|e| format!("rename into {}: {e}", dest.display()))?;
        drop(old);
    } else {
        fs::rename(&finished, dest).map_err(|e| format!("rename into {}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Tar a directory deterministically (sorted, root-owned, mtime 0) into `file`.
fn tar_dir(dir: &Path, file: &mut fs::File) -> Result<(), String> {
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    let mut paths = Vec::new();
    collect(dir, Path::new(""), &mut paths).map_err(|e| e.to_string())?;
    paths.sort();
    for rel in paths {
        let full = dir.join(&rel);
        let meta = fs::metadata(&full).map_err(|e| e.to_string())?;
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            builder.append_data(&mut h, format!("{}/", rel.display()), io::empty()).map_err(|e| e.to_string())?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(meta.len());
            let f = fs::File::open(&full).map_err(|e| e.to_string())?;
            builder.append_data(&mut h, &rel, f).map_err(|e| e.to_string())?;
        }
    }
    let mut out = builder.into_inner().map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        out.push(path.clone());
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

/// Write a layout as an archive file at `dest`, atomically. `docker_manifest` adds the
/// `manifest.json` that `docker load` reads.
fn write_archive(
    store: &Store,
    manifest: &Descriptor,
    names: &[String],
    dest: &Path,
    docker: bool,
) -> Result<(), String> {
    let staging = sibling_tmp(dest)?;
    let layout = staging.path().join("layout");
    fs::create_dir(&layout).map_err(|e| e.to_string())?;
    write_layout(store, manifest, names, &layout)?;
    if docker {
        let (parsed, _) = image_blobs(store, manifest)?;
        let config = store::descriptor_digest(parsed.config()).map_err(|e| e.to_string())?;
        let layers: Vec<String> = parsed
            .layers()
            .iter()
            .map(|l| store::descriptor_digest(l).map(|d| format!("blobs/sha256/{}", d.hex())))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let doc = serde_json::json!([{
            "Config": format!("blobs/sha256/{}", config.hex()),
            "RepoTags": names,
            "Layers": layers,
        }]);
        fs::write(layout.join("manifest.json"), serde_json::to_vec(&doc).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let tmp_file = staging.path().join("archive.tar");
    let mut file = fs::File::create(&tmp_file).map_err(|e| e.to_string())?;
    tar_dir(&layout, &mut file)?;
    file.sync_all().map_err(|e| e.to_string())?;
    fs::rename(&tmp_file, dest).map_err(|e| format!("rename into {}: {e}", dest.display()))?;
    Ok(())
}

/// What [`write_local`] left out or changed.
#[derive(Debug, Default)]
struct LocalNotes {
    /// Device nodes and FIFOs not written.
    skipped: usize,
    /// Files written without their setuid or setgid bit.
    unprivileged: usize,
}

/// Write the final filesystem into `dest` as plain files. Owners cannot be set without
/// privileges and are left as the current user; devices and FIFOs are skipped, and
/// setuid and setgid bits are dropped (both counted): an image must not hand whoever runs
/// kiln a program that runs as them (or as root, when that is who runs kiln).
fn write_local(tree: &Tree, dest: &Path) -> Result<LocalNotes, String> {
    let staging = sibling_tmp(dest)?;
    let dir = Dir::open_ambient_dir(staging.path(), cap_std::ambient_authority()).map_err(|e| e.to_string())?;
    let mut skipped = 0;
    let mut unprivileged = 0;
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let mut failure: Option<String> = None;
    tree.walk(&[], &mut |path, node: &Node| {
        if failure.is_some() || path.is_empty() {
            return;
        }
        let rel = PathBuf::from(rootfs::join(path));
        let result = match &node.kind {
            Kind::Dir(_) => {
                dirs.push((rel.clone(), node.meta.mode));
                dir.create_dir(&rel)
            }
            Kind::File(data) => (|| {
                let mut out = dir.create(&rel)?.into_std();
                crate::layer::copy_sparse(&mut data.content.open()?, &mut out)?;
                if node.meta.mode & 0o6000 != 0 {
                    unprivileged += 1;
                }
                dir.set_permissions(&rel, Permissions::from_mode(node.meta.mode & 0o1777))
            })(),
            Kind::Symlink(target) => dir.symlink_contents(target, &rel),
            _ => {
                skipped += 1;
                Ok(())
            }
        };
        if let Err(e) = result {
            failure = Some(format!("write /{}: {e}", rel.display()));
        }
    });
    if let Some(f) = failure {
        return Err(f);
    }
    // Directory modes last, deepest first, so a read-only directory did not block its children.
    for (rel, mode) in dirs.iter().rev() {
        dir.set_permissions(rel, Permissions::from_mode(mode & 0o7777)).map_err(|e| e.to_string())?;
    }
    replace_dir(staging, dest)?;
    Ok(LocalNotes { skipped, unprivileged })
}

/// Write one output. Returns a note for the user, if any.
pub fn write(
    store: &Store,
    manifest: &Descriptor,
    names: &[String],
    tree: &Tree,
    output: &Output,
) -> Result<Option<String>, ExportError> {
    match output {
        Output::Oci(dest) => {
            let staging = sibling_tmp(dest).map_err(fail(dest))?;
            write_layout(store, manifest, names, staging.path()).map_err(fail(dest))?;
            replace_dir(staging, dest).map_err(fail(dest))?;
            Ok(None)
        }
        Output::OciArchive(dest) => {
            write_archive(store, manifest, names, dest, false).map(|_| None).map_err(fail(dest))
        }
        Output::Docker(dest) => write_archive(store, manifest, names, dest, true).map(|_| None).map_err(fail(dest)),
        Output::Registry(_) => Err(ExportError {
            dest: "registry".into(),
            detail: "internal: registry outputs are pushed by the caller".into(),
        }),
        Output::Wasm(dest) => write_wasm(store, manifest, names, tree, dest).map(|_| None).map_err(fail(dest)),
        Output::Local(dest) => {
            let notes = write_local(tree, dest).map_err(fail(dest))?;
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
        assert!(no_dest.contains("needs dest=PATH"), "{no_dest}");
        assert!(parse_output("type=nope,dest=x").unwrap_err().contains("wasm"));
        assert_eq!(tag_of("a/b:1.0"), "1.0");
        assert_eq!(tag_of("localhost:5000/a"), "latest");
    }
}
