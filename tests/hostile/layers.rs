//! Base images whose layers try to reach the host or exhaust the machine: entry names and
//! links aimed outside the root, a directory replaced by a symlink and written through,
//! whiteouts for `..`, duplicates, setuid files, a 10 GB sparse file, decompression bombs,
//! tar records declaring a gigabyte of name, a blob that is not what its digest says, and
//! layout blobs that are symlinks to host files, FIFOs or directories. (Hardlinks out of the
//! root, device nodes and FIFOs in a layer are
//! `run::hostile_hardlinks_are_refused_and_device_nodes_never_reach_the_host`.)

use std::path::Path;
use std::time::{Duration, Instant};

use tar::{EntryType, Header};

use super::Hostile;
use crate::oci;
use crate::run::{layout_with_blob, layout_with_layer};
use crate::support::{DEADLINE, mkfifo, read_string, run_within, sha256_hex, stderr};

/// A tar stream written header by header, so names and links can be anything (the tar
/// crate refuses `..` in the names it is given).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        assert!(name.len() < 100, "{name} fits a plain header");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.push(Self::header(EntryType::Regular, name, mode, data.len() as u64), data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.push(Self::header(EntryType::Directory, name, 0o755, 0), &[])
    }

    fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, name, 0o777, 0);
        assert!(target.len() < 100, "{target} fits a plain header");
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, &[])
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.0);
        bytes.extend_from_slice(&[0; 1024]);
        bytes
    }
}

/// The named context that makes the OCI layout `base` (tag `evil`) the build's `evil-base`.
pub(super) const BASE_CONTEXT: &str = "evil-base=oci-layout://base:evil";

/// The image of the OCI layout `base` (in the sandbox) tagged `evil`, as the command line
/// names it (`kiln run`; a build names it through [`BASE_CONTEXT`]).
fn base_ref() -> &'static str {
    "oci-layout://base:evil"
}

/// A hostile case: an OCI layout `base` holding `layer` (gzipped), and a build on it.
fn on_base(layer: &[u8], steps: &str) -> Hostile {
    let mut h = Hostile::new();
    layout_with_layer(&h.sb.dir.path().join("base"), layer, "evil");
    h.sb.write("ctx/Dockerfile", format!("FROM evil-base\n{steps}"));
    h.seal();
    h
}

#[test]
fn entries_aimed_outside_the_root_land_inside_the_image() {
    let canary = tempfile::tempdir().unwrap();
    let canary_path = canary.path().display().to_string();
    let outside = canary_path.trim_start_matches('/');
    let mut tar = RawTar::default();
    tar.file("../../../escape", 0o644, b"dotdot\n")
        .file("/abs/file", 0o644, b"absolute\n")
        .file(&format!("{canary_path}/secret"), 0o644, b"overwritten\n")
        // Symlinks out of the root, then entries written through them.
        .link(EntryType::Symlink, "out-abs", &canary_path)
        .file("out-abs/planted", 0o644, b"through an absolute link\n")
        .link(EntryType::Symlink, "out-rel", &format!("../../../../../../../..{canary_path}"))
        .file("out-rel/planted2", 0o644, b"through a relative link\n")
        // A directory replaced by a symlink, then written through.
        .dir("etc")
        .file("etc/hostname", 0o644, b"box\n")
        .link(EntryType::Symlink, "etc", &canary_path)
        .file("etc/passwd", 0o644, b"root::0:0::/:/bin/sh\n")
        // Duplicates: the last one wins, as in Docker.
        .file("dup", 0o644, b"one\n")
        .file("dup", 0o644, b"two\n")
        // Whiteouts for `..` and `.` remove nothing.
        .file("keep/file", 0o644, b"kept\n")
        .file("keep/.wh...", 0o644, b"")
        .file("keep/.wh..", 0o644, b"")
        // Setuid and setgid programs.
        .file("bin/su", 0o4755, b"not really su\n")
        .file("bin/wall", 0o2755, b"not really wall\n");
    let h = on_base(&tar.finish(), "COPY Dockerfile /\n");
    std::fs::write(canary.path().join("secret"), "host secret\n").unwrap();
    let out = h.run(&[
        "build",
        "--build-context",
        BASE_CONTEXT,
        "--progress",
        "plain",
        "-t",
        "evil:1",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let root = h.sb.dir.path().join("out");
    assert_eq!(read_string(&root.join("escape")), "dotdot\n");
    assert_eq!(read_string(&root.join("abs/file")), "absolute\n");
    // Inside the image, under the canary's path: not the canary.
    assert_eq!(read_string(&root.join(outside).join("secret")), "overwritten\n");
    assert_eq!(read_string(&root.join(outside).join("planted")), "through an absolute link\n");
    assert_eq!(read_string(&root.join(outside).join("planted2")), "through a relative link\n");
    assert_eq!(read_string(&root.join(outside).join("passwd")), "root::0:0::/:/bin/sh\n");
    assert_eq!(std::fs::read_link(root.join("etc")).unwrap(), canary.path(), "the symlink itself is kept");
    assert_eq!(read_string(&root.join("dup")), "two\n");
    assert_eq!(read_string(&root.join("keep/file")), "kept\n");
    // The host's files are untouched.
    assert_eq!(read_string(&canary.path().join("secret")), "host secret\n");
    assert!(!canary.path().join("planted").exists() && !canary.path().join("passwd").exists());
    // Setuid and setgid bits stay in the image but never reach the host.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(root.join("bin/su")).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::metadata(root.join("bin/wall")).unwrap().permissions().mode() & 0o7777, 0o755);
    assert!(err.contains("wrote 2 setuid or setgid files without those bits (the image keeps them)"), "{err}");
    let image = oci::read(&h.sb.root(), Some("evil:1"));
    let su = image.layers[0].iter().find(|e| e.path == "bin/su").expect("bin/su in the base layer");
    assert_eq!(su.mode & 0o7777, 0o4755);
    h.verify(&["out"]);
}

#[test]
fn hardlinks_to_symlinks_or_outside_are_refused() {
    for (target, shown) in [("lnk", "/lnk"), ("../../../../etc/passwd", "/etc/passwd"), ("missing", "/missing")] {
        let mut tar = RawTar::default();
        tar.link(EntryType::Symlink, "lnk", "/etc/passwd").link(EntryType::Link, "stolen", target);
        let h = on_base(&tar.finish(), "COPY Dockerfile /\n");
        let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "evil:1", "ctx"]);
        h.refused(
            &out,
            &[
                "Dockerfile:1",
                "unpacking the base image oci-layout://base:evil: layer oci-layout://base:evil sha256:",
                &format!("entry stolen: hardlink to {shown} which is not a file"),
                "the build failed; nothing was tagged",
            ],
        );
    }
}

/// A GNU sparse file of `size` bytes whose only data is its last 4 KiB.
fn sparse_layer(size: u64) -> Vec<u8> {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.as_old_mut().name[..6].copy_from_slice(b"sparse");
    let gnu = h.as_gnu_mut().unwrap();
    gnu.sparse[0].set_offset(size - 4096);
    gnu.sparse[0].set_length(4096);
    gnu.set_real_size(size);
    h.set_size(4096);
    let mut tar = RawTar::default();
    tar.push(h, &[b'x'; 4096]);
    tar.finish()
}

#[test]
fn a_10_gb_sparse_file_is_refused_by_default_and_stays_sparse_when_allowed() {
    let h = on_base(&sparse_layer(10 << 30), "COPY Dockerfile /\n");
    let started = Instant::now();
    let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "sparse:1", "ctx"]);
    h.refused(
        &out,
        &[
            "layer oci-layout://base:evil sha256:",
            "unpacks to more than 8 GiB: the limit --max-layer-size is 8 GiB; if this is expected, raise it with --max-layer-size SIZE or KILN_MAX_LAYER_SIZE",
            "nothing was tagged",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(30), "refused before reading: {:?}", started.elapsed());

    // Allowed, it unpacks as a sparse file: the build's scratch space never holds 10 GB.
    let started = Instant::now();
    let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "sparse:2", "--max-layer-size", "16g", "ctx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("a 10 GiB sparse base layer unpacked in {:?}", started.elapsed());
    h.verify(&[]);
}

#[test]
fn decompression_bombs_stop_at_the_layer_limit() {
    use std::io::Write;
    // 512 MiB of zeros in one file. (As a record the tar reader holds in memory, it is refused
    // sooner: `tar_records_declaring_a_gigabyte_are_refused_at_their_header`.)
    let zeros = vec![0u8; 1 << 20];
    for kind in [EntryType::Regular] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut h = RawTar::header(kind, "bomb", 0o644, 512 << 20);
        h.set_cksum();
        gz.write_all(h.as_bytes()).unwrap();
        for _ in 0..512 {
            gz.write_all(&zeros).unwrap();
        }
        gz.write_all(&[0; 1024]).unwrap();
        let blob = gz.finish().unwrap();
        assert!(blob.len() < 2 << 20, "a bomb: {} bytes compressed", blob.len());
        let mut h = Hostile::new();
        // The diff_id is never reached: the layer is refused while it is read.
        layout_with_blob(&h.sb.dir.path().join("base"), &blob, &"0".repeat(64), "evil");
        h.sb.write("ctx/Dockerfile", "FROM evil-base\nCOPY Dockerfile /\n");
        h.seal();
        let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "bomb:1", "--max-layer-size", "128m", "ctx"]);
        h.refused(&out, &["unpacks to more than 128 MiB: the limit --max-layer-size is 128 MiB", "nothing was tagged"]);
    }
}

#[test]
fn a_blob_that_is_not_what_its_digest_says_is_refused() {
    let mut tar = RawTar::default();
    tar.file("etc/motd", 0o644, b"hello\n");
    let mut h = Hostile::new();
    let layout = h.sb.dir.path().join("base");
    layout_with_layer(&layout, &tar.finish(), "evil");
    // Flip a byte of the layer (the largest blob that is not JSON).
    let blobs = layout.join("blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
        .unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, &bytes).unwrap();
    h.sb.write("ctx/Dockerfile", "FROM evil-base\nCOPY Dockerfile /\n");
    h.seal();
    let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "damaged:1", "ctx"]);
    let name = layer.file_name().unwrap().to_string_lossy().into_owned();
    h.refused(
        &out,
        &[
            "Dockerfile:1",
            &format!("blob sha256:{name} has digest sha256:"),
            "the store or the image is damaged",
            "nothing was tagged",
        ],
    );
    let index = std::fs::read_to_string(h.sb.root().join("index.json")).unwrap_or_default();
    assert!(!index.contains("damaged"), "nothing tagged: {index}");
    assert!(!h.sb.root().join("blobs/sha256").join(&name).exists(), "the damaged blob is not in the store");
}

/// A gzipped layer whose first header is a `kind` record declaring `size` bytes, followed by
/// that many bytes of `a` (a name that long, in earnest), then one file.
fn record_bomb(kind: EntryType, size: u64) -> Vec<u8> {
    use std::io::Write;
    let mut h = RawTar::header(kind, "././@LongLink", 0o644, 0);
    h.set_size(size);
    h.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(h.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        gz.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    gz.write_all(&vec![0; (size.next_multiple_of(512) - size) as usize]).unwrap();
    let mut tail = RawTar::default();
    tail.file("f", 0o644, b"");
    gz.write_all(&tail.finish()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn tar_records_declaring_a_gigabyte_are_refused_at_their_header() {
    // The tar reader holds a GNU long name, long link or PAX header whole in memory; a
    // gigabyte of one once cost ten gigabytes. Each is refused at its header, whatever the
    // layer limit, before its bytes are read.
    for (kind, record, bound) in [
        (EntryType::GNULongName, "a GNU long name", 4096),
        (EntryType::GNULongLink, "a GNU long link", 4096),
        (EntryType::XHeader, "a PAX extended header", 1 << 20),
    ] {
        let blob = record_bomb(kind, 1 << 30);
        let mut h = Hostile::new();
        layout_with_blob(&h.sb.dir.path().join("base"), &blob, &"0".repeat(64), "evil");
        h.sb.write("ctx/Dockerfile", "FROM evil-base\nCOPY Dockerfile /\n");
        h.seal();
        let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "bomb:1", "ctx"]);
        h.refused(
            &out,
            &[
                "Dockerfile:1",
                &format!("layer {} sha256:", base_ref()),
                &format!(
                    ": a tar entry has {record} of 1073741824 bytes, more than the {bound} bytes kiln reads; kiln cannot unpack it: the archive is corrupt or was made to exhaust memory"
                ),
                "nothing was tagged",
            ],
        );
    }
}

/// A case whose base layout's layer blob is replaced by what `replace` makes of its path.
fn with_layer_blob_replaced(replace: impl FnOnce(&Path, &Path)) -> (Hostile, String) {
    let mut tar = RawTar::default();
    tar.file("etc/motd", 0o644, b"hello\n");
    let mut h = Hostile::new();
    let layout = h.sb.dir.path().join("base");
    layout_with_layer(&layout, &tar.finish(), "evil");
    let layer = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
        .unwrap();
    std::fs::remove_file(&layer).unwrap();
    replace(&layer, h.canary());
    h.sb.write("ctx/Dockerfile", "FROM evil-base\nCOPY Dockerfile /\n");
    h.seal();
    let name = layer.file_name().unwrap().to_string_lossy().into_owned();
    (h, name)
}

#[test]
fn a_layout_blob_that_is_a_symlink_fifo_or_directory_is_refused_without_reading_it() {
    let secret_digest = sha256_hex(b"host secret\n");
    type Replace = fn(&Path, &Path);
    let cases: [(&str, Replace); 3] = [
        ("a symbolic link", |blob, canary| std::os::unix::fs::symlink(canary.join("secret"), blob).unwrap()),
        ("a FIFO", |blob, _| mkfifo(blob)),
        ("a directory", |blob, _| std::fs::create_dir(blob).unwrap()),
    ];
    for (kind, replace) in cases {
        let (h, name) = with_layer_blob_replaced(replace);
        // Nobody writes the FIFO: opening it the usual way would wait forever.
        let mut cmd = h.kiln();
        cmd.args(["build", "--build-context", BASE_CONTEXT, "-t", "linked:1", "ctx"]);
        let (out, _) = run_within(cmd, DEADLINE);
        let err = h.refused(
            &out,
            &[
                "Dockerfile:1",
                &format!("base/blobs/sha256/{name} is {kind}: kiln reads only regular files in an image layout"),
                "nothing was tagged",
            ],
        );
        assert!(!err.contains(&secret_digest), "the digest of a host file was shown:\n{err}");
        // `kiln run` reads the layout without importing it: the same.
        let mut cmd = h.kiln();
        cmd.args(["run", base_ref(), "/bin/true"]);
        let (out, _) = run_within(cmd, DEADLINE);
        let err = h.refused(&out, &[&format!("base/blobs/sha256/{name} is {kind}")]);
        assert!(!err.contains(&secret_digest), "the digest of a host file was shown:\n{err}");
    }
}
