//! RUN: the command line (shell or exec form, heredocs as inline files), the flags kiln
//! refuses (`--device`), and each `--mount` value (bind, cache, tmpfs, secret, ssh) turned
//! into an IR mount.
//!
//! It owns RUN only; it must never touch another instruction's state.

use super::*;

impl Dispatch<'_, '_> {
    pub(super) fn dispatch_run(
        &mut self,
        state: &StageState,
        run: &RunCommand,
        span: Span,
    ) -> Result<(Op, String), ()> {
        if !run.devices.is_empty() {
            self.fail(
                "RUN --device is not supported: kiln runs steps in a WebAssembly sandbox with no devices".into(),
                span,
                Some("remove --device".into()),
            );
            return Err(());
        }
        let mut mounts_out = Vec::new();
        let mut ssh_count = 0;
        for value in &run.mounts {
            let lexer = self.lexer;
            let expander = |word: &str| lexer.process_word(word, state).map_err(|e| e.to_string());
            let spec = match mounts::parse(value, Some(&expander)) {
                Ok(spec) => spec,
                Err(e) => {
                    self.fail(format!("invalid --mount={value}: {e}"), span, None);
                    return Err(());
                }
            };
            if spec.target.as_ref().is_some_and(|t| t.contains('\0')) {
                self.nul("--mount target", span);
                return Err(());
            }
            let target = spec.target.as_ref().map(|t| kiln_ir::join_path(&state.workdir, t));
            let from_source = |from: &Option<String>| -> Result<Option<CopySource>, String> {
                match from {
                    None => Ok(None),
                    Some(f) => resolve_from(f, self.stage_names, self.stage_count).map(Some),
                }
            };
            let from = match from_source(&spec.from) {
                Ok(f) => f,
                Err(e) => {
                    self.fail(e, span, None);
                    return Err(());
                }
            };
            let (target, kind) = match spec.kind {
                MountType::Bind => (
                    target,
                    MountKind::Bind(BindMount {
                        from: from.unwrap_or(CopySource::Context),
                        source: spec.source.clone().unwrap_or_else(|| "/".into()),
                        read_write: !spec.read_only,
                    }),
                ),
                MountType::Cache => {
                    let target = target.unwrap_or_default();
                    let sharing = match spec.sharing.as_deref() {
                        Some("private") => CacheSharing::Private,
                        Some("locked") => CacheSharing::Locked,
                        _ => CacheSharing::Shared,
                    };
                    (
                        Some(target.clone()),
                        MountKind::Cache(CacheMount {
                            id: spec.id.clone().unwrap_or(target),
                            sharing,
                            from,
                            source: spec.source.clone().unwrap_or_else(|| "/".into()),
                            read_only: spec.read_only,
                            mode: spec.mode.unwrap_or(0o755),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
                MountType::Tmpfs => (target, MountKind::Tmpfs(TmpfsMount { size: spec.size })),
                MountType::Secret => {
                    let id = spec
                        .id
                        .clone()
                        .or_else(|| spec.source.clone())
                        .or_else(|| target.as_ref().map(|t| t.rsplit('/').next().unwrap_or_default().to_string()))
                        .unwrap_or_default();
                    let target = match (&target, &spec.env) {
                        (Some(t), _) => Some(t.clone()),
                        (None, Some(_)) => None,
                        (None, None) => Some(format!("/run/secrets/{id}")),
                    };
                    (
                        target,
                        MountKind::Secret(SecretMount {
                            id,
                            env: spec.env.clone(),
                            required: spec.required,
                            mode: spec.mode.unwrap_or(0o400),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
                MountType::Ssh => {
                    let target = target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_count}"));
                    ssh_count += 1;
                    (
                        Some(target),
                        MountKind::Ssh(SshMount {
                            id: spec.id.clone().unwrap_or_else(|| "default".into()),
                            required: spec.required,
                            mode: spec.mode.unwrap_or(0o600),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        }),
                    )
                }
            };
            mounts_out.push(Mount { target, kind });
        }

        let cmd: &CmdLine = &run.cmd;
        let mut args = cmd.args.clone();
        if !cmd.files.is_empty() {
            if args.len() != 1 || !cmd.prepend_shell {
                self.fail(format!("parsing produced an invalid run command: {}", go_list(&args)), span, None);
                return Err(());
            }
            let first = &cmd.files[0];
            let data = if first.chomp { parser::chomp_heredoc(&first.data) } else { first.data.clone() };
            if parser::parse_heredoc(&args[0]).ok().flatten().is_some() {
                if data.starts_with("#!") {
                    // A script with its own interpreter: mount it and run it.
                    mounts_out.push(Mount {
                        target: Some(format!("/dev/pipes/{}", first.name)),
                        kind: MountKind::Inline(InlineFile { name: first.name.clone(), contents: data, mode: 0o755 }),
                    });
                    args = vec![format!("/dev/pipes/{}", first.name)];
                } else {
                    args = vec![data];
                }
            } else {
                // A heredoc inside a larger command: hand the whole text to the shell.
                let mut full = args[0].clone();
                for file in &cmd.files {
                    full.push('\n');
                    full.push_str(&file.data);
                    full.push_str(&file.name);
                }
                args = vec![full];
            }
        }
        let argv = if cmd.prepend_shell { state.with_shell(&args) } else { args };

        let network = match run.network.as_deref() {
            Some("none") => Network::None,
            Some("host") => Network::Host,
            _ => Network::Default,
        };
        let security = match run.security.as_deref() {
            Some("insecure") => Security::Insecure,
            _ => Security::Sandbox,
        };
        let build_args: Vec<KeyValue> =
            state.build_args.iter().filter_map(|(k, v)| v.as_ref().map(|v| KeyValue::new(k, v.as_str()))).collect();
        // BuildKit's runCommandString: "|N K=V ... argv".
        let mut history: Vec<String> = state
            .build_args
            .iter()
            .map(|(k, v)| format!("{k}={}", state.get(k).or(v.as_deref()).unwrap_or("")))
            .collect();
        if !history.is_empty() {
            history.insert(0, format!("|{}", history.len()));
        }
        history.extend(argv.iter().cloned());
        Ok((
            Op::Run(Run { argv, shell_form: cmd.prepend_shell, build_args, mounts: mounts_out, network, security }),
            format!("RUN {}", history.join(" ")),
        ))
    }
}
