//! The dispatch of each parsed command to what it does to the stage, and the commands that
//! only change the image or its configuration: FROM (image or target), HEALTHCHECK and
//! SAVE IMAGE, with the base images they resolve.
//!
//! RUN, COPY and the artifacts have their own submodules; this one must never grow their
//! logic back.

use super::*;

impl<'a> Converter<'a> {
    pub(super) fn command(&mut self, ev: &mut Eval, s: &'a Statement) {
        let parsed = match command::parse(s) {
            Ok(p) => p,
            Err(ds) => {
                self.errors.extend(ds);
                return;
            }
        };
        self.warnings.extend(parsed.warnings);
        match parsed.command {
            Command::From(f) => self.from(ev, s, f),
            Command::Arg(a) => self.arg(ev, s, a),
            Command::Let(a) => {
                if let Some(v) = self.expand(ev, &a.value.text, a.value.span) {
                    ev.vars.set(&a.name.text, v, VarKind::Let);
                }
            }
            Command::Set(a) => {
                if ev.vars.kind(&a.name.text) != Some(VarKind::Let) {
                    self.fail(
                        format!("SET {}: {} was not declared with LET", a.name.text, a.name.text),
                        s.span,
                        format!("declare it first: LET {}=value", a.name.text),
                        "undeclared-variable",
                    );
                } else if let Some(v) = self.expand(ev, &a.value.text, a.value.span) {
                    ev.vars.set(&a.name.text, v, VarKind::Let);
                }
            }
            Command::Run(run) => self.run(ev, s, run),
            Command::Copy(copy) => self.copy(ev, s, copy),
            Command::SaveArtifact(save) => self.save_artifact(ev, s, save),
            Command::SaveImage(save) => self.save_image(ev, s, save),
            Command::Env(env) => {
                if !command::valid_name(&env.key.text) {
                    self.fail(
                        format!("invalid ENV name {:?}", env.key.text),
                        env.key.span,
                        "names start with a letter or _ and hold letters, digits and _",
                        "invalid-arguments",
                    );
                    return;
                }
                self.ensure_segment(ev, s.span);
                let Some(value) = self.expand(ev, &env.value, s.span) else { return };
                if let Some(seg) = ev.seg.as_mut() {
                    seg.state.set_env(&env.key.text, &value);
                }
                let created = format!("ENV {}={value}", env.key.text);
                self.push(ev, s, Op::Config(ConfigChange::Env(vec![KeyValue::new(&env.key.text, value)])), created);
            }
            Command::Label(pairs) => {
                self.ensure_segment(ev, s.span);
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    let (Some(k), Some(v)) = (self.expand(ev, &k, s.span), self.expand(ev, &v, s.span)) else {
                        return;
                    };
                    kvs.push(KeyValue::new(k, v));
                }
                let created = kvs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect::<Vec<_>>().join(" ");
                self.push(ev, s, Op::Config(ConfigChange::Label(kvs)), format!("LABEL {created}"));
            }
            Command::Workdir(w) => {
                self.before_file_change(ev, s.span);
                let Some(dir) = self.expand(ev, &w.text, w.span) else { return };
                let Some(seg) = ev.seg.as_mut() else { return };
                seg.state.workdir = kiln_ir::join_path(&seg.state.workdir, &dir);
                let created = format!("WORKDIR {}", seg.state.workdir);
                self.push(ev, s, Op::Config(ConfigChange::Workdir(dir)), created);
            }
            Command::User(w) => {
                self.ensure_segment(ev, s.span);
                let Some(user) = self.expand(ev, &w.text, w.span) else { return };
                if let Some(seg) = ev.seg.as_mut() {
                    seg.state.user = user.clone();
                }
                self.push(ev, s, Op::Config(ConfigChange::User(user.clone())), format!("USER {user}"));
            }
            Command::Cmd(form) | Command::Entrypoint(form) => {
                let is_cmd = s.keyword == "CMD";
                let (argv, shell_form) = match form {
                    Form::Exec(argv) => (argv, false),
                    Form::Shell(words) => {
                        let mut argv: Vec<String> = SHELL.iter().map(|x| x.to_string()).collect();
                        argv.push(Form::joined(words));
                        (argv, true)
                    }
                };
                self.ensure_segment(ev, s.span);
                let created = format!("{} {:?}", s.keyword, argv);
                let command = IrCommand { argv: argv.clone(), shell_form };
                if is_cmd {
                    self.push(ev, s, Op::Config(ConfigChange::Cmd(command)), created);
                } else {
                    if let Some(seg) = ev.seg.as_mut() {
                        seg.state.entrypoint = Some(argv);
                    }
                    self.push(ev, s, Op::Config(ConfigChange::Entrypoint(command)), created);
                }
            }
            Command::Expose(words) => {
                self.ensure_segment(ev, s.span);
                let mut specs = Vec::new();
                for w in words {
                    let Some(v) = self.expand(ev, &w.text, w.span) else { return };
                    specs.push(v);
                }
                match expose::parse_specs(&specs) {
                    Ok(ports) => {
                        let created = format!("EXPOSE {}", ports.join(" "));
                        self.push(ev, s, Op::Config(ConfigChange::Expose(ports)), created);
                    }
                    Err(e) => self.fail(e, s.span, "write ports as 80, 80/udp or 8000-8010/tcp", "invalid-arguments"),
                }
            }
            Command::Volume(form) => {
                self.ensure_segment(ev, s.span);
                let paths = match form {
                    Form::Exec(list) => list,
                    Form::Shell(words) => {
                        let mut out = Vec::new();
                        for w in words {
                            let Some(v) = self.expand(ev, &w.text, w.span) else { return };
                            out.push(v);
                        }
                        out
                    }
                };
                let created = format!("VOLUME {paths:?}");
                self.push(ev, s, Op::Config(ConfigChange::Volume(paths)), created);
            }
            Command::StopSignal(w) => {
                self.ensure_segment(ev, s.span);
                let Some(sig) = self.expand(ev, &w.text, w.span) else { return };
                self.push(ev, s, Op::Config(ConfigChange::StopSignal(sig.clone())), format!("STOPSIGNAL {sig}"));
            }
            Command::Healthcheck(h) => self.healthcheck(ev, s, h),
        }
    }

    fn healthcheck(&mut self, ev: &mut Eval, s: &Statement, h: command::Healthcheck<'_>) {
        self.ensure_segment(ev, s.span);
        let mut nanos = [0u64; 4];
        for (slot, name) in ["interval", "timeout", "start-period", "start-interval"].iter().enumerate() {
            let Some((raw, span)) = h.flags.value(name) else { continue };
            let Some(text) = self.expand(ev, raw, span) else { return };
            match duration::parse(&text) {
                Ok(n) if n >= 0 && n <= u64::MAX as i128 => nanos[slot] = n as u64,
                Ok(_) => {
                    return self.fail(format!("--{name} cannot be negative"), span, "write e.g. 30s", "invalid-flag");
                }
                Err(e) => {
                    return self.fail(
                        format!("--{name}: {e}"),
                        span,
                        "write durations as 30s, 1m30s or 500ms",
                        "invalid-flag",
                    );
                }
            }
        }
        let mut retries = 0;
        if let Some((raw, span)) = h.flags.value("retries") {
            let Some(text) = self.expand(ev, raw, span) else { return };
            match text.parse::<u32>() {
                Ok(n) => retries = n,
                Err(_) => {
                    return self.fail(
                        format!("--retries {text:?} is not a number"),
                        span,
                        "write e.g. --retries=3",
                        "invalid-flag",
                    );
                }
            }
        }
        let test = match h.cmd {
            None => vec!["NONE".to_string()],
            Some(Form::Exec(argv)) => std::iter::once("CMD".to_string()).chain(argv).collect(),
            Some(Form::Shell(words)) => vec!["CMD-SHELL".to_string(), Form::joined(words)],
        };
        let created = format!("HEALTHCHECK {test:?}");
        let check = Healthcheck {
            test,
            interval: nanos[0],
            timeout: nanos[1],
            start_period: nanos[2],
            start_interval: nanos[3],
            retries,
        };
        self.push(ev, s, Op::Config(ConfigChange::Healthcheck(check)), created);
    }
}

impl<'a> Converter<'a> {
    fn resolve_image(&mut self, reference: &str, platform: Option<&str>, span: Span) -> Option<ImageConfig> {
        let key = (reference.to_string(), platform.map(str::to_string));
        if let Some(config) = self.configs.get(&key) {
            return config.clone();
        }
        let config = match self.resolver.resolve_image_config(reference, platform) {
            Ok(config) => Some(config),
            Err(why) => {
                self.warnings.push(warning(
                    format!(
                        "could not read the configuration of {reference}: {why}; its ENV, WORKDIR and USER are not visible to this Earthfile"
                    ),
                    Some(span),
                    "kiln goes on as if its configuration were empty (WORKDIR /); check the name, or pull the image",
                    "base-image-unresolved",
                ));
                None
            }
        };
        self.configs.insert(key, config.clone());
        config
    }

    pub(super) fn from(&mut self, ev: &mut Eval, s: &Statement, f: command::From<'_>) {
        let Some(base) = self.expand(ev, &f.base.text, f.base.span) else { return };
        let platform = match f.flags.value("platform") {
            Some((raw, span)) => {
                let Some(p) = self.expand(ev, raw, span) else { return };
                match platform::parse(&p) {
                    Ok(p) => Some(p.format()),
                    Err(e) => {
                        return self.fail(
                            format!("invalid --platform: {e}"),
                            span,
                            "write os/arch[/variant], e.g. linux/arm64",
                            "invalid-platform",
                        );
                    }
                }
            }
            None => None,
        };
        let mut seg = if reference::is_reference(&base) {
            if platform.is_some() {
                return self.fail(
                    "kiln does not support FROM --platform with a target",
                    s.span,
                    "put --platform on the FROM of the target's own recipe, or build with `kiln build --platform`",
                    "unsupported-flag",
                );
            }
            let args: Vec<(String, Span)> = f.args.iter().map(|w| (w.text.clone(), w.span)).collect();
            let Some(overrides) = self.child_overrides(ev, &f.flags, &args, f.flags.on("pass-args")) else { return };
            let Some(key) = self.reference(&base, f.base.span, overrides) else { return };
            let inst = &self.instances[&key];
            let base = if inst.stage == NO_STAGE { Base::Scratch } else { Base::Stage(inst.stage) };
            Segment::new(base, inst.state.clone(), s.span, s.text())
        } else {
            if let Some(arg) = f.args.first() {
                return self.fail(
                    format!("{} passes an argument to an image", arg.text),
                    arg.span,
                    "arguments go with a target reference (FROM +target --NAME=value), not an image",
                    "invalid-arguments",
                );
            }
            if base.eq_ignore_ascii_case("scratch") {
                Segment::new(Base::Scratch, ImageState::scratch(), s.span, s.text())
            } else if base.is_empty() || base.chars().any(|c| c.is_whitespace()) {
                return self.fail(
                    format!("invalid image reference {base:?}"),
                    f.base.span,
                    "an image reference has no spaces, e.g. alpine:3.20; check the ARG used in FROM",
                    "invalid-arguments",
                );
            } else {
                let config = self.resolve_image(&base, platform.as_deref(), s.span);
                Segment::new(Base::Image(base), ImageState::from_config(config.as_ref()), s.span, s.text())
            }
        };
        seg.platform = platform;
        if let Some(old) = ev.seg.take() {
            if !old.saved.is_empty() {
                self.push_segment(ev, old, false);
            } else if !old.instructions.is_empty() {
                let first = old.instructions[0].span.start.line;
                let last = old.instructions[old.instructions.len() - 1].span.end.line;
                self.warnings.push(warning(
                    format!(
                        "FROM starts +{} over: the commands on lines {first}-{last} do not reach its image",
                        ev.name
                    ),
                    Some(s.span),
                    "move FROM to the top of the recipe, or drop the commands above it",
                    "discarded-commands",
                ));
            }
        }
        ev.seg = Some(seg);
    }
}

impl<'a> Converter<'a> {
    fn save_image(&mut self, ev: &mut Eval, s: &Statement, save: command::SaveImage<'_>) {
        self.ensure_segment(ev, s.span);
        let mut names = Vec::new();
        for w in save.names {
            let Some(name) = self.expand(ev, &w.text, w.span) else { return };
            names.push(name);
        }
        if names.is_empty() {
            return;
        }
        // Earthly exports the images of the target it builds and of the targets BUILD names
        // (which kiln reports on its own); FROM and COPY references export nothing.
        if ev.top {
            let tags: Vec<String> = names.iter().map(|n| format!("-t {n}")).collect();
            let push = if save.flags.on("push") {
                format!(", then push it with `kiln push {}`", names[0])
            } else {
                String::new()
            };
            self.warnings.push(warning(
                format!(
                    "SAVE IMAGE names the image {}, but kiln takes image names from the command line",
                    names.join(" ")
                ),
                Some(s.span),
                format!("build with `kiln build {} ...`{push}", tags.join(" ")),
                "save-image-name",
            ));
        }
    }
}
