//! `kiln build -o type=wasm,dest=DIR`: the image's program as a Wasm OCI artifact
//! (<https://tag-runtime.cncf.io/wgs/wasm/deliverables/wasm-oci-artifact/>), read back by hand
//! and by skopeo, run as a `wasi:cli/command`, and the same from one build to the next.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::oci::{self, blob, check_store};
use crate::support::{Sandbox, run, stderr, wasm_tools, workspace};

/// The final stage of `examples/single-vs-multi`, whose program is built as that example
/// builds it (`wasm-tools parse src/hello.wat`), with wasm-tools copied in rather than taken
/// from the kiln-toolbox image.
const HELLO: &str = r#"FROM scratch AS builder
COPY wasm-tools.wasm /bin/wasm-tools
WORKDIR /out
COPY hello.wat .
RUN ["wasm-tools", "parse", "hello.wat", "-o", "hello.wasm"]

FROM scratch
COPY --from=builder /out/hello.wasm /bin/hello
ENTRYPOINT ["/bin/hello"]
"#;

/// 2023-11-14T22:13:20Z.
const EPOCH: &str = "1700000000";

fn hello_context(sb: &Sandbox) {
    let example = workspace().join("examples/single-vs-multi/src/hello.wat");
    sb.write("ctx/hello.wat", std::fs::read(example).unwrap());
    sb.write("ctx/wasm-tools.wasm", std::fs::read(wasm_tools()).unwrap());
    sb.write("ctx/Dockerfile", HELLO);
}

/// `kiln build` of `ctx` in the sandbox, with SOURCE_DATE_EPOCH set.
fn build(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    run(sb.kiln().env("SOURCE_DATE_EPOCH", EPOCH).args(["build", "--progress", "plain"]).args(args).arg("ctx"))
}

fn build_ok(sb: &Sandbox, args: &[&str]) {
    let out = build(sb, args);
    assert!(out.status.success(), "kiln build {args:?} failed:\n{}", stderr(&out));
}

/// An artifact read from a layout: index entry, manifest, config and the one layer.
struct Artifact {
    entry: Value,
    manifest_bytes: Vec<u8>,
    manifest: Value,
    config: Value,
    component: Vec<u8>,
}

fn read(layout: &Path) -> Artifact {
    let oci_layout: Value = serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout, json!({"imageLayoutVersion": "1.0.0"}));
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let entry = entries[0].clone();
    assert!(entries.iter().all(|e| e["digest"] == entry["digest"]), "one manifest, under every tag: {index}");
    assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let manifest_bytes = blob(layout, entry["digest"].as_str().unwrap());
    assert_eq!(entry["size"], manifest_bytes.len());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config = serde_json::from_slice(&blob(layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let component = blob(layout, manifest["layers"][0]["digest"].as_str().unwrap());
    // Nothing else: the manifest, the config and the component.
    assert_eq!(std::fs::read_dir(layout.join("blobs/sha256")).unwrap().count(), 3);
    Artifact { entry, manifest_bytes, manifest, config, component }
}

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// Run a component as a `wasi:cli/command` with no arguments or files: (exit status, stdout).
fn run_command(component: &[u8]) -> (i32, String) {
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, component).expect("wasmtime loads the component");
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let stdout = MemoryOutputPipe::new(1 << 16);
    let ctx = WasiCtxBuilder::new().stdout(stdout.clone()).build();
    let mut store = wasmtime::Store::new(&engine, Host { ctx, table: ResourceTable::new() });
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)
        .expect("it is a wasi:cli/command");
    let status = match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(e) => e.downcast_ref::<wasmtime_wasi::I32Exit>().unwrap_or_else(|| panic!("it trapped: {e:?}")).0,
    };
    (status, String::from_utf8(stdout.contents().to_vec()).unwrap())
}

#[test]
fn a_wasi_program_is_exported_as_a_component_artifact_that_runs() {
    let sb = Sandbox::new();
    hello_context(&sb);
    build_ok(&sb, &["-t", "hello:wasm", "-t", "registry.example/hello:1.0", "-o", "type=wasm,dest=artifact"]);
    let layout = sb.dir.path().join("artifact");
    let artifact = read(&layout);

    // index.json names the artifact as an OCI layout output names an image.
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<(&Value, &Value)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (&e["annotations"]["org.opencontainers.image.ref.name"], &e["annotations"]["io.containerd.image.name"])
        })
        .collect();
    assert_eq!(names, [(&json!("wasm"), &json!("hello:wasm")), (&json!("1.0"), &json!("registry.example/hello:1.0"))]);

    // The manifest: the spec's media types, and exactly one layer.
    let manifest = &artifact.manifest;
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest.get("artifactType"), None, "the spec's manifest has none; config.mediaType says it");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["size"], artifact.component.len());

    // The config: the image's creation time, and the component's world.
    let image = oci::read(&sb.root(), Some("hello:wasm"));
    let config = &artifact.config;
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["created"], image.config["created"]);
    assert_eq!((&config["architecture"], &config["os"]), (&json!("wasm"), &json!("wasip2")));
    assert_eq!(config["layerDigests"], json!([layers[0]["digest"]]));
    assert_eq!(config.get("author"), None);
    let component = &config["component"];
    let exports: Vec<&str> = component["exports"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    let [run_export] = exports[..] else { panic!("a command exports wasi:cli/run only: {exports:?}") };
    let version = run_export.strip_prefix("wasi:cli/run@").unwrap_or_else(|| panic!("{run_export}"));
    assert_eq!(component["target"], format!("wasi:cli/command@{version}"));
    let imports: Vec<&str> = component["imports"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    for interface in ["wasi:cli/stdout@", "wasi:cli/exit@", "wasi:io/streams@"] {
        assert!(imports.iter().any(|i| i.starts_with(interface)), "{interface} in {imports:?}");
    }

    // The layer is the image's preview 1 module made a component, and it runs.
    assert_eq!(image.entry(0, "bin/hello").data[4..8], [1, 0, 0, 0], "the image holds a core module");
    assert!(wasmparser::Parser::is_component(&artifact.component));
    assert_eq!(run_command(&artifact.component), (0, "hello from a WASI program\n".to_string()));

    // skopeo reads the layout: the manifest as written, the config, and a copy keeps the digest.
    let skopeo = |args: &[&str]| {
        let out = run(std::process::Command::new("skopeo").args(args).current_dir(sb.dir.path()));
        assert!(out.status.success(), "skopeo {args:?}: {}", stderr(&out));
        out.stdout
    };
    assert_eq!(skopeo(&["inspect", "--raw", "oci:artifact:wasm"]), artifact.manifest_bytes);
    let skopeo_config: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--config", "--raw", "oci:artifact:1.0"])).unwrap();
    assert_eq!(&skopeo_config, config);
    skopeo(&["copy", "--quiet", "oci:artifact:wasm", "oci:copied:wasm"]);
    assert_eq!(read(&sb.dir.path().join("copied")).entry["digest"], artifact.entry["digest"]);
}

#[test]
fn the_artifact_is_the_same_from_one_build_to_the_next_and_a_component_is_kept_as_it_is() {
    let sb = Sandbox::new();
    hello_context(&sb);
    build_ok(&sb, &["-t", "hello", "-o", "type=wasm,dest=first"]);
    // Again without the cache, over the first one and into another directory.
    build_ok(&sb, &["--no-cache", "-t", "hello", "-o", "type=wasm,dest=first", "-o", "type=wasm,dest=second"]);
    let first = read(&sb.dir.path().join("first"));
    let second = read(&sb.dir.path().join("second"));
    assert_eq!(first.entry, second.entry);
    let files = |dir: &str| -> BTreeMap<String, Vec<u8>> {
        let blobs = sb.dir.path().join(dir).join("blobs/sha256");
        std::fs::read_dir(blobs)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect()
    };
    assert_eq!(files("first"), files("second"));
    // No staging directory is left beside the outputs.
    let leftovers: Vec<_> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".kiln-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The exported component, as the program of another image, is exported byte for byte.
    sb.write("ctx/hello.component.wasm", &first.component);
    sb.write("ctx/Dockerfile", "FROM scratch\nCOPY hello.component.wasm /usr/bin/hello\nCMD [\"hello\"]\n");
    build_ok(&sb, &["-t", "hello:component", "-o", "type=wasm,dest=again"]);
    let again = read(&sb.dir.path().join("again"));
    assert_eq!(again.component, first.component);
    assert_eq!(again.config["component"], first.config["component"]);
    let image = oci::read(&sb.root(), Some("hello:component"));
    assert_eq!((&image.config["os"], &image.config["architecture"]), (&json!("wasip2"), &json!("wasm")));
}

#[test]
fn images_without_a_webassembly_program_are_clear_errors() {
    let sb = Sandbox::new();
    sb.write("ctx/tool", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    sb.write("ctx/hello.wat", "(module)");
    // An earlier artifact at the destination survives a failed export.
    sb.write("out/oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
    sb.write("out/index.json", "earlier");
    let cases = [
        ("COPY hello.wat /hello.wat", "type=wasm exports the image's program, and the image has no ENTRYPOINT or CMD"),
        (
            "COPY tool /bin/x\nENTRYPOINT [\"/bin/x\"]",
            "type=wasm exports WebAssembly programs; /bin/x is not one: it is a Linux ELF executable",
        ),
        ("CMD [\"/bin/nope\", \"arg\"]", "type=wasm: the image's CMD program \"/bin/nope\" is not in the image"),
        (
            "COPY tool /opt/tool\nENTRYPOINT [\"tool\"]",
            "type=wasm: the image's ENTRYPOINT program \"tool\" is not on its PATH (/usr/local/sbin:",
        ),
    ];
    for (dockerfile, message) in cases {
        sb.write("ctx/Dockerfile", format!("FROM scratch\n{dockerfile}\n"));
        let out = build(&sb, &["-t", "not-wasm", "-o", "type=wasm,dest=out"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{dockerfile}: {err}");
        assert!(err.contains(&format!("error: output out: {message}")), "{dockerfile}: {err}");
        assert!(err.contains("hint: "), "{dockerfile}: {err}");
        assert_eq!(std::fs::read_to_string(sb.dir.path().join("out/index.json")).unwrap(), "earlier");
        check_store(&sb.root());
    }
    let names: Vec<String> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".kiln-")), "no staging directory is left: {names:?}");

    // type=wasm needs a destination, and says so before building anything.
    let out = build(&sb, &["-o", "type=wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs dest=PATH"), "{}", stderr(&out));
}
