//! RUN: the command line, its network and security flags, and each `--mount` value turned
//! into an IR mount, with Earthly's defaults for cache and secret mounts.
//!
//! It owns RUN only; it must never touch artifacts or other targets.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn run(&mut self, ev: &mut Eval, s: &Statement, run: command::Run<'_>) {
        self.before_file_change(ev, s.span);
        let Some(seg) = ev.seg.as_ref() else { return };
        let workdir = seg.state.workdir.clone();
        let entrypoint = seg.state.entrypoint.clone();
        let flags = &run.flags;
        let (argv, shell_form) = if flags.on("entrypoint") {
            let Some(mut argv) = entrypoint else {
                return self.fail(
                    "RUN --entrypoint: kiln cannot see the ENTRYPOINT of the base image",
                    s.span,
                    "set ENTRYPOINT in this target first, or write the program out: RUN [\"prog\", \"arg\"]",
                    "unknown-entrypoint",
                );
            };
            match run.form {
                Form::Exec(args) => argv.extend(args),
                Form::Shell(words) => {
                    let joined = Form::joined(words);
                    match self.lexer.process_words(&joined, &Self::scope(ev)) {
                        Ok(words) => argv.extend(words),
                        Err(e) => return self.fail(e.to_string(), s.span, "close the quote", "invalid-word"),
                    }
                }
            }
            if argv.is_empty() {
                return self.fail(
                    "RUN --entrypoint: there is no ENTRYPOINT and no command",
                    s.span,
                    "set ENTRYPOINT first",
                    "invalid-arguments",
                );
            }
            (argv, false)
        } else {
            match run.form {
                Form::Exec(argv) if argv.is_empty() => {
                    return self.fail(
                        "RUN [] has no program to run",
                        s.span,
                        "write RUN [\"prog\", \"arg\"]",
                        "invalid-arguments",
                    );
                }
                Form::Exec(argv) => (argv, false),
                Form::Shell(words) => {
                    let mut argv: Vec<String> = SHELL.iter().map(|x| x.to_string()).collect();
                    argv.push(Form::joined(words));
                    (argv, true)
                }
            }
        };
        let mut mounts_out = Vec::new();
        for (raw, span) in flags.values("secret") {
            let Some(value) = self.expand(ev, raw, span) else { return };
            let (env, id) = match value.split_once('=') {
                Some((env, id)) => (env.to_string(), id.to_string()),
                None => (value.clone(), value.clone()),
            };
            if id.is_empty() {
                // `--secret NAME=` is Earthly's way to leave an optional secret out.
                continue;
            }
            let id = id.strip_prefix("+secrets/").unwrap_or(&id).to_string();
            mounts_out.push(Mount {
                target: None,
                kind: MountKind::Secret(SecretMount {
                    id,
                    env: Some(env),
                    required: true,
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                }),
            });
        }
        if flags.on("ssh") {
            mounts_out.push(Mount {
                target: Some("/run/buildkit/ssh_agent.0".into()),
                kind: MountKind::Ssh(SshMount { id: "default".into(), required: false, mode: 0o600, uid: 0, gid: 0 }),
            });
        }
        for (raw, span) in flags.values("mount") {
            match self.mount(ev, raw, span, &workdir) {
                Some(m) => mounts_out.push(m),
                None => return,
            }
        }
        let network = match flags.value("network") {
            None => Network::Default,
            Some(("none", _)) => Network::None,
            Some((other, span)) => {
                return self.fail(
                    format!("RUN --network={other}: kiln supports only --network=none"),
                    span,
                    "kiln steps have no network; drop the flag or write --network=none",
                    "unsupported-flag",
                );
            }
        };
        let security = if flags.on("privileged") { Security::Insecure } else { Security::Sandbox };
        let build_args: Vec<KeyValue> = ev.vars.list.iter().map(|(k, v, _)| KeyValue::new(k, v)).collect();
        let created = if shell_form { format!("RUN {}", argv[2]) } else { format!("RUN {argv:?}") };
        let op = Op::Run(Run { argv, shell_form, build_args, mounts: mounts_out, network, security });
        self.push(ev, s, op, created);
    }

    /// One `RUN --mount=...` (Earthly takes BuildKit's syntax for cache, tmpfs and secret mounts).
    pub(super) fn mount(&mut self, ev: &Eval, raw: &str, span: Span, workdir: &str) -> Option<Mount> {
        let lexer = &self.lexer;
        let scope = Self::scope(ev);
        let expander = |word: &str| lexer.process_word(word, &scope).map_err(|e| e.to_string());
        let spec = match mounts::parse(raw, Some(&expander)) {
            Ok(spec) => spec,
            Err(e) => {
                self.fail(
                    format!("invalid --mount={raw}: {e}"),
                    span,
                    "write e.g. --mount=type=cache,target=/root/.cache",
                    "invalid-flag",
                );
                return None;
            }
        };
        let target = spec.target.as_ref().map(|t| kiln_ir::join_path(workdir, t));
        let kind = match spec.kind {
            mounts::MountType::Cache => {
                let Some(target) = target.clone() else {
                    self.fail(
                        "a cache mount needs target=PATH",
                        span,
                        "write --mount=type=cache,target=/path",
                        "invalid-flag",
                    );
                    return None;
                };
                let sharing = match spec.sharing.as_deref() {
                    Some("private") => CacheSharing::Private,
                    Some("locked") => CacheSharing::Locked,
                    _ => CacheSharing::Shared,
                };
                MountKind::Cache(CacheMount {
                    id: spec.id.clone().unwrap_or(target),
                    sharing,
                    from: None,
                    source: "/".into(),
                    read_only: spec.read_only,
                    mode: spec.mode.unwrap_or(0o755),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                })
            }
            mounts::MountType::Tmpfs => MountKind::Tmpfs(TmpfsMount { size: spec.size }),
            mounts::MountType::Secret => {
                let id = spec.id.clone().unwrap_or_default();
                let id = id.strip_prefix("+secrets/").unwrap_or(&id).to_string();
                if id.is_empty() || (target.is_none() && spec.env.is_none()) {
                    self.fail(
                        "a secret mount needs id=+secrets/NAME and target=PATH",
                        span,
                        "write --mount=type=secret,id=+secrets/NAME,target=/run/secrets/NAME",
                        "invalid-flag",
                    );
                    return None;
                }
                MountKind::Secret(SecretMount {
                    id,
                    env: spec.env.clone(),
                    required: true,
                    mode: spec.mode.unwrap_or(0o400),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                })
            }
            mounts::MountType::Ssh => MountKind::Ssh(SshMount {
                id: spec.id.clone().unwrap_or_else(|| "default".into()),
                required: spec.required,
                mode: spec.mode.unwrap_or(0o600),
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
            }),
            mounts::MountType::Bind => {
                self.fail(
                    "kiln does not support bind mounts in Earthfiles",
                    span,
                    "COPY the files into the target instead, or use type=cache or type=tmpfs",
                    "unsupported-flag",
                );
                return None;
            }
        };
        let target = match (&kind, target) {
            (MountKind::Ssh(_), None) => Some("/run/buildkit/ssh_agent.0".into()),
            (MountKind::Tmpfs(_), None) => {
                self.fail(
                    "a tmpfs mount needs target=PATH",
                    span,
                    "write --mount=type=tmpfs,target=/tmp",
                    "invalid-flag",
                );
                return None;
            }
            (_, t) => t,
        };
        Some(Mount { target, kind })
    }
}
