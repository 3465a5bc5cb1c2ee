//! Guest-side bindings of the `kiln:build` frontend world, for frontends written in Rust.
//!
//! A Rust frontend builds the plain types of this crate and exports them with
//! [`export_frontend!`](crate::export_frontend):
//!
//! ```ignore
//! struct MyFrontend;
//! impl kiln_ir::guest::Frontend for MyFrontend {
//!     fn parse(req: &kiln_ir::Request, host: &dyn kiln_ir::ImageResolver)
//!         -> Result<kiln_ir::BuildGraph, Vec<kiln_ir::Diagnostic>> { todo!() }
//! }
//! kiln_ir::export_frontend!(MyFrontend);
//! ```
//!
//! This module owns the conversions between those types and the generated WIT types, and the
//! [`HostResolver`] that calls the host's one import. It only builds for `wasm32` targets.
//!
//! Each conversion builds its result with a struct literal that names every field (no `..`,
//! no constructor), so a field added to the WIT and to this crate is a compile error here until
//! it is converted; `tests/wit_drift.rs` checks that the two sides agree.

#![allow(missing_docs, reason = "generated bindings")]
#![allow(unsafe_code, reason = "wit-bindgen generates the canonical ABI glue")]

wit_bindgen::generate!({
    path: "../wit",
    world: "frontend",
    pub_export_macro: true,
    export_macro_name: "export_frontend_world",
    default_bindings_module: "kiln_ir::guest",
});

use self::kiln::build::types as w;
use crate as ir;

/// What a Rust frontend implements.
pub trait Frontend {
    /// Parse a build file; see the `parse` export of the `frontend` world.
    ///
    /// # Errors
    /// Diagnostics, errors first.
    fn parse(req: &ir::Request, host: &dyn ir::ImageResolver) -> Result<ir::BuildGraph, Vec<ir::Diagnostic>>;
}

/// Export a [`Frontend`] implementation as the component's `parse`.
#[macro_export]
macro_rules! export_frontend {
    ($ty:ident) => {
        struct __KilnFrontendExport;
        impl $crate::guest::Guest for __KilnFrontendExport {
            fn parse(
                req: $crate::guest::kiln::build::types::Request,
            ) -> ::core::result::Result<
                $crate::guest::kiln::build::types::BuildGraph,
                ::std::vec::Vec<$crate::guest::kiln::build::types::Diagnostic>,
            > {
                $crate::guest::run::<$ty>(req)
            }
        }
        $crate::guest::export_frontend_world!(__KilnFrontendExport);
    };
}

/// Convert, call the frontend, convert back. Used by [`export_frontend!`](crate::export_frontend).
///
/// # Errors
/// The frontend's diagnostics, converted.
pub fn run<F: Frontend>(req: w::Request) -> Result<w::BuildGraph, Vec<w::Diagnostic>> {
    let req = ir::Request::from(req);
    F::parse(&req, &HostResolver).map(Into::into).map_err(|ds| ds.into_iter().map(Into::into).collect())
}

/// The host's `resolve-image-config`, as an [`ir::ImageResolver`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HostResolver;

impl ir::ImageResolver for HostResolver {
    fn resolve_image_config(&self, reference: &str, platform: Option<&str>) -> Result<ir::ImageConfig, String> {
        kiln::build::host::resolve_image_config(reference, platform).map(|c| ir::ImageConfig {
            env: c.env,
            working_dir: c.working_dir,
            user: c.user,
            shell: c.shell,
            on_build: c.on_build,
            platform: c.platform,
        })
    }
}

impl From<w::Request> for ir::Request {
    fn from(r: w::Request) -> Self {
        ir::Request {
            file_name: r.file_name,
            contents: r.contents,
            build_args: r.build_args.into_iter().map(Into::into).collect(),
            target: r.target,
            build_platform: r.build_platform,
            target_platform: r.target_platform,
        }
    }
}

impl From<w::KeyValue> for ir::KeyValue {
    fn from(kv: w::KeyValue) -> Self {
        ir::KeyValue { key: kv.key, value: kv.value }
    }
}

impl From<ir::KeyValue> for w::KeyValue {
    fn from(kv: ir::KeyValue) -> Self {
        w::KeyValue { key: kv.key, value: kv.value }
    }
}

fn kvs(list: Vec<ir::KeyValue>) -> Vec<w::KeyValue> {
    list.into_iter().map(Into::into).collect()
}

impl From<ir::Position> for w::Position {
    fn from(p: ir::Position) -> Self {
        w::Position { line: p.line, column: p.column }
    }
}

impl From<ir::Span> for w::Span {
    fn from(s: ir::Span) -> Self {
        w::Span { start: s.start.into(), end: s.end.into() }
    }
}

impl From<ir::Diagnostic> for w::Diagnostic {
    fn from(d: ir::Diagnostic) -> Self {
        w::Diagnostic {
            severity: match d.severity {
                ir::Severity::Error => w::Severity::Error,
                ir::Severity::Warning => w::Severity::Warning,
            },
            message: d.message,
            span: d.span.map(Into::into),
            hint: d.hint,
            code: d.code,
        }
    }
}

impl From<ir::CopySource> for w::CopySource {
    fn from(s: ir::CopySource) -> Self {
        match s {
            ir::CopySource::Context => w::CopySource::Context,
            ir::CopySource::Stage(i) => w::CopySource::Stage(i),
            ir::CopySource::Image(r) => w::CopySource::Image(r),
        }
    }
}

impl From<ir::InlineFile> for w::InlineFile {
    fn from(f: ir::InlineFile) -> Self {
        w::InlineFile { name: f.name, contents: f.contents, mode: f.mode }
    }
}

impl From<ir::Mount> for w::Mount {
    fn from(m: ir::Mount) -> Self {
        let kind = match m.kind {
            ir::MountKind::Bind(b) => {
                w::MountKind::Bind(w::BindMount { from: b.from.into(), source: b.source, read_write: b.read_write })
            }
            ir::MountKind::Cache(c) => w::MountKind::Cache(w::CacheMount {
                id: c.id,
                sharing: match c.sharing {
                    ir::CacheSharing::Shared => w::CacheSharing::Shared,
                    ir::CacheSharing::Private => w::CacheSharing::Private,
                    ir::CacheSharing::Locked => w::CacheSharing::Locked,
                },
                from: c.from.map(Into::into),
                source: c.source,
                read_only: c.read_only,
                mode: c.mode,
                uid: c.uid,
                gid: c.gid,
            }),
            ir::MountKind::Tmpfs(t) => w::MountKind::Tmpfs(w::TmpfsMount { size: t.size }),
            ir::MountKind::Secret(s) => w::MountKind::Secret(w::SecretMount {
                id: s.id,
                env: s.env,
                required: s.required,
                mode: s.mode,
                uid: s.uid,
                gid: s.gid,
            }),
            ir::MountKind::Ssh(s) => {
                w::MountKind::Ssh(w::SshMount { id: s.id, required: s.required, mode: s.mode, uid: s.uid, gid: s.gid })
            }
            ir::MountKind::Inline(f) => w::MountKind::Inline(f.into()),
        };
        w::Mount { target: m.target, kind }
    }
}

impl From<ir::Command> for w::Command {
    fn from(c: ir::Command) -> Self {
        w::Command { argv: c.argv, shell_form: c.shell_form }
    }
}

impl From<ir::ConfigChange> for w::ConfigChange {
    fn from(c: ir::ConfigChange) -> Self {
        use ir::ConfigChange as C;
        match c {
            C::Env(v) => w::ConfigChange::Env(kvs(v)),
            C::Label(v) => w::ConfigChange::Label(kvs(v)),
            C::Workdir(v) => w::ConfigChange::Workdir(v),
            C::User(v) => w::ConfigChange::User(v),
            C::Cmd(v) => w::ConfigChange::Cmd(v.into()),
            C::Entrypoint(v) => w::ConfigChange::Entrypoint(v.into()),
            C::Expose(v) => w::ConfigChange::Expose(v),
            C::Volume(v) => w::ConfigChange::Volume(v),
            C::Healthcheck(h) => w::ConfigChange::Healthcheck(w::Healthcheck {
                test: h.test,
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                start_interval: h.start_interval,
                retries: h.retries,
            }),
            C::StopSignal(v) => w::ConfigChange::StopSignal(v),
            C::Shell(v) => w::ConfigChange::Shell(v),
            C::Onbuild(v) => w::ConfigChange::Onbuild(v),
            C::Maintainer(v) => w::ConfigChange::Maintainer(v),
        }
    }
}

impl From<ir::ArgBinding> for w::ArgBinding {
    fn from(a: ir::ArgBinding) -> Self {
        w::ArgBinding { name: a.name, value: a.value }
    }
}

impl From<ir::Op> for w::Op {
    fn from(op: ir::Op) -> Self {
        match op {
            ir::Op::Run(r) => w::Op::Run(w::Run {
                argv: r.argv,
                shell_form: r.shell_form,
                build_args: kvs(r.build_args),
                mounts: r.mounts.into_iter().map(Into::into).collect(),
                network: match r.network {
                    ir::Network::Default => w::Network::Default,
                    ir::Network::None => w::Network::None,
                    ir::Network::Host => w::Network::Host,
                },
                security: match r.security {
                    ir::Security::Sandbox => w::Security::Sandbox,
                    ir::Security::Insecure => w::Security::Insecure,
                },
            }),
            ir::Op::Copy(c) => w::Op::Copy(w::CopyFiles {
                from: c.from.into(),
                sources: c.sources,
                inline_sources: c.inline_sources.into_iter().map(Into::into).collect(),
                dest: c.dest,
                chown: c.chown,
                chmod: c.chmod,
                link: c.link,
                parents: c.parents,
                exclude: c.exclude,
                add: c.add.map(|a| w::AddOptions {
                    keep_git_dir: a.keep_git_dir,
                    checksum: a.checksum,
                    unpack: a.unpack,
                }),
            }),
            ir::Op::Config(c) => w::Op::Config(c.into()),
            ir::Op::Arg(args) => w::Op::Arg(args.into_iter().map(Into::into).collect()),
        }
    }
}

impl From<ir::Instruction> for w::Instruction {
    fn from(i: ir::Instruction) -> Self {
        w::Instruction { op: i.op.into(), span: i.span.into(), created_by: i.created_by, text: i.text }
    }
}

impl From<ir::Stage> for w::Stage {
    fn from(s: ir::Stage) -> Self {
        w::Stage {
            name: s.name,
            base: match s.base {
                ir::Base::Scratch => w::Base::Scratch,
                ir::Base::Image(r) => w::Base::Image(r),
                ir::Base::Stage(i) => w::Base::Stage(i),
            },
            platform: s.platform,
            instructions: s.instructions.into_iter().map(Into::into).collect(),
            span: s.span.into(),
            text: s.text,
        }
    }
}

impl From<ir::BuildGraph> for w::BuildGraph {
    fn from(g: ir::BuildGraph) -> Self {
        w::BuildGraph {
            stages: g.stages.into_iter().map(Into::into).collect(),
            target: g.target,
            global_args: g.global_args.into_iter().map(Into::into).collect(),
            warnings: g.warnings.into_iter().map(Into::into).collect(),
        }
    }
}
