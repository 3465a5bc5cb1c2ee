//! The end of a solve: the target's platform settled (a WebAssembly program on scratch says
//! so) and its config and manifest written into the store. Nothing is tagged here.

use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};

use super::error::SolveError;
use super::{Solved, Solver, StageOut, created};
use crate::rootfs;
use crate::store;

impl Solver<'_> {
    /// An image built on `scratch` whose program (ENTRYPOINT, else CMD) is WebAssembly says so
    /// in its platform, as the Wasm ecosystem expects: `wasip1/wasm` for a core module,
    /// `wasip2/wasm` for a component. Images on a base image keep the base's platform.
    pub(in crate::solver) fn mark_wasm(&self, out: &mut StageOut) -> Result<(), SolveError> {
        if out.lazy_base.is_some() || out.config.os != "linux" {
            return Ok(());
        }
        let config = &out.config.config;
        let Some(program) = config.entrypoint.iter().chain(config.cmd.iter()).find_map(|argv| argv.first()).cloned()
        else {
            return Ok(());
        };
        self.ready(out)?;
        let cwd = rootfs::clean(out.config.config.working_dir.as_deref().unwrap_or("/"));
        let candidates = crate::platform::program_candidates(&program, out.config.env("PATH"));
        let found = candidates.iter().find_map(|c| {
            let path = out.tree.resolve(&cwd, c, true).ok()?;
            match out.tree.get(&path) {
                Some(rootfs::Node { kind: rootfs::Kind::File(data), .. }) => Some(data.clone()),
                _ => None,
            }
        });
        let Some(data) = found else { return Ok(()) };
        let mut head = [0u8; 8];
        let read = data.content.open().and_then(|mut r| std::io::Read::read_exact(&mut r, &mut head));
        let os = match (read, crate::wasm::kind(&head)) {
            (Ok(()), crate::wasm::Kind::CoreModule) => "wasip1",
            (Ok(()), crate::wasm::Kind::Component) => "wasip2",
            _ => return Ok(()),
        };
        out.config.os = os.into();
        out.config.architecture = "wasm".into();
        out.config.variant = None;
        Ok(())
    }

    pub(in crate::solver) fn export(&self, mut out: StageOut, built_stages: Vec<usize>) -> Result<Solved, SolveError> {
        if self.input.keep_tree {
            self.ready(&mut out)?;
        }
        self.mark_wasm(&mut out)?;
        out.config.created = Some(created(self.input.epoch));
        // Layers from Docker-format bases are described with their OCI media types.
        let layers: Vec<Descriptor> = out
            .layers
            .iter()
            .map(|d| {
                let mut d = d.clone();
                let media = match d.media_type() {
                    MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                        MediaType::ImageLayerGzip
                    }
                    MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
                    m => m.clone(),
                };
                d.set_media_type(media);
                d.set_annotations(None);
                d.set_urls(None);
                d
            })
            .collect();
        let config_desc = self.store.put_json(MediaType::ImageConfig, &out.config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc.clone())
            .layers(layers)
            .build()?;
        let manifest_desc = self.store.put_json(MediaType::ImageManifest, &manifest)?;
        let config_digest = store::descriptor_digest(&config_desc)?;
        Ok(Solved { manifest: manifest_desc, config_digest, config: out.config, tree: out.tree, built_stages })
    }
}
