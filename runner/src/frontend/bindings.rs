//! Host-side bindings of the `kiln:build` frontend world and their conversion to and from
//! the plain [`kiln_ir`] types. Nothing here decides policy; it only translates.
//!
//! Each conversion builds its result with a struct literal that names every field (no `..`,
//! no constructor), so a field added to the WIT and to `kiln_ir` is a compile error here until
//! it is converted; `ir/tests/wit_drift.rs` checks that the two sides agree.

use kiln_ir as ir;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "frontend",
});

use self::kiln::build::types as w;

fn kv(list: Vec<w::KeyValue>) -> Vec<ir::KeyValue> {
    list.into_iter().map(|kv| ir::KeyValue { key: kv.key, value: kv.value }).collect()
}

impl From<&ir::Request> for w::Request {
    fn from(r: &ir::Request) -> Self {
        w::Request {
            file_name: r.file_name.clone(),
            contents: r.contents.clone(),
            build_args: r
                .build_args
                .iter()
                .map(|kv| w::KeyValue { key: kv.key.clone(), value: kv.value.clone() })
                .collect(),
            target: r.target.clone(),
            build_platform: r.build_platform.clone(),
            target_platform: r.target_platform.clone(),
        }
    }
}

impl From<ir::ImageConfig> for w::ImageConfig {
    fn from(c: ir::ImageConfig) -> Self {
        w::ImageConfig {
            env: c.env,
            working_dir: c.working_dir,
            user: c.user,
            shell: c.shell,
            on_build: c.on_build,
            platform: c.platform,
        }
    }
}

impl From<w::Span> for ir::Span {
    fn from(s: w::Span) -> Self {
        ir::Span {
            start: ir::Position { line: s.start.line, column: s.start.column },
            end: ir::Position { line: s.end.line, column: s.end.column },
        }
    }
}

impl From<w::Diagnostic> for ir::Diagnostic {
    fn from(d: w::Diagnostic) -> Self {
        ir::Diagnostic {
            severity: match d.severity {
                w::Severity::Error => ir::Severity::Error,
                w::Severity::Warning => ir::Severity::Warning,
            },
            message: d.message,
            span: d.span.map(Into::into),
            hint: d.hint,
            code: d.code,
        }
    }
}

impl From<w::CopySource> for ir::CopySource {
    fn from(s: w::CopySource) -> Self {
        match s {
            w::CopySource::Context => ir::CopySource::Context,
            w::CopySource::Stage(i) => ir::CopySource::Stage(i),
            w::CopySource::Image(r) => ir::CopySource::Image(r),
        }
    }
}

impl From<w::InlineFile> for ir::InlineFile {
    fn from(f: w::InlineFile) -> Self {
        ir::InlineFile { name: f.name, contents: f.contents, mode: f.mode }
    }
}

impl From<w::Mount> for ir::Mount {
    fn from(m: w::Mount) -> Self {
        let kind = match m.kind {
            w::MountKind::Bind(b) => {
                ir::MountKind::Bind(ir::BindMount { from: b.from.into(), source: b.source, read_write: b.read_write })
            }
            w::MountKind::Cache(c) => ir::MountKind::Cache(ir::CacheMount {
                id: c.id,
                sharing: match c.sharing {
                    w::CacheSharing::Shared => ir::CacheSharing::Shared,
                    w::CacheSharing::Private => ir::CacheSharing::Private,
                    w::CacheSharing::Locked => ir::CacheSharing::Locked,
                },
                from: c.from.map(Into::into),
                source: c.source,
                read_only: c.read_only,
                mode: c.mode,
                uid: c.uid,
                gid: c.gid,
            }),
            w::MountKind::Tmpfs(t) => ir::MountKind::Tmpfs(ir::TmpfsMount { size: t.size }),
            w::MountKind::Secret(s) => ir::MountKind::Secret(ir::SecretMount {
                id: s.id,
                env: s.env,
                required: s.required,
                mode: s.mode,
                uid: s.uid,
                gid: s.gid,
            }),
            w::MountKind::Ssh(s) => ir::MountKind::Ssh(ir::SshMount {
                id: s.id,
                required: s.required,
                mode: s.mode,
                uid: s.uid,
                gid: s.gid,
            }),
            w::MountKind::Inline(f) => ir::MountKind::Inline(f.into()),
        };
        ir::Mount { target: m.target, kind }
    }
}

impl From<w::Command> for ir::Command {
    fn from(c: w::Command) -> Self {
        ir::Command { argv: c.argv, shell_form: c.shell_form }
    }
}

impl From<w::ConfigChange> for ir::ConfigChange {
    fn from(c: w::ConfigChange) -> Self {
        use w::ConfigChange as C;
        match c {
            C::Env(v) => ir::ConfigChange::Env(kv(v)),
            C::Label(v) => ir::ConfigChange::Label(kv(v)),
            C::Workdir(v) => ir::ConfigChange::Workdir(v),
            C::User(v) => ir::ConfigChange::User(v),
            C::Cmd(v) => ir::ConfigChange::Cmd(v.into()),
            C::Entrypoint(v) => ir::ConfigChange::Entrypoint(v.into()),
            C::Expose(v) => ir::ConfigChange::Expose(v),
            C::Volume(v) => ir::ConfigChange::Volume(v),
            C::Healthcheck(h) => ir::ConfigChange::Healthcheck(ir::Healthcheck {
                test: h.test,
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                start_interval: h.start_interval,
                retries: h.retries,
            }),
            C::StopSignal(v) => ir::ConfigChange::StopSignal(v),
            C::Shell(v) => ir::ConfigChange::Shell(v),
            C::Onbuild(v) => ir::ConfigChange::Onbuild(v),
            C::Maintainer(v) => ir::ConfigChange::Maintainer(v),
        }
    }
}

fn args(list: Vec<w::ArgBinding>) -> Vec<ir::ArgBinding> {
    list.into_iter().map(|a| ir::ArgBinding { name: a.name, value: a.value }).collect()
}

impl From<w::Op> for ir::Op {
    fn from(op: w::Op) -> Self {
        match op {
            w::Op::Run(r) => ir::Op::Run(ir::Run {
                argv: r.argv,
                shell_form: r.shell_form,
                build_args: kv(r.build_args),
                mounts: r.mounts.into_iter().map(Into::into).collect(),
                network: match r.network {
                    w::Network::Default => ir::Network::Default,
                    w::Network::None => ir::Network::None,
                    w::Network::Host => ir::Network::Host,
                },
                security: match r.security {
                    w::Security::Sandbox => ir::Security::Sandbox,
                    w::Security::Insecure => ir::Security::Insecure,
                },
            }),
            w::Op::Copy(c) => ir::Op::Copy(ir::CopyFiles {
                from: c.from.into(),
                sources: c.sources,
                inline_sources: c.inline_sources.into_iter().map(Into::into).collect(),
                dest: c.dest,
                chown: c.chown,
                chmod: c.chmod,
                link: c.link,
                parents: c.parents,
                exclude: c.exclude,
                add: c.add.map(|a| ir::AddOptions {
                    keep_git_dir: a.keep_git_dir,
                    checksum: a.checksum,
                    unpack: a.unpack,
                }),
            }),
            w::Op::Config(c) => ir::Op::Config(c.into()),
            w::Op::Arg(a) => ir::Op::Arg(args(a)),
        }
    }
}

impl From<w::BuildGraph> for ir::BuildGraph {
    fn from(g: w::BuildGraph) -> Self {
        ir::BuildGraph {
            stages: g
                .stages
                .into_iter()
                .map(|s| ir::Stage {
                    name: s.name,
                    base: match s.base {
                        w::Base::Scratch => ir::Base::Scratch,
                        w::Base::Image(r) => ir::Base::Image(r),
                        w::Base::Stage(i) => ir::Base::Stage(i),
                    },
                    platform: s.platform,
                    instructions: s
                        .instructions
                        .into_iter()
                        .map(|i| ir::Instruction {
                            op: i.op.into(),
                            span: i.span.into(),
                            created_by: i.created_by,
                            text: i.text,
                        })
                        .collect(),
                    span: s.span.into(),
                    text: s.text,
                })
                .collect(),
            target: g.target,
            global_args: args(g.global_args),
            warnings: g.warnings.into_iter().map(Into::into).collect(),
        }
    }
}
