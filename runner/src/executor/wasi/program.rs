//! Finding and loading the program a RUN step names.
//!
//! argv[0] is looked up like a shell does, but inside the stage's tree: a name with a `/` is
//! a path (relative to the working directory), a bare name is searched on the stage's PATH.
//! What is found decides how it runs:
//!
//! - a WebAssembly component: as a `wasi:cli/command`;
//! - a WebAssembly core module: as WASI preview 1, turned into a component with the standard
//!   preview 1 adapter. Its `proc_exit` import is first renamed to `wasi:cli/exit`'s
//!   `exit-with-code`, because the stock adapter reports every non-zero status as 1;
//! - a `#!` script: its interpreter (from the tree) runs with the script's path;
//! - an ELF binary or anything else: an error that says what it is.
//!
//! `sh` (bare, `/bin/sh` or `/usr/bin/sh`) is the one exception: when the tree has no WASI
//! program there (a `FROM scratch` stage, or a Linux base whose `/bin/sh` is ELF), kiln's own
//! sandboxed shell runs instead, so shell-form `RUN` works everywhere. A WASI `/bin/sh` in
//! the image wins, as Docker's `SHELL` would.
//!
//! Compiled programs are cached by the sha256 of the file (plus a tag for the adaptation),
//! so a warm run only deserialises.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::cwd;
use crate::rootfs::{self, Components, FileData, Kind, Tree};

/// Why a program cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Not on PATH, or the path does not exist.
    #[error("{name}: not found{}", if *.on_path { " on the stage's PATH" } else { "" })]
    NotFound {
        /// argv[0].
        name: String,
        /// Whether PATH was searched.
        on_path: bool,
    },
    /// It is a Linux program, which the WASI executor does not run (`--executor=proot`
    /// does).
    #[error("{path} is a Linux program ({arch} ELF); kiln's default executor runs only WASI programs (.wasm)")]
    Linux {
        /// The program's path in the rootfs.
        path: String,
        /// Its architecture, as OCI names it (`amd64`).
        arch: String,
    },
    /// It exists but is not a WASI program.
    #[error("{path} is {what}; kiln runs WASI programs (.wasm)")]
    NotWasi {
        /// The program's path in the rootfs.
        path: String,
        /// What it is.
        what: String,
    },
    /// It is a WASI program that does not load.
    #[error("{path}: {detail}")]
    Invalid {
        /// The program's path in the rootfs.
        path: String,
        /// Why.
        detail: String,
    },
    /// The empty argv.
    #[error("RUN has no command")]
    Empty,
}

/// The largest program kiln loads (and exports as a Wasm artifact).
pub(crate) const MAX_PROGRAM: u64 = 512 << 20;

/// A program file found in the tree.
pub struct Found {
    /// Its canonical path.
    pub path: String,
    /// Its content (read in full only when it is not already compiled).
    pub data: Arc<FileData>,
    /// Its first bytes, enough to tell what it is.
    pub head: Vec<u8>,
}

impl Found {
    /// The whole file.
    pub fn bytes(&self) -> Result<Vec<u8>, ProgramError> {
        let mut out = Vec::new();
        self.data
            .content
            .open()
            .and_then(|r| r.take(MAX_PROGRAM).read_to_end(&mut out))
            .map_err(|e| ProgramError::Invalid { path: self.path.clone(), detail: format!("cannot read it: {e}") })?;
        Ok(out)
    }
}

fn find_file(tree: &Tree, path: &[String]) -> Option<(Arc<FileData>, Vec<u8>)> {
    let Kind::File(data) = &tree.get(path)?.kind else { return None };
    let mut head = Vec::new();
    data.content.open().ok()?.take(4096).read_to_end(&mut head).ok()?;
    Some((data.clone(), head))
}

/// What the kernel would run for `argv`, from the tree alone: argv[0] as found on PATH (the
/// path that names it, as a Linux `execve` would be given it), and the program file that
/// decides how it runs (a `#!` script's interpreter, followed as Linux does). No stand-in
/// for `sh`: this is how a step is told to be a Linux one. `None` when nothing is there.
pub fn native(tree: &Tree, argv: &[String], path_env: Option<&str>, cwd: &Components) -> Option<(String, Found)> {
    let find = |name: &str| {
        crate::platform::program_candidates(name, path_env).into_iter().find_map(|candidate| {
            let path = tree.resolve(cwd, &candidate, true).ok()?;
            let (data, head) = find_file(tree, &path)?;
            Some((candidate, Found { path: format!("/{}", rootfs::join(&path)), data, head }))
        })
    };
    let (named, mut found) = find(argv.first()?)?;
    for _ in 0..4 {
        let Some(rest) = found.head.strip_prefix(b"#!") else { return Some((named, found)) };
        let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = String::from_utf8_lossy(&rest[..line_end]).trim().to_string();
        let interpreter = line.split([' ', '\t']).next().filter(|s| s.starts_with('/'))?;
        found = find(interpreter)?.1;
    }
    None
}

/// Find argv[0]; follow `#!` lines. Returns the program and the argv to give it.
pub fn resolve(
    tree: &Tree,
    argv: &[String],
    path_env: Option<&str>,
    cwd: &Components,
) -> Result<(Found, Vec<String>), ProgramError> {
    let mut argv: Vec<String> = argv.to_vec();
    for _ in 0..4 {
        let name = argv.first().ok_or(ProgramError::Empty)?.clone();
        let candidates = crate::platform::program_candidates(&name, path_env);
        let found = candidates.iter().find_map(|c| {
            let path = tree.resolve(cwd, c, true).ok()?;
            let (data, head) = find_file(tree, &path)?;
            Some(Found { path: format!("/{}", rootfs::join(&path)), data, head })
        });
        let is_wasm_or_script = |f: &Found| f.head.starts_with(b"\0asm") || f.head.starts_with(b"#!");
        let found = match found {
            Some(found) if is_wasm_or_script(&found) || !names_shell(&name) => found,
            _ if names_shell(&name) => kiln_shell(),
            _ => {
                let on_path = !name.contains('/');
                return Err(ProgramError::NotFound { name, on_path });
            }
        };
        if let Some(rest) = found.head.strip_prefix(b"#!") {
            // `#!interpreter [one argument]`, as Linux reads it.
            let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..line_end]).trim().to_string();
            let mut parts = line.splitn(2, [' ', '\t']);
            let interpreter = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| ProgramError::Invalid {
                path: found.path.clone(),
                detail: "its #! line names no interpreter".into(),
            })?;
            let mut next = vec![interpreter.to_string()];
            if let Some(arg) = parts.next().map(str::trim).filter(|a| !a.is_empty()) {
                next.push(arg.to_string());
            }
            next.push(found.path.clone());
            next.extend(argv.into_iter().skip(1));
            argv = next;
            continue;
        }
        return Ok((found, argv));
    }
    Err(ProgramError::Invalid { path: argv[0].clone(), detail: "#! interpreters nest more than 4 deep".into() })
}

/// kiln's sandboxed shell (the `kiln-sh` crate), compiled into kiln by `build.rs`.
pub static KILN_SHELL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sh.wasm"));

/// Whether argv[0] asks for the POSIX shell.
fn names_shell(name: &str) -> bool {
    matches!(name, "sh" | "/bin/sh" | "/usr/bin/sh")
}

/// kiln's shell as a program file. One `FileData` for the whole process, so the loaded-program
/// cache recognises it by identity and never hashes it twice.
fn kiln_shell() -> Found {
    static DATA: std::sync::OnceLock<Arc<FileData>> = std::sync::OnceLock::new();
    let data = DATA
        .get_or_init(|| {
            Arc::new(FileData { content: rootfs::Content::Bytes(Arc::from(KILN_SHELL)), size: KILN_SHELL.len() as u64 })
        })
        .clone();
    Found { path: "/bin/sh".into(), data, head: KILN_SHELL[..KILN_SHELL.len().min(4096)].to_vec() }
}

/// What a file's first bytes say it is.
pub(crate) fn describe(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x7f, b'E', b'L', b'F', ..] => "a Linux ELF executable",
        [b'M', b'Z', ..] => "a Windows executable",
        [0xcf, 0xfa, 0xed, 0xfe, ..] | [0xca, 0xfe, 0xba, 0xbe, ..] => "a macOS executable",
        _ => "not a WebAssembly program or a #! script",
    }
}

/// Programs already loaded in this process: by file identity (so a warm spawn neither
/// reads nor hashes the file) and by content digest.
#[derive(Default)]
pub struct Loaded {
    by_file: Mutex<HashMap<usize, (Arc<FileData>, String)>>,
    by_digest: Mutex<HashMap<String, (Component, Cwd)>>,
    /// One lock per program being compiled, so programs started together (`a | b` of the
    /// same binary) compile it once.
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Whether a loaded program can be given a working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cwd {
    /// It reads `PWD` at start (an instrumented preview 1 module).
    Supported,
    /// It starts at `/`, and why.
    Unsupported(String),
}

/// Cache-key suffixes: what was done to a program before it was compiled. The numbers change
/// when the decision changes, so no cache keeps an outdated one. A component left as it was
/// has a suffix too: the bare digest is what a frontend of the same bytes is cached under,
/// and finding that entry must not be read as "this program cannot be instrumented".
const P1_WITH_CWD: &str = "p1-exit-cwd2";
const P1_PLAIN: &str = "p1-exit2";
const P2_WITH_CWD: &str = "p2-cwd1";
const P2_PLAIN: &str = "p2-plain1";

/// Compile (or load from the caches) the program as a component.
pub fn load(
    engine: &Engine,
    found: &Found,
    cache: Option<&std::path::Path>,
    loaded: &Loaded,
) -> Result<(Component, Cwd), ProgramError> {
    let invalid = |detail: String| ProgramError::Invalid { path: found.path.clone(), detail };
    let head = &found.head;
    let is_component = match crate::wasm::kind(head) {
        crate::wasm::Kind::Component => true,
        crate::wasm::Kind::CoreModule | crate::wasm::Kind::OtherWasm if head.len() >= 8 => false,
        _ => {
            return Err(match crate::executor::elf::arch(head) {
                Some(arch) => ProgramError::Linux { path: found.path.clone(), arch: arch.to_string() },
                None => ProgramError::NotWasi { path: found.path.clone(), what: describe(head).into() },
            });
        }
    };
    let identity = Arc::as_ptr(&found.data) as usize;
    let known = lock(&loaded.by_file).get(&identity).map(|(_, key)| key.clone());
    let mut bytes = None;
    let digest = match known {
        Some(digest) => digest,
        None => {
            let all = found.bytes()?;
            let digest = crate::wasm::sha256_hex(&all);
            // Keeping the Arc keeps the identity from being reused by another file.
            lock(&loaded.by_file).insert(identity, (found.data.clone(), digest.clone()));
            bytes = Some(all);
            digest
        }
    };
    if let Some(done) = lock(&loaded.by_digest).get(&digest) {
        return Ok(done.clone());
    }
    let gate = lock(&loaded.compiling).entry(digest.clone()).or_default().clone();
    let _compiling = lock(&gate);
    if let Some(done) = lock(&loaded.by_digest).get(&digest) {
        return Ok(done.clone());
    }
    let engine_cache = |key: &str| cache.map(|dir| crate::wasm::cache::entry_path(dir, engine, key));
    let mut full = || -> Result<Vec<u8>, ProgramError> {
        match bytes.take() {
            Some(b) => Ok(b),
            None => found.bytes(),
        }
    };
    // Each program is compiled in one of two forms: instrumented to read its working
    // directory from PWD, or as it was. The form found in the cache decides without reading
    // the program again.
    let (with_cwd, plain) = if is_component {
        (format!("{digest}-{P2_WITH_CWD}"), format!("{digest}-{P2_PLAIN}"))
    } else {
        (format!("{digest}-{P1_WITH_CWD}"), format!("{digest}-{P1_PLAIN}"))
    };
    let cached = [(&with_cwd, true), (&plain, false)]
        .into_iter()
        .find(|(key, _)| engine_cache(key).is_some_and(|p| p.is_file()));
    let instrument = |original: &[u8]| -> Result<cwd::Instrumented, cwd::InstrumentError> {
        if is_component { cwd::instrument_component(original) } else { cwd::instrument(original) }
    };
    let (key, supported, program, reason) = match cached {
        Some((key, supported)) => (key.clone(), supported, None, None),
        None => {
            let original = full()?;
            match instrument(&original).map_err(|e| invalid(format!("cannot instrument it: {e}")))? {
                cwd::Instrumented::Yes(module) => (with_cwd.clone(), true, Some(module), None),
                cwd::Instrumented::No(why) => (plain.clone(), false, Some(original), Some(why)),
            }
        }
    };
    let component = crate::wasm::cache::load_or_compile_with(engine, &key, cache, || {
        let program = match program {
            Some(p) => p,
            None => {
                let original = full().map_err(wasmtime::Error::msg)?;
                match instrument(&original).map_err(wasmtime::Error::msg)? {
                    cwd::Instrumented::Yes(p) if supported => p,
                    _ => original,
                }
            }
        };
        if is_component { Ok(program) } else { adapt_preview1(&program).map_err(wasmtime::Error::msg) }
    })
    .map_err(|e| invalid(format!("{e:#}")))?;
    let cwd =
        if supported {
            Cwd::Supported
        } else {
            Cwd::Unsupported(reason.unwrap_or_else(|| {
                "it lacks the wasi-libc symbols kiln instruments to give it a working directory".into()
            }))
        };
    let done = (component, cwd);
    lock(&loaded.by_digest).insert(digest, done.clone());
    Ok(done)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one-function world the renamed `proc_exit` import is typed by.
const EXIT_WIT: &str = r#"
package wasi:cli@0.2.12;

@since(version = 0.2.0)
interface exit {
  @since(version = 0.2.0)
  exit: func(status: result);
  @since(version = 0.2.12)
  exit-with-code: func(status-code: u8);
}

world kiln-exit {
  import exit;
}
"#;

/// Turn a WASI preview 1 module into a preview 2 command component whose exit statuses
/// survive: rename `wasi_snapshot_preview1.proc_exit` to `wasi:cli/exit.exit-with-code`,
/// describe that import in the module, then apply the standard adapter.
pub fn adapt_preview1(module: &[u8]) -> Result<Vec<u8>, AdaptError> {
    let mut renamed = rename_proc_exit(module)?;
    if let Cow::Owned(bytes) = &renamed {
        let mut resolve = wit_parser::Resolve::default();
        let package = resolve.push_str("kiln-exit.wit", EXIT_WIT).map_err(AdaptError::adapter)?;
        let world = resolve.select_world(&[package], Some("kiln-exit")).map_err(AdaptError::adapter)?;
        let mut bytes = bytes.clone();
        wit_component::embed_component_metadata(&mut bytes, &resolve, world, wit_component::StringEncoding::UTF8)
            .map_err(AdaptError::adapter)?;
        renamed = Cow::Owned(bytes);
    }
    wit_component::ComponentEncoder::default()
        .module(&renamed)
        .map_err(|e| AdaptError::NotWasi(format!("{e:#}")))?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .map_err(AdaptError::adapter)?
        .validate(true)
        .encode()
        .map_err(|e| AdaptError::Encode(format!("{e:#}")))
}

/// Why a WASI preview 1 module could not be made a component.
#[derive(Debug, thiserror::Error)]
pub enum AdaptError {
    /// It is not well-formed WebAssembly.
    #[error(transparent)]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// It could not be re-encoded with `proc_exit` renamed.
    #[error(transparent)]
    Reencode(#[from] wasm_encoder::reencode::Error),
    /// It is not a module of WASI preview 1 (what wit-component said).
    #[error("not a WASI module: {0}")]
    NotWasi(String),
    /// The adapter could not make a component of it (what wit-component said).
    #[error("cannot adapt it to WASI preview 2: {0}")]
    Encode(String),
    /// kiln's own adapter inputs were refused: a bug in kiln (what wit-component said).
    #[error("kiln's WASI adapter failed: {0}")]
    Adapter(String),
}

impl AdaptError {
    fn adapter(e: impl std::fmt::Display) -> Self {
        AdaptError::Adapter(format!("{e:#}"))
    }
}

/// Re-emit the import section with `proc_exit` renamed; every other section is copied as
/// is, and no index moves (the import keeps its type and position).
fn rename_proc_exit(module: &[u8]) -> Result<Cow<'_, [u8]>, AdaptError> {
    use wasm_encoder::{EntityType, ImportSection, Module, RawSection, reencode::Reencode};
    use wasmparser::{Parser, Payload};

    let mut has_proc_exit = false;
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::ImportSection(reader) = payload? {
            for import in reader.into_imports() {
                let import = import?;
                has_proc_exit |= import.module == "wasi_snapshot_preview1" && import.name == "proc_exit";
            }
        }
    }
    if !has_proc_exit {
        return Ok(Cow::Borrowed(module));
    }
    let mut out = Module::new();
    let mut reencoder = wasm_encoder::reencode::RoundtripReencoder;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match &payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::ImportSection(reader) => {
                let mut section = ImportSection::new();
                for import in reader.clone().into_imports() {
                    let import = import?;
                    let ty: EntityType = reencoder.entity_type(import.ty)?;
                    if import.module == "wasi_snapshot_preview1" && import.name == "proc_exit" {
                        section.import("wasi:cli/exit@0.2.12", "exit-with-code", ty);
                    } else {
                        section.import(import.module, import.name, ty);
                    }
                }
                out.section(&section);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection { id, data: &module[range] });
                }
            }
        }
    }
    Ok(Cow::Owned(out.finish()))
}
