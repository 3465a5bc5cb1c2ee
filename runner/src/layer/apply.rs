//! Applying a layer tar to a tree, OCI-style (whiteouts remove what lower layers had, other
//! entries replace), with file contents written to scratch files and nothing named by an
//! entry ever touching a host path; and a layer blob checked as it streams against its
//! descriptor and diff_id.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::sync::Arc;

use tar::EntryType;

use super::headers;
use super::{Expected, LayerError, Mismatch, decompress, io_context};
use crate::rootfs::{self, Content, FileData, Kind, Meta, Node, Tree};
use crate::scratch::Scratch;
use crate::store::HashingReader;

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
