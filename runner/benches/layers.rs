//! Layer unpacking benchmark: how the cost of applying a base-image layer grows with the
//! shapes a hostile layer can take (the slow reproducers in `fuzz/regressions/layer_tar/`).
//!
//! For each shape, the layer is applied at size N and 2N, and the figure that matters is the
//! ratio of the two times: about 2 means linear, 4 quadratic, 8 cubic. Ratios measured side
//! by side in one run hold on a shared, noisy machine where absolute times do not. An
//! ordinary layer of flat files is the baseline.
//!
//! Run with `cargo bench -p kiln --bench layers`; `KILN_BENCH_SCALE=2` doubles every size but
//! the depths, which PATH_MAX bounds.

use std::time::{Duration, Instant};

use kiln::layer;
use kiln::rootfs::{Tree, clean};
use kiln::scratch::Scratch;
use tar::{EntryType, Header};

/// An uncompressed tar of empty entries; long names become GNU long-name records.
fn layer(entries: &[(String, EntryType)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut header = Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(if *kind == EntryType::Directory { 0o755 } else { 0o644 });
        header.set_size(0);
        header.set_mtime(0);
        builder.append_data(&mut header, name, &[][..]).expect("append to an in-memory tar");
    }
    builder.into_inner().expect("finish an in-memory tar")
}

fn flat(n: usize) -> Vec<(String, EntryType)> {
    (0..n).map(|i| (format!("f{i}"), EntryType::Regular)).collect()
}

fn deep(depth: usize, files: usize) -> Vec<(String, EntryType)> {
    (0..files).map(|i| (format!("{}f{i}", "a/".repeat(depth)), EntryType::Regular)).collect()
}

fn opaque(n: usize) -> Vec<(String, EntryType)> {
    let mut entries = vec![("d".to_string(), EntryType::Directory)];
    entries.extend((0..n).map(|i| (format!("d/f{i}"), EntryType::Regular)));
    entries.extend((0..n).map(|_| ("d/.wh..wh..opq".to_string(), EntryType::Regular)));
    entries
}

fn whiteouts(n: usize) -> Vec<(String, EntryType)> {
    let mut entries: Vec<_> = (0..n).map(|i| (format!("f{i}"), EntryType::Directory)).collect();
    entries.extend((0..n).map(|i| (format!(".wh.f{i}"), EntryType::Regular)));
    entries
}

/// Apply `blob` to an empty tree; the time taken, and the tree for a sanity check.
fn apply(blob: &[u8], scratch: &Scratch) -> (Duration, Tree) {
    let mut tree = Tree::new();
    let start = Instant::now();
    layer::apply(&mut tree, blob, scratch, "bench").expect("the bench layers are valid");
    (start.elapsed(), tree)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let scale: usize = std::env::var("KILN_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let scratch = Scratch::new(dir.path());
    type Shape = (&'static str, usize, fn(usize) -> Vec<(String, EntryType)>);
    let shapes: [Shape; 5] = [
        ("flat files (baseline)", 20_000, flat),
        ("one entry N deep", 800, |n| deep(n, 1)),
        ("20 entries N deep", 800, |n| deep(n, 20)),
        ("N files, then N opaque markers", 1_000, opaque),
        ("N directories, then N whiteouts", 10_000, whiteouts),
    ];
    println!("{:<34} {:>7} {:>10} {:>7} {:>10} {:>7}", "layer", "N", "time", "2N", "time", "ratio");
    for (name, base, make) in shapes {
        // A path cannot be longer than PATH_MAX (1,600 levels is 3,200 bytes), so the deep
        // shapes keep their size.
        let n = if name.contains("deep") { base } else { base * scale };
        let (small, tree) = apply(&layer(&make(n)), &scratch);
        let (large, _) = apply(&layer(&make(2 * n)), &scratch);
        // A sanity check that the layer did what it says, so a fast wrong answer shows.
        if name.starts_with("one entry") {
            let path = clean(&format!("{}f0", "a/".repeat(n)));
            assert!(tree.get(&path).is_some(), "the deep entry is in the tree");
        }
        if name.contains("whiteouts") {
            assert!(tree.get(&clean("f0")).is_none(), "whiteouts removed their directories");
        }
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
        println!("{name:<34} {n:>7} {:>10} {:>7} {:>10} {ratio:>7.1}", secs(small), 2 * n, secs(large));
    }
}
