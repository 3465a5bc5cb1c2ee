//! The local image store: an OCI image layout on disk, plus kiln's own bookkeeping.
//!
//! ```text
//! <root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json          one manifest descriptor per tag (org.opencontainers.image.ref.name)
//! <root>/blobs/sha256/<hex>  content-addressed blobs shared by every image
//! <root>/tmp/                half-written files; anything here may be deleted
//! <root>/compiled/           compiled WebAssembly (see `wasm::cache`), unless the caller keeps
//!                            it elsewhere ([`prepare_compile_cache`])
//! <root>/cache/              build-step results (see `cache`)
//! <root>/sources/<hex>       registry repositories known to hold a blob (see `registry::sources`)
//! <root>/lock                flock(2) target serialising index updates
//! ```
//!
//! This module owns every write under the root. It guarantees that a reader never sees a
//! half-written file: blobs and `index.json` are written to `tmp/`, fsynced and renamed into
//! place, and a blob is only renamed once its digest was checked. A process killed at any
//! moment leaves at worst stray files in `tmp/` and unreferenced blobs; a file being written
//! in `tmp/` is locked by its writer, so the next kiln to open the store removes what a killed
//! one left. Updates to `index.json` hold an exclusive lock, so concurrent builds never lose
//! each other's tags.
//!
//! A store another user could write to is refused: whoever can change its blobs, index or
//! cache decides what kiln builds (ssh refuses keys that others can write for the same reason).
//!
//! It never follows a digest it did not validate into a path: digests are parsed first. A blob
//! is read only if it is a regular file (a symlink, FIFO or device in `blobs/` is an error,
//! never a hang), a JSON document no further than its kind's bound ([`Document`]), and every
//! read checks the digest of the bytes it returns or copies.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::{MAX_CONFIG_SIZE, MAX_DOCUMENT_SIZE, human_size};

mod digest;
mod files;
mod lookup;

pub use digest::{Digest, HashingReader, HashingWriter};
pub use files::{Symlinks, file_kind, open_regular, read_bounded};
pub use lookup::{Found, LookupError, find_image, manifest_and_config};

/// Docker's media types for a manifest and a manifest list (OCI's are in `MediaType`).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// See [`DOCKER_MANIFEST`].
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The annotation naming a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors from the store, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A JSON document in the store could not be read.
    #[error("{path} is not valid: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A digest string is not `sha256:<64 hex>`.
    #[error("invalid digest {0:?} (kiln stores sha256 digests only)")]
    BadDigest(String),
    /// A blob's content does not match its name.
    #[error("blob {expected} has digest {actual}: the store or the image is damaged")]
    DigestMismatch {
        /// The digest the blob was named by.
        expected: String,
        /// The digest of its content.
        actual: String,
    },
    /// No image carries this tag.
    #[error("no image named {0} in the store")]
    UnknownImage(String),
    /// Another user could change what is in the store.
    #[error(
        "kiln's store is not safe to use: {path} {problem}, so another user could change the images and cached steps kiln builds from; {remedy}"
    )]
    Unsafe {
        /// The directory or file.
        path: PathBuf,
        /// Who else may write it.
        problem: String,
        /// What to do.
        remedy: String,
    },
    /// A blob of the store no longer has the content its name says: it changed after kiln
    /// wrote it.
    #[error("blob {expected} in kiln's store is damaged: its content has digest {actual}; {}", DAMAGED_REMEDY)]
    Damaged {
        /// The digest the blob is named by.
        expected: String,
        /// The digest of its content now.
        actual: String,
    },
    /// A file is larger than kiln reads of its kind.
    #[error("{path} is larger than {}, the most kiln reads of {what}", human_size(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of content it holds, plural (`image manifests, indexes and configs`).
        what: &'static str,
        /// The bound, bytes.
        limit: u64,
    },
}

/// A kind of JSON document kiln reads whole, and so bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// An image manifest or index: [`MAX_DOCUMENT_SIZE`].
    Manifest,
    /// An image config: [`MAX_CONFIG_SIZE`].
    Config,
    /// Any of them, where the kind is not known: the larger bound.
    Any,
}

impl Document {
    /// The most bytes such a document may have.
    pub fn limit(self) -> u64 {
        match self {
            Document::Manifest => MAX_DOCUMENT_SIZE,
            Document::Config | Document::Any => MAX_CONFIG_SIZE,
        }
    }

    /// How errors name such documents, plural.
    pub fn plural(self) -> &'static str {
        match self {
            Document::Manifest => "image manifests and indexes",
            Document::Config => "image configs",
            Document::Any => "image manifests, indexes and configs",
        }
    }

    /// The kind a media type names.
    pub fn of(media_type: &MediaType) -> Document {
        match media_type {
            MediaType::ImageConfig => Document::Config,
            MediaType::Other(t) if t == DOCKER_CONFIG || t.ends_with(".config.v1+json") => Document::Config,
            MediaType::ImageManifest | MediaType::ImageIndex => Document::Manifest,
            MediaType::Other(t) if t == DOCKER_MANIFEST || t == DOCKER_MANIFEST_LIST => Document::Manifest,
            _ => Document::Any,
        }
    }
}

/// Docker's media type for an image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What to do about a damaged blob of the store. kiln keeps one copy of each blob and never
/// replaces one it has, so the damaged copy has to go before a pull or build brings it back.
pub const DAMAGED_REMEDY: &str =
    "untag the images that use it (`kiln rmi NAME`), delete it with `kiln prune`, then pull or build them again";

type Result<T> = std::result::Result<T, StoreError>;

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StoreError + 'p {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

/// A blob being written into the store; becomes visible only through [`BlobWriter::commit`].
pub struct BlobWriter {
    writer: HashingWriter<io::BufWriter<File>>,
    tmp: tempfile::TempPath,
    blobs: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl BlobWriter {
    /// Sync the blob and move it to its content address. Returns its digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.commit_checked(None)
    }

    /// Like [`BlobWriter::commit`], but refuse (and discard the blob) unless its digest is
    /// `expected`: content from outside the store never lands under the wrong name.
    pub fn commit_checked(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (buffered, digest, size) = self.writer.finish();
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(StoreError::DigestMismatch { expected: expected.to_string(), actual: digest.to_string() });
        }
        let file = buffered.into_inner().map_err(|e| StoreError::Io {
            action: "write",
            path: self.tmp.to_path_buf(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("sync", &self.tmp))?;
        let dest = self.blobs.join(digest.hex());
        self.tmp.persist(&dest).map_err(|e| StoreError::Io { action: "rename into", path: dest, source: e.error })?;
        Ok((digest, size))
    }
}

/// Make ready a directory for compiled WebAssembly outside a store (`KILN_COMPILE_CACHE`),
/// so that several stores (a test suite's, a CI job's) compile each module once: created
/// (mode 0700) when missing, and refused ([`StoreError::Unsafe`]) when another user could
/// write to it. kiln runs the machine code in it, so it must be as safe as a store: owned by
/// this user (or root) and, being shared by design, writable by neither its group nor others.
///
/// # Errors
/// The directory cannot be created, or another user could write to it.
pub fn prepare_compile_cache(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // Recursive: an existing directory is not an error, and two kilns may create it at once.
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("create", dir))?;
    let meta = fs::metadata(dir).map_err(io_err("read", dir))?;
    let me = rustix::process::geteuid().as_raw();
    let what = "(KILN_COMPILE_CACHE, the compiled WebAssembly kiln runs)";
    let problem = if meta.uid() != me && meta.uid() != 0 {
        format!("{what} belongs to user {} (kiln runs as user {me})", meta.uid())
    } else if meta.mode() & 0o002 != 0 {
        format!("{what} can be written by every user")
    } else if meta.mode() & 0o020 != 0 {
        format!("{what} can be written by its group")
    } else {
        return Ok(());
    };
    let shown = dir.display();
    let remedy = if meta.uid() == me {
        format!("run `chmod go-w {shown}`, or point KILN_COMPILE_CACHE at a directory of your own")
    } else {
        "point KILN_COMPILE_CACHE at a directory of your own, or unset it to keep compiled modules in the store"
            .to_string()
    };
    Err(StoreError::Unsafe { path: dir.to_path_buf(), problem, remedy })
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive lock on the store's index; released on drop.
pub struct IndexLock {
    _file: File,
}

impl Store {
    /// Open the store at `root`, creating the layout if it does not exist yet, and remove
    /// what killed kiln processes left in `tmp/` ([`Store::clean_stale`]).
    ///
    /// # Errors
    /// The store cannot be created or read, or another user could write to it (see
    /// [`StoreError::Unsafe`]).
    pub fn open(root: &Path) -> Result<Self> {
        let store = Store { root: root.to_path_buf() };
        for dir in [store.root.clone(), store.blobs_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        store.check_owner()?;
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                store.write_index(&empty_index())?;
            }
        }
        store.clean_stale();
        Ok(store)
    }

    /// Refuse a store that another user could write to: the root, or any of what it keeps,
    /// owned by someone who is neither this user nor root, or writable by everyone.
    fn check_owner(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        let root = self.root.display().to_string();
        let parts = ["", "blobs", "blobs/sha256", "tmp", "cache", "compiled", "sources", "index.json", "lock"];
        for part in parts {
            let path = if part.is_empty() { self.root.clone() } else { self.root.join(part) };
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let problem = if meta.uid() != me && meta.uid() != 0 {
                format!("belongs to user {} (kiln runs as user {me})", meta.uid())
            } else if meta.mode() & 0o002 != 0 && !meta.file_type().is_symlink() {
                "can be written by every user".to_string()
            } else {
                continue;
            };
            let remedy = if meta.uid() == me {
                format!("run `chmod -R o-w {root}`, or give kiln a store of your own with --root DIR or KILN_HOME")
            } else {
                "give kiln a store of your own with --root DIR or KILN_HOME".to_string()
            };
            return Err(StoreError::Unsafe { path, problem, remedy });
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where half-written files go. Anything in it may be removed when no build runs.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Take the store's exclusive lock (blocks until it is free).
    pub fn lock(&self) -> Result<IndexLock> {
        let path = self.root.join("lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err("open", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(IndexLock { _file: file })
    }

    /// Start writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let (file, tmp) = locked_temp_file(&self.tmp_dir(), "blob-")?;
        Ok(BlobWriter { writer: HashingWriter::new(io::BufWriter::new(file)), tmp, blobs: self.blobs_dir() })
    }

    /// Store `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok((digest, bytes.len() as u64));
        }
        let mut writer = self.blob_writer()?;
        writer.write_all(bytes).map_err(io_err("write", &self.tmp_dir()))?;
        writer.commit()
    }

    /// Store a JSON document as a blob and describe it. A document larger than kiln reads
    /// of its kind ([`Document`]) is refused: the store holds nothing it cannot read back.
    pub fn put_json<T: Serialize>(&self, media_type: MediaType, value: &T) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            path: self.tmp_dir(),
            detail: format!("cannot serialise {media_type}: {e}"),
        })?;
        let kind = Document::of(&media_type);
        if bytes.len() as u64 > kind.limit() {
            return Err(StoreError::TooLarge {
                path: PathBuf::from(format!("the new {media_type} document ({} bytes)", bytes.len())),
                what: kind.plural(),
                limit: kind.limit(),
            });
        }
        let (digest, size) = self.put_bytes(&bytes)?;
        Ok(descriptor(media_type, &digest, size))
    }

    /// Copy a blob in from a reader, checking it against the digest it is expected to have.
    pub fn import_blob(&self, expected: &Digest, reader: &mut dyn Read) -> Result<u64> {
        if self.has_blob(expected) {
            return Ok(fs::metadata(self.blob_path(expected)).map(|m| m.len()).unwrap_or(0));
        }
        let mut writer = self.blob_writer()?;
        io::copy(reader, &mut writer).map_err(io_err("copy into", &self.tmp_dir()))?;
        Ok(writer.commit_checked(Some(expected))?.1)
    }

    /// Read a whole JSON document (a manifest, index or config), checking its digest; at
    /// most [`Document::Any`]'s bound is read. Where the kind is known,
    /// [`Store::read_document`] bounds it closer.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.read_document(digest, Document::Any)
    }

    /// Read a whole JSON document of the kind `kind`, checking its digest and its bound.
    pub fn read_document(&self, digest: &Digest, kind: Document) -> Result<Vec<u8>> {
        self.read_blob_up_to(digest, kind.limit(), kind.plural())
    }

    /// Read a whole blob of at most `limit` bytes (`what` names such blobs in the error),
    /// checking its digest. A longer blob is refused after `limit + 1` bytes.
    pub fn read_blob_up_to(&self, digest: &Digest, limit: u64, what: &'static str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = read_bounded(&mut self.open_blob(digest)?, limit)
            .map_err(io_err("read", &path))?
            .ok_or(StoreError::TooLarge { path, what, limit })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Damaged { expected: digest.to_string(), actual: actual.to_string() });
        }
        Ok(bytes)
    }

    /// Open a blob for streaming (the caller checks the digest if it needs to). Only a
    /// regular file is opened: see [`open_regular`].
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        open_regular(&path, Symlinks::Refuse).map_err(io_err("open", &path))
    }

    /// Read and parse a JSON blob.
    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { path: self.blob_path(digest), detail: e.to_string() })
    }

    /// The current index.
    pub fn index(&self) -> Result<ImageIndex> {
        read_index(&self.root.join("index.json"))
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| StoreError::Corrupt { path: self.root.join("index.json"), detail: e.to_string() })?;
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Write a file so that readers see either the old or the new content, never a mix.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic_in(&self.tmp_dir(), path, bytes)
    }

    /// Point `names` at a manifest, replacing what they named before.
    pub fn tag(&self, names: &[String], manifest: &Descriptor) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d).is_none_or(|n| !names.iter().any(|name| name == n)))
            .cloned()
            .collect();
        for name in names {
            let mut d = manifest.clone();
            let mut annotations = d.annotations().clone().unwrap_or_default();
            annotations.insert(REF_NAME.to_string(), name.clone());
            d.set_annotations(Some(annotations));
            manifests.push(d);
        }
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// Remove a tag. Blobs stay until `prune`.
    pub fn untag(&self, name: &str) -> Result<Descriptor> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let (gone, kept): (Vec<Descriptor>, Vec<Descriptor>) =
            index.manifests().iter().cloned().partition(|d| ref_name(d) == Some(name));
        let Some(first) = gone.into_iter().next() else {
            return Err(StoreError::UnknownImage(name.to_string()));
        };
        index.set_manifests(kept);
        self.write_index(&index)?;
        Ok(first)
    }

    /// Remove every blob no tag reaches (through its manifest or index, to configs and
    /// layers). Safe while other builds run: the index lock keeps tags still, and a blob newer
    /// than the oldest live build's scratch directory ([`Store::oldest_live_build`]) may
    /// belong to that build, so it stays. (Cache entries are the cache's: `Cache::prune`.)
    pub fn prune(&self) -> Result<PruneReport> {
        let _lock = self.lock()?;
        let mut reachable: HashSet<String> = HashSet::new();
        let mut pending: Vec<Descriptor> = self.index()?.manifests().clone();
        while let Some(descriptor) = pending.pop() {
            let digest = descriptor_digest(&descriptor)?;
            if !reachable.insert(digest.hex().to_string()) {
                continue;
            }
            // A pulled index keeps only the platforms pulled: its other entries are absent.
            if !self.has_blob(&digest) {
                continue;
            }
            match descriptor.media_type() {
                MediaType::ImageIndex => {
                    let index: ImageIndex = self.read_json(&digest)?;
                    pending.extend(index.manifests().iter().cloned());
                }
                MediaType::Other(t) if t == DOCKER_MANIFEST_LIST => {
                    let index: ImageIndex = self.read_json(&digest)?;
                    pending.extend(index.manifests().iter().cloned());
                }
                MediaType::ImageManifest => self.reach_manifest(&digest, &mut reachable)?,
                MediaType::Other(t) if t == DOCKER_MANIFEST => self.reach_manifest(&digest, &mut reachable)?,
                _ => {}
            }
        }
        let keep_newer_than = self.oldest_live_build();
        let young = |path: &Path| {
            keep_newer_than.is_some_and(|since| {
                fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|modified| modified >= since)
            })
        };
        let mut report = PruneReport::default();
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_err("read", &blobs))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if reachable.contains(&name) || young(&entry.path()) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(entry.path()).is_ok() {
                report.blobs += 1;
                report.bytes += size;
                // What registries were known to hold it (see `registry::sources`).
                let _ = fs::remove_file(self.root.join("sources").join(&name));
            }
        }
        Ok(report)
    }

    /// Mark a manifest's config and layers reachable.
    fn reach_manifest(&self, digest: &Digest, reachable: &mut HashSet<String>) -> Result<()> {
        let manifest: ImageManifest = self.read_json(digest)?;
        reachable.insert(descriptor_digest(manifest.config())?.hex().to_string());
        for layer in manifest.layers() {
            reachable.insert(descriptor_digest(layer)?.hex().to_string());
        }
        Ok(())
    }

    /// When the oldest build still running (its scratch directory locked) started.
    pub fn oldest_live_build(&self) -> Option<std::time::SystemTime> {
        let entries = fs::read_dir(self.tmp_dir()).ok()?;
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("build-"))
            .filter(|e| File::open(e.path().join(".lock")).is_ok_and(|lock| lock.try_lock().is_err()))
            .filter_map(|e| e.metadata().and_then(|m| m.created().or_else(|_| m.modified())).ok())
            .min()
    }

    /// The manifest descriptor a tag names.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.index()?.manifests().iter().find(|d| ref_name(d) == Some(name)).cloned())
    }

    /// Read an image manifest.
    pub fn manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        self.read_json(digest)
    }
}

/// What `Store::prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// A build's private scratch directory under `tmp/`, removed when dropped. It holds a lock
/// for its lifetime, so [`Store::clean_stale`] can tell a live build's directory from one a
/// killed process left behind.
pub struct BuildDir {
    path: PathBuf,
    _lock: File,
}

impl BuildDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

impl Store {
    /// Create a scratch directory for one build.
    pub fn build_dir(&self) -> Result<BuildDir> {
        // The directory gets its `build-` name only once its lock is held, so that another
        // kiln's `clean_stale` never sees a live build's directory unlocked.
        let tmp = self.tmp_dir();
        let new = tempfile::Builder::new()
            .prefix(".new-build-")
            .tempdir_in(&tmp)
            .map_err(io_err("create a directory in", &tmp))?;
        let lock_path = new.path().join(".lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        lock.lock().map_err(io_err("lock", &lock_path))?;
        let name = new.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = tmp.join(name.trim_start_matches(".new-"));
        fs::rename(new.path(), &path).map_err(io_err("rename into place", &path))?;
        // The renamed directory is ours now; the TempDir must not remove anything.
        let _ = new.keep();
        Ok(BuildDir { path, _lock: lock })
    }

    /// Remove what killed kiln processes left in `tmp/`: build directories and half-written
    /// blobs and files nobody holds a lock on, and files or build directories being made (not
    /// locked yet) that are older than an hour (a live process locks or renames them long
    /// before that).
    pub fn clean_stale(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("build-") {
                let stale = File::open(path.join(".lock")).map_or(true, |f| f.try_lock().is_ok());
                if stale {
                    let _ = fs::remove_dir_all(&path);
                }
            } else if name.starts_with("blob-") || name.starts_with(".write-") {
                // Its writer holds a lock on it for as long as it lives.
                if File::open(&path).is_ok_and(|f| f.try_lock().is_ok()) {
                    let _ = fs::remove_file(&path);
                }
            } else if name.starts_with(".new-") {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
                if old {
                    let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                }
            }
        }
    }
}

/// The tag a descriptor in an index carries, if any.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

/// A descriptor for a blob.
pub fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(media_type, size, oci_spec::image::Digest::try_from(digest.as_str()).expect("digest was validated"))
}

/// The digest a descriptor names.
pub fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest> {
    Digest::parse(descriptor.digest().as_ref())
}

/// An index with no manifests.
pub fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .expect("every required field is set")
}

/// Read an `index.json`.
pub fn read_index(path: &Path) -> Result<ImageIndex> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })
}

/// Write `path` atomically through a temporary file in `tmp_dir` (same filesystem).
pub fn write_atomic_in(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut file, tmp) = locked_temp_file(tmp_dir, ".write-")?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        action: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// A new file in `tmp_dir` named `<prefix>...`, locked (flock) for as long as the returned
/// file is open, and removed when the path is dropped. Made under a `.new-` name and renamed
/// once locked, so that [`Store::clean_stale`] can remove any unlocked `<prefix>` file at
/// once: its writer is gone.
fn locked_temp_file(tmp_dir: &Path, prefix: &str) -> Result<(File, tempfile::TempPath)> {
    let new = tempfile::Builder::new()
        .prefix(&format!(".new-{prefix}"))
        .tempfile_in(tmp_dir)
        .map_err(io_err("create a file in", tmp_dir))?;
    let (file, new_path) = new.into_parts();
    file.lock().map_err(io_err("lock", &new_path))?;
    let name = new_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let locked = tmp_dir.join(name.trim_start_matches(".new-"));
    fs::rename(&new_path, &locked).map_err(io_err("rename into place", &locked))?;
    // The renamed file is ours now; the old name is gone, so nothing must be removed there.
    let _ = new_path.keep();
    let tmp = tempfile::TempPath::try_from_path(&locked).map_err(io_err("take over", &locked))?;
    Ok((file, tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_validated() {
        assert!(Digest::parse("sha256:../../etc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        let d = Digest::of(b"hello");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    }

    #[test]
    fn blobs_tags_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let desc = store.put_json(MediaType::ImageConfig, &serde_json::json!({"a": 1})).unwrap();
        let digest = descriptor_digest(&desc).unwrap();
        assert!(store.has_blob(&digest));
        store.tag(&["x:latest".into(), "y:1".into()], &desc).unwrap();
        store.tag(&["x:latest".into()], &desc).unwrap();
        assert_eq!(store.index().unwrap().manifests().len(), 2);
        assert!(store.lookup("y:1").unwrap().is_some());
        store.untag("y:1").unwrap();
        assert!(store.lookup("y:1").unwrap().is_none());
        assert!(matches!(store.untag("y:1"), Err(StoreError::UnknownImage(_))));
        fs::write(store.blob_path(&digest), b"tampered").unwrap();
        let damaged = store.read_blob(&digest).unwrap_err();
        assert!(matches!(damaged, StoreError::Damaged { .. }), "{damaged}");
        assert!(damaged.to_string().contains("`kiln prune`"), "{damaged}");
        let wrong = Digest::of(b"other");
        assert!(store.import_blob(&wrong, &mut &b"content"[..]).is_err());
        assert!(!store.has_blob(&wrong), "a mismatching blob never becomes visible");
    }

    #[test]
    fn reads_are_bounded_and_only_of_regular_files() {
        assert_eq!(read_bounded(&mut &b"four"[..], 4).unwrap(), Some(b"four".to_vec()));
        assert_eq!(read_bounded(&mut &b"five!"[..], 4).unwrap(), None);
        assert_eq!(read_bounded(&mut io::repeat(0), 1 << 20).unwrap(), None, "an endless stream ends");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (digest, _) = store.put_bytes(b"content").unwrap();
        let big = vec![b' '; MAX_DOCUMENT_SIZE as usize + 1];
        let (big, _) = store.put_bytes(&big).unwrap();
        let err = store.read_document(&big, Document::Manifest).unwrap_err().to_string();
        assert!(err.ends_with("is larger than 4 MiB, the most kiln reads of image manifests and indexes"), "{err}");
        assert!(store.read_document(&big, Document::Config).is_ok());
        let huge = serde_json::json!({ "x": "a".repeat(MAX_CONFIG_SIZE as usize) });
        let err = store.put_json(MediaType::ImageConfig, &huge).unwrap_err().to_string();
        assert!(err.ends_with("is larger than 64 MiB, the most kiln reads of image configs"), "{err}");
        // A blob replaced by a FIFO or a symlink: refused, without waiting.
        let fifo = Digest::of(b"fifo");
        let status = std::process::Command::new("mkfifo").arg(store.blob_path(&fifo)).status().unwrap();
        assert!(status.success());
        let err = store.read_blob(&fifo).unwrap_err().to_string();
        assert!(err.contains("it is a FIFO, not a regular file"), "{err}");
        let link = Digest::of(b"link");
        std::os::unix::fs::symlink(store.blob_path(&digest), store.blob_path(&link)).unwrap();
        let err = store.read_blob(&link).unwrap_err().to_string();
        assert!(err.contains("it is a symbolic link"), "{err}");
        assert!(open_regular(&store.blob_path(&link), Symlinks::Follow).is_ok());
    }
}
