//! `type=oci` and `type=wasm` (OCI layout directories) and `type=oci-archive` and
//! `type=docker` (the same layout as one tar file).
//!
//! A layout output adds the image to what is at the destination: a missing or empty
//! directory becomes a new layout; an existing layout keeps its blobs and its other
//! `index.json` entries, and an entry with the same `org.opencontainers.image.ref.name` as
//! one of the image's is replaced. The layout is valid at every moment: `oci-layout` and an
//! empty `index.json` come first, then blobs, then the new `index.json`, renamed into place.
//! Updates hold an exclusive lock on `oci-layout`, so two kiln processes adding to one
//! layout do not lose each other's entries. A failed or interrupted export removes what it
//! added, and nothing else.
//!
//! An archive is streamed from the store into an unnamed file next to the destination and
//! named only when complete, replacing the file that was there.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::Path;

use cap_std::fs::Dir;
use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use serde_json::Value;

use super::Problem;
use super::destination::{Found, inspect};
use super::newfile::{Cancellable, NewFile};
use crate::store::{self, Digest, HashingWriter, Store};

/// The largest `index.json` of an existing layout kiln reads: one entry is a few hundred
/// bytes, so this is far more than any layout holds.
pub const MAX_INDEX_JSON: u64 = 64 << 20;

/// Where a blob's bytes come from.
pub(super) enum Source<'a> {
    /// The store.
    Store(&'a Store),
    /// Memory.
    Bytes(&'a [u8]),
}

/// One blob of an image.
pub(super) struct Blob<'a> {
    pub digest: Digest,
    pub source: Source<'a>,
}

impl Blob<'_> {
    /// Open its bytes: (reader, length).
    fn open(&self) -> io::Result<(Box<dyn Read + '_>, u64)> {
        match &self.source {
            Source::Store(store) => {
                let file = store.open_blob(&self.digest).map_err(io::Error::other)?;
                let len = file.metadata()?.len();
                Ok((Box::new(file), len))
            }
            Source::Bytes(bytes) => Ok((Box::new(*bytes), bytes.len() as u64)),
        }
    }
}

/// A reader that hashes what passes through it.
struct Hashed<R> {
    inner: R,
    hash: HashingWriter<io::Sink>,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Check that what was read of `blob` has its digest: a store blob that changed on disk must
/// not reach an output under its old name.
fn verified(blob: &Blob<'_>, got: Digest) -> io::Result<()> {
    if got == blob.digest {
        Ok(())
    } else {
        Err(io::Error::other(crate::store::StoreError::Damaged {
            expected: blob.digest.to_string(),
            actual: got.to_string(),
        }))
    }
}

/// The JSON of an `index.json` with no entries.
fn empty_index() -> Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    })
}

/// The entry's `org.opencontainers.image.ref.name`.
fn ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(store::REF_NAME)?.as_str()
}

/// Add `entries` to `index`: an entry with the same ref name as a new one is replaced, an
/// unnamed entry for the same manifest is not repeated; every other entry and field is kept.
fn merge(index: &mut Value, entries: &[Descriptor]) -> Result<(), String> {
    let new: Vec<Value> =
        entries.iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let names: HashSet<&str> = new.iter().filter_map(ref_name).collect();
    let unnamed: HashSet<&Value> =
        new.iter().filter(|e| ref_name(e).is_none()).filter_map(|e| e.get("digest")).collect();
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or("it has no \"manifests\" list, so it is not an OCI image index")?;
    manifests.retain(|old| match ref_name(old) {
        Some(name) => !names.contains(name),
        None => !old.get("digest").is_some_and(|d| unnamed.contains(d)),
    });
    manifests.extend(new.iter().cloned());
    Ok(())
}

/// Serialize an index the way kiln writes every JSON file of a layout.
fn index_bytes(index: &Value) -> io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(index).map_err(io::Error::other)
}

/// Write a small file of a layout whole, replacing what had the name.
fn write_whole(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut new = NewFile::create(dir)?;
    new.file().write_all(bytes)?;
    new.file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    new.file().sync_all()?;
    new.replace(name)
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What a layout export added, removed again if it does not finish.
struct Added<'d> {
    dir: &'d Dir,
    dest: &'d Path,
    blobs: Vec<String>,
    /// Files and directories kiln made for a new layout, in the order they were made.
    made: Vec<(&'static str, bool)>,
    /// Whether kiln created the destination directory itself.
    made_dest: bool,
    /// The lock on `oci-layout`, held until what was added is removed again.
    lock: Option<std::fs::File>,
    done: bool,
}

impl Drop for Added<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(blob_dir) = self.dir.open_dir("blobs/sha256") {
            for hex in &self.blobs {
                let _ = blob_dir.remove_file(hex);
            }
        }
        for (name, is_dir) in self.made.iter().rev() {
            let _ = if *is_dir { self.dir.remove_dir(name) } else { self.dir.remove_file(name) };
        }
        if self.made_dest {
            let _ = std::fs::remove_dir(self.dest);
        }
    }
}

/// Add an image (its `blobs`, listed in `index.json` as `entries`) to the OCI layout at
/// `dest`, creating the layout if `dest` is missing or empty.
pub(super) fn write_layout(dest: &Path, blobs: &[Blob<'_>], entries: &[Descriptor]) -> Result<(), Problem> {
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Problem::Io { action, path, source }
    };
    let found = inspect(dest).map_err(io_err("look at", dest))?;
    match found {
        Found::OtherDir => return Err(Problem::NotALayout),
        Found::NotDir => return Err(Problem::NotADirectory),
        Found::Missing => std::fs::create_dir_all(dest).map_err(io_err("create", dest))?,
        Found::EmptyDir | Found::Layout => {}
    }
    let dir = Dir::open_ambient_dir(dest, cap_std::ambient_authority()).map_err(io_err("open", dest))?;
    let mut added = Added {
        dir: &dir,
        dest,
        blobs: Vec::new(),
        made: Vec::new(),
        made_dest: found == Found::Missing,
        lock: None,
        done: false,
    };
    let interrupted = || Problem::Interrupted { left: "the destination is as it was" };

    if found != Found::Layout {
        // A layout from the first moment: a kill from here on leaves a valid, if empty, one.
        let empty = index_bytes(&empty_index()).map_err(io_err("write", &dest.join("index.json")))?;
        for (name, bytes) in [("oci-layout", OCI_LAYOUT.to_vec()), ("index.json", empty)] {
            let mut new = NewFile::create(&dir).map_err(io_err("create a file in", dest))?;
            new.file().write_all(&bytes).map_err(io_err("write", &dest.join(name)))?;
            new.file()
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(io_err("write", &dest.join(name)))?;
            if new.add(name).map_err(io_err("write", &dest.join(name)))? {
                added.made.push((name, false));
            }
        }
    }
    let lock = dir.open("oci-layout").map_err(io_err("open", &dest.join("oci-layout")))?.into_std();
    lock.lock().map_err(io_err("lock", &dest.join("oci-layout")))?;
    added.lock = Some(lock);

    for name in ["blobs", "blobs/sha256"] {
        match dir.create_dir(name) {
            Ok(()) => added.made.push((name, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Problem::Io { action: "create", path: dest.join(name), source }),
        }
    }
    let blob_dir = dir.open_dir("blobs/sha256").map_err(io_err("open", &dest.join("blobs/sha256")))?;
    for blob in blobs {
        if crate::cancel::requested() {
            return Err(interrupted());
        }
        let hex = blob.digest.hex();
        let path = dest.join("blobs/sha256").join(hex);
        // A blob is named by its digest: one that is there is kept as it is.
        if blob_dir.symlink_metadata(hex).is_ok() {
            continue;
        }
        let copied = (|| {
            let mut new = NewFile::create(&blob_dir)?;
            let (reader, _) = blob.open()?;
            let mut out = HashingWriter::new(io::BufWriter::new(new.file()));
            io::copy(&mut Cancellable(reader), &mut out)?;
            let (buffered, digest, _) = out.finish();
            buffered.into_inner().map_err(io::IntoInnerError::into_error)?;
            verified(blob, digest)?;
            new.file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            new.file().sync_all()?;
            new.add(hex)
        })();
        match copied {
            Ok(true) => added.blobs.push(hex.to_string()),
            Ok(false) => {}
            Err(_) if crate::cancel::requested() => return Err(interrupted()),
            Err(source) => return Err(Problem::Io { action: "write", path, source }),
        }
    }

    let index_path = dest.join("index.json");
    let mut index = match dir.open("index.json") {
        Ok(file) => {
            let mut text = Vec::new();
            file.into_std().take(MAX_INDEX_JSON + 1).read_to_end(&mut text).map_err(io_err("read", &index_path))?;
            if text.len() as u64 > MAX_INDEX_JSON {
                return Err(Problem::BadIndex {
                    path: index_path,
                    detail: format!("it is larger than {} MiB", MAX_INDEX_JSON >> 20),
                });
            }
            serde_json::from_slice(&text)
                .map_err(|e| Problem::BadIndex { path: index_path.clone(), detail: e.to_string() })?
        }
        // A layout left without one by a killed writer: as if empty.
        Err(e) if e.kind() == io::ErrorKind::NotFound => empty_index(),
        Err(source) => return Err(Problem::Io { action: "read", path: index_path, source }),
    };
    merge(&mut index, entries).map_err(|detail| Problem::BadIndex { path: index_path.clone(), detail })?;
    if crate::cancel::requested() {
        return Err(interrupted());
    }
    let bytes = index_bytes(&index).map_err(io_err("write", &index_path))?;
    write_whole(&dir, "index.json", &bytes).map_err(io_err("write", &index_path))?;
    added.done = true;
    Ok(())
}

/// One entry of an archive, by path.
enum Entry<'a> {
    Dir,
    Bytes(Vec<u8>),
    Blob(&'a Blob<'a>),
}

/// Write an image as a layout in one tar file at `dest`, replacing the file there.
/// `docker_manifest` adds the `manifest.json` that `docker load` reads. The tar is
/// deterministic: sorted, root-owned, mtime 0.
pub(super) fn write_archive(
    dest: &Path,
    blobs: &[Blob<'_>],
    entries: &[Descriptor],
    docker_manifest: Option<Value>,
) -> Result<(), Problem> {
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Problem::Io { action, path, source }
    };
    match inspect(dest).map_err(io_err("look at", dest))? {
        Found::Missing | Found::NotDir => {}
        _ => return Err(Problem::IsADirectory),
    }
    let name = dest.file_name().and_then(|n| n.to_str()).ok_or(Problem::IsADirectory)?;
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let dir = Dir::open_ambient_dir(parent, cap_std::ambient_authority()).map_err(io_err("open", parent))?;

    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(entries.to_vec())
        .build()
        .map_err(|e| Problem::Internal(e.to_string()))?;
    let mut files: BTreeMap<String, Entry<'_>> = BTreeMap::new();
    files.insert("blobs".into(), Entry::Dir);
    files.insert("blobs/sha256".into(), Entry::Dir);
    for blob in blobs {
        files.insert(format!("blobs/sha256/{}", blob.digest.hex()), Entry::Blob(blob));
    }
    let index = serde_json::to_vec_pretty(&index).map_err(|e| Problem::Internal(e.to_string()))?;
    files.insert("index.json".into(), Entry::Bytes(index));
    if let Some(doc) = docker_manifest {
        let doc = serde_json::to_vec(&doc).map_err(|e| Problem::Internal(e.to_string()))?;
        files.insert("manifest.json".into(), Entry::Bytes(doc));
    }
    files.insert("oci-layout".into(), Entry::Bytes(OCI_LAYOUT.to_vec()));

    let written = (|| {
        let mut new = NewFile::create(&dir)?;
        {
            let mut tar = tar::Builder::new(io::BufWriter::new(new.file()));
            for (path, entry) in &files {
                if crate::cancel::requested() {
                    return Err(io::Error::other(super::newfile::Cancelled));
                }
                let mut h = tar::Header::new_ustar();
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                match entry {
                    Entry::Dir => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_size(0);
                        tar.append_data(&mut h, format!("{path}/"), io::empty())?;
                    }
                    Entry::Bytes(bytes) => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(0o644);
                        h.set_size(bytes.len() as u64);
                        tar.append_data(&mut h, path, &bytes[..])?;
                    }
                    Entry::Blob(blob) => {
                        let (reader, len) = blob.open()?;
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(0o644);
                        h.set_size(len);
                        let mut hashed = Hashed { inner: Cancellable(reader), hash: HashingWriter::new(io::sink()) };
                        tar.append_data(&mut h, path, &mut hashed)?;
                        verified(blob, hashed.hash.finish().1)?;
                    }
                }
            }
            tar.into_inner()?.flush()?;
        }
        new.file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        new.file().sync_all()?;
        new.replace(name)
    })();
    written.map_err(|source| {
        if crate::cancel::requested() {
            Problem::Interrupted { left: "the destination is as it was" }
        } else {
            Problem::Io { action: "write", path: dest.to_path_buf(), source }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: char, name: Option<&str>) -> Descriptor {
        let mut d = store::descriptor(
            MediaType::ImageManifest,
            &Digest::parse(&format!("sha256:{}", digest.to_string().repeat(64))).unwrap(),
            1,
        );
        if let Some(name) = name {
            d.set_annotations(Some([(store::REF_NAME.to_string(), name.to_string())].into()));
        }
        d
    }

    #[test]
    fn entries_are_added_and_same_names_replaced() {
        let mut index = empty_index();
        index["annotations"] = serde_json::json!({"kept": "yes"});
        merge(&mut index, &[entry('a', Some("1")), entry('b', None)]).unwrap();
        merge(&mut index, &[entry('c', Some("1")), entry('d', Some("2")), entry('b', None)]).unwrap();
        merge(&mut index, &[entry('e', None)]).unwrap();
        let got: Vec<(Option<&str>, char)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (ref_name(e), e["digest"].as_str().unwrap().chars().last().unwrap()))
            .collect();
        assert_eq!(got, [(Some("1"), 'c'), (Some("2"), 'd'), (None, 'b'), (None, 'e')]);
        assert_eq!(index["annotations"]["kept"], "yes", "other fields are kept");
        assert_eq!(empty_index(), serde_json::to_value(store::empty_index()).unwrap(), "the store's empty index");
        let err = merge(&mut serde_json::json!({"schemaVersion": 2}), &[]).unwrap_err();
        assert!(err.contains("not an OCI image index"), "{err}");
    }
}
