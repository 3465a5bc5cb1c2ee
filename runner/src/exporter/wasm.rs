//! The `-o type=wasm` output: an image's WebAssembly program as a Wasm OCI artifact, in the
//! single-component layout of the CNCF TAG-Runtime Wasm working group
//! (<https://tag-runtime.cncf.io/wgs/wasm/deliverables/wasm-oci-artifact/>).
//!
//! This module owns the artifact's content:
//!
//! - which program: the image's ENTRYPOINT, else its CMD, found in the final filesystem the
//!   way the runtime would find it (a name with a `/` from the working directory, a bare name
//!   on the image's PATH), as the builder does when it marks an image's platform;
//! - the one layer, a component: a component is taken as it is; a WASI preview 1 core module
//!   is adapted with the same preview 1 command adapter RUN steps use
//!   ([`program::adapt_preview1`]), so it keeps its exit statuses;
//! - the config (`application/vnd.wasm.config.v0+json`), whose `component` section lists the
//!   imports and exports of the component's WIT world, and whose `created` and `author` come
//!   from the image's config, so the artifact is as reproducible as the image;
//! - the manifest.
//!
//! It hands back blobs and the manifest's descriptor; [`crate::exporter`] writes them as an OCI
//! layout. It never writes files, never touches the store, and never runs the program.

use std::io::Read;

use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::executor::wasi::program::{self, MAX_PROGRAM};
use crate::image::{self, ImageConfig};
use crate::platform::DEFAULT_PATH;
use crate::rootfs::{self, FileData, Kind, Tree};
use crate::store::{self, Digest};
use crate::wasm::Kind as WasmKind;

/// The config's media type: what marks a manifest as a Wasm artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The media type of the artifact's one layer, the component.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Why an image's program cannot be exported as a Wasm artifact.
#[derive(Debug, thiserror::Error)]
pub enum WasmArtifactError {
    /// Neither ENTRYPOINT nor CMD names a program.
    #[error(
        "type=wasm exports the image's program, and the image has no ENTRYPOINT or CMD\n\
         hint: give the final stage ENTRYPOINT [\"/path/to/program.wasm\"]"
    )]
    NoProgram,
    /// The program named is not a file in the image.
    #[error(
        "type=wasm: the image's {instruction} program {name:?} is not {}\n\
         hint: COPY the program into the final stage, or name it by its path in the image",
        match path_env { Some(path) => format!("on its PATH ({path})"), None => "in the image".to_string() }
    )]
    NotFound {
        /// `ENTRYPOINT` or `CMD`.
        instruction: &'static str,
        /// The program as written.
        name: String,
        /// The PATH searched, for a bare name.
        path_env: Option<String>,
    },
    /// The program is a file, but not WebAssembly.
    #[error(
        "type=wasm exports WebAssembly programs; {path} is not one: it is {what}\n\
         hint: make ENTRYPOINT (or CMD) name a WebAssembly program, or use type=oci for this image"
    )]
    NotWasm {
        /// The program's path in the image.
        path: String,
        /// What it is instead.
        what: &'static str,
    },
    /// The program is WebAssembly that cannot be read, adapted or described.
    #[error("type=wasm: {path}: {detail}")]
    Invalid {
        /// The program's path in the image.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// The component section of the config: what the component's WIT world imports and exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Exported interfaces (`wasi:cli/run@0.2.0`) and functions, by name.
    pub exports: Vec<String>,
    /// Imported interfaces (`wasi:cli/environment@0.2.0`) and functions, by name.
    pub imports: Vec<String>,
    /// The world the component targets, when kiln recognises it: `wasi:cli/command@…` for a
    /// component that exports `wasi:cli/run`. The spec makes it optional metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The config blob (`application/vnd.wasm.config.v0+json`), with the spec's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When the image was made (RFC 3339): its config's `created`.
    pub created: String,
    /// The image's author (`MAINTAINER`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// Always `wasip2`: the layer is a component.
    pub os: String,
    /// The layers' digests, in manifest order (one here).
    pub layer_digests: Vec<String>,
    /// The component's imports and exports.
    pub component: ComponentInfo,
}

/// One blob of the artifact.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its sha256.
    pub digest: Digest,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        Blob { digest: Digest::of(&bytes), bytes }
    }

    fn descriptor(&self, media_type: MediaType) -> Descriptor {
        store::descriptor(media_type, &self.digest, self.bytes.len() as u64)
    }
}

/// A Wasm OCI artifact, ready to be written out.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The manifest's descriptor, for an index.
    pub manifest: Descriptor,
    /// Every blob: the manifest, the config and the component.
    pub blobs: Vec<Blob>,
    /// The program's path in the image.
    pub program: String,
    /// Whether the program was a WASI preview 1 module, adapted into a component.
    pub adapted: bool,
}

/// Make the artifact for an image: its config and its final filesystem.
///
/// # Errors
/// When the image names no program, the program is not in `tree`, is not WebAssembly, or is
/// WebAssembly that is not a component and cannot be adapted into one.
///
/// # Example
/// ```
/// use kiln::image::ImageConfig;
/// use kiln::rootfs::Tree;
/// use kiln::exporter::wasm::{self, WasmArtifactError};
///
/// // An image with no ENTRYPOINT or CMD has no program to export.
/// let err = wasm::package(&ImageConfig::default(), &Tree::new()).unwrap_err();
/// assert!(matches!(err, WasmArtifactError::NoProgram));
/// ```
pub fn package(config: &ImageConfig, tree: &Tree) -> Result<Artifact, WasmArtifactError> {
    let (path, data) = find_program(config, tree)?;
    let original = read(&path, &data)?;
    let (component, adapted) = componentize(&path, original)?;
    let component_info =
        describe(&component).map_err(|detail| WasmArtifactError::Invalid { path: path.clone(), detail })?;
    let created = config.created.clone().unwrap_or_else(|| image::rfc3339(0));
    let (manifest, blobs) = assemble(component, component_info, created, config.author.clone())
        .map_err(|detail| WasmArtifactError::Invalid { path: path.clone(), detail })?;
    Ok(Artifact { manifest, blobs, program: path, adapted })
}

/// Make the artifact for a component on its own (a frontend, say): `created` goes into its
/// config as it is (RFC 3339).
///
/// # Errors
/// When `component` is not a valid component.
pub fn package_component(component: Vec<u8>, created: String, name: &str) -> Result<Artifact, WasmArtifactError> {
    let info = describe(&component).map_err(|detail| WasmArtifactError::Invalid { path: name.into(), detail })?;
    let (manifest, blobs) = assemble(component, info, created, None)
        .map_err(|detail| WasmArtifactError::Invalid { path: name.into(), detail })?;
    Ok(Artifact { manifest, blobs, program: name.into(), adapted: false })
}

/// The image's program (ENTRYPOINT's first word, else CMD's): its path and its file.
fn find_program(config: &ImageConfig, tree: &Tree) -> Result<(String, std::sync::Arc<FileData>), WasmArtifactError> {
    let run = &config.config;
    let (instruction, name) = [("ENTRYPOINT", &run.entrypoint), ("CMD", &run.cmd)]
        .into_iter()
        .find_map(|(instruction, argv)| Some((instruction, argv.as_ref()?.first()?.clone())))
        .ok_or(WasmArtifactError::NoProgram)?;
    let cwd = rootfs::clean(run.working_dir.as_deref().unwrap_or("/"));
    let path_env = (!name.contains('/')).then(|| config.env("PATH").unwrap_or(DEFAULT_PATH).to_string());
    let candidates = crate::platform::program_candidates(&name, path_env.as_deref());
    candidates
        .iter()
        .find_map(|candidate| {
            let path = tree.resolve(&cwd, candidate, true).ok()?;
            match &tree.get(&path)?.kind {
                Kind::File(data) => Some((format!("/{}", rootfs::join(&path)), data.clone())),
                _ => None,
            }
        })
        .ok_or(WasmArtifactError::NotFound { instruction, name, path_env })
}

/// The whole program, up to [`MAX_PROGRAM`].
fn read(path: &str, data: &FileData) -> Result<Vec<u8>, WasmArtifactError> {
    let invalid = |detail: String| WasmArtifactError::Invalid { path: path.to_string(), detail };
    let mut bytes = Vec::new();
    data.content
        .open()
        .and_then(|r| r.take(MAX_PROGRAM + 1).read_to_end(&mut bytes))
        .map_err(|e| invalid(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_PROGRAM {
        return Err(invalid(format!("it is larger than the {} MiB kiln loads", MAX_PROGRAM >> 20)));
    }
    Ok(bytes)
}

/// The program as a component, and whether it had to be adapted: a component as it is, a
/// WASI preview 1 core module through the preview 1 command adapter.
fn componentize(path: &str, bytes: Vec<u8>) -> Result<(Vec<u8>, bool), WasmArtifactError> {
    let invalid = |detail: String| WasmArtifactError::Invalid { path: path.to_string(), detail };
    match crate::wasm::kind(&bytes) {
        WasmKind::NotWasm => {
            let what = if bytes.starts_with(b"#!") { "a #! script" } else { program::describe(&bytes) };
            Err(WasmArtifactError::NotWasm { path: path.to_string(), what })
        }
        WasmKind::CoreModule => {
            let component = program::adapt_preview1(&bytes).map_err(|e| {
                invalid(format!(
                    "it is a WebAssembly core module that cannot be made a component ({e})\n\
                     hint: type=wasm exports WASI preview 1 commands (with _start) and components"
                ))
            })?;
            Ok((component, true))
        }
        WasmKind::Component => {
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                .validate_all(&bytes)
                .map_err(|e| invalid(format!("it is not a valid component: {e}")))?;
            Ok((bytes, false))
        }
        WasmKind::OtherWasm => Err(invalid("it is WebAssembly of a version or layer kiln does not know".into())),
    }
}

/// The imports and exports of a component's WIT world, named as WIT names them
/// (`wasi:cli/environment@0.2.0` for an interface, the plain name for a function).
fn describe(component: &[u8]) -> Result<ComponentInfo, String> {
    let (resolve, world) =
        match wit_component::decode(component).map_err(|e| format!("cannot decode its world: {e:#}"))? {
            wit_component::DecodedWasm::Component(resolve, world) => (resolve, world),
            wit_component::DecodedWasm::WitPackage(..) => return Err("it is a WIT package, not a program".into()),
        };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, wit_parser::WorldItem>| -> Vec<String> {
        items.keys().map(|key| resolve.name_world_key(key)).collect()
    };
    let exports = names(&world.exports);
    let target = exports.iter().find_map(|name| {
        let version = name.strip_prefix("wasi:cli/run")?;
        (version.is_empty() || version.starts_with('@')).then(|| format!("wasi:cli/command{version}"))
    });
    Ok(ComponentInfo { exports, imports: names(&world.imports), target })
}

/// The config and manifest around a component: (manifest descriptor, [manifest, config,
/// component]).
fn assemble(
    component: Vec<u8>,
    info: ComponentInfo,
    created: String,
    author: Option<String>,
) -> Result<(Descriptor, Vec<Blob>), String> {
    let layer = Blob::new(component);
    let config = WasmConfig {
        created,
        author,
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.digest.to_string()],
        component: info,
    };
    let config = Blob::new(serde_json::to_vec(&config).map_err(|e| format!("cannot write the config: {e}"))?);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor(MediaType::Other(CONFIG_MEDIA_TYPE.into())))
        .layers(vec![layer.descriptor(MediaType::Other(LAYER_MEDIA_TYPE.into()))])
        .build()
        .map_err(|e| format!("cannot assemble the manifest: {e}"))?;
    let manifest = Blob::new(serde_json::to_vec(&manifest).map_err(|e| format!("cannot write the manifest: {e}"))?);
    Ok((manifest.descriptor(MediaType::ImageManifest), vec![manifest, config, layer]))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rootfs::{Content, Meta, Node};

    /// The examples' hello program (examples/single-vs-multi/src/hello.wat), assembled: a
    /// WASI preview 1 command that prints a line and exits 0.
    fn hello_module() -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
            ImportSection, Instruction as I, MemorySection, MemoryType, Module, TypeSection, ValType,
        };
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32; 4], [ValType::I32]);
        types.ty().function([ValType::I32], []);
        types.ty().function([], []);
        module.section(&types);
        let mut imports = ImportSection::new();
        imports.import("wasi_snapshot_preview1", "fd_write", EntityType::Function(0));
        imports.import("wasi_snapshot_preview1", "proc_exit", EntityType::Function(1));
        module.section(&imports);
        let mut functions = FunctionSection::new();
        functions.function(2);
        module.section(&functions);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
        module.section(&memories);
        let mut exports = ExportSection::new();
        exports.export("memory", ExportKind::Memory, 0);
        exports.export("_start", ExportKind::Func, 2);
        module.section(&exports);
        let mut code = CodeSection::new();
        let mut start = Function::new([]);
        for i in [1, 0, 1, 8] {
            start.instruction(&I::I32Const(i));
        }
        start.instruction(&I::Call(0)).instruction(&I::Drop);
        start.instruction(&I::I32Const(0)).instruction(&I::Call(1)).instruction(&I::End);
        code.function(&start);
        module.section(&code);
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(0), *b"\x10\0\0\0\x1a\0\0\0");
        data.active(0, &ConstExpr::i32_const(16), b"hello from a WASI program\n".iter().copied());
        module.section(&data);
        module.finish()
    }

    fn file(bytes: &[u8]) -> Node {
        let data = FileData { content: Content::Bytes(Arc::from(bytes)), size: bytes.len() as u64 };
        Node { meta: Meta::root(0o755, 0), kind: Kind::File(Arc::new(data)) }
    }

    /// A tree with these files (parents made), and a config with this ENTRYPOINT and CMD.
    fn image(files: &[(&str, &[u8])], entrypoint: &[&str], cmd: &[&str]) -> (ImageConfig, Tree) {
        let mut tree = Tree::new();
        for (path, bytes) in files {
            let parent = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
            tree.mkdir_all(&[], parent, Meta::root(0o755, 0)).unwrap();
            tree.insert(&rootfs::clean(path), file(bytes)).unwrap();
        }
        let argv = |words: &[&str]| (!words.is_empty()).then(|| words.iter().map(|w| w.to_string()).collect());
        let mut config = ImageConfig {
            created: Some("2024-01-02T03:04:05Z".into()),
            architecture: "wasm".into(),
            os: "wasip1".into(),
            ..ImageConfig::default()
        };
        config.config.entrypoint = argv(entrypoint);
        config.config.cmd = argv(cmd);
        (config, tree)
    }

    fn blob<'a>(artifact: &'a Artifact, descriptor: &Descriptor) -> &'a [u8] {
        let digest = store::descriptor_digest(descriptor).unwrap();
        &artifact.blobs.iter().find(|b| b.digest == digest).expect("the blob is in the artifact").bytes
    }

    #[test]
    fn a_preview1_module_becomes_a_valid_command_component() {
        let (config, tree) = image(&[("/bin/hello", &hello_module())], &["/bin/hello"], &[]);
        let artifact = package(&config, &tree).unwrap();
        assert_eq!((artifact.program.as_str(), artifact.adapted), ("/bin/hello", true));

        let manifest: serde_json::Value = serde_json::from_slice(blob(&artifact, &artifact.manifest)).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(artifact.manifest.media_type(), &MediaType::ImageManifest);
        assert_eq!(artifact.blobs.len(), 3);

        let parsed: oci_spec::image::ImageManifest =
            serde_json::from_slice(blob(&artifact, &artifact.manifest)).unwrap();
        let component = blob(&artifact, &parsed.layers()[0]);
        assert_eq!(parsed.layers()[0].size(), component.len() as u64);
        let mut features = wasmparser::WasmFeatures::default();
        features.set(wasmparser::WasmFeatures::COMPONENT_MODEL, true);
        wasmparser::Validator::new_with_features(features).validate_all(component).expect("a valid component");
        assert!(wasmparser::Parser::is_component(component));

        let config: WasmConfig = serde_json::from_slice(blob(&artifact, parsed.config())).unwrap();
        assert_eq!(config.created, "2024-01-02T03:04:05Z");
        assert_eq!((config.architecture.as_str(), config.os.as_str()), ("wasm", "wasip2"));
        assert_eq!(config.layer_digests, [parsed.layers()[0].digest().to_string()]);
        assert_eq!(config.author, None);
        let info = &config.component;
        let run = info.exports.iter().find(|e| e.starts_with("wasi:cli/run@")).expect("it exports wasi:cli/run");
        assert_eq!(info.target.as_deref(), Some(run.replace("/run@", "/command@").as_str()));
        for import in ["wasi:cli/stdout@", "wasi:cli/exit@"] {
            assert!(info.imports.iter().any(|i| i.starts_with(import)), "{import} in {:?}", info.imports);
        }
    }

    #[test]
    fn config_fields_are_the_specs() {
        let (mut config, tree) = image(&[("/app/hello.wasm", &hello_module())], &[], &["./hello.wasm", "arg"]);
        config.config.working_dir = Some("/app".into());
        config.author = Some("Alyssa P. Hacker <alyspdev@example.com>".into());
        let artifact = package(&config, &tree).unwrap();
        assert_eq!(artifact.program, "/app/hello.wasm");
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(blob(&artifact, &artifact.manifest)).unwrap();
        let config: serde_json::Value = serde_json::from_slice(blob(&artifact, manifest.config())).unwrap();
        let keys: Vec<&str> = config.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["architecture", "author", "component", "created", "layerDigests", "os"]);
        assert_eq!(config["author"], "Alyssa P. Hacker <alyspdev@example.com>");
        let component: Vec<&str> = config["component"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(component, ["exports", "imports", "target"]);
    }

    #[test]
    fn the_same_image_gives_the_same_artifact() {
        let (config, tree) = image(&[("/bin/hello", &hello_module())], &["/bin/hello"], &[]);
        let (a, b) = (package(&config, &tree).unwrap(), package(&config, &tree).unwrap());
        assert_eq!(a.manifest, b.manifest);
    }

    #[test]
    fn a_component_is_taken_as_it_is() {
        let (config, tree) = image(&[("/bin/hello", &hello_module())], &["/bin/hello"], &[]);
        let adapted = package(&config, &tree).unwrap();
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(blob(&adapted, &adapted.manifest)).unwrap();
        let component = blob(&adapted, &manifest.layers()[0]).to_vec();

        let (config, tree) = image(&[("/usr/bin/hello", &component)], &[], &["hello"]);
        let artifact = package(&config, &tree).unwrap();
        assert_eq!((artifact.program.as_str(), artifact.adapted), ("/usr/bin/hello", false));
        assert_eq!(artifact.blobs[2].bytes, component, "the layer is the file, byte for byte");
        assert_eq!(artifact.manifest, adapted.manifest);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |files: &[(&str, &[u8])], entrypoint: &[&str], cmd: &[&str]| {
            let (config, tree) = image(files, entrypoint, cmd);
            package(&config, &tree).unwrap_err().to_string()
        };
        let none = err(&[], &[], &[]);
        assert!(none.contains("no ENTRYPOINT or CMD") && none.contains("hint: "), "{none}");

        let elf = err(&[("/bin/x", b"\x7fELF\x02\x01\x01\0")], &["/bin/x"], &[]);
        assert!(
            elf.starts_with("type=wasm exports WebAssembly programs; /bin/x is not one: it is a Linux ELF executable"),
            "{elf}"
        );
        let script = err(&[("/bin/run.sh", b"#!/bin/sh\necho hi\n")], &[], &["run.sh"]);
        assert!(script.contains("/bin/run.sh is not one: it is a #! script"), "{script}");

        let missing = err(&[], &["/bin/nope"], &["/bin/hello"]);
        assert!(missing.contains("ENTRYPOINT program \"/bin/nope\" is not in the image"), "{missing}");
        let off_path = err(&[("/opt/hello", b"\0asm\x01\0\0\0")], &[], &["hello"]);
        assert!(off_path.contains("CMD program \"hello\" is not on its PATH (/usr/local/sbin:"), "{off_path}");

        let garbage = err(&[("/bin/bad", b"\0asm\x01\0\0\0\xff")], &["/bin/bad"], &[]);
        assert!(garbage.starts_with("type=wasm: /bin/bad: it is a WebAssembly core module that cannot"), "{garbage}");
        let bad_component = err(&[("/bin/bad", b"\0asm\x0d\0\x01\0\xff")], &["/bin/bad"], &[]);
        assert!(bad_component.contains("/bin/bad: it is not a valid component"), "{bad_component}");
    }
}
