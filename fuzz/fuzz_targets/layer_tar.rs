//! Layer blobs as a registry could serve them: arbitrary bytes are decompressed (gzip, zstd
//! or plain, by their first bytes) and applied to a fresh tree, twice, so the second pass
//! meets what the first created (replacements, whiteouts, opaque directories).
//!
//! Input that is not gzip or zstd is a plain tar, and the harness first gives each of its
//! header blocks a valid checksum (the tar reader refuses others, and a mutation almost never
//! gets one right): that is what lets the fuzzer reach entry handling at all.
//!
//! Errors are fine; panics are bugs. After each input the security invariants are checked:
//! - every path of the tree is made of plain names (no empty, `.` or `..` component, no `/`);
//! - every file's content is a numbered file directly in the scratch directory;
//! - nothing appeared on the host but those files: the scratch directory holds only regular
//!   `f<n>` files, and its parent (a directory of this process's own) holds only it.
#![no_main]

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::layer;
use kiln::scratch::Scratch;
use kiln::rootfs::{Content, Kind, Tree};
use libfuzzer_sys::fuzz_target;

/// The most decompressed bytes one pass reads (and the scratch's layer limit): a gzip or zstd
/// bomb stops here.
const MAX_LAYER: u64 = 64 << 20;

/// Tar's block size.
const BLOCK: usize = 512;

/// This process's own directory in the system's temporary directory. The fuzzer exits without
/// running destructors (and a crash never runs them), so the directory is named by the
/// process ID and those of processes that are gone are removed here instead.
fn process_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    if Path::new("/proc/self").is_dir() {
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix(prefix).filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create this process's temporary directory");
    dir
}

/// This process's directory, holding only `scratch/`.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = process_dir("kiln-fuzz-layer-");
        fs::create_dir(dir.join("scratch")).expect("create the scratch directory");
        dir
    })
}

/// Remove what the last input extracted.
fn empty(dir: &Path) {
    for entry in fs::read_dir(dir).expect("read the scratch directory").flatten() {
        let path = entry.path();
        let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
    }
}

/// A tar numeric field: octal text, or base-256 when the high bit of its first byte is set.
fn number(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[field.len() - 8..].iter().fold(0, |n, b| n << 8 | u64::from(*b));
    }
    let text = String::from_utf8_lossy(field);
    u64::from_str_radix(text.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap_or(0)
}

/// Walk a plain tar as the reader does (a header, then its data rounded up to whole blocks)
/// and give every header block a valid checksum.
fn fix_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while let Some(end) = at.checked_add(BLOCK)
        && let Some(block) = tar.get_mut(at..end)
    {
        at += BLOCK;
        if block.iter().all(|b| *b == 0) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let data = number(&block[124..136]).div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64);
        at = at.saturating_add(usize::try_from(data).unwrap_or(usize::MAX));
    }
}

fn is_scratch_name(name: &str) -> bool {
    name.strip_prefix('f').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn check_host(base: &Path, scratch: &Path) {
    let names: Vec<_> = fs::read_dir(base).expect("read the base directory").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["scratch"], "applying a layer created something beside the scratch directory");
    for entry in fs::read_dir(scratch).expect("read the scratch directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("file type");
        assert!(is_scratch_name(&name) && kind.is_file(), "unexpected {name:?} ({kind:?}) in the scratch directory");
    }
}

fn check_tree(tree: &Tree, scratch: &Path) {
    tree.walk(&[], &mut |path, node| {
        for c in path {
            assert!(!c.is_empty() && c != "." && c != ".." && !c.contains('/'), "bad component {c:?} in {path:?}");
        }
        if let Kind::File(data) = &node.kind {
            match &data.content {
                Content::Scratch(file) => {
                    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    assert!(
                        file.parent() == Some(scratch) && is_scratch_name(&name),
                        "{path:?} has its content outside the scratch directory: {file:?}"
                    );
                    let size = fs::metadata(file).map(|m| m.len()).expect("a scratch file of the tree exists");
                    assert_eq!(size, data.size, "{path:?}: size recorded and on disk differ");
                }
                other => panic!("{path:?}: a layer entry whose content is not a scratch file: {other:?}"),
            }
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let scratch_dir: PathBuf = base.join("scratch");
    empty(&scratch_dir);
    let scratch = Scratch::with_layer_limit(&scratch_dir, MAX_LAYER);
    let mut blob = data.to_vec();
    if !blob.starts_with(&[0x1f, 0x8b]) && !blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        fix_checksums(&mut blob);
    }
    let mut tree = Tree::new();
    for pass in ["lower", "upper"] {
        let Ok(stream) = layer::decompress(Cursor::new(blob.clone())) else { break };
        if layer::apply(&mut tree, stream.take(MAX_LAYER), &scratch, pass).is_err() {
            break;
        }
    }
    check_tree(&tree, &scratch_dir);
    check_host(base, &scratch_dir);
});
