//! The adversarial corpus: inputs written to hurt the machine or the store — base-image
//! layers, build contexts, build files, archives, ignore files, programs a RUN step starts,
//! registries that send without end or stall — each checked for the exact error a user sees,
//! for nothing changed outside the build's own directories, and for a store that is still
//! whole.
//! outputs aimed at the store, the context or the user's files —
//! each checked for the exact error a user sees, for nothing changed outside the build's own
//! directories, and for a store that is still whole.
//!
//! Blobs of the store changed after kiln wrote them are `blobs`: a build, a run or an export
//! that reads one refuses it, naming it.
//!
//! Hostile frontends (endless loops, traps, huge allocations, reads of host files, sockets,
//! malformed graphs) have their suite in `tests/all/sandbox.rs`, next to the frontend
//! sandbox they test; base-image hardlinks and device nodes are in `tests/all/run.rs`.
//!
//! Every case runs through [`Hostile`]: a sandbox with a store, a canary directory outside it
//! that hostile inputs aim at, and a private TMPDIR that must stay empty.

mod blobs;
mod buildfiles;
mod contexts;
mod guests;
mod layers;
mod outputs;
mod registries;
mod stores;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::oci::{assert_no_build_dirs, check_store};
use crate::support::{Sandbox, stderr};

/// What one path looked like: type, size, permissions and modification time.
type Snapshot = BTreeMap<PathBuf, (String, u64, u32, i128)>;

/// A sandbox for one hostile case.
pub struct Hostile {
    pub sb: Sandbox,
    canary: tempfile::TempDir,
    before: Option<(Snapshot, Snapshot)>,
}

impl Hostile {
    pub fn new() -> Self {
        let canary = tempfile::tempdir().expect("canary dir");
        std::fs::write(canary.path().join("secret"), "host secret\n").unwrap();
        std::fs::create_dir(canary.path().join("dir")).unwrap();
        std::fs::write(canary.path().join("dir/file"), "host file\n").unwrap();
        let sb = Sandbox::new();
        std::fs::create_dir_all(sb.dir.path().join("tmpdir")).unwrap();
        Hostile { sb, canary, before: None }
    }

    /// A directory outside the sandbox that hostile inputs point at; it must never change.
    pub fn canary(&self) -> &Path {
        self.canary.path()
    }

    /// Record what the sandbox (minus the store) and the canary hold: call when the inputs
    /// are written, before kiln runs.
    pub fn seal(&mut self) {
        self.before = Some((snapshot(self.sb.dir.path()), snapshot(self.canary.path())));
    }

    /// `kiln` with the sandbox's store and a private, watched TMPDIR.
    pub fn kiln(&self) -> Command {
        let mut cmd = self.sb.kiln();
        cmd.env("TMPDIR", self.sb.dir.path().join("tmpdir"));
        cmd
    }

    /// Run `kiln ARGS` and capture it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.kiln().args(args).output().expect("kiln runs")
    }

    /// Assert `out` failed and its error contains every one of `needles`; then [`Self::verify`].
    /// Returns stderr.
    pub fn refused(&self, out: &Output, needles: &[&str]) -> String {
        let err = stderr(out);
        assert!(!out.status.success(), "kiln should have failed; stderr:\n{err}");
        for needle in needles {
            assert!(err.contains(needle), "the error should contain {needle:?}; stderr:\n{err}");
        }
        assert!(!err.contains("panicked"), "kiln panicked:\n{err}");
        self.verify(&[]);
        err
    }

    /// Nothing outside the store (and the `allowed` paths, relative to the sandbox) changed,
    /// the canary is untouched, TMPDIR is empty, no build directory was left behind, and the
    /// store is whole.
    pub fn verify(&self, allowed: &[&str]) {
        let (sandbox_before, canary_before) = self.before.as_ref().expect("seal() was called before kiln ran");
        let keep = |snap: Snapshot| -> Snapshot {
            snap.into_iter().filter(|(p, _)| !allowed.iter().any(|a| p.starts_with(a))).collect()
        };
        assert_eq!(
            keep(snapshot(self.sb.dir.path())),
            keep(sandbox_before.clone()),
            "something outside the store changed in the sandbox"
        );
        assert_eq!(&snapshot(self.canary.path()), canary_before, "the canary directory outside the build changed");
        let left: Vec<_> = std::fs::read_dir(self.sb.dir.path().join("tmpdir")).unwrap().flatten().collect();
        assert!(left.is_empty(), "kiln left files in TMPDIR: {left:?}");
        if self.sb.root().join("index.json").is_file() {
            check_store(&self.sb.root());
            assert_no_build_dirs(&self.sb.root());
        }
    }
}

/// Every path under `root` except the store and the watched TMPDIR (checked apart).
fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with("store") || rel.starts_with("tmpdir") || rel.starts_with("docker-config") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            use std::os::unix::fs::MetadataExt;
            let kind = format!("{:?}", meta.file_type());
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            out.insert(rel, (kind, if meta.is_dir() { 0 } else { meta.len() }, meta.mode(), mtime));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}
