//! The stage IR is written down twice: as WIT in `wit/kiln-build.wit`, the contract with
//! frontends, and as the Rust types of this crate. Nothing generates one from the other, so
//! this test reads both, the WIT with `wit-parser` and this crate's source with `syn`, and
//! fails on any difference in type names, field and case names, field types or field order.
//!
//! It owns the rules that map one spelling onto the other, and nothing else. The converters
//! between the generated binding types and these types (`ir/src/guest.rs`,
//! `runner/src/frontend/bindings.rs`) are left to the compiler: they build every struct with a
//! literal that names all its fields and match every enum without a wildcard, so once this
//! test has both sides agree, a field or case the converters forget does not compile.
//!
//! The mapping, the one `wit-bindgen` uses for the generated types:
//! - every `record`, `variant`, `enum` and `flags` of every interface of the `kiln:build`
//!   package has a `pub struct` or `pub enum` of the same name in UpperCamelCase
//!   (`key-value` → `KeyValue`) at the top level of a file in `ir/src/` (the generated
//!   bindings in `guest.rs` excepted);
//! - a record is a struct with named fields, in the same order, in snake_case (`read-write` →
//!   `read_write`); flags are a struct of `bool` fields, one per flag;
//! - a variant or an enum is a Rust enum with the same cases, in the same order, in
//!   UpperCamelCase; a case with a payload is a tuple variant of one field of that type;
//! - types: `string` → `String`, `list<T>` → `Vec<T>`, `option<T>` → `Option<T>`,
//!   `result<T, E>` → `Result<T, E>`, `tuple<A, B>` → `(A, B)`, `s32` → `i32`, a named type →
//!   its Rust name; a `type` alias or a `use` stands for what it names. Rust types are compared
//!   by their last path segment, so `std::string::String` is `String`.
//!
//! A WIT kind with no rule here (a resource, a map, a stream) is reported, so the rule gets
//! written down before the IR uses it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use wit_parser::{PackageId, Resolve, Type, TypeDefKind, TypeId};

/// The WIT interface package and the directory of the Rust types, relative to this crate.
const WIT_DIR: &str = "../wit";
const RUST_DIR: &str = "src";
/// The generated bindings and their converters, not IR types.
const NOT_IR: &[&str] = &["guest.rs"];

#[test]
fn wit_and_rust_ir_types_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(root.join(WIT_DIR)).expect("the WIT in wit/ parses");
    let wit = wit_definitions(&resolve, package);
    assert!(wit.len() > 20, "found only {} WIT types: is {WIT_DIR} the IR package?", wit.len());
    let rust = rust_definitions(&rust_sources(&root.join(RUST_DIR)));

    let problems = compare(&wit, &rust);
    assert!(
        problems.is_empty(),
        "the WIT (wit/kiln-build.wit) and the Rust IR types (ir/src/) differ in {} place(s):\n{}\n\
         Change both together, then the converters in ir/src/guest.rs and \
         runner/src/frontend/bindings.rs (the compiler points at them).",
        problems.len(),
        problems.iter().fold(String::new(), |mut out, p| {
            let _ = writeln!(out, "  - {p}");
            out
        }),
    );
}

/// A type as one side spells it, reduced to what both sides share.
#[derive(Debug)]
struct Definition {
    /// The Rust name both sides are looked up by (`CacheMount`).
    name: String,
    /// How a message names it on its own side: "WIT record `cache-mount`", "Rust struct `CacheMount`".
    what: String,
    /// Struct-like (record, flags, struct) or enum-like (variant, enum).
    kind: Kind,
    /// What its side calls a member: "field", "flag", "case".
    noun: &'static str,
    /// Its fields or cases, in order.
    members: Vec<Member>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Struct,
    Enum,
}

/// A field or a case.
#[derive(Debug)]
struct Member {
    /// The Rust spelling of its name (`read_write`, `StopSignal`).
    name: String,
    /// As its own side writes it, for messages: `read-write: bool`, `stage(u32)`.
    shown: String,
    /// The Rust spelling of its type (`Option<CopySource>`); `None` for a case with no payload.
    ty: Option<String>,
}

/// Every difference between the two sides, as one sentence each that names the type, the
/// member and what each side says.
fn compare(wit: &[Definition], rust: &[Definition]) -> Vec<String> {
    let mut problems = Vec::new();
    for w in wit {
        let Some(r) = rust.iter().find(|r| r.name == w.name) else {
            let item = if w.kind == Kind::Struct { "struct" } else { "enum" };
            problems.push(format!(
                "`{}`: {} has no Rust counterpart (no `pub {item} {}` in ir/src/)",
                w.name, w.what, w.name
            ));
            continue;
        };
        if w.kind != r.kind {
            problems.push(format!("`{}`: {} is a {}", w.name, w.what, r.what));
            continue;
        }
        for wm in &w.members {
            match r.members.iter().find(|rm| rm.name == wm.name) {
                None => problems.push(format!(
                    "`{}.{}`: {} has {} `{}`, {} has no {} `{}`",
                    w.name, wm.name, w.what, w.noun, wm.shown, r.what, r.noun, wm.name
                )),
                Some(rm) if rm.ty != wm.ty => problems.push(format!(
                    "`{}.{}`: {} has `{}` (in Rust: `{}`), {} has `{}`",
                    w.name,
                    wm.name,
                    w.what,
                    wm.shown,
                    wm.ty.as_deref().unwrap_or("no payload"),
                    r.what,
                    rm.shown
                )),
                Some(_) => {}
            }
        }
        for rm in &r.members {
            if !w.members.iter().any(|wm| wm.name == rm.name) {
                problems.push(format!(
                    "`{}.{}`: {} has {} `{}`, {} has no {} for it",
                    w.name, rm.name, r.what, r.noun, rm.shown, w.what, w.noun
                ));
            }
        }
        let order = |d: &Definition| d.members.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        let (wo, ro) = (order(w), order(r));
        let same_set = wo.len() == ro.len() && wo.iter().all(|n| ro.contains(n));
        if same_set && wo != ro {
            problems.push(format!(
                "`{}`: the same {}s in a different order: {} has [{}], {} has [{}]",
                w.name,
                w.noun,
                w.what,
                wo.join(", "),
                r.what,
                ro.join(", ")
            ));
        }
    }
    problems
}

// ---- The WIT side ----

/// The records, variants, enums and flags of every interface of `package`.
fn wit_definitions(resolve: &Resolve, package: PackageId) -> Vec<Definition> {
    let mut out = Vec::new();
    for &interface in resolve.packages[package].interfaces.values() {
        let interface = &resolve.interfaces[interface];
        for (name, &id) in &interface.types {
            let (kind, word, noun, members) = match &resolve.types[id].kind {
                TypeDefKind::Record(r) => (
                    Kind::Struct,
                    "record",
                    "field",
                    r.fields
                        .iter()
                        .map(|f| Member {
                            name: snake(&f.name),
                            shown: format!("{}: {}", f.name, wit_text(resolve, &f.ty)),
                            ty: Some(rust_of_wit(resolve, &f.ty)),
                        })
                        .collect(),
                ),
                TypeDefKind::Flags(f) => (
                    Kind::Struct,
                    "flags",
                    "flag",
                    f.flags
                        .iter()
                        .map(|f| Member { name: snake(&f.name), shown: f.name.clone(), ty: Some("bool".into()) })
                        .collect(),
                ),
                TypeDefKind::Variant(v) => (
                    Kind::Enum,
                    "variant",
                    "case",
                    v.cases
                        .iter()
                        .map(|c| Member {
                            name: upper_camel(&c.name),
                            shown: match &c.ty {
                                Some(t) => format!("{}({})", c.name, wit_text(resolve, t)),
                                None => c.name.clone(),
                            },
                            ty: c.ty.as_ref().map(|t| rust_of_wit(resolve, t)),
                        })
                        .collect(),
                ),
                TypeDefKind::Enum(e) => (
                    Kind::Enum,
                    "enum",
                    "case",
                    e.cases
                        .iter()
                        .map(|c| Member { name: upper_camel(&c.name), shown: c.name.clone(), ty: None })
                        .collect(),
                ),
                // Aliases (`type a = b`, `use i.{t}`) stand for what they name: checked there.
                TypeDefKind::Type(_)
                | TypeDefKind::List(_)
                | TypeDefKind::Option(_)
                | TypeDefKind::Result(_)
                | TypeDefKind::Tuple(_)
                | TypeDefKind::FixedLengthList(..) => continue,
                other => {
                    // A kind with no mapping: a definition that can match nothing, so it is reported.
                    (
                        Kind::Struct,
                        other.as_str(),
                        "part",
                        vec![Member {
                            name: "<no rule in tests/wit_drift.rs>".into(),
                            shown: format!("{} has no Rust mapping yet", other.as_str()),
                            ty: None,
                        }],
                    )
                }
            };
            out.push(Definition { name: upper_camel(name), what: format!("WIT {word} `{name}`"), kind, noun, members });
        }
    }
    out
}

/// The Rust spelling of a WIT type.
fn rust_of_wit(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "i8".into(),
        Type::S16 => "i16".into(),
        Type::S32 => "i32".into(),
        Type::S64 => "i64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "String".into(),
        Type::ErrorContext => "<error-context: no Rust mapping>".into(),
        Type::Id(id) => rust_of_wit_def(resolve, *id),
    }
}

fn rust_of_wit_def(resolve: &Resolve, id: TypeId) -> String {
    let def = &resolve.types[id];
    let of = |t: &Type| rust_of_wit(resolve, t);
    let or_unit = |t: &Option<Type>| t.as_ref().map_or_else(|| "()".to_string(), of);
    match &def.kind {
        TypeDefKind::Type(t) => of(t),
        TypeDefKind::List(t) => format!("Vec<{}>", of(t)),
        TypeDefKind::Option(t) => format!("Option<{}>", of(t)),
        TypeDefKind::Result(r) => format!("Result<{}, {}>", or_unit(&r.ok), or_unit(&r.err)),
        TypeDefKind::Tuple(t) => format!("({})", t.types.iter().map(of).collect::<Vec<_>>().join(", ")),
        TypeDefKind::FixedLengthList(t, n) => format!("[{}; {n}]", of(t)),
        TypeDefKind::Record(_) | TypeDefKind::Variant(_) | TypeDefKind::Enum(_) | TypeDefKind::Flags(_) => {
            upper_camel(def.name.as_deref().unwrap_or("<anonymous>"))
        }
        other => format!("<WIT {} has no Rust mapping>", other.as_str()),
    }
}

/// A WIT type as the WIT file writes it, for messages.
fn wit_text(resolve: &Resolve, ty: &Type) -> String {
    let Type::Id(id) = ty else {
        return match ty {
            Type::Bool => "bool",
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::S8 => "s8",
            Type::S16 => "s16",
            Type::S32 => "s32",
            Type::S64 => "s64",
            Type::F32 => "f32",
            Type::F64 => "f64",
            Type::Char => "char",
            Type::String => "string",
            Type::ErrorContext | Type::Id(_) => "error-context",
        }
        .into();
    };
    let def = &resolve.types[*id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    let of = |t: &Type| wit_text(resolve, t);
    let or_blank = |t: &Option<Type>| t.as_ref().map_or_else(|| "_".to_string(), of);
    match &def.kind {
        TypeDefKind::List(t) => format!("list<{}>", of(t)),
        TypeDefKind::Option(t) => format!("option<{}>", of(t)),
        TypeDefKind::Result(r) => format!("result<{}, {}>", or_blank(&r.ok), or_blank(&r.err)),
        TypeDefKind::Tuple(t) => format!("tuple<{}>", t.types.iter().map(of).collect::<Vec<_>>().join(", ")),
        TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", of(t)),
        TypeDefKind::Type(t) => of(t),
        other => other.as_str().to_string(),
    }
}

/// `key-value` → `KeyValue`, as wit-bindgen names types and cases.
fn upper_camel(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect()
            })
        })
        .collect()
}

/// `read-write` → `read_write`, as wit-bindgen names fields.
fn snake(kebab: &str) -> String {
    kebab.to_lowercase().replace('-', "_")
}

// ---- The Rust side ----

/// The source of every `.rs` file under `dir` that may hold IR types, with its path.
fn rust_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("ir/src is readable") {
            let path = entry.expect("ir/src is readable").path();
            let skipped = path.file_name().is_some_and(|n| NOT_IR.iter().any(|s| n == *s));
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !skipped {
                let text = std::fs::read_to_string(&path).expect("ir/src is readable");
                files.push((path, text));
            }
        }
    }
    files.sort();
    files
}

/// The `pub struct`s and `pub enum`s at the top level of these files.
fn rust_definitions(files: &[(PathBuf, String)]) -> Vec<Definition> {
    let mut out = Vec::new();
    for (path, text) in files {
        let file = syn::parse_file(text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        for item in file.items {
            match item {
                syn::Item::Struct(s) if matches!(s.vis, syn::Visibility::Public(_)) => {
                    let name = s.ident.to_string();
                    let members = s
                        .fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let field = f.ident.as_ref().map_or_else(|| i.to_string(), ident);
                            let ty = rust_type(&f.ty);
                            Member { shown: format!("{field}: {ty}"), name: field, ty: Some(ty) }
                        })
                        .collect();
                    out.push(Definition {
                        what: format!("Rust struct `{name}`"),
                        name,
                        kind: Kind::Struct,
                        noun: "field",
                        members,
                    });
                }
                syn::Item::Enum(e) if matches!(e.vis, syn::Visibility::Public(_)) => {
                    let name = e.ident.to_string();
                    let members = e
                        .variants
                        .iter()
                        .map(|v| {
                            let case = ident(&v.ident);
                            let ty = match &v.fields {
                                syn::Fields::Unit => None,
                                syn::Fields::Unnamed(f) if f.unnamed.len() == 1 => Some(rust_type(&f.unnamed[0].ty)),
                                other => Some(format!("{} (not one unnamed field)", other.to_token_stream())),
                            };
                            let shown = match &ty {
                                Some(t) => format!("{case}({t})"),
                                None => case.clone(),
                            };
                            Member { name: case, shown, ty }
                        })
                        .collect();
                    out.push(Definition {
                        what: format!("Rust enum `{name}`"),
                        name,
                        kind: Kind::Enum,
                        noun: "case",
                        members,
                    });
                }
                _ => {}
            }
        }
    }
    out
}

/// An identifier without its raw prefix: `r#type` is the field `type`.
fn ident(i: &syn::Ident) -> String {
    let s = i.to_string();
    s.strip_prefix("r#").map_or(s.clone(), str::to_string)
}

/// A Rust type in the form `rust_of_wit` writes: last path segments, generic arguments kept.
fn rust_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else { return String::new() };
            let name = ident(&last.ident);
            match &last.arguments {
                syn::PathArguments::AngleBracketed(args) => {
                    let args: Vec<String> = args
                        .args
                        .iter()
                        .map(|a| match a {
                            syn::GenericArgument::Type(t) => rust_type(t),
                            other => other.to_token_stream().to_string(),
                        })
                        .collect();
                    format!("{name}<{}>", args.join(", "))
                }
                _ => name,
            }
        }
        syn::Type::Tuple(t) => format!("({})", t.elems.iter().map(rust_type).collect::<Vec<_>>().join(", ")),
        syn::Type::Array(a) => format!("[{}; {}]", rust_type(&a.elem), a.len.to_token_stream()),
        syn::Type::Paren(p) => rust_type(&p.elem),
        other => other.to_token_stream().to_string(),
    }
}

// ---- The checker checks what it claims to ----

/// A small IR in both spellings that agree; each case below changes one side.
const WIT: &str = r#"
package test:ir;
interface types {
    record cache-mount { %from: option<copy-source>, read-only: bool, mode: u32 }
    variant copy-source { context, stage(u32), image(string) }
    enum network { default, none }
    flags perms { read, write-back }
    record graph { mounts: list<cache-mount>, net: network, pair: tuple<s32, list<u8>>, r: result<string> }
}
interface host {
    use types.{graph};
    record reply { g: graph }
}
"#;

const RUST: &str = r#"
pub struct CacheMount { pub from: Option<CopySource>, pub read_only: bool, pub mode: u32 }
pub enum CopySource { Context, Stage(u32), Image(std::string::String) }
pub enum Network { Default, None }
pub struct Perms { pub read: bool, pub write_back: bool }
pub struct Graph { pub mounts: Vec<CacheMount>, pub net: Network, pub pair: (i32, Vec<u8>), pub r: Result<String, ()> }
pub struct Reply { pub g: Graph }
pub struct RustOnly;
"#;

/// The problems found after replacing `from` by `to` in the WIT and in the Rust source.
fn drift(wit_edit: (&str, &str), rust_edit: (&str, &str)) -> Vec<String> {
    let edit = |text: &str, (from, to): (&str, &str)| {
        assert!(from.is_empty() || text.contains(from), "the edit {from:?} matches nothing");
        if from.is_empty() { text.to_string() } else { text.replacen(from, to, 1) }
    };
    let mut resolve = Resolve::default();
    let package = resolve.push_str("test.wit", &edit(WIT, wit_edit)).expect("the test WIT parses");
    let rust = rust_definitions(&[(PathBuf::from("test.rs"), edit(RUST, rust_edit))]);
    compare(&wit_definitions(&resolve, package), &rust)
}

macro_rules! drift_cases {
    ($($name:ident: wit $wit:expr, rust $rust:expr => [$($expected:expr),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let expected: &[&str] = &[$($expected),*];
            assert_eq!(drift($wit, $rust), expected);
        }
    )*};
}

drift_cases! {
    agreeing_sides_pass: wit ("", ""), rust ("", "") => [];
    field_added_to_wit: wit ("mode: u32 }", "mode: u32, uid: u32 }"), rust ("", "") => [
        "`CacheMount.uid`: WIT record `cache-mount` has field `uid: u32`, Rust struct `CacheMount` has no field `uid`",
    ];
    field_added_to_rust: wit ("", ""), rust ("pub mode: u32 }", "pub mode: u32, pub gid: u32 }") => [
        "`CacheMount.gid`: Rust struct `CacheMount` has field `gid: u32`, WIT record `cache-mount` has no field for it",
    ];
    field_renamed_in_rust: wit ("", ""), rust ("pub read_only", "pub readonly") => [
        "`CacheMount.read_only`: WIT record `cache-mount` has field `read-only: bool`, Rust struct `CacheMount` has no field `read_only`",
        "`CacheMount.readonly`: Rust struct `CacheMount` has field `readonly: bool`, WIT record `cache-mount` has no field for it",
    ];
    field_retyped_in_wit: wit ("mode: u32", "mode: u64"), rust ("", "") => [
        "`CacheMount.mode`: WIT record `cache-mount` has `mode: u64` (in Rust: `u64`), Rust struct `CacheMount` has `mode: u32`",
    ];
    nested_type_retyped_in_rust: wit ("", ""), rust ("Vec<CacheMount>", "Vec<Option<CacheMount>>") => [
        "`Graph.mounts`: WIT record `graph` has `mounts: list<cache-mount>` (in Rust: `Vec<CacheMount>`), Rust struct `Graph` has `mounts: Vec<Option<CacheMount>>`",
    ];
    fields_reordered: wit ("", ""), rust ("pub read_only: bool, pub mode: u32", "pub mode: u32, pub read_only: bool") => [
        "`CacheMount`: the same fields in a different order: WIT record `cache-mount` has [from, read_only, mode], Rust struct `CacheMount` has [from, mode, read_only]",
    ];
    case_added_to_wit: wit ("image(string) }", "image(string), oci(string) }"), rust ("", "") => [
        "`CopySource.Oci`: WIT variant `copy-source` has case `oci(string)`, Rust enum `CopySource` has no case `Oci`",
    ];
    case_payload_retyped: wit ("stage(u32)", "stage(string)"), rust ("", "") => [
        "`CopySource.Stage`: WIT variant `copy-source` has `stage(string)` (in Rust: `String`), Rust enum `CopySource` has `Stage(u32)`",
    ];
    enum_case_added_to_rust: wit ("", ""), rust ("Default, None }", "Default, None, Host }") => [
        "`Network.Host`: Rust enum `Network` has case `Host`, WIT enum `network` has no case for it",
    ];
    flag_renamed: wit ("write-back", "write"), rust ("", "") => [
        "`Perms.write`: WIT flags `perms` has flag `write`, Rust struct `Perms` has no field `write`",
        "`Perms.write_back`: Rust struct `Perms` has field `write_back: bool`, WIT flags `perms` has no flag for it",
    ];
    type_missing_in_rust: wit ("", ""), rust ("pub struct Reply { pub g: Graph }", "") => [
        "`Reply`: WIT record `reply` has no Rust counterpart (no `pub struct Reply` in ir/src/)",
    ];
    record_turned_enum: wit ("", ""), rust ("pub struct Reply { pub g: Graph }", "pub enum Reply { G(Graph) }") => [
        "`Reply`: WIT record `reply` is a Rust enum `Reply`",
    ];
}

#[test]
fn names_map_as_wit_bindgen_maps_them() {
    assert_eq!(upper_camel("key-value"), "KeyValue");
    assert_eq!(upper_camel("stop-signal"), "StopSignal");
    assert_eq!(upper_camel("network"), "Network");
    assert_eq!(snake("start-interval"), "start_interval");
    assert_eq!(snake("from"), "from");
}
