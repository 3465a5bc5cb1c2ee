//! One stage: its base, then each instruction in turn, from the cache where a step's key
//! has a result, else applied to the stage's files and config; every step that changed files
//! becomes one layer written straight into the store.

use std::path::Path;
use std::sync::atomic::Ordering;

use kiln_ir::{Base, ConfigChange, Instruction, Op, Stage};
use oci_spec::image::MediaType;

use super::error::{Cause, SolveError};
use super::images::Referent;
use super::plan::{replaced_by, stage_label};
use super::{Solver, StageOut, created};
use crate::cache::{CachedLayer, Entry};
use crate::copy::{self, CopySpec, Origin};
use crate::ignore::Matcher;
use crate::image::{History, ImageConfig};
use crate::layer::{self, LayerError};
use crate::platform::DEFAULT_PATH;
use crate::progress::Progress;
use crate::rootfs::Tree;
use crate::source::named::{ContextValue, NamedContext};
use crate::store::{self, Digest};

impl Solver<'_> {
    pub(in crate::solver) fn stage(
        &self,
        index: usize,
        results: &mut [Option<StageOut>],
    ) -> Result<StageOut, SolveError> {
        let graph = self.input.graph;
        let stage = &graph.stages[index];
        let label = stage_label(graph, index);
        if let Some(named) = replaced_by(stage, self.input.named_contexts) {
            // The stage is the named context, as given: none of its instructions run.
            let text = format!("[{label} 1/1] FROM {} (--build-context)", named.describe());
            let step = self.progress.start(text.clone());
            return match self.named_base(named, stage) {
                Ok(out) => {
                    self.progress.done(step, "");
                    Ok(out)
                }
                Err(e) => {
                    self.progress.failed(step, &e.to_string());
                    Err(e.in_step(&text).at(stage.span))
                }
            };
        }
        let steps = stage.instructions.len() + 1;
        let from_text = stage.text.clone();
        let step = self.progress.start(format!("[{label} 1/{steps}] {from_text}"));
        let mut out = match self.base(stage, results) {
            Ok(out) => out,
            Err(e) => {
                self.progress.failed(step, &e.to_string());
                return Err(e.in_step(&format!("[{label} 1/{steps}] {from_text}")).at(stage.span));
            }
        };
        self.progress.done(step, "");
        // ONBUILD triggers of the base already ran (the frontend inlined them); Docker clears
        // them so they do not fire again for images built on this one.
        out.config.config.on_build.clear();
        if out.config.os == "linux" && out.config.env("PATH").is_none() {
            out.config.set_env("PATH", DEFAULT_PATH);
        }
        let mut cmd_set = false;
        for (i, instruction) in stage.instructions.iter().enumerate() {
            let prefix = format!("[{label} {}/{steps}]", i + 2);
            let text = format!("{prefix} {}", instruction.text);
            if crate::cancel::requested() {
                return Err(SolveError::new(Cause::Interrupted).in_step(&text).at(instruction.span));
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(SolveError::new(Cause::Stopped).in_step(&text).at(instruction.span));
            }
            let fail = |progress: &Progress, step, e: SolveError| {
                progress.failed(step, &e.to_string());
                e.in_step(&text).at(instruction.span)
            };
            let key = match self.step_key(&mut out, instruction, results) {
                Ok(key) => key,
                Err(e) => return Err(fail(self.progress, self.progress.start(text.clone()), e)),
            };
            // Steps that can add a layer are cached; the others only change the config.
            let cacheable = matches!(instruction.op, Op::Run(_) | Op::Copy(_) | Op::Config(ConfigChange::Workdir(_)));
            if cacheable
                && self.input.use_cache
                && let Some(entry) = self.cache.get(&key)
            {
                match self.reuse(&mut out, entry) {
                    Ok(()) => {
                        self.progress.cached(&text);
                        out.key = key;
                        continue;
                    }
                    Err(e) => tracing::warn!("not using a cached result of {text}: {e}"),
                }
            }
            if cacheable && let Err(e) = self.ready(&mut out) {
                return Err(fail(self.progress, self.progress.start(text.clone()), e));
            }
            let step = self.progress.start(text.clone());
            let layers_before = out.layers.len();
            let result = self.instruction(&mut out, instruction, results, &mut cmd_set, &label);
            match result {
                Ok(detail) => self.progress.done(step, &detail),
                Err(e) => return Err(fail(self.progress, step, e)),
            }
            if cacheable {
                let layer = (out.layers.len() > layers_before).then(|| {
                    let descriptor = out.layers.last().expect("a layer was added");
                    CachedLayer {
                        digest: descriptor.digest().to_string(),
                        size: descriptor.size(),
                        diff_id: out.config.rootfs.diff_ids.last().cloned().unwrap_or_default(),
                    }
                });
                self.cache.put(&key, &Entry { config: out.config.clone(), layer });
            }
            out.key = key;
        }
        Ok(out)
    }

    pub(in crate::solver) fn base(&self, stage: &Stage, results: &[Option<StageOut>]) -> Result<StageOut, SolveError> {
        match &stage.base {
            Base::Scratch => Ok(self.scratch_base(stage)),
            Base::Stage(i) => {
                let mut out = results[*i as usize].clone().ok_or_else(|| SolveError::internal("stage order"))?;
                out.tree.forget_changes();
                Ok(out)
            }
            Base::Image(reference) => match self.source_of(reference)? {
                Referent::Image(reference) => self.image_base(&reference, stage),
                Referent::Directory(named, dir) => self.directory_base(named, &dir, stage),
            },
        }
    }

    /// An empty stage for the stage's platform (`FROM scratch`).
    pub(in crate::solver) fn scratch_base(&self, stage: &Stage) -> StageOut {
        let platform = stage.platform.clone().unwrap_or_else(|| self.input.platform.clone());
        let mut parts = platform.split('/');
        let config = ImageConfig {
            os: parts.next().unwrap_or("linux").to_string(),
            architecture: parts.next().unwrap_or("amd64").to_string(),
            variant: parts.next().map(str::to_string),
            ..ImageConfig::default()
        };
        let key = self.root_key.then(&[b"scratch", platform.as_bytes()]);
        StageOut { tree: Tree::new(), config, layers: Vec::new(), key, lazy_base: None, pending: Vec::new() }
    }

    /// A stage on an image: its config and layers now, its files when a step needs them.
    pub(in crate::solver) fn image_base(&self, reference: &str, stage: &Stage) -> Result<StageOut, SolveError> {
        let runs = stage.instructions.iter().any(|i| matches!(i.op, Op::Run(_)));
        let platforms = self.platforms(stage.platform.as_deref(), runs);
        let image = self.image(reference, &platforms)?;
        let manifest = serde_json::to_vec(&image.manifest)?;
        let key = self.root_key.then(&[b"image", &manifest]);
        Ok(StageOut {
            tree: Tree::new(),
            config: image.config.clone(),
            layers: image.manifest.layers().clone(),
            key,
            lazy_base: Some((reference.to_string(), platforms, stage.span)),
            pending: Vec::new(),
        })
    }

    /// A stage on a directory named with `--build-context`: an empty image for the stage's
    /// platform whose first layer holds the directory's files, root-owned, as BuildKit makes
    /// a local context into a base.
    pub(in crate::solver) fn directory_base(
        &self,
        named: &NamedContext,
        dir: &Path,
        stage: &Stage,
    ) -> Result<StageOut, SolveError> {
        let context = self.directory(named, dir)?;
        let mut out = self.scratch_base(stage);
        let exclude = Matcher::default();
        let spec = CopySpec {
            sources: &[".".to_string()],
            inline: &[],
            dest: "/",
            workdir: "/",
            owner: None,
            chmod: None,
            exclude: &exclude,
            parents: false,
            unpack: false,
            created_mtime: self.layer_epoch(),
        };
        let origin = Origin::NamedContext(named.name.clone());
        copy::copy(&mut out.tree, &context.tree, &origin, &spec, &self.scratch)?;
        let layer_id = self.write_layer(&mut out)?.map(|l| l.diff_id.to_string()).unwrap_or_default();
        out.config.history.push(History {
            created: Some(created(self.input.epoch)),
            created_by: Some(format!("FROM {} (--build-context)", named.describe())),
            empty_layer: layer_id.is_empty(),
            ..History::default()
        });
        out.key = out.key.then(&[b"named-directory", layer_id.as_bytes()]);
        Ok(out)
    }

    /// A stage replaced by a named context: the image or directory it names, as it is.
    pub(in crate::solver) fn named_base(&self, named: &NamedContext, stage: &Stage) -> Result<StageOut, SolveError> {
        match &named.value {
            ContextValue::Image(reference) | ContextValue::Layout { reference } => self.image_base(reference, stage),
            ContextValue::Directory(dir) => self.directory_base(named, dir, stage),
        }
    }

    /// Make the stage's files real: unpack a lazy base and apply the layers of cached steps.
    pub(in crate::solver) fn ready(&self, out: &mut StageOut) -> Result<(), SolveError> {
        if let Some((reference, platforms, from)) = out.lazy_base.take() {
            // A base that cannot be unpacked is the FROM line's fault, not the step's that
            // first needed its files.
            let tree = self.image_tree(&reference, &platforms).map_err(|e| {
                let SolveError { step, span, hint, cause } = e;
                let cause = Box::new(Cause::Unpack { reference: reference.clone(), cause });
                SolveError { step, span, hint, cause }.at(from)
            })?;
            out.tree = (*tree).clone();
        }
        for layer in std::mem::take(&mut out.pending) {
            let parse = |text: &str| Digest::parse(text).map_err(SolveError::from);
            let expected = layer::Expected {
                digest: parse(&layer.digest)?,
                size: layer.size,
                diff_id: Some(parse(&layer.diff_id)?),
            };
            let blob = self.store.open_blob(&expected.digest)?;
            // Checked as it streams: the cache checked the blob when it was looked up, but
            // this is the read whose bytes are used.
            layer::apply_blob(&mut out.tree, blob, &expected, &self.scratch, &layer.digest).map_err(|e| match e {
                LayerError::Damaged { digest, mismatch } => SolveError::new(Cause::DamagedCachedLayer {
                    digest: digest.to_string(),
                    mismatch: mismatch.to_string(),
                })
                .hint("build again with --no-cache: the step runs again and writes its layer anew"),
                other => SolveError::from(other),
            })?;
        }
        out.tree.forget_changes();
        Ok(())
    }

    pub(in crate::solver) fn history(&self, out: &mut StageOut, instruction: &Instruction, empty_layer: bool) {
        out.config.history.push(History {
            created: Some(created(self.input.epoch)),
            created_by: Some(instruction.created_by.clone()),
            comment: None,
            author: None,
            empty_layer,
        });
    }

    /// The latest mtime a layer may record: SOURCE_DATE_EPOCH, or 0 when it is unset, so that
    /// an image never depends on when its context's files were written or checked out.
    pub(in crate::solver) fn layer_epoch(&self) -> i64 {
        self.input.epoch.unwrap_or(0)
    }

    /// Write what changed in the stage's files since the last layer as a new layer, and add
    /// it to the stage's manifest layers and diff_ids; `None` when nothing changed.
    fn write_layer(&self, out: &mut StageOut) -> Result<Option<layer::LayerInfo>, SolveError> {
        let changes = out.tree.take_changes();
        let epoch = Some(self.layer_epoch());
        let written = layer::write_changes(self.store, &out.tree, &changes, epoch, self.scratch.layer_limit())?;
        if let Some(l) = &written {
            out.layers.push(store::descriptor(MediaType::ImageLayerGzip, &l.digest, l.size));
            out.config.rootfs.diff_ids.push(l.diff_id.to_string());
        }
        Ok(written)
    }

    /// Write what the step changed as a layer (or record an empty one).
    pub(in crate::solver) fn commit(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
    ) -> Result<String, SolveError> {
        match self.write_layer(out)? {
            Some(l) => {
                self.history(out, instruction, false);
                Ok(format!("layer {} bytes", l.size))
            }
            None => {
                self.history(out, instruction, true);
                Ok(String::new())
            }
        }
    }

    pub(in crate::solver) fn instruction(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        results: &mut [Option<StageOut>],
        cmd_set: &mut bool,
        label: &str,
    ) -> Result<String, SolveError> {
        match &instruction.op {
            Op::Run(run) => self.run(out, instruction, run, label),
            Op::Arg(_) => {
                self.history(out, instruction, true);
                Ok(String::new())
            }
            Op::Copy(c) => {
                self.copy(out, c, results)?;
                self.commit(out, instruction)
            }
            Op::Config(change) => self.config(out, instruction, change, cmd_set),
        }
    }
}

/// The ids of the stage's USER (root when unset), from its /etc/passwd and /etc/group.
pub(super) fn user_owner(out: &StageOut) -> Result<(u32, u32), SolveError> {
    match out.config.config.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => Ok(copy::resolve_owner(user, &out.tree, copy::OwnerSpec::User)?),
        None => Ok((0, 0)),
    }
}
