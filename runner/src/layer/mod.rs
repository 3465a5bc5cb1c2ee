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

use std::io::{self, Read};

use crate::store::{Digest, StoreError};

mod apply;
mod headers;
mod write;

pub use apply::{apply, apply_at, apply_blob};
pub use write::{changes_key, write_changes};

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

/// Decompress a layer blob by sniffing its first bytes (gzip, zstd, or plain tar); see
/// [`crate::compression`].
///
/// # Errors
/// As [`crate::compression::decompress`].
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    crate::compression::decompress(reader, crate::compression::Family::Layer)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use flate2::Compression;
    use tar::{EntryType, Header};

    use super::*;
    use crate::rootfs::{self, Content, FileData, Kind, Meta, Node, Tree};
    use crate::scratch::Scratch;
    use crate::store::Store;

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
