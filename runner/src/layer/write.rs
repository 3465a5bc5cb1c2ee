//! Writing a tree's changes as a layer: a deterministic tar (entries in path order, parents
//! first, no user or group names, mtimes clamped), gzip'd straight into the store with both
//! digests computed while streaming; and the digest the same tar would have, for cache keys,
//! without writing it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use super::{LAYER_GZIP_LEVEL, LayerError, LayerInfo, io_context};
use crate::rootfs::{self, Changes, FileData, Kind, Meta, Node, Tree};
use crate::store::{Digest, HashingWriter, Store};

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
