//! Cache keys: what a step's result depends on, hashed, so a step runs again exactly when
//! one of its inputs changed; and the RUN seed, derived from the step the same way.
//!
//! Every hash here is sha256 over a specified encoding, never the standard library's
//! `DefaultHasher` (which may change between Rust releases): keys and seeds must be the same
//! for every build of kiln from the same source, or the cache and the images would change
//! with the toolchain.

use kiln_ir::{CopySource, Instruction, Op};
use oci_spec::image::MediaType;
use sha2::{Digest as _, Sha256};

use super::error::SolveError;
use super::images::Referent;
use super::{SolveRequest, Solver, StageOut};
use crate::cache::{Entry, Key};
use crate::layer;
use crate::rootfs::Tree;
use crate::store::{self, Digest};

/// Bump when what a step produces changes for the same inputs (layer format, COPY or RUN
/// semantics), so that no cache keeps results of the old behaviour.
const CACHE_FORMAT: &[u8] = b"kiln-cache-1";

pub(super) fn root_key(input: &SolveRequest<'_>) -> Key {
    static SHELL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let shell = SHELL.get_or_init(|| crate::wasm::sha256_hex(crate::executor::wasi::program::KILN_SHELL));
    let epoch = input.epoch.map(|e| e.to_string()).unwrap_or_default();
    Key::of(&[
        CACHE_FORMAT,
        env!("CARGO_PKG_VERSION").as_bytes(),
        shell.as_bytes(),
        input.frontend_digest.as_bytes(),
        input.platform.as_bytes(),
        epoch.as_bytes(),
    ])
}

impl Solver<'_> {
    /// The step's cache key: the stage's key so far, the instruction, for RUN the executor's
    /// tag (empty by default), and for COPY/ADD what
    /// it copies. That is, from the context: the files it takes, copied into an empty tree
    /// (paths, modes, owners, bytes; the stage's own files are fixed by the key so far); from
    /// a stage: that stage's key; from an image: its manifest. None of it needs the stage's
    /// files, so a cached step never unpacks them.
    pub(in crate::solver) fn step_key(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        results: &mut [Option<StageOut>],
    ) -> Result<Key, SolveError> {
        let op = serde_json::to_vec(&instruction.op)?;
        let mut key = out.key.then(&[&op, instruction.created_by.as_bytes()]);
        let tag = self.input.executor.cache_tag();
        if matches!(instruction.op, Op::Run(_)) && !tag.is_empty() {
            // Which programs may run changes what a step makes (see `Executor::cache_tag`).
            key = key.then(&[b"executor", tag.as_bytes()]);
        }
        let Op::Copy(c) = &instruction.op else { return Ok(key) };
        // Where the COPY reads: an image is keyed by its manifest, a stage by its key, and
        // local files (the context, a directory named with --build-context) by what it takes.
        let source_image = match &c.from {
            CopySource::Image(reference) => match self.source_of(reference)? {
                Referent::Image(loaded) => Some(loaded),
                Referent::Directory(..) => None,
            },
            _ => None,
        };
        let source: Vec<u8> = match (&c.from, source_image) {
            (CopySource::Stage(i), _) => results
                .get(*i as usize)
                .and_then(|r| r.as_ref())
                .ok_or_else(|| SolveError::internal("stage order"))?
                .key
                .as_str()
                .as_bytes()
                .to_vec(),
            (_, Some(loaded)) => serde_json::to_vec(&self.image(&loaded, &self.platforms(None, false))?.manifest)?,
            (_, None) => {
                let mut probe = StageOut {
                    tree: Tree::new(),
                    config: out.config.clone(),
                    layers: Vec::new(),
                    key: out.key.clone(),
                    lazy_base: None,
                    pending: Vec::new(),
                };
                // --chown by name reads the stage's /etc/passwd and /etc/group.
                let by_name = c.chown.as_deref().is_some_and(|o| !o.chars().all(|ch| ch.is_ascii_digit() || ch == ':'));
                if by_name {
                    self.ready(out)?;
                    probe.tree = out.tree.clone();
                    probe.tree.forget_changes();
                }
                self.copy(&mut probe, c, results)?;
                let changes = probe.tree.take_changes();
                layer::changes_key(&probe.tree, &changes, Some(self.layer_epoch()))?
                    .map(|d| d.as_str().as_bytes().to_vec())
                    .unwrap_or_default()
            }
        };
        Ok(key.then(&[b"copy-source", &source]))
    }

    /// Take a cached step's result: its config, and its layer (applied to the files when a
    /// later step needs them).
    pub(in crate::solver) fn reuse(&self, out: &mut StageOut, entry: Entry) -> Result<(), SolveError> {
        if let Some(layer) = &entry.layer {
            let digest = Digest::parse(&layer.digest)?;
            out.layers.push(store::descriptor(MediaType::ImageLayerGzip, &digest, layer.size));
            out.pending.push(layer.clone());
        }
        out.config = entry.config;
        Ok(())
    }
}

/// The seed of a RUN step's random numbers: the step's text, argv, working directory and
/// line, so two identical steps in different places differ, and a build repeated gives the
/// same numbers. sha256 over length-prefixed fields: a specified encoding that no toolchain
/// update changes.
pub(super) fn run_seed(created_by: &str, argv: &[String], cwd: &str, line: u32) -> u64 {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(created_by.as_bytes());
    field(&(argv.len() as u64).to_le_bytes());
    for arg in argv {
        field(arg.as_bytes());
    }
    field(cwd.as_bytes());
    field(&line.to_le_bytes());
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
}
