//! COPY and ADD: files from the context, a stage, an image or a named directory into the
//! stage's tree (the layer is the caller's).

use kiln_ir::CopySource;

use crate::copy::{self, CopySpec, Origin};
use crate::ignore::Matcher;
use crate::solver::error::{Cause, SolveError};
use crate::solver::images::Referent;
use crate::solver::plan::stage_label;
use crate::solver::{Solver, StageOut};

impl Solver<'_> {
    /// Copy files into the stage (COPY and ADD), without writing the layer.
    pub(in crate::solver) fn copy(
        &self,
        out: &mut StageOut,
        c: &kiln_ir::CopyFiles,
        results: &mut [Option<StageOut>],
    ) -> Result<(), SolveError> {
        let image_entry;
        let directory_entry;
        let (source_tree, origin) = match &c.from {
            CopySource::Context => (&self.input.context.tree, Origin::Context),
            CopySource::Stage(i) => {
                let source = results[*i as usize].as_mut().ok_or_else(|| SolveError::internal("stage order"))?;
                self.ready(source)?;
                (&source.tree, Origin::Stage(stage_label(self.input.graph, *i as usize)))
            }
            CopySource::Image(reference) => match self.source_of(reference)? {
                Referent::Image(loaded) => {
                    image_entry = self.image_tree(&loaded, &self.platforms(None, false))?;
                    (&*image_entry, Origin::Image(reference.clone()))
                }
                Referent::Directory(named, dir) => {
                    directory_entry = self.directory(named, &dir)?;
                    (&directory_entry.tree, Origin::NamedContext(named.name.clone()))
                }
            },
        };
        let owner = match &c.chown {
            Some(spec) => Some(copy::resolve_owner(spec, &out.tree, copy::OwnerSpec::Chown)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(text) => Some(copy::parse_chmod(text)?),
            None => None,
        };
        let exclude = Matcher::new(&c.exclude)?;
        let inline: Vec<(String, String, u32)> =
            c.inline_sources.iter().map(|f| (f.name.clone(), f.contents.clone(), f.mode)).collect();
        let workdir = out.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let unpack = c.add.as_ref().is_some_and(|a| a.unpack != Some(false));
        if let Some(add) = &c.add
            && add.checksum.is_some()
        {
            return Err(SolveError::new(Cause::Unsupported(
                "ADD --checksum applies to remote sources, which kiln cannot fetch yet",
            )));
        }
        let spec = CopySpec {
            sources: &c.sources,
            inline: &inline,
            dest: &c.dest,
            workdir: &workdir,
            owner,
            chmod,
            exclude: &exclude,
            parents: c.parents,
            unpack,
            created_mtime: self.input.epoch.unwrap_or(0),
        };
        copy::copy(&mut out.tree, source_tree, &origin, &spec, &self.scratch).map_err(|e| {
            let in_context =
                matches!(&e, copy::CopyError::NotFound { origin: Origin::Context | Origin::NamedContext(_), .. });
            let err = SolveError::from(e);
            if !in_context {
                return err;
            }
            err.hint("paths are relative to the build context; check the path and the .dockerignore")
        })?;
        Ok(())
    }
}
