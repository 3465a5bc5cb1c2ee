//! OCI layers: writing a [`Tree`]'s changes as a deterministic gzip'd tar straight into the
//! store, and applying a layer tar (with whiteouts) to a [`Tree`].
//!
//! Determinism is the point of the writer: entries in path order, parents before children,
//! ustar headers with no user or group names, uid/gid/mode from the tree, mtimes clamped to
//! SOURCE_DATE_EPOCH, and gzip with no file name or time. The same tree gives the same bytes.
//! Both digests (the compressed blob's and the tar's diff_id) are computed while streaming:
//! a layer is never held in memory.
//!
//! The reader never touches a host path named by an entry: file contents go to numbered
//! files in a scratch directory, and names only ever address the in-memory tree. It bounds
//! what it holds in memory: the tar records read whole (long names, PAX headers) are checked
//! against their bounds before they are read ([`headers`]). A layer blob is checked while it
//! streams ([`apply_blob`]): its size and digest against its descriptor, its tar against the
//! config's diff_id.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::rootfs::{self, Changes, Content, FileData, Kind, Meta, Node, Tree};
use crate::store::{Digest, HashingReader, HashingWriter, Store, StoreError};

mod headers;

/// gzip level for new layers: 1, like Go's `gzip.BestSpeed`. Measured on bench/copy-build.sh
/// (mostly incompressible data) level 6 made the whole build 3.7x slower; on source text it
/// saves about 20% of the layer size. Build speed wins for a builder; recompressing harder is
/// a job for a push-time option.
pub const LAYER_GZIP_LEVEL: u32 = 1;

/// A layer written into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
    /// Size of the compressed blob.
    pub size: u64,
}

/// Errors reading or writing layers.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a file's content or writing the tar failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A layer holds more than [`crate::limits::Limits::layer_size`].
    #[error("layer {layer} {doing} more than {}: {}", crate::limits::human_size(*.limit),
        crate::limits::exceeded(crate::limits::Limit::LayerSize, &crate::limits::human_size(*.limit)))]
    TooLarge {
        /// Which layer.
        layer: String,
        /// "unpacks to" or "would hold".
        doing: &'static str,
        /// The limit, bytes.
        limit: u64,
    },
    /// A tar header declares a long name, long link or PAX record above its bound.
    #[error(
        "layer {layer}: a tar entry has {record}; kiln cannot unpack it: the archive is corrupt or was made to exhaust memory"
    )]
    RecordTooLarge {
        /// Which layer.
        layer: String,
        /// The record and its bound.
        record: headers::RecordTooLarge,
    },
    /// A layer blob is not what its descriptor or the image config says.
    #[error("layer {digest} is damaged: {mismatch}")]
    Damaged {
        /// The digest of the blob, from its descriptor.
        digest: Digest,
        /// What differs.
        mismatch: Mismatch,
    },
    /// A tar entry cannot be applied.
    #[error("layer {layer}: entry {entry}: {detail}")]
    BadEntry {
        /// Which layer.
        layer: String,
        /// The entry's path.
        entry: String,
        /// What is wrong.
        detail: String,
    },
}

/// How a layer blob differs from what the image says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The blob is not as long as its descriptor says.
    Size {
        /// The size in the descriptor.
        expected: u64,
        /// The bytes there are, or `expected + 1` when there are more.
        actual: u64,
    },
    /// The blob's content has another digest.
    Digest {
        /// The digest of its content.
        actual: Digest,
    },
    /// The uncompressed tar has another digest than the config's diff_id.
    DiffId {
        /// The diff_id the config lists.
        expected: Digest,
        /// The digest of the tar.
        actual: Digest,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Size { expected, actual } if actual > expected => {
                write!(f, "its blob is longer than the {expected} bytes its descriptor gives")
            }
            Mismatch::Size { expected, actual } => {
                write!(f, "its blob is {actual} bytes, not the {expected} its descriptor gives")
            }
            Mismatch::Digest { actual } => write!(f, "its content has digest {actual}"),
            Mismatch::DiffId { expected, actual } => write!(
                f,
                "its uncompressed content has digest {actual}, not the diff_id {expected} the image config lists"
            ),
        }
    }
}

/// What a layer blob must be: its descriptor's digest and size and, where known, the
/// digest of its uncompressed tar (the config's diff_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size, bytes.
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: Option<Digest>,
}

fn io_context(context: impl Into<String>) -> impl FnOnce(io::Error) -> LayerError {
    let context = context.into();
    move |source| LayerError::Io { context, source }
}

/// One tar entry to write, in order.
enum Item<'a> {
    Entry(&'a Node),
    Whiteout,
    Opaque,
}

/// Write what changed in `tree` as a layer. Returns `None` when nothing changed.
pub fn write_changes(
    store: &Store,
    tree: &Tree,
    changes: &Changes,
    epoch: Option<i64>,
    limit: u64,
) -> Result<Option<LayerInfo>, LayerError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let items = layer_items(tree, changes);
    // Refused before anything is written: the sizes are known from the tree. Each file's
    // current size (a RUN step may have written to it since it was recorded), once for the
    // names that share its data, as the tar holds it once.
    let mut seen = std::collections::HashSet::new();
    let contents: u64 = items
        .values()
        .map(|item| match item {
            Item::Entry(Node { kind: Kind::File(data), .. }) if seen.insert(Arc::as_ptr(data)) => data.len(),
            _ => 0,
        })
        .fold(0, u64::saturating_add);
    if contents > limit {
        return Err(LayerError::TooLarge { layer: "of this step".into(), doing: "would hold", limit });
    }
    let blob = Cancellable(store.blob_writer()?);
    let gzip = GzEncoder::new(blob, Compression::new(LAYER_GZIP_LEVEL));
    let hashing = write_tar(HashingWriter::new(gzip), &items, epoch, Contents::Bytes)?;
    let (gzip, diff_id, _) = hashing.finish();
    let Cancellable(blob) = gzip.finish().map_err(io_context("finish gzip"))?;
    let (digest, size) = blob.commit()?;
    Ok(Some(LayerInfo { digest, diff_id, size }))
}

/// A writer that stops once the build is cancelled (Ctrl-C, SIGTERM): a layer being written
/// then fails at its next write, and its half-written blob is discarded, instead of the
/// whole layer being written first.
struct Cancellable<W>(W);

impl<W: Write> Write for Cancellable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if crate::cancel::requested() {
            return Err(io::Error::other("the build was interrupted"));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A digest of the layer these changes would make, for cache keys, without writing it;
/// `None` when nothing changed. It hashes the layer's tar with each file's bytes replaced by
/// their sha256: a context file's is the one taken while its snapshot was copied, so the key
/// costs no second read, and names the very bytes the layer will hold. Equal digests mean
/// equal layers: every path, its metadata, its size and its bytes' digest are in it.
pub fn changes_key(tree: &Tree, changes: &Changes, epoch: Option<i64>) -> Result<Option<Digest>, LayerError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let items = layer_items(tree, changes);
    let hashing = write_tar(HashingWriter::new(io::sink()), &items, epoch, Contents::Digests)?;
    Ok(Some(hashing.finish().1))
}

/// What [`write_tar`] writes after a regular file's header.
#[derive(Clone, Copy)]
enum Contents {
    /// The file's bytes: a layer.
    Bytes,
    /// The sha256 of its bytes, in the block after the header (whose size field still says
    /// how long the file is): not a valid tar, only ever hashed ([`changes_key`]).
    Digests,
}

/// Every entry a layer of `changes` holds, in tar order.
fn layer_items<'t>(tree: &'t Tree, changes: &Changes) -> BTreeMap<Vec<String>, Item<'t>> {
    // Every changed path, every removed path's whiteout, and the parents of both so that
    // ownership and modes of directories are explicit in the layer.
    let mut items: BTreeMap<Vec<String>, Item<'t>> = BTreeMap::new();
    // Deepest parent first, stopping at one already there: every path in `items` has its
    // parents there too, so a deep tree costs its depth once, not once per path.
    let add_parents = |items: &mut BTreeMap<Vec<String>, Item<'t>>, path: &[String]| {
        for depth in (1..path.len()).rev() {
            let parent = &path[..depth];
            if items.contains_key(parent) {
                break;
            }
            if let Some(node) = tree.get(parent) {
                items.insert(parent.to_vec(), Item::Entry(node));
            }
        }
    };
    for removed in &changes.removed {
        let path = rootfs::clean(removed);
        let Some((name, parent)) = path.split_last() else { continue };
        add_parents(&mut items, &path);
        match tree.get(&path) {
            // Removed and created again as a directory: hide what the lower layers had in it.
            Some(node) if node.is_dir() && changes.changed.contains(removed) => {
                let mut marker = path.clone();
                marker.push(".wh..wh..opq".into());
                items.insert(marker, Item::Opaque);
                items.insert(path.clone(), Item::Entry(node));
            }
            _ => {
                let mut whiteout = parent.to_vec();
                whiteout.push(format!(".wh.{name}"));
                items.insert(whiteout, Item::Whiteout);
            }
        }
    }
    for changed in &changes.changed {
        let path = rootfs::clean(changed);
        if path.is_empty() {
            continue;
        }
        add_parents(&mut items, &path);
        if let Some(node) = tree.get(&path) {
            items.insert(path, Item::Entry(node));
        }
    }

    items
}

/// Write `items` as a tar stream into `out` and return it.
fn write_tar<W: Write>(
    out: W,
    items: &BTreeMap<Vec<String>, Item<'_>>,
    epoch: Option<i64>,
    contents: Contents,
) -> Result<W, LayerError> {
    let mut tar = tar::Builder::new(out);
    let mut first_name: BTreeMap<*const FileData, String> = BTreeMap::new();
    for (path, item) in items {
        let name = rootfs::join(path);
        write_item(&mut tar, &name, item, epoch, contents, &mut first_name)
            .map_err(io_context(format!("write /{name}")))?;
    }
    tar.into_inner().map_err(io_context("finish the layer tar"))
}

fn clamp(mtime: i64, epoch: Option<i64>) -> u64 {
    let t = match epoch {
        Some(e) => mtime.min(e),
        None => mtime,
    };
    t.max(0) as u64
}

fn base_header(meta: &Meta, epoch: Option<i64>, kind: EntryType) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(meta.uid.into());
    h.set_gid(meta.gid.into());
    h.set_mtime(clamp(meta.mtime, epoch));
    h.set_size(0);
    h
}

fn write_item<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    item: &Item<'_>,
    epoch: Option<i64>,
    contents: Contents,
    first_name: &mut BTreeMap<*const FileData, String>,
) -> io::Result<()> {
    let node = match item {
        Item::Whiteout | Item::Opaque => {
            let mut h = base_header(&Meta::root(0o644, 0), epoch, EntryType::Regular);
            return tar.append_data(&mut h, name, io::empty());
        }
        Item::Entry(node) => node,
    };
    match &node.kind {
        Kind::Dir(_) => {
            let mut h = base_header(&node.meta, epoch, EntryType::Directory);
            tar.append_data(&mut h, format!("{name}/"), io::empty())
        }
        Kind::File(data) => {
            let key = Arc::as_ptr(data);
            if let Some(first) = first_name.get(&key) {
                let mut h = base_header(&node.meta, epoch, EntryType::Link);
                return tar.append_link(&mut h, name, first);
            }
            first_name.insert(key, name.to_string());
            let mut h = base_header(&node.meta, epoch, EntryType::Regular);
            let size = data.len();
            h.set_size(size);
            if let Contents::Digests = contents {
                return tar.append_data(&mut h, name, &data.content.sha256()?[..]);
            }
            let reader = data.content.open()?;
            // Guard against a source that changed size since it was listed: the tar must
            // hold exactly the size in the header.
            let mut exact = ExactSize { inner: reader, remaining: size };
            tar.append_data(&mut h, name, &mut exact)?;
            if exact.remaining != 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was being copied"));
            }
            Ok(())
        }
        Kind::Symlink(target) => {
            let mut h = base_header(&node.meta, epoch, EntryType::Symlink);
            tar.append_link(&mut h, name, target)
        }
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            let kind = if matches!(node.kind, Kind::CharDevice { .. }) { EntryType::Char } else { EntryType::Block };
            let mut h = base_header(&node.meta, epoch, kind);
            h.set_device_major(*major)?;
            h.set_device_minor(*minor)?;
            tar.append_data(&mut h, name, io::empty())
        }
        Kind::Fifo => {
            let mut h = base_header(&node.meta, epoch, EntryType::Fifo);
            tar.append_data(&mut h, name, io::empty())
        }
    }
}

/// Reads exactly `remaining` bytes, padding with nothing: stops early if the source ends.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A directory where extracted file contents live for the length of a build, and the most
/// one layer may unpack into it.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    next: AtomicU64,
    layer_limit: u64,
}

impl Scratch {
    /// Use `dir` (which must exist and belong to this build), with the default layer limit.
    pub fn new(dir: &Path) -> Self {
        Scratch::with_layer_limit(dir, crate::limits::DEFAULT_LAYER_SIZE)
    }

    /// Use `dir`; one layer may unpack at most `layer_limit` bytes of file contents.
    pub fn with_layer_limit(dir: &Path, layer_limit: u64) -> Self {
        Scratch { dir: dir.to_path_buf(), next: AtomicU64::new(0), layer_limit }
    }

    /// The most one layer may hold, bytes ([`crate::limits::Limits::layer_size`]).
    pub fn layer_limit(&self) -> u64 {
        self.layer_limit
    }

    /// A new empty directory of its own in the scratch directory.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn new_dir(&self) -> io::Result<PathBuf> {
        let path = self.new_path();
        std::fs::create_dir(&path)?;
        Ok(path)
    }

    /// A path for a new scratch file (nothing is created).
    pub fn new_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("f{n}"))
    }

    /// Copy `reader` into a new scratch file; returns its path and size. Runs of zeros
    /// become holes, so a sparse file in a layer stays sparse on disk.
    pub fn store(&self, reader: &mut dyn Read) -> io::Result<(PathBuf, u64)> {
        let path = self.new_path();
        let size = self.store_at(&path, reader)?;
        Ok((path, size))
    }

    /// [`Scratch::store`] into `path`, from [`Scratch::new_path`] (so that its size can be
    /// accounted for before anything is written); returns the size.
    pub fn store_at(&self, path: &Path, reader: &mut dyn Read) -> io::Result<u64> {
        let mut file = std::fs::File::create(path)?;
        copy_sparse(reader, &mut file)
    }
}

/// Copy `reader` to the start of `file`, seeking over blocks of zeros instead of writing
/// them; returns the bytes copied.
pub(crate) fn copy_sparse(reader: &mut dyn Read, file: &mut std::fs::File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    const BLOCK: usize = 64 << 10;
    let mut buf = vec![0u8; BLOCK];
    let mut size = 0u64;
    loop {
        // Fill whole blocks, so the zero test sees aligned, full-size blocks.
        let mut filled = 0;
        while filled < BLOCK {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(filled as i64))?;
        } else {
            file.write_all(&buf[..filled])?;
        }
        size += filled as u64;
        if filled < BLOCK {
            break;
        }
    }
    // A file ending in a hole gets its length from here.
    file.set_len(size)?;
    Ok(size)
}

/// Decompress a layer blob by sniffing its first bytes (gzip, zstd, or plain tar); see
/// [`crate::compression`].
///
/// # Errors
/// As [`crate::compression::decompress`].
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    crate::compression::decompress(reader, crate::compression::Family::Layer)
}

/// Apply a layer (an uncompressed tar stream) to `tree`, OCI-style: whiteouts remove what
/// lower layers had, other entries replace. `layer` names the layer in errors.
pub fn apply(tree: &mut Tree, tar_stream: impl Read, scratch: &Scratch, layer: &str) -> Result<(), LayerError> {
    apply_entries(tree, &[], tar_stream, scratch, Unpack::Layer, layer).map(|_| ())
}

/// Apply a layer blob, as stored (compressed), to `tree`, checking it while it streams: the
/// blob is read no further than its descriptor's size (plus one byte, to tell a longer blob),
/// its digest is computed on the bytes decompressed, and the uncompressed tar's digest on the
/// bytes applied, read to its end. A blob that differs in any of these is
/// [`LayerError::Damaged`], whatever else failed on the way (a damaged blob explains a broken
/// tar). On an error `tree` holds part of the layer and must be discarded.
///
/// # Errors
/// [`LayerError::Damaged`], or anything [`apply`] fails with.
pub fn apply_blob(
    tree: &mut Tree,
    blob: impl Read,
    expected: &Expected,
    scratch: &Scratch,
    layer: &str,
) -> Result<(), LayerError> {
    let mut compressed = HashingReader::new(blob.take(expected.size.saturating_add(1)));
    let applied = (|| {
        let stream = decompress(&mut compressed).map_err(io_context(format!("read layer {layer}")))?;
        let mut tar = HashingReader::new(stream);
        apply_entries(tree, &[], &mut tar, scratch, Unpack::Layer, layer)?;
        Ok::<_, LayerError>(tar.finish().1)
    })();
    // Whatever the tar reader left (the end of a gzip stream, or all of it after an error).
    let drained = io::copy(&mut compressed, &mut io::sink());
    let (_, digest, size) = compressed.finish();
    let damaged = |mismatch| LayerError::Damaged { digest: expected.digest.clone(), mismatch };
    if drained.is_ok() {
        if size != expected.size {
            return Err(damaged(Mismatch::Size { expected: expected.size, actual: size }));
        }
        if digest != expected.digest {
            return Err(damaged(Mismatch::Digest { actual: digest }));
        }
    }
    let diff_id = applied?;
    drained.map_err(io_context(format!("read layer {layer}")))?;
    match &expected.diff_id {
        Some(want) if *want != diff_id => Err(damaged(Mismatch::DiffId { expected: want.clone(), actual: diff_id })),
        _ => Ok(()),
    }
}

/// Unpack an archive (ADD) with every entry placed under the directory `base`. Unlike a
/// layer, its `.wh.` entries are plain files, as Docker's ADD writes them: an archive must
/// not delete what earlier layers hold. Returns the paths the archive created or replaced.
pub fn apply_at(
    tree: &mut Tree,
    base: &[String],
    tar_stream: impl Read,
    scratch: &Scratch,
    layer: &str,
) -> Result<BTreeSet<Vec<String>>, LayerError> {
    apply_entries(tree, base, tar_stream, scratch, Unpack::Archive, layer)
}

/// What [`apply_entries`] unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unpack {
    /// An image layer: `.wh.` entries remove what is there, and the stream is read to its
    /// end (its diff_id covers every byte).
    Layer,
    /// An archive ADD unpacks: `.wh.` entries are files, and what follows the archive's end
    /// is not read.
    Archive,
}

/// [`apply`] and [`apply_at`].
fn apply_entries(
    tree: &mut Tree,
    base: &[String],
    tar_stream: impl Read,
    scratch: &Scratch,
    unpack: Unpack,
    layer: &str,
) -> Result<BTreeSet<Vec<String>>, LayerError> {
    let whiteouts = unpack == Unpack::Layer;
    let bad = |entry: &str, detail: String| LayerError::BadEntry {
        layer: layer.to_string(),
        // A PAX record can make a name megabytes long.
        entry: rootfs::shorten(entry),
        detail,
    };
    let limit = scratch.layer_limit();
    let too_large = || LayerError::TooLarge { layer: layer.to_string(), doing: "unpacks to", limit };
    // The whole stream is bounded too (a little above the limit, for tar's own headers):
    // the tar reader holds long names and PAX records in memory, and a bomb of those must
    // stop somewhere.
    let bounded = Bounded { inner: tar_stream, left: limit.saturating_add(limit / 16).saturating_add(1 << 20) };
    // The records the tar reader holds whole are bounded one by one, before it reads them.
    let mut archive = tar::Archive::new(headers::HeaderCheck::new(bounded));
    let mut unpacked: u64 = 0;
    let read_error = |e: io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<StreamTooLong>()) {
            return too_large();
        }
        match e.get_ref().and_then(|inner| inner.downcast_ref::<headers::RecordTooLarge>()) {
            Some(record) => LayerError::RecordTooLarge { layer: layer.to_string(), record: record.clone() },
            None => LayerError::Io { context: format!("read layer {layer}"), source: e },
        }
    };
    let entries = archive.entries().map_err(read_error)?;
    let mut seen_in_layer: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut made_opaque: BTreeSet<Vec<String>> = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // Lexical cleaning keeps `../` entries inside the root.
        let path: Vec<String> = base.iter().cloned().chain(rootfs::clean(&raw_path)).collect();
        if path.len() == base.len() {
            continue;
        }
        let Some((name, parent)) = path.split_last() else { continue };
        let header = entry.header();
        let meta = Meta {
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0).try_into().unwrap_or(0),
            gid: header.gid().unwrap_or(0).try_into().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0).try_into().unwrap_or(0),
        };
        let parent_dir = ensure_dir(tree, parent).map_err(|e| bad(&raw_path, e.to_string()))?;
        if whiteouts && name == ".wh..wh..opq" {
            // Once a directory is opaque, everything in it comes from this layer: a repeated
            // marker has nothing left to hide (and would cost a pass over the directory).
            if !made_opaque.insert(parent_dir.clone()) {
                continue;
            }
            // Hide only what lower layers put there, not entries of this layer.
            // Entries under `parent_dir` sit together in the set's order.
            let keep: BTreeSet<String> = seen_in_layer
                .range(parent_dir.clone()..)
                .take_while(|p| p.starts_with(&parent_dir))
                .filter(|p| p.len() == parent_dir.len() + 1)
                .map(|p| p[parent_dir.len()].clone())
                .collect();
            if let Some(Node { kind: Kind::Dir(children), .. }) = tree.get(&parent_dir) {
                let gone: Vec<String> = children.keys().filter(|k| !keep.contains(*k)).cloned().collect();
                for g in gone {
                    let mut p = parent_dir.clone();
                    p.push(g);
                    tree.remove(&p);
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.").filter(|_| whiteouts) {
            let mut target = parent_dir.clone();
            target.push(hidden.to_string());
            tree.remove(&target);
            continue;
        }
        let mut dest = parent_dir.clone();
        dest.push(name.clone());
        let kind = match header.entry_type() {
            EntryType::Directory => Kind::Dir(BTreeMap::new()),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // The declared size (a sparse file's full size) is checked before reading,
                // what is read after (a header may lie).
                let declared = header.size().unwrap_or(0);
                if unpacked.saturating_add(declared) > limit {
                    return Err(too_large());
                }
                let (file, size) = scratch.store(&mut entry).map_err(|e| match read_error(e) {
                    LayerError::Io { source, .. } => LayerError::Io { context: format!("extract {raw_path}"), source },
                    other => other,
                })?;
                unpacked = unpacked.saturating_add(size);
                if unpacked > limit {
                    return Err(too_large());
                }
                Kind::File(Arc::new(FileData { content: Content::Scratch(file), size }))
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned());
                Kind::Symlink(target.ok_or_else(|| bad(&raw_path, "symlink without a target".into()))?)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| {
                        base.iter().cloned().chain(rootfs::clean(&String::from_utf8_lossy(&b))).collect::<Vec<_>>()
                    })
                    .ok_or_else(|| bad(&raw_path, "hardlink without a target".into()))?;
                match tree.get(&target) {
                    Some(Node { kind: Kind::File(data), meta }) => {
                        let node = Node { meta: *meta, kind: Kind::File(data.clone()) };
                        tree.insert(&dest, node).map_err(|e| bad(&raw_path, e.to_string()))?;
                        seen_in_layer.insert(dest);
                        continue;
                    }
                    _ => {
                        return Err(bad(
                            &raw_path,
                            format!("hardlink to /{} which is not a file", rootfs::join(&target)),
                        ));
                    }
                }
            }
            EntryType::Char => Kind::CharDevice {
                major: header.device_major().ok().flatten().unwrap_or(0),
                minor: header.device_minor().ok().flatten().unwrap_or(0),
            },
            EntryType::Block => Kind::BlockDevice {
                major: header.device_major().ok().flatten().unwrap_or(0),
                minor: header.device_minor().ok().flatten().unwrap_or(0),
            },
            EntryType::Fifo => Kind::Fifo,
            // PAX and GNU metadata entries are consumed by the tar reader; anything else is
            // not a filesystem object.
            _ => continue,
        };
        let is_dir = matches!(kind, Kind::Dir(_));
        match tree.get(&dest) {
            Some(existing) if existing.is_dir() && !is_dir => {
                tree.remove(&dest);
            }
            _ => {}
        }
        tree.insert(&dest, Node { meta, kind }).map_err(|e| bad(&raw_path, e.to_string()))?;
        seen_in_layer.insert(dest);
    }
    if unpack == Unpack::Layer {
        // Past the archive's end marker, within the same bound.
        io::copy(&mut archive.into_inner().into_inner(), &mut io::sink()).map_err(read_error)?;
    }
    Ok(seen_in_layer)
}

/// A reader that fails with [`StreamTooLong`] after `left` bytes.
struct Bounded<R> {
    inner: R,
    left: u64,
}

/// The error [`Bounded`] fails with.
#[derive(Debug)]
struct StreamTooLong;

impl std::fmt::Display for StreamTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the layer is longer than the layer size limit allows")
    }
}

impl std::error::Error for StreamTooLong {}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(StreamTooLong));
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The directory at `path` (creating missing ones root-owned 0755); symlinked parents are
/// followed inside the tree, as container runtimes do when they unpack.
fn ensure_dir(tree: &mut Tree, path: &[String]) -> Result<Vec<String>, rootfs::PathError> {
    // Nearly every entry's parent is already a directory at exactly that path (no symlink on
    // the way, since `get` follows none): skip resolving it component by component.
    if tree.get(path).is_some_and(Node::is_dir) {
        return Ok(path.to_vec());
    }
    tree.mkdir_all(&[], &format!("/{}", rootfs::join(path)), Meta::root(0o755, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, mtime: i64) -> Node {
        let bytes: Arc<[u8]> = Arc::from(text.as_bytes());
        Node {
            meta: Meta { mode: 0o640, uid: 1000, gid: 1000, mtime },
            kind: Kind::File(Arc::new(FileData { size: bytes.len() as u64, content: Content::Bytes(bytes) })),
        }
    }

    fn entries(store: &Store, info: &LayerInfo) -> Vec<(String, EntryType, u32, u64, u64)> {
        let blob = store.open_blob(&info.digest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                (path, h.entry_type(), h.mode().unwrap(), h.uid().unwrap(), h.mtime().unwrap())
            })
            .collect()
    }

    /// A tar holding one regular file; names too long for a header get a GNU long-name record.
    fn one_file_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_are_deterministic_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let build = || {
            let mut t = Tree::new();
            t.mkdir_all(&[], "/app/sub", Meta::root(0o755, 5)).unwrap();
            t.insert(&rootfs::clean("app/sub/b"), file("bee", 2_000_000_000)).unwrap();
            t.insert(&rootfs::clean("app/a"), file("a", 10)).unwrap();
            let changes = t.take_changes();
            (t, changes)
        };
        let (t1, c1) = build();
        let (t2, c2) = build();
        let l1 = write_changes(&store, &t1, &c1, Some(1_000), u64::MAX).unwrap().unwrap();
        let l2 = write_changes(&store, &t2, &c2, Some(1_000), u64::MAX).unwrap().unwrap();
        assert_eq!(l1, l2);
        let got = entries(&store, &l1);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["app/", "app/a", "app/sub/", "app/sub/b"]);
        assert_eq!(got[3].4, 1_000, "mtime clamped to SOURCE_DATE_EPOCH");
        assert_eq!(got[1].4, 10, "earlier mtimes kept");
        assert_eq!((got[1].2, got[1].3), (0o640, 1000));
    }

    #[test]
    fn the_size_check_reads_what_a_step_wrote_since_the_file_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scratch_dir = tempfile::tempdir().unwrap();
        // Recorded empty, as a RUN step records a file it creates; then written to.
        let written = scratch_dir.path().join("written");
        std::fs::File::create(&written).unwrap().set_len(2 << 20).unwrap();
        let node = Node {
            meta: Meta::root(0o644, 0),
            kind: Kind::File(Arc::new(FileData { content: Content::Scratch(written), size: 0 })),
        };
        let mut t = Tree::new();
        t.insert(&rootfs::clean("big"), node.clone()).unwrap();
        // A hard link to it is in the tar once.
        t.insert(&rootfs::clean("link"), node).unwrap();
        let changes = t.take_changes();
        let err = write_changes(&store, &t, &changes, None, 1 << 20).unwrap_err();
        assert!(matches!(err, LayerError::TooLarge { .. }), "{err}");
        assert!(write_changes(&store, &t, &changes, None, 3 << 20).unwrap().is_some());
    }

    #[test]
    fn whiteouts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(scratch_dir.path());
        let mut t = Tree::new();
        t.mkdir_all(&[], "/d/inner", Meta::root(0o755, 0)).unwrap();
        t.insert(&rootfs::clean("d/old"), file("x", 0)).unwrap();
        t.insert(&rootfs::clean("gone"), file("y", 0)).unwrap();
        let base = write_changes(&store, &t, &t.clone().take_changes(), None, u64::MAX).unwrap().unwrap();
        t.forget_changes();
        t.remove(&rootfs::clean("gone"));
        t.remove(&rootfs::clean("d"));
        t.mkdir_all(&[], "/d", Meta::root(0o700, 0)).unwrap();
        t.insert(&rootfs::clean("d/new"), file("z", 0)).unwrap();
        let changes = t.take_changes();
        let top = write_changes(&store, &t, &changes, None, u64::MAX).unwrap().unwrap();
        let names: Vec<String> = entries(&store, &top).into_iter().map(|e| e.0).collect();
        assert_eq!(names, [".wh.gone", "d/", "d/.wh..wh..opq", "d/new"]);

        let mut rebuilt = Tree::new();
        for layer in [&base, &top] {
            let blob = store.open_blob(&layer.digest).unwrap();
            apply(&mut rebuilt, decompress(blob).unwrap(), &scratch, "test").unwrap();
        }
        let mut paths = Vec::new();
        rebuilt.walk(&[], &mut |p, _| paths.push(rootfs::join(p)));
        assert_eq!(paths, ["", "d", "d/new"]);
        assert_eq!(rebuilt.read_file("/d/new", 10).unwrap(), b"z");
    }

    #[test]
    fn zstd_layers_are_read() {
        let tar_bytes = one_file_tar("etc/zstd", b"hello");
        let compressed = ruzstd::encoding::compress_to_vec(&tar_bytes[..], ruzstd::encoding::CompressionLevel::Fastest);
        let scratch_dir = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        let stream = decompress(io::Cursor::new(compressed)).unwrap();
        apply(&mut t, stream, &Scratch::new(scratch_dir.path()), "zstd").unwrap();
        assert_eq!(t.read_file("/etc/zstd", 10).unwrap(), b"hello");
    }

    #[test]
    fn hostile_entries_stay_inside_the_tree() {
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            let mut h = Header::new_gnu();
            h.set_entry_type(EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "etc", "/").unwrap();
            let mut h = Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            // Written raw: the tar crate refuses `..` in paths it is given.
            let name = b"../../../escape";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, &b"bad"[..]).unwrap();
            b.finish().unwrap();
        }
        let scratch_dir = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        apply(&mut t, &bytes[..], &Scratch::new(scratch_dir.path()), "evil").unwrap();
        assert_eq!(t.read_file("/escape", 10).unwrap(), b"bad");
        assert_eq!(t.read_file("/etc/etc/escape", 10).unwrap(), b"bad");
    }

    /// The slow reproducers of `fuzz/regressions/layer_tar/`: each unpacks to what it says.
    /// (How the time grows with their size is `cargo bench -p kiln --bench layers`.)
    #[test]
    fn slow_layer_reproducers_unpack_correctly() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/layer_tar/");
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(scratch_dir.path());
        let unpack = |name: &str| {
            let blob = std::fs::File::open(format!("{dir}{name}")).unwrap();
            let mut t = Tree::new();
            apply(&mut t, decompress(blob).unwrap(), &scratch, name).unwrap();
            t
        };
        let t = unpack("slow-deep-path-1600.tar.gz");
        assert!(t.get(&rootfs::clean(&format!("{}f", "a/".repeat(1600)))).is_some());
        let t = unpack("slow-deep-paths-20x1600.tar.gz");
        let bottom = rootfs::clean(&"a/".repeat(1600));
        let Some(Node { kind: Kind::Dir(files), .. }) = t.get(&bottom) else { panic!("the deep directory") };
        assert_eq!(files.len(), 20);
        // The markers come after the files, so they hide nothing of this layer.
        let t = unpack("slow-opaque-markers-1000.tar.gz");
        let Some(Node { kind: Kind::Dir(files), .. }) = t.get(&rootfs::clean("d")) else { panic!("d") };
        assert_eq!(files.len(), 1000);
        let t = unpack("slow-whiteouts-10000.tar.gz");
        let Kind::Dir(top) = &t.root().kind else { panic!("the root") };
        assert!(top.is_empty(), "every directory was whited out: {:?}", top.keys().take(3).collect::<Vec<_>>());
    }

    #[test]
    fn an_entry_deeper_than_linux_can_name_is_refused() {
        // A GNU long name of 4,095 bytes (2,047 levels): its record fits PATH_MAX with its
        // NUL, but the absolute path is one byte too long. (Longer records are refused
        // before they are read: `a_long_name_record_past_path_max_is_refused_before_it_is_read`.)
        let bytes = one_file_tar(&format!("{}f", "a/".repeat(2047)), b"");
        let scratch_dir = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        let err = apply(&mut t, &bytes[..], &Scratch::new(scratch_dir.path()), "sha256:deep").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sha256:deep"), "{text}");
        assert!(text.contains("more than the 4095 Linux accepts"), "{text}");
        assert!(text.len() < 400, "the entry is shortened in the message: {text}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn expected(blob: &[u8], tar: &[u8]) -> Expected {
        Expected { digest: Digest::of(blob), size: blob.len() as u64, diff_id: Some(Digest::of(tar)) }
    }

    #[test]
    fn a_blob_is_checked_against_its_descriptor_and_diff_id_while_it_streams() {
        let tar = one_file_tar("etc/motd", b"hello");
        let blob = gzip(&tar);
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(scratch_dir.path());
        let apply_to_new = |blob: &[u8], expected: &Expected| {
            let mut t = Tree::new();
            apply_blob(&mut t, blob, expected, &scratch, "test").map(|()| t)
        };
        let good = expected(&blob, &tar);
        let t = apply_to_new(&blob, &good).unwrap();
        assert_eq!(t.read_file("/etc/motd", 10).unwrap(), b"hello");

        let mismatch = |result: Result<Tree, LayerError>| match result {
            Err(LayerError::Damaged { mismatch, .. }) => mismatch,
            other => panic!("not damaged: {:?}", other.map(|_| ())),
        };
        // One byte flipped near the end (in the gzip trailer: the tar still applies).
        let mut flipped = blob.clone();
        let at = flipped.len() - 2;
        flipped[at] ^= 0xff;
        assert_eq!(mismatch(apply_to_new(&flipped, &good)), Mismatch::Digest { actual: Digest::of(&flipped) });
        // Flipped in the middle: the tar breaks, and the digest is what is reported.
        let mut broken = blob.clone();
        let at = broken.len() / 2;
        broken[at] ^= 0xff;
        assert!(matches!(mismatch(apply_to_new(&broken, &good)), Mismatch::Digest { .. }));
        // Longer or shorter than the descriptor.
        let mut longer = blob.clone();
        longer.extend([0; 10]);
        assert_eq!(
            mismatch(apply_to_new(&longer, &good)),
            Mismatch::Size { expected: good.size, actual: good.size + 1 }
        );
        let shorter = &blob[..blob.len() - 1];
        assert!(matches!(mismatch(apply_to_new(shorter, &good)), Mismatch::Size { .. }));
        // The right blob, but not the tar the config lists.
        let wrong_diff = Expected { diff_id: Some(Digest::of(b"another tar")), ..good.clone() };
        let Mismatch::DiffId { actual, .. } = mismatch(apply_to_new(&blob, &wrong_diff)) else { panic!("diff_id") };
        assert_eq!(actual, Digest::of(&tar), "the diff_id covers the whole tar, past its end marker");
        let text =
            LayerError::Damaged { digest: good.digest.clone(), mismatch: Mismatch::Digest { actual } }.to_string();
        assert!(
            text.starts_with(&format!("layer {} is damaged: its content has digest sha256:", good.digest)),
            "{text}"
        );
    }

    #[test]
    fn a_gzip_blob_of_several_members_is_read_whole() {
        // As `cat a.gz b.gz` makes, and Go's gzip reader reads.
        let first = one_file_tar("a", b"first");
        let second = one_file_tar("b", b"second");
        // The first tar without its end marker, so that the second's entries follow.
        let first = &first[..first.len() - 1024];
        let tar: Vec<u8> = [first, &second[..]].concat();
        let blob: Vec<u8> = [gzip(first), gzip(&second)].concat();
        let scratch_dir = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        apply_blob(&mut t, &blob[..], &expected(&blob, &tar), &Scratch::new(scratch_dir.path()), "two members")
            .unwrap();
        assert_eq!(t.read_file("/b", 10).unwrap(), b"second");
    }

    #[test]
    fn a_long_name_record_past_path_max_is_refused_before_it_is_read() {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(1 << 40);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        // The header alone: had the record been read, the stream would end early.
        let scratch_dir = tempfile::tempdir().unwrap();
        let err =
            apply(&mut Tree::new(), &h.as_bytes()[..], &Scratch::new(scratch_dir.path()), "sha256:long").unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer sha256:long: a tar entry has a GNU long name of 1099511627776 bytes, more than the 4096 bytes kiln reads; kiln cannot unpack it: the archive is corrupt or was made to exhaust memory"
        );
    }
}
