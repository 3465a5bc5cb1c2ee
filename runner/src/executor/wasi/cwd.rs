//! Giving unmodified WASI preview 1 programs a working directory.
//!
//! wasi-libc starts every program at `/` and strips the leading `/` of absolute paths before
//! they reach the host, so `rel.txt` and `/rel.txt` arrive as the same request: no host-side
//! trick can apply a WORKDIR. What works is to instrument the module at load time (the
//! technique measured in the project's notes on WASI working directories):
//!
//! - `__wasilibc_find_abspath`, through which every wasi-libc path passes, gets a new body
//!   that rewrites a relative path to `$PWD/path` (in one of four 8 KiB slots) and then runs
//!   the original body, which is moved to a new function;
//! - the entry point (`_start` of a preview 1 module, `wasi:cli/run#run` of the core module
//!   inside a preview 2 component) is wrapped: before the program starts, `getenv("PWD")` is read
//!   once, and wasi-libc's `__wasilibc_cwd` pointer (found through `getcwd`) is pointed at
//!   it, so builds that link wasi-libc's `chdir` (and `make_absolute`) also resolve against
//!   it and `getcwd` reports it;
//! - with `PWD` unset or `/`, nothing is rewritten and the program behaves exactly as before.
//!
//! No existing function, global or type index moves: the new functions and globals are
//! appended, the old body keeps running under a new index, and every other section is copied
//! byte for byte. The rewrite does not depend on the directory, so one compiled artifact
//! serves every WORKDIR. It needs the module's name section (to find the wasi-libc
//! functions); without it the module is returned unchanged and the caller warns.

use std::collections::HashMap;

use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    MemArg, Module, RawSection, ValType,
};
use wasmparser::{ExternalKind, Name, Operator, Parser, Payload, TypeRef};

/// Bytes per rewrite slot; a longer `$PWD/path` falls back to resolving against `/`.
const SLOT: i32 = 8192;

/// Whether and how a module was instrumented.
pub enum Instrumented {
    /// The rewritten module.
    Yes(Vec<u8>),
    /// Left as it was, and why (for the step's warning).
    No(String),
}

struct Facts {
    imported_funcs: u32,
    func_types: Vec<u32>,
    names: HashMap<String, u32>,
    /// The entry point: `_start` (preview 1), or `wasi:cli/run@…#run` (preview 2).
    start_export: Option<(String, u32)>,
    globals: u32,
    has_memory: bool,
    code_bodies: Vec<(usize, usize)>,
    data: Vec<(u32, Vec<u8>)>,
    /// Constant initial values of globals (None for imported or computed ones).
    global_inits: Vec<Option<i32>>,
    /// Data segments placed at `global.get G` (position-independent modules), resolved
    /// once the globals are known.
    pic_data: Vec<(u32, Vec<u8>)>,
    /// Whether the module imports a WASI function that takes a path (preview 1 `path_open`,
    /// ..., or preview 2 `wasi:filesystem`): without one, a working directory cannot change
    /// what it does.
    uses_paths: bool,
}

fn gather(module: &[u8]) -> Result<Facts, InstrumentError> {
    let mut f = Facts {
        imported_funcs: 0,
        func_types: Vec::new(),
        names: HashMap::new(),
        start_export: None,
        globals: 0,
        has_memory: false,
        code_bodies: Vec::new(),
        data: Vec::new(),
        global_inits: Vec::new(),
        pic_data: Vec::new(),
        uses_paths: false,
    };
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let p1_path = import.module == "wasi_snapshot_preview1" && import.name.starts_with("path_");
                    if p1_path || import.module.starts_with("wasi:filesystem/") {
                        f.uses_paths = true;
                    }
                    match import.ty {
                        TypeRef::Func(_) => f.imported_funcs += 1,
                        TypeRef::Global(_) => {
                            f.globals += 1;
                            f.global_inits.push(None);
                        }
                        TypeRef::Memory(_) => f.has_memory = true,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    f.func_types.push(ty?);
                }
            }
            Payload::GlobalSection(reader) => {
                f.globals += reader.count();
                for global in reader {
                    let global = global?;
                    let mut ops = global.init_expr.get_operators_reader();
                    let value = match ops.read() {
                        Ok(Operator::I32Const { value }) if !global.ty.mutable => Some(value),
                        _ => None,
                    };
                    f.global_inits.push(value);
                }
            }
            Payload::MemorySection(reader) => f.has_memory |= reader.count() > 0,
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let entry = export.name == "_start"
                        || (export.name.starts_with("wasi:cli/run@") && export.name.ends_with("#run"));
                    if entry && export.kind == ExternalKind::Func && f.start_export.is_none() {
                        f.start_export = Some((export.name.to_string(), export.index));
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let range = body.range();
                f.code_bodies.push((range.start, range.end));
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data?;
                    if let wasmparser::DataKind::Active { memory_index: 0, offset_expr } = data.kind {
                        let mut ops = offset_expr.get_operators_reader();
                        match ops.read() {
                            Ok(Operator::I32Const { value }) => f.data.push((value as u32, data.data.to_vec())),
                            Ok(Operator::GlobalGet { global_index }) => {
                                f.pic_data.push((global_index, data.data.to_vec()))
                            }
                            _ => {}
                        }
                    }
                }
            }
            Payload::CustomSection(reader) => {
                if let wasmparser::KnownCustom::Name(names) = reader.as_known() {
                    for name in names {
                        if let Ok(Name::Function(map)) = name {
                            for naming in map.into_iter().flatten() {
                                f.names.insert(naming.name.to_string(), naming.index);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let pic = std::mem::take(&mut f.pic_data);
    for (global, bytes) in pic {
        if let Some(Some(base)) = f.global_inits.get(global as usize) {
            f.data.push((*base as u32, bytes));
        }
    }
    Ok(f)
}

impl Facts {
    fn body(&self, func: u32) -> Option<(usize, usize)> {
        let local = func.checked_sub(self.imported_funcs)?;
        self.code_bodies.get(local as usize).copied()
    }

    fn read_u32(&self, address: u32) -> Option<u32> {
        self.data.iter().find_map(|(start, bytes)| {
            let at = address.checked_sub(*start)? as usize;
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes(b.try_into().ok()?))
        })
    }

    fn read_cstr(&self, address: u32) -> Option<Vec<u8>> {
        self.data.iter().find_map(|(start, bytes)| {
            let at = address.checked_sub(*start)? as usize;
            let rest = bytes.get(at..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            Some(rest[..end].to_vec())
        })
    }

    /// The address of wasi-libc's `__wasilibc_cwd`: the first constant-address load in
    /// `getcwd` whose static value points at the string "/".
    fn cwd_pointer(&self, module: &[u8]) -> Option<u32> {
        let (start, end) = self.body(*self.names.get("getcwd")?)?;
        let body = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(&module[start..end], start));
        let mut ops = body.get_operators_reader().ok()?;
        // A constant address is `i32.const C`, or `global.get G; i32.const C; i32.add` in a
        // position-independent module whose G is a known constant.
        let mut known: Option<u32> = None;
        let mut base: Option<u32> = None;
        while !ops.eof() {
            match ops.read().ok()? {
                Operator::GlobalGet { global_index } => {
                    base = self.global_inits.get(global_index as usize).copied().flatten().map(|v| v as u32);
                    known = None;
                }
                Operator::I32Const { value } => {
                    known = Some(value as u32);
                }
                Operator::I32Add => {
                    known = match (base.take(), known) {
                        (Some(b), Some(c)) => Some(b.wrapping_add(c)),
                        _ => None,
                    };
                }
                Operator::I32Load { memarg } => {
                    if let Some(address) = known.take().map(|a| a.wrapping_add(memarg.offset as u32)) {
                        let target = self.read_u32(address)?;
                        return (self.read_cstr(target)? == b"/").then_some(address);
                    }
                    base = None;
                }
                _ => {
                    known = None;
                    base = None;
                }
            }
        }
        None
    }
}

/// Why a program could not be read to instrument it.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    /// It is not well-formed WebAssembly.
    #[error(transparent)]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// It has something the instrumentation does not handle.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Instrument a preview 1 module (see the module documentation).
pub fn instrument(module: &[u8]) -> Result<Instrumented, InstrumentError> {
    let facts = gather(module)?;
    if !facts.uses_paths && !facts.names.contains_key("__wasilibc_find_abspath") {
        // No path ever reaches the host from it: any working directory is the same to it.
        return Ok(Instrumented::Yes(module.to_vec()));
    }
    let need = |name: &str| facts.names.get(name).copied();
    let (Some(find), Some(malloc), Some(getenv)) = (need("__wasilibc_find_abspath"), need("malloc"), need("getenv"))
    else {
        return Ok(Instrumented::No(
            "the program has no name section naming wasi-libc's __wasilibc_find_abspath, malloc and getenv".into(),
        ));
    };
    let Some((start_name, start)) = facts.start_export.clone() else {
        return Ok(Instrumented::No("the program exports no entry point kiln knows".into()));
    };
    if !facts.has_memory || find < facts.imported_funcs || start < facts.imported_funcs {
        return Ok(Instrumented::No("the program's layout is not the one kiln knows how to instrument".into()));
    }
    let cwd_pointer = facts.cwd_pointer(module);
    tracing::debug!(?cwd_pointer, find, start, %start_name, "instrumenting for a working directory");
    let find_type = facts.func_types[(find - facts.imported_funcs) as usize];
    let start_type = facts.func_types[(start - facts.imported_funcs) as usize];
    let total_funcs = facts.imported_funcs + facts.func_types.len() as u32;
    let moved_find = total_funcs; // the original body of __wasilibc_find_abspath
    let new_start = total_funcs + 1; // init, then the original _start
    // New globals: the cwd string, its length, the slot ring, the next slot.
    let (g_cwd, g_len, g_ring, g_next) = (facts.globals, facts.globals + 1, facts.globals + 2, facts.globals + 3);

    let mut out = Module::new();
    let mut code_done = false;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match &payload {
            Payload::Version { .. } | Payload::End(_) | Payload::CodeSectionEntry(_) => {}
            Payload::FunctionSection(_) => {
                let mut section = FunctionSection::new();
                for ty in &facts.func_types {
                    section.function(*ty);
                }
                section.function(find_type);
                section.function(start_type);
                out.section(&section);
            }
            Payload::GlobalSection(reader) => {
                let mut section = GlobalSection::new();
                for global in reader.clone() {
                    let global = global?;
                    let range = global.init_expr.get_binary_reader().range();
                    let ty = GlobalType {
                        val_type: val_type(global.ty.content_type)?,
                        mutable: global.ty.mutable,
                        shared: global.ty.shared,
                    };
                    // The init expression's bytes include its `end`.
                    section.global(ty, &ConstExpr::raw(module[range.start..range.end - 1].iter().copied()));
                }
                for _ in 0..4 {
                    section.global(
                        GlobalType { val_type: ValType::I32, mutable: true, shared: false },
                        &ConstExpr::i32_const(0),
                    );
                }
                out.section(&section);
            }
            Payload::ExportSection(reader) => {
                let mut section = ExportSection::new();
                for export in reader.clone() {
                    let export = export?;
                    let kind = match export.kind {
                        ExternalKind::Func => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => ExportKind::Tag,
                        _ => return Err(InstrumentError::Unsupported("an export of a kind kiln does not know")),
                    };
                    let index = if export.name == start_name { new_start } else { export.index };
                    section.export(export.name, kind, index);
                }
                out.section(&section);
            }
            Payload::CodeSectionStart { .. } => {
                let mut section = CodeSection::new();
                for (i, (start, end)) in facts.code_bodies.iter().enumerate() {
                    if i as u32 + facts.imported_funcs == find {
                        section.function(&find_wrapper(moved_find, malloc_free_ring(g_cwd, g_len, g_ring, g_next)));
                    } else {
                        section.raw(&module[*start..*end]);
                    }
                }
                let (fs, fe) = facts.body(find).expect("find is a defined function");
                section.raw(&module[fs..fe]);
                section.function(&start_wrapper(start, malloc, getenv, cwd_pointer, [g_cwd, g_len, g_ring, g_next]));
                out.section(&section);
                code_done = true;
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection { id, data: &module[range] });
                }
            }
        }
    }
    if !code_done {
        return Err(InstrumentError::Unsupported("the module has no code section"));
    }
    if facts.globals == 0 {
        return Ok(Instrumented::No("the program has no global section".into()));
    }
    let bytes = out.finish();
    // The entry wrapper assumes an entry point without parameters; anything unexpected
    // shows up here, and the program then runs as it was.
    if let Err(e) = wasmparser::Validator::new().validate_all(&bytes) {
        return Ok(Instrumented::No(format!("instrumenting it gave an invalid module ({e})")));
    }
    Ok(Instrumented::Yes(bytes))
}

/// Instrument the wasi-libc core module inside a preview 2 component (the one that defines
/// `__wasilibc_find_abspath`); every other section of the component is copied as is.
pub fn instrument_component(component: &[u8]) -> Result<Instrumented, InstrumentError> {
    let mut pos = 8;
    let mut sections: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    while pos < component.len() {
        let id = component[pos];
        let (size, used) = leb128_u32(&component[pos + 1..])
            .ok_or(InstrumentError::Unsupported("a malformed component section header"))?;
        let start = pos + 1 + used;
        let end = start
            .checked_add(size as usize)
            .filter(|e| *e <= component.len())
            .ok_or(InstrumentError::Unsupported("a truncated component"))?;
        sections.push((id, start..end));
        pos = end;
    }
    // Core module sections have id 1.
    let mut replaced = None;
    let mut last_reason = "it contains no wasi-libc module".to_string();
    for (i, (id, range)) in sections.iter().enumerate() {
        if *id != 1 {
            continue;
        }
        match instrument(&component[range.clone()])? {
            Instrumented::Yes(module) => {
                replaced = Some((i, module));
                break;
            }
            Instrumented::No(why) => last_reason = why,
        }
    }
    let Some((index, module)) = replaced else { return Ok(Instrumented::No(last_reason)) };
    let mut out = component[..8].to_vec();
    for (i, (id, range)) in sections.iter().enumerate() {
        out.push(*id);
        let body = if i == index { &module[..] } else { &component[range.clone()] };
        write_leb128_u32(&mut out, body.len() as u32);
        out.extend_from_slice(body);
    }
    Ok(Instrumented::Yes(out))
}

fn leb128_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_leb128_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn val_type(t: wasmparser::ValType) -> Result<ValType, InstrumentError> {
    Ok(match t {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        _ => return Err(InstrumentError::Unsupported("a global of a reference type")),
    })
}

struct Globals {
    cwd: u32,
    len: u32,
    ring: u32,
    next: u32,
}

fn malloc_free_ring(cwd: u32, len: u32, ring: u32, next: u32) -> Globals {
    Globals { cwd, len, ring, next }
}

fn mem(offset: u64, align: u32) -> MemArg {
    MemArg { offset, align, memory_index: 0 }
}

/// `__wasilibc_find_abspath(path, abs_prefix, rel)`: rewrite a relative `path` to
/// `cwd/path` when a cwd is set, then call the original.
fn find_wrapper(original: u32, g: Globals) -> Function {
    // Locals after the three parameters: len (3), slot (4).
    let mut f = Function::new([(2, ValType::I32)]);
    let mut i = f.instructions();
    // if cwd_len != 0 && path[0] != 0 && path[0] != '/'
    i.global_get(g.len).if_(BlockType::Empty);
    i.local_get(0).i32_load8_u(mem(0, 0)).i32_const(0).i32_ne();
    i.local_get(0).i32_load8_u(mem(0, 0)).i32_const(b'/' as i32).i32_ne().i32_and();
    i.if_(BlockType::Empty);
    // len = strlen(path)
    i.i32_const(0).local_set(3);
    i.block(BlockType::Empty).loop_(BlockType::Empty);
    i.local_get(0).local_get(3).i32_add().i32_load8_u(mem(0, 0)).i32_eqz().br_if(1);
    i.local_get(3).i32_const(1).i32_add().local_set(3).br(0);
    i.end().end();
    // if cwd_len + 1 + len + 1 <= SLOT
    i.global_get(g.len).local_get(3).i32_add().i32_const(2).i32_add().i32_const(SLOT).i32_le_u();
    i.if_(BlockType::Empty);
    // slot = ring + (next & 3) * SLOT; next += 1
    i.global_get(g.ring).global_get(g.next).i32_const(3).i32_and().i32_const(SLOT).i32_mul().i32_add().local_set(4);
    i.global_get(g.next).i32_const(1).i32_add().global_set(g.next);
    // memcpy(slot, cwd, cwd_len); slot[cwd_len] = '/'; memcpy(slot + cwd_len + 1, path, len + 1)
    i.local_get(4).global_get(g.cwd).global_get(g.len).memory_copy(0, 0);
    i.local_get(4).global_get(g.len).i32_add().i32_const(b'/' as i32).i32_store8(mem(0, 0));
    i.local_get(4).global_get(g.len).i32_add().i32_const(1).i32_add();
    i.local_get(0).local_get(3).i32_const(1).i32_add().memory_copy(0, 0);
    i.local_get(4).local_set(0);
    i.end();
    i.end();
    i.end();
    i.local_get(0).local_get(1).local_get(2).call(original);
    i.end();
    f
}

/// The new `_start`: read `PWD` once, set up the rewrite and wasi-libc's cwd, then start.
fn start_wrapper(original: u32, malloc: u32, getenv: u32, cwd_pointer: Option<u32>, g: [u32; 4]) -> Function {
    let [g_cwd, g_len, g_ring, _g_next] = g;
    // Locals: buf (0), pwd (1), len (2).
    let mut f = Function::new([(3, ValType::I32)]);
    let mut i = f.instructions();
    // buf = malloc(4); "PWD\0"
    i.i32_const(4).call(malloc).local_tee(0).if_(BlockType::Empty);
    i.local_get(0).i32_const(i32::from_le_bytes(*b"PWD\0")).i32_store(mem(0, 0));
    // pwd = getenv(buf)
    i.local_get(0).call(getenv).local_tee(1).if_(BlockType::Empty);
    // len = strlen(pwd)
    i.i32_const(0).local_set(2);
    i.block(BlockType::Empty).loop_(BlockType::Empty);
    i.local_get(1).local_get(2).i32_add().i32_load8_u(mem(0, 0)).i32_eqz().br_if(1);
    i.local_get(2).i32_const(1).i32_add().local_set(2).br(0);
    i.end().end();
    // Only an absolute cwd other than "/" changes anything.
    i.local_get(1).i32_load8_u(mem(0, 0)).i32_const(b'/' as i32).i32_eq();
    i.local_get(2).i32_const(1).i32_gt_u().i32_and();
    i.if_(BlockType::Empty);
    i.local_get(1).global_set(g_cwd);
    i.local_get(2).global_set(g_len);
    i.i32_const(4 * SLOT).call(malloc).global_set(g_ring);
    // Without a ring there is nowhere to build paths: rewrite nothing.
    i.global_get(g_ring).i32_eqz().if_(BlockType::Empty).i32_const(0).global_set(g_len).end();
    if let Some(address) = cwd_pointer {
        i.i32_const(address as i32).local_get(1).i32_store(mem(0, 2));
    }
    i.end();
    i.end();
    i.end();
    i.call(original);
    i.end();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_that_open_paths_but_have_no_names_are_left_alone() {
        let module = wat_free_module(true);
        assert!(matches!(instrument(&module).unwrap(), Instrumented::No(_)));
    }

    #[test]
    fn modules_that_never_name_a_path_need_no_working_directory() {
        let module = wat_free_module(false);
        match instrument(&module).unwrap() {
            Instrumented::Yes(same) => assert_eq!(same, module, "nothing to change"),
            Instrumented::No(why) => panic!("a module without path imports needs no cwd: {why}"),
        }
    }

    /// A minimal valid module with one function and no name section; with `opens_paths`, it
    /// also imports WASI's `path_open`.
    fn wat_free_module(opens_paths: bool) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], []);
        types.ty().function([wasm_encoder::ValType::I32; 9], [wasm_encoder::ValType::I32]);
        m.section(&types);
        if opens_paths {
            let mut imports = wasm_encoder::ImportSection::new();
            imports.import("wasi_snapshot_preview1", "path_open", wasm_encoder::EntityType::Function(1));
            m.section(&imports);
        }
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut exports = ExportSection::new();
        exports.export("_start", ExportKind::Func, u32::from(opens_paths));
        m.section(&exports);
        let mut code = CodeSection::new();
        let mut f = Function::new([]);
        f.instructions().end();
        code.function(&f);
        m.section(&code);
        m.finish()
    }
}
