//! What the files a RUN step writes may come to: the step's layer is bounded by
//! `--max-layer-size` while its programs write, not after they are done.
//!
//! Every file the step creates is tracked by its scratch path, with the apparent size the
//! step gave it: a file it makes, a file it copies on first write, output it sends to a file.
//! Growth is measured as a layer measures it: a write past the end, a `set-size` that
//! extends, a write far past the end of a sparse file all count the bytes between the old
//! end and the new one; rewriting bytes that are already there costs nothing. Growth is
//! added to a running count, and while the count fits, a write costs one hash-map update
//! (no file is asked for its size).
//!
//! When a write would take the count past the limit, it is made exact: the files the
//! tree's changes hold (what the layer would hold: each file once, base files whose
//! metadata changed included), plus tracked files not in the tree that the step can still
//! write (open for writing after being deleted, or output not placed yet). A file the step
//! created and no longer uses (deleted, replaced, renamed over) gives its bytes back then,
//! and is removed from the scratch directory: a step that writes and deletes temporary files
//! is bounded by what it keeps, on the disk as in its layer. Only if the exact count does
//! not fit either is the write refused.
//!
//! A refused write fails with ENOSPC, the error of a full disk: the bound is on all of the
//! step's files together, as a size quota on a build's storage is (Docker's overlay2 on XFS
//! with a project quota reports ENOSPC too), and programs handle a full disk; EFBIG would
//! tell the program that this one file is too large, and it is not. The first refusal is
//! recorded in the step's [`Refusal`], and from then on every growth is refused without a
//! recount: the step will fail, naming the limit, however its programs end.
//!
//! This module never decides what a refusal means to the user, and never removes a file it
//! does not track (a base image's or an earlier step's files are shared with other stages).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::rootfs::{self, Content, Kind, Tree};

/// The first write of a step that did not fit: the path in the tree, as the program named it.
#[derive(Debug, Default)]
pub(crate) struct Refusal(OnceLock<String>);

impl Refusal {
    /// The path whose write was refused first, if one was.
    pub(crate) fn path(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// A write that does not fit in the step's layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// One file this step created.
#[derive(Debug, Default, Clone, Copy)]
struct Tracked {
    /// Its apparent size, bytes: never less than the file's real size.
    size: u64,
    /// Streams open for writing to it: a file deleted while open can still be written.
    writers: usize,
    /// Output being written to it that is not in the tree yet.
    pending: bool,
}

/// The bytes one step's files may come to, and the files it created.
#[derive(Debug)]
pub(crate) struct LayerBudget {
    limit: u64,
    /// At least the sum of the tracked files' sizes; exact right after a recount.
    counted: u64,
    files: HashMap<PathBuf, Tracked>,
    refusal: Arc<Refusal>,
}

impl LayerBudget {
    /// A budget of `limit` bytes that records its first refusal in `refusal`.
    pub(crate) fn new(limit: u64, refusal: Arc<Refusal>) -> Self {
        LayerBudget { limit, counted: 0, files: HashMap::new(), refusal }
    }

    /// Whether the scratch file `file` is one this step created (and may write in place).
    pub(crate) fn owns(&self, file: &Path) -> bool {
        self.files.contains_key(file)
    }

    /// The size this step gave `file` (0 for a file it did not create).
    pub(crate) fn size(&self, file: &Path) -> u64 {
        self.files.get(file).map_or(0, |t| t.size)
    }

    /// Make room for `file` (created by this step, or about to be) to be `size` bytes long;
    /// `shown` is its path in the tree, for the refusal. A file already that long costs
    /// nothing. `tree` is the step's filesystem, read when the count must be made exact.
    pub(crate) fn grow(&mut self, tree: &Tree, file: &Path, size: u64, shown: &str) -> Result<(), Full> {
        let before = self.size(file);
        let growth = size.saturating_sub(before);
        if growth > 0 {
            if self.refusal.path().is_some() {
                return Err(Full);
            }
            if self.counted.saturating_add(growth) > self.limit {
                self.recount(tree, Some(file));
                if self.counted.saturating_add(growth) > self.limit {
                    let _ = self.refusal.0.set(shown.to_string());
                    return Err(Full);
                }
            }
            self.counted += growth;
        }
        self.files.entry(file.to_path_buf()).or_default().size = before.max(size);
        Ok(())
    }

    /// `file` was cut to `size` bytes (`set-size`): what it no longer holds is given back.
    pub(crate) fn truncated(&mut self, file: &Path, size: u64) {
        if let Some(t) = self.files.get_mut(file)
            && size < t.size
        {
            self.counted = self.counted.saturating_sub(t.size - size);
            t.size = size;
        }
    }

    /// A new output file of this step, not in the tree until its program ends.
    pub(crate) fn output_started(&mut self, file: &Path) {
        self.files.insert(file.to_path_buf(), Tracked { size: 0, writers: 0, pending: true });
    }

    /// An output file was placed in the tree (its bytes stay counted).
    pub(crate) fn output_placed(&mut self, file: &Path) {
        if let Some(t) = self.files.get_mut(file) {
            t.pending = false;
        }
    }

    /// A tracked file was removed from the scratch directory: its bytes are given back.
    pub(crate) fn removed(&mut self, file: &Path) {
        if let Some(t) = self.files.remove(file) {
            self.counted = self.counted.saturating_sub(t.size);
        }
    }

    /// A stream writing to `file` was opened.
    pub(crate) fn writer_opened(&mut self, file: &Path) {
        if let Some(t) = self.files.get_mut(file) {
            t.writers += 1;
        }
    }

    /// A stream writing to `file` was closed.
    pub(crate) fn writer_closed(&mut self, file: &Path) {
        if let Some(t) = self.files.get_mut(file) {
            t.writers = t.writers.saturating_sub(1);
        }
    }

    /// Count exactly what the step's files hold now, and remove the files it created and no
    /// longer uses. `keep` is a file about to grow (not in the tree yet, perhaps).
    pub(crate) fn recount(&mut self, tree: &Tree, keep: Option<&Path>) {
        let mut seen = HashSet::new();
        let mut live: HashSet<PathBuf> = HashSet::new();
        let mut total: u64 = 0;
        for changed in &tree.changes().changed {
            let Some(node) = tree.get(&rootfs::clean(changed)) else { continue };
            let Kind::File(data) = &node.kind else { continue };
            // Counted once per file data, as the layer writer writes it once (hardlinks).
            if !seen.insert(Arc::as_ptr(data)) {
                continue;
            }
            let size = match &data.content {
                Content::Scratch(p) => match self.files.get(p) {
                    Some(t) => {
                        live.insert(p.clone());
                        t.size
                    }
                    None => data.len(),
                },
                _ => data.len(),
            };
            total = total.saturating_add(size);
        }
        for (path, t) in &self.files {
            let usable = t.writers > 0 || t.pending || keep == Some(path.as_path());
            if usable && !live.contains(path) {
                total = total.saturating_add(t.size);
                live.insert(path.clone());
            }
        }
        let dead: Vec<PathBuf> = self.files.keys().filter(|p| !live.contains(*p)).cloned().collect();
        for path in dead {
            // Nothing of the step can reach it any more; an error only leaves it for the
            // build's end, when the whole scratch directory goes.
            let _ = std::fs::remove_file(&path);
            self.files.remove(&path);
        }
        self.counted = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{FileData, Meta, Node};

    fn scratch_file(dir: &Path, name: &str, size: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        path
    }

    fn put(tree: &mut Tree, name: &str, file: &Path, size: u64) {
        let data = FileData { content: Content::Scratch(file.to_path_buf()), size };
        tree.insert(&[name.to_string()], Node { meta: Meta::root(0o644, 0), kind: Kind::File(Arc::new(data)) })
            .unwrap();
    }

    #[test]
    fn growth_counts_by_apparent_size_and_rewrites_cost_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = Arc::new(Refusal::default());
        let mut budget = LayerBudget::new(1000, refusal.clone());
        let tree = Tree::new();
        let a = dir.path().join("a");
        budget.grow(&tree, &a, 600, "/a").unwrap();
        // The same bytes written again, and a write inside the file: no growth.
        budget.grow(&tree, &a, 600, "/a").unwrap();
        budget.grow(&tree, &a, 10, "/a").unwrap();
        assert_eq!(budget.counted, 600);
        // A write far past the end (a sparse file) counts every byte up to it. `a` is not in
        // the tree, but it is the file growing: it stays counted.
        assert_eq!(budget.grow(&tree, &a, 1001, "/a"), Err(Full));
        assert_eq!(refusal.path(), Some("/a"));
        // Once refused, every growth is: the step fails anyway.
        assert_eq!(budget.grow(&tree, &dir.path().join("b"), 1, "/b"), Err(Full));
        assert_eq!(refusal.path(), Some("/a"), "the first refusal is the one reported");
    }

    #[test]
    fn a_recount_gives_back_what_the_step_deleted_and_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = Arc::new(Refusal::default());
        let mut budget = LayerBudget::new(1000, refusal.clone());
        let mut tree = Tree::new();
        let a = scratch_file(dir.path(), "a", 600);
        budget.grow(&tree, &a, 600, "/a").unwrap();
        put(&mut tree, "a", &a, 0);
        let b = scratch_file(dir.path(), "b", 0);
        // /a is in the tree: 600 + 600 does not fit.
        assert_eq!(budget.grow(&tree, &b, 600, "/b"), Err(Full));
        assert_eq!(refusal.path(), Some("/b"));

        let mut budget = LayerBudget::new(1000, Arc::new(Refusal::default()));
        budget.grow(&tree, &a, 600, "/a").unwrap();
        tree.remove(&["a".to_string()]);
        budget.grow(&tree, &b, 600, "/b").unwrap();
        assert_eq!(budget.counted, 600, "the deleted file gave its bytes back");
        assert!(!a.exists(), "and is gone from the scratch directory");
        assert!(b.exists());
    }

    #[test]
    fn open_writers_and_pending_output_stay_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut budget = LayerBudget::new(1000, Arc::new(Refusal::default()));
        let tree = Tree::new();
        let (open, output) = (scratch_file(dir.path(), "open", 0), scratch_file(dir.path(), "out", 0));
        budget.grow(&tree, &open, 400, "/open").unwrap();
        budget.writer_opened(&open);
        budget.output_started(&output);
        budget.grow(&tree, &output, 400, "/out").unwrap();
        budget.recount(&tree, None);
        assert_eq!(budget.counted, 800, "neither is in the tree, both can still be written");
        assert!(open.exists() && output.exists());
        // Closed and placed nowhere: given back and removed.
        budget.writer_closed(&open);
        budget.recount(&tree, None);
        assert_eq!(budget.counted, 400);
        assert!(!open.exists());
        // Truncation gives back at once.
        budget.truncated(&output, 100);
        assert_eq!(budget.counted, 100);
    }

    #[test]
    fn hardlinked_names_count_once_and_base_files_count_by_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut budget = LayerBudget::new(u64::MAX, Arc::new(Refusal::default()));
        let mut tree = Tree::new();
        let a = scratch_file(dir.path(), "a", 300);
        budget.grow(&tree, &a, 300, "/a").unwrap();
        put(&mut tree, "a", &a, 0);
        let node = tree.get(&["a".to_string()]).unwrap().clone();
        tree.insert(&["link".to_string()], node).unwrap();
        // A base file whose mode changed is in the layer too, at its size on disk.
        let base = scratch_file(dir.path(), "base", 50);
        put(&mut tree, "base", &base, 50);
        budget.recount(&tree, None);
        assert_eq!(budget.counted, 350);
        assert!(base.exists(), "a file the step did not create is never removed");
    }
}
