//! End-to-end tests of the converter: Earthfile text in, IR or diagnostics out, through
//! [`crate::parse`] with a small image resolver. Unit tests of pure helpers sit beside them.

use super::*;

use kiln_ir::{ImageConfig, Severity};

/// Base images the tests know.
struct Images;

impl ImageResolver for Images {
    fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<ImageConfig, String> {
        match reference {
            "golang:1.22" => Ok(ImageConfig {
                env: vec!["PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin".into(), "GOPATH=/go".into()],
                working_dir: "/go".into(),
                ..ImageConfig::default()
            }),
            "alpine:3.20" | "kiln-toolbox" | "node:20" => {
                Ok(ImageConfig { env: vec!["PATH=/usr/bin:/bin".into()], ..ImageConfig::default() })
            }
            other => Err(format!("{other} is not in the test store")),
        }
    }
}

fn request(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> Request {
    Request {
        file_name: "Earthfile".into(),
        contents: text.as_bytes().to_vec(),
        build_args: args.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
        target: target.map(str::to_string),
        build_platform: "linux/amd64".into(),
        target_platform: "linux/arm64".into(),
    }
}

fn try_build(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> Result<BuildGraph, Vec<Diagnostic>> {
    crate::parse(&request(text, target, args), &Images)
}

fn build_for(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> BuildGraph {
    let graph = try_build(text, target, args).unwrap_or_else(|ds| panic!("{ds:#?}"));
    graph.validate().unwrap_or_else(|e| panic!("invalid graph {e:?}: {graph:#?}"));
    graph
}

fn build(text: &str) -> BuildGraph {
    build_for(text, None, &[])
}

fn errors(text: &str) -> Vec<Diagnostic> {
    errors_for(text, None)
}

fn errors_for(text: &str, target: Option<&str>) -> Vec<Diagnostic> {
    let ds = try_build(text, target, &[]).expect_err("the build should fail");
    ds.into_iter().filter(|d| d.severity == Severity::Error).collect()
}

fn the_error(text: &str) -> Diagnostic {
    let mut ds = errors(text);
    assert_eq!(ds.len(), 1, "{ds:#?}");
    ds.remove(0)
}

fn target(g: &BuildGraph) -> &Stage {
    &g.stages[g.target as usize]
}

fn named<'g>(g: &'g BuildGraph, name: &str) -> (u32, &'g Stage) {
    let i = g.stages.iter().position(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("{g:#?}"));
    (i as u32, &g.stages[i])
}

fn ops(stage: &Stage) -> Vec<&Op> {
    stage.instructions.iter().map(|i| &i.op).collect()
}

fn copies(stage: &Stage) -> Vec<&CopyFiles> {
    stage
        .instructions
        .iter()
        .filter_map(|i| match &i.op {
            Op::Copy(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn runs(stage: &Stage) -> Vec<&Run> {
    stage
        .instructions
        .iter()
        .filter_map(|i| match &i.op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn sh(cmd: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), cmd.into()]
}

fn warning_codes(g: &BuildGraph) -> Vec<&str> {
    g.warnings.iter().filter_map(|w| w.code.as_deref()).collect()
}

const HEAD: &str = "VERSION 0.8\n";

// ---- targets and the base recipe ----

#[test]
fn default_target_is_build() {
    let g = build(&format!("{HEAD}other:\n    FROM alpine:3.20\nbuild:\n    FROM scratch\n"));
    assert_eq!(target(&g).name.as_deref(), Some("build"));
    assert_eq!(target(&g).base, Base::Scratch);
    // +other is not needed, so it is not converted.
    assert!(g.stages.iter().all(|s| s.name.as_deref() != Some("other")));
}

#[test]
fn without_build_target_the_error_lists_the_targets() {
    let d = the_error(&format!("{HEAD}docker:\n    FROM scratch\ntest:\n    FROM scratch\n"));
    assert_eq!(d.message, "no target was given and this Earthfile has no +build target");
    assert_eq!(d.hint.as_deref(), Some("choose one with --target; the targets are: +docker, +test"));
    assert_eq!(d.span, None);
}

#[test]
fn target_may_be_given_with_or_without_plus() {
    let text = format!("{HEAD}docker:\n    FROM scratch\nbuild:\n    FROM alpine:3.20\n");
    for t in ["+docker", "docker"] {
        let g = build_for(&text, Some(t), &[]);
        assert_eq!(target(&g).name.as_deref(), Some("docker"), "{t}");
    }
    let d = errors_for(&text, Some("+dokcer")).remove(0);
    assert_eq!(d.message, "target +dokcer is not in this Earthfile");
    assert_eq!(d.hint.as_deref(), Some("did you mean +docker? the targets are: +build, +docker"));
    let d = errors_for(&text, Some("./sub+docker")).remove(0);
    assert_eq!(d.message, "--target ./sub+docker names a target of another Earthfile");
}

#[test]
fn target_base_builds_the_base_recipe() {
    let g = build_for(&format!("{HEAD}FROM alpine:3.20\nRUN apk add git\nbuild:\n    RUN make\n"), Some("+base"), &[]);
    assert_eq!(target(&g).name.as_deref(), Some("base"));
    assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
    assert_eq!(runs(target(&g))[0].argv, sh("apk add git"));
    // An empty base recipe is an empty image.
    let g = build_for(&format!("{HEAD}build:\n    FROM alpine:3.20\n"), Some("base"), &[]);
    assert_eq!((target(&g).name.as_deref(), &target(&g).base), (Some("base"), &Base::Scratch));
    assert!(target(&g).instructions.is_empty());
}

#[test]
fn targets_without_from_start_from_the_base_recipe() {
    let g = build(&format!(
        "{HEAD}FROM golang:1.22\nWORKDIR /app\nENV CGO_ENABLED=0\n\nbuild:\n    COPY main.go .\n    RUN go build -o app main.go\n"
    ));
    let (base, base_stage) = named(&g, "base");
    assert_eq!(base_stage.base, Base::Image("golang:1.22".into()));
    assert_eq!(ops(base_stage).len(), 2);
    assert_eq!(target(&g).base, Base::Stage(base));
    assert_eq!(target(&g).text, "+build: FROM +base");
    assert_eq!(runs(target(&g))[0].argv, sh("go build -o app main.go"));
}

#[test]
fn targets_with_their_own_from_do_not_use_the_base_recipe() {
    let g = build(&format!("{HEAD}FROM golang:1.22\nbuild:\n    FROM alpine:3.20\n    RUN true\n"));
    assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
}

#[test]
fn an_empty_base_recipe_is_scratch() {
    let g = build(&format!("{HEAD}build:\n    COPY a /a\n"));
    assert_eq!(target(&g).base, Base::Scratch);
    assert_eq!(target(&g).text, "+build: FROM scratch");
}

#[test]
fn from_target_and_base_target() {
    let g = build(&format!(
        "{HEAD}FROM alpine:3.20\ndeps:\n    RUN apk add make\nbuild:\n    FROM +deps\n    RUN make\nlint:\n    FROM +base\n"
    ));
    let (deps, _) = named(&g, "deps");
    assert_eq!(target(&g).base, Base::Stage(deps));
    let g = build_for(&format!("{HEAD}FROM alpine:3.20\nlint:\n    FROM +base\n    RUN lint\n"), Some("lint"), &[]);
    let (base, _) = named(&g, "base");
    assert_eq!(target(&g).base, Base::Stage(base));
}

#[test]
fn from_a_target_inherits_its_configuration() {
    let g = build(&format!(
        "{HEAD}deps:\n    FROM alpine:3.20\n    WORKDIR /src\n    ENV GREETING=hi\nbuild:\n    FROM +deps\n    SAVE ARTIFACT out/app\n    RUN echo $GREETING\n    WORKDIR sub\n    ENV X=$GREETING-there\n"
    ));
    let env = ops(target(&g))
        .into_iter()
        .find_map(|op| match op {
            Op::Config(ConfigChange::Env(kv)) => Some(kv.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(env, [KeyValue::new("X", "hi-there")]);
}

#[test]
fn a_late_from_starts_the_target_over() {
    let g = build(&format!("{HEAD}build:\n    ARG V=3.20\n    RUN echo lost\n    FROM alpine:$V\n    RUN echo kept\n"));
    assert_eq!(target(&g).base, Base::Image("alpine:3.20".into()));
    assert_eq!(runs(target(&g)).len(), 1);
    let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("discarded-commands")).unwrap();
    assert_eq!(w.message, "FROM starts +build over: the commands on lines 4-4 do not reach its image");
}

#[test]
fn circular_references_are_errors() {
    let d = the_error(&format!("{HEAD}build:\n    FROM +a\na:\n    FROM +b\nb:\n    COPY +a/x .\n"));
    assert_eq!(d.message, "circular target reference: +a -> +b -> +a");
    assert_eq!(d.span.unwrap().start.line, 7);
}

#[test]
fn unknown_target_references() {
    let d = the_error(&format!("{HEAD}build:\n    FROM +deps\n"));
    assert_eq!(d.message, "there is no target +deps in this Earthfile");
    assert_eq!(d.span.unwrap().start, kiln_ir::Position { line: 3, column: 10 });
}

// ---- ARG, LET, SET ----

#[test]
fn arg_defaults_and_build_arg_overrides() {
    let text = format!("{HEAD}build:\n    FROM alpine:3.20\n    ARG NAME=world\n    ARG EMPTY\n    RUN echo $NAME\n");
    let g = build(&text);
    let run = runs(target(&g))[0];
    assert_eq!(run.build_args, [KeyValue::new("NAME", "world"), KeyValue::new("EMPTY", "")]);
    let g = build_for(&text, None, &[("NAME", "kiln")]);
    assert_eq!(runs(target(&g))[0].build_args[0], KeyValue::new("NAME", "kiln"));
    assert!(!warning_codes(&g).contains(&"unused-build-arg"));
    let g = build_for(&text, None, &[("OTHER", "x")]);
    assert!(warning_codes(&g).contains(&"unused-build-arg"));
}

#[test]
fn global_args_reach_every_target() {
    let text = format!(
        "{HEAD}ARG --global VERSION=1.0\nARG LOCAL=base-only\nFROM alpine:3.20\nbuild:\n    RUN echo $VERSION $LOCAL\n    ENV V=$VERSION L=$LOCAL\n"
    );
    let g = build_for(&text, None, &[("VERSION", "2.0")]);
    let run = runs(target(&g))[0];
    assert_eq!(run.build_args, [KeyValue::new("VERSION", "2.0")]);
    assert_eq!(g.global_args, [kiln_ir::ArgBinding { name: "VERSION".into(), value: Some("2.0".into()) }]);
    // VERSION 0.6: every ARG of the base recipe is global.
    let g = build(&text.replace("VERSION 0.8", "VERSION 0.6").replace("--global ", ""));
    assert_eq!(runs(target(&g))[0].build_args.len(), 2);
    let d = the_error(&format!("{HEAD}build:\n    ARG --global X=1\n"));
    assert_eq!(d.message, "ARG --global X is outside the base recipe");
}

#[test]
fn required_args() {
    let text = format!("{HEAD}build:\n    FROM scratch\n    ARG --required TAG\n");
    let d = the_error(&text);
    assert_eq!(d.message, "ARG --required TAG has no value");
    assert_eq!(d.hint.as_deref(), Some("pass it: kiln build --build-arg TAG=VALUE"));
    build_for(&text, None, &[("TAG", "v1")]);
}

#[test]
fn let_and_set() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\n    LET X=a\n    SET X=$X-b\n    ENV OUT=$X\n    RUN [\"true\"]\n"
    ));
    assert!(matches!(ops(target(&g))[0], Op::Config(ConfigChange::Env(kv)) if kv[0].value == "a-b"));
    assert_eq!(runs(target(&g))[0].build_args, [KeyValue::new("X", "a-b")]);
    let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    ARG X=1\n    SET X=2\n"));
    assert_eq!(d.message, "SET X: X was not declared with LET");
}

#[test]
fn builtin_args() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\n    ARG TARGETARCH\n    ARG USERPLATFORM\n    ARG EARTHLY_TARGET_NAME\n    ARG EARTHLY_GIT_HASH\n    RUN [\"true\"]\n"
    ));
    assert_eq!(
        runs(target(&g))[0].build_args,
        [
            KeyValue::new("TARGETARCH", "arm64"),
            KeyValue::new("USERPLATFORM", "linux/amd64"),
            KeyValue::new("EARTHLY_TARGET_NAME", "build"),
            KeyValue::new("EARTHLY_GIT_HASH", ""),
        ]
    );
    assert!(warning_codes(&g).contains(&"unknown-builtin"));
}

#[test]
fn shell_outs_outside_run_are_errors() {
    let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    ARG V=$(git describe)\n"));
    assert_eq!(d.code.as_deref(), Some("shell-out"));
    assert_eq!(d.span.unwrap().start.column, 11);
    // A --build-arg means the default is never run.
    let text = format!("{HEAD}build:\n    FROM scratch\n    ARG V=$(git describe)\n    RUN echo $(date) $V\n");
    let g = build_for(&text, None, &[("V", "v1")]);
    assert_eq!(runs(target(&g))[0].argv, sh("echo $(date) $V"));
}

// ---- RUN ----

#[test]
fn run_shell_and_exec_forms() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM alpine:3.20\n    RUN echo \"a  b\" \\\n        && echo c # comment\n    RUN [\"/bin/echo\", \"x y\"]\n"
    ));
    let r = runs(target(&g));
    assert_eq!(r[0].argv, sh("echo \"a  b\" && echo c"));
    assert!(r[0].shell_form);
    assert_eq!(r[1].argv, ["/bin/echo", "x y"]);
    assert!(!r[1].shell_form);
    let first = &target(&g).instructions[0];
    assert_eq!((first.span.start.line, first.span.start.column, first.span.end.line), (4, 5, 5));
    assert_eq!(first.text, "RUN echo \"a  b\" && echo c");
}

#[test]
fn run_flags() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM alpine:3.20\n    WORKDIR /src\n    RUN --network=none --privileged --secret TOKEN=+secrets/gh --secret NPM --mount=type=cache,target=.cache --mount type=tmpfs,target=/tmp --ssh make\n"
    ));
    let r = runs(target(&g))[0];
    assert_eq!(r.network, Network::None);
    assert_eq!(r.security, Security::Insecure);
    assert_eq!(r.mounts.len(), 5);
    assert!(matches!(&r.mounts[0].kind, MountKind::Secret(s) if s.id == "gh" && s.env.as_deref() == Some("TOKEN")));
    assert!(matches!(&r.mounts[1].kind, MountKind::Secret(s) if s.id == "NPM" && s.env.as_deref() == Some("NPM")));
    assert!(matches!(&r.mounts[2].kind, MountKind::Ssh(_)));
    assert_eq!(r.mounts[3].target.as_deref(), Some("/src/.cache"));
    assert!(matches!(&r.mounts[3].kind, MountKind::Cache(c) if c.id == "/src/.cache"));
    assert!(matches!(&r.mounts[4].kind, MountKind::Tmpfs(_)));
}

#[test]
fn run_entrypoint() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\n    ENTRYPOINT [\"/bin/tool\", \"-v\"]\n    RUN --entrypoint check \"a b\"\n"
    ));
    assert_eq!(runs(target(&g))[0].argv, ["/bin/tool", "-v", "check", "a b"]);
    let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN --entrypoint x\n"));
    assert_eq!(d.message, "RUN --entrypoint: kiln cannot see the ENTRYPOINT of the base image");
}

#[test]
fn run_flags_kiln_does_not_support() {
    for (flag, message) in [
        ("--push", "kiln does not support RUN --push"),
        ("--with-docker", "kiln does not support RUN --with-docker"),
        ("--interactive", "kiln does not support RUN --interactive"),
        ("--network=host", "RUN --network=host: kiln supports only --network=none"),
        ("--mount=type=bind,target=/x", "kiln does not support bind mounts in Earthfiles"),
    ] {
        let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN {flag} make\n"));
        assert_eq!(d.message, message, "{flag}");
        assert!(d.hint.is_some(), "{flag}");
        assert_eq!(d.span.unwrap().start.line, 4, "{flag}");
    }
    let g = build(&format!("{HEAD}build:\n    FROM alpine:3.20\n    RUN --no-cache make\n"));
    assert_eq!(warning_codes(&g), ["ignored-flag"]);
}

// ---- configuration ----

#[test]
fn config_commands() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\n    ARG PORT=8080\n    ENV APP_HOME=/app\n    ENV LEGACY value with spaces\n    WORKDIR $APP_HOME\n    USER 1000:1000\n    EXPOSE $PORT 53/udp\n    LABEL org.opencontainers.image.title=\"my app\" version=$PORT\n    VOLUME /data\n    STOPSIGNAL SIGTERM\n    HEALTHCHECK --interval=30s --retries=3 CMD /bin/check\n    ENTRYPOINT [\"/app/server\"]\n    CMD --port $PORT\n"
    ));
    let ops = ops(target(&g));
    let expected = [
        ConfigChange::Env(vec![KeyValue::new("APP_HOME", "/app")]),
        ConfigChange::Env(vec![KeyValue::new("LEGACY", "value with spaces")]),
        ConfigChange::Workdir("/app".into()),
        ConfigChange::User("1000:1000".into()),
        ConfigChange::Expose(vec!["53/udp".into(), "8080/tcp".into()]),
        ConfigChange::Label(vec![
            KeyValue::new("org.opencontainers.image.title", "my app"),
            KeyValue::new("version", "8080"),
        ]),
        ConfigChange::Volume(vec!["/data".into()]),
        ConfigChange::StopSignal("SIGTERM".into()),
        ConfigChange::Healthcheck(Healthcheck {
            test: vec!["CMD-SHELL".into(), "/bin/check".into()],
            interval: 30_000_000_000,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 3,
        }),
        ConfigChange::Entrypoint(IrCommand { argv: vec!["/app/server".into()], shell_form: false }),
        ConfigChange::Cmd(IrCommand { argv: sh("--port $PORT"), shell_form: true }),
    ];
    assert_eq!(ops.len(), expected.len());
    for (op, want) in ops.iter().zip(expected) {
        assert_eq!(**op, Op::Config(want));
    }
}

#[test]
fn from_platform_and_exec_form_volume() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM --platform=linux/arm64/v8 alpine:3.20\n    VOLUME [\"/a\", \"/b c\"]\n"
    ));
    assert_eq!(target(&g).platform.as_deref(), Some("linux/arm64"));
    assert_eq!(*ops(target(&g))[0], Op::Config(ConfigChange::Volume(vec!["/a".into(), "/b c".into()])));
    let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20 --X=1\n"));
    assert_eq!(d.message, "--X=1 passes an argument to an image");
}

#[test]
fn unknown_base_images_are_a_warning() {
    let g = build(&format!("{HEAD}build:\n    FROM example.com/unknown:1\n    SAVE ARTIFACT out\n"));
    let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("base-image-unresolved")).unwrap();
    assert_eq!(w.span.unwrap().start.line, 3);
}

#[test]
fn version_feature_flags_are_ignored_with_a_warning() {
    let g = build("VERSION --use-copy-link --explicit-global 0.7\nbuild:\n    FROM scratch\n");
    let w: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(w, ["VERSION --use-copy-link is ignored: kiln has no Earthly feature flags"]);
}

#[test]
fn earthly_env_takes_the_rest_of_the_line() {
    // Earthly's ENV sets one variable; everything after `=` is its value.
    let g = build(&format!("{HEAD}build:\n    FROM scratch\n    ENV A=1 B=2\n"));
    assert_eq!(*ops(target(&g))[0], Op::Config(ConfigChange::Env(vec![KeyValue::new("A", "1 B=2")])));
}

// ---- COPY from the context ----

#[test]
fn copy_from_the_context() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM alpine:3.20\n    COPY --chmod=0755 a.sh b.sh /usr/bin\n    USER app\n    COPY --keep-ts src/ /src/\n    COPY --keep-own c /c\n"
    ));
    let c = copies(target(&g));
    assert_eq!(c[0].from, CopySource::Context);
    assert_eq!(c[0].sources, ["a.sh", "b.sh"]);
    assert_eq!(c[0].dest, "/usr/bin/");
    assert_eq!(c[0].chmod.as_deref(), Some("0755"));
    assert_eq!(c[0].chown, None);
    // Earthly gives copied files to USER.
    assert_eq!(c[1].chown.as_deref(), Some("app"));
    assert_eq!(c[2].chown, None);
    assert_eq!(warning_codes(&g), ["ignored-flag"]);
}

#[test]
fn copy_dir_keeps_the_directories() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\n    COPY --dir web/static api ./\n    COPY --dir config /etc/app\n"
    ));
    let c = copies(target(&g));
    assert_eq!(c[0].sources, ["web/./static", "api"]);
    assert!(c[0].parents);
    assert_eq!(c[1].sources, ["config"]);
    assert!(!c[1].parents);
}

#[test]
fn copy_outside_the_context_is_an_error() {
    let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    COPY ../secret /\n"));
    assert_eq!(d.message, "COPY source ../secret is outside the build context");
    assert_eq!(d.span.unwrap().start.column, 10);
}

#[test]
fn copy_flags_kiln_does_not_support() {
    for (flag, message) in [
        ("--if-exists", "kiln does not support COPY --if-exists"),
        ("--from=alpine", "kiln does not support COPY --from"),
        ("--platform=linux/amd64", "kiln does not support COPY --platform"),
        ("--symlink-no-follow", "kiln does not support COPY --symlink-no-follow"),
    ] {
        let d = the_error(&format!("{HEAD}build:\n    FROM scratch\n    COPY {flag} a /a\n"));
        assert_eq!(d.message, message, "{flag}");
        assert_eq!(d.code.as_deref(), Some("unsupported-flag"));
    }
    let d = the_error(&format!("{HEAD}a:\n    SAVE ARTIFACT /x\nbuild:\n    FROM scratch\n    COPY +a/x ./y /\n"));
    assert_eq!(d.message, "COPY cannot mix artifacts (+target/path) and files of the build context");
}

// ---- artifacts ----

const BUILDER: &str = "builder:\n    FROM kiln-toolbox\n    WORKDIR /src\n    RUN mkdir -p out/lib && make\n";

fn artifact_copy(saves: &str, copy: &str) -> (BuildGraph, Vec<CopyFiles>) {
    let g = build(&format!("{HEAD}{BUILDER}{saves}build:\n    FROM scratch\n    {copy}\n"));
    let c = copies(target(&g)).into_iter().cloned().collect();
    (g, c)
}

#[test]
fn artifact_by_its_saved_path() {
    let (g, c) = artifact_copy("    SAVE ARTIFACT out/app\n", "COPY +builder/app /bin/app");
    let (builder, _) = named(&g, "builder");
    assert_eq!(c[0].from, CopySource::Stage(builder));
    assert_eq!(c[0].sources, ["/src/out/app"]);
    assert_eq!(c[0].dest, "/bin/app");
    // Earthly's artifacts are root's.
    assert_eq!(c[0].chown.as_deref(), Some("0:0"));
    assert_eq!(g.stages.len(), 2);
}

#[test]
fn artifact_in_a_saved_directory() {
    let (g, c) = artifact_copy("    SAVE ARTIFACT out /dist\n", "COPY +builder/dist/lib/libx.so /lib/");
    assert_eq!(c[0].sources, ["/src/out/lib/libx.so"]);
    assert_eq!(c[0].from, CopySource::Stage(named(&g, "builder").0));
}

#[test]
fn artifact_saved_with_a_wildcard() {
    let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib/*.so libs/\n", "COPY +builder/libs/libx.so /lib/");
    assert_eq!(c[0].sources, ["/src/out/lib/libx.so"]);
    let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib/*.so libs/\n", "COPY +builder/libs/*.so /lib/");
    assert_eq!(c[0].sources, ["/src/out/lib/*.so"]);
    let (_, c) = artifact_copy("    SAVE ARTIFACT out/*\n", "COPY +builder/app /bin/");
    assert_eq!(c[0].sources, ["/src/out/app"]);
}

#[test]
fn artifact_wildcard_inside_a_saved_directory() {
    let (_, c) = artifact_copy("    SAVE ARTIFACT out\n", "COPY +builder/out/lib/*.so /lib/");
    assert_eq!(c[0].sources, ["/src/out/lib/*.so"]);
}

#[test]
fn renamed_artifacts_are_read_from_the_artifact_layout() {
    let (g, c) = artifact_copy("    SAVE ARTIFACT out/app /app-linux\n", "COPY +builder/app-linux /bin/");
    let layout = match c[0].from {
        CopySource::Stage(s) => &g.stages[s as usize],
        _ => panic!(),
    };
    assert_eq!(layout.base, Base::Scratch);
    assert_eq!(layout.text, "+builder: artifacts");
    let saved = copies(layout);
    assert_eq!(saved[0].from, CopySource::Stage(named(&g, "builder").0));
    assert_eq!(saved[0].sources, ["/src/out/app"]);
    assert_eq!(saved[0].dest, "/app-linux");
    assert_eq!(c[0].sources, ["/app-linux"]);
    assert_eq!(c[0].dest, "/bin/");
}

#[test]
fn every_artifact_through_a_wildcard() {
    let (g, c) = artifact_copy("    SAVE ARTIFACT out/app\n    SAVE ARTIFACT out/lib\n", "COPY +builder/* /opt/");
    let CopySource::Stage(layout) = c[0].from else { panic!() };
    let saved = copies(&g.stages[layout as usize]);
    assert_eq!(saved.iter().map(|s| s.dest.as_str()).collect::<Vec<_>>(), ["/app", "/lib"]);
    assert_eq!(c[0].sources, ["/*"]);
}

#[test]
fn artifact_with_dir_copies_the_directory() {
    let (_, c) = artifact_copy("    SAVE ARTIFACT out/lib\n", "COPY --dir +builder/lib /opt/");
    assert_eq!(c[0].sources, ["/src/out/./lib"]);
    assert!(c[0].parents);
}

#[test]
fn missing_artifacts_name_what_was_saved() {
    let text = format!("{HEAD}{BUILDER}    SAVE ARTIFACT out/app\nbuild:\n    FROM scratch\n    COPY +builder/ap /\n");
    let d = the_error(&text);
    assert_eq!(d.message, "+builder has no artifact ap");
    assert_eq!(d.hint.as_deref(), Some("+builder saves: app (line 6)"));
    assert_eq!((d.span.unwrap().start.line, d.span.unwrap().start.column), (9, 10));
}

#[test]
fn artifacts_keep_the_files_as_saved() {
    let g = build(&format!(
        "{HEAD}{BUILDER}    SAVE ARTIFACT out/app\n    RUN rm -rf out\n    ENV DONE=1\nbuild:\n    FROM scratch\n    COPY +builder/app /\n"
    ));
    let c = copies(target(&g));
    let CopySource::Stage(saved) = c[0].from else { panic!() };
    let (builder, builder_stage) = named(&g, "builder");
    assert_ne!(saved, builder);
    assert_eq!(runs(&g.stages[saved as usize]).len(), 1);
    assert_eq!(builder_stage.base, Base::Stage(saved));
    assert_eq!(runs(builder_stage)[0].argv, sh("rm -rf out"));
}

#[test]
fn artifact_arguments_make_another_instance() {
    let g = build(&format!(
        "{HEAD}app:\n    FROM alpine:3.20\n    ARG GOOS=linux\n    RUN build $GOOS\n    SAVE ARTIFACT /app\nbuild:\n    FROM scratch\n    COPY (+app/app --GOOS=darwin) /darwin/\n    COPY +app/app /linux/\n"
    ));
    let c = copies(target(&g));
    let (CopySource::Stage(a), CopySource::Stage(b)) = (&c[0].from, &c[1].from) else { panic!() };
    assert_ne!(a, b);
    assert_eq!(runs(&g.stages[*a as usize])[0].build_args, [KeyValue::new("GOOS", "darwin")]);
    assert_eq!(runs(&g.stages[*b as usize])[0].build_args, [KeyValue::new("GOOS", "linux")]);
    // Only one of them can carry the name.
    assert_eq!(g.stages.iter().filter(|s| s.name.as_deref() == Some("app")).count(), 1);
}

#[test]
fn overrides_flow_down_and_unused_ones_do_not_duplicate_stages() {
    let g = build(&format!(
        "{HEAD}deps:\n    FROM alpine:3.20\n    RUN fetch\nlib:\n    FROM +deps\n    ARG MODE=debug\n    RUN make $MODE\n    SAVE ARTIFACT /lib.a\nbuild:\n    FROM +deps\n    COPY (+lib/lib.a --MODE=release) /\n"
    ));
    // +deps is reached with MODE=release (through +lib) and without: one stage.
    assert_eq!(g.stages.iter().filter(|s| s.base == Base::Image("alpine:3.20".into())).count(), 1);
    let (_, lib) = named(&g, "lib");
    assert_eq!(runs(lib)[0].build_args, [KeyValue::new("MODE", "release")]);
}

#[test]
fn pass_args() {
    let g = build(&format!(
        "{HEAD}lib:\n    FROM alpine:3.20\n    ARG MODE=debug\n    RUN make $MODE\n    SAVE ARTIFACT /lib.a\nbuild:\n    FROM scratch\n    ARG MODE=fast\n    COPY --pass-args +lib/lib.a /\n"
    ));
    assert_eq!(runs(named(&g, "lib").1)[0].build_args, [KeyValue::new("MODE", "fast")]);
}

#[test]
fn save_artifact_as_local_warns() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM alpine:3.20\n    RUN make\n    SAVE ARTIFACT app AS LOCAL ./dist/app\n"
    ));
    let w = g.warnings.iter().find(|w| w.code.as_deref() == Some("save-artifact-local")).unwrap();
    assert_eq!(
        w.message,
        "SAVE ARTIFACT ... AS LOCAL ./dist/app: kiln does not write files to the host during a build"
    );
    assert!(w.hint.as_deref().unwrap().contains("-o type=local"));
    assert_eq!(w.span.unwrap().start.line, 5);
}

// ---- SAVE IMAGE and BUILD ----

#[test]
fn save_image_names_become_a_hint_for_dash_t() {
    let g = build(&format!(
        "{HEAD}dep:\n    FROM alpine:3.20\n    SAVE IMAGE dep:latest\nbuild:\n    FROM +dep\n    ARG TAG=1.0\n    SAVE IMAGE --push registry.example/app:$TAG app:latest\n"
    ));
    let w: Vec<&Diagnostic> = g.warnings.iter().filter(|w| w.code.as_deref() == Some("save-image-name")).collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        w[0].message,
        "SAVE IMAGE names the image registry.example/app:1.0 app:latest, but kiln takes image names from the command line"
    );
    assert_eq!(
        w[0].hint.as_deref(),
        Some(
            "build with `kiln build -t registry.example/app:1.0 -t app:latest ...`, then push it with `kiln push registry.example/app:1.0`"
        )
    );
}

#[test]
fn build_is_an_error_that_says_what_to_run() {
    let d = the_error(
        &format!(
            "{HEAD}build:\n    BUILD +docker\n    BUILD --platform=linux/arm64 +docker\ndocker:\n    FROM scratch\n"
        )
        .replace("    BUILD --platform=linux/arm64 +docker\n", ""),
    );
    assert_eq!(d.message, "kiln does not support BUILD: a build exports the image of one target, not +docker as well");
    assert!(d.hint.as_deref().unwrap().contains("`kiln build --target +docker -f Earthfile .`"));
    assert_eq!(d.span.unwrap().start, kiln_ir::Position { line: 3, column: 5 });
    // In a target the build does not need, BUILD is a warning.
    let g = build(&format!("{HEAD}all:\n    BUILD +build\nbuild:\n    FROM scratch\n"));
    assert!(g.warnings.iter().any(|w| w.message.ends_with("(in +all, which this build does not need)")));
}

// ---- unsupported commands ----

#[test]
fn every_unsupported_command_is_an_error_with_a_hint() {
    for (line, code) in [
        ("LOCALLY", "unsupported-command"),
        ("FROM DOCKERFILE .", "unsupported-command"),
        ("GIT CLONE https://github.com/x/y.git y", "unsupported-command"),
        ("IMPORT github.com/earthly/lib", "unsupported-command"),
        ("DO +COMPILE", "unsupported-command"),
        ("CACHE /root/.cache", "unsupported-command"),
        ("HOST db 10.0.0.1", "unsupported-command"),
        ("PROJECT org/proj", "unsupported-command"),
        ("PIPELINE", "unsupported-command"),
        ("TRIGGER push main", "unsupported-command"),
        ("ADD a /a", "unsupported-command"),
        ("SHELL [\"/bin/bash\", \"-c\"]", "unsupported-command"),
        ("ONBUILD RUN x", "unsupported-command"),
        ("FUNCTION", "unsupported-command"),
        ("COMMAND", "unsupported-command"),
        ("FROBNICATE x", "unknown-command"),
    ] {
        let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    {line}\n"));
        assert_eq!(d.code.as_deref(), Some(code), "{line}");
        assert!(d.hint.is_some(), "{line}");
        let span = d.span.unwrap();
        assert_eq!((span.start.line, span.start.column), (4, 5), "{line}");
        assert_eq!(span.end.line, 4, "{line}");
    }
}

#[test]
fn unsupported_blocks_span_to_their_end() {
    for (block, keyword) in [
        ("WITH DOCKER --load app=+app\n        RUN docker run app\n    END", "WITH DOCKER"),
        ("IF [ -f go.mod ]\n        RUN go build\n    ELSE\n        RUN make\n    END", "IF"),
        ("FOR dir IN a b\n        RUN make -C $dir\n    END", "FOR"),
        ("TRY\n        RUN test\n    FINALLY\n        SAVE ARTIFACT out\n    END", "TRY"),
        ("WAIT\n        BUILD +x\n    END", "WAIT"),
    ] {
        let d = the_error(&format!("{HEAD}build:\n    FROM alpine:3.20\n    {block}\n"));
        assert_eq!(d.code.as_deref(), Some("unsupported-command"), "{keyword}");
        assert!(d.message.starts_with(&format!("kiln does not support {keyword}")), "{}", d.message);
        let span = d.span.unwrap();
        assert_eq!(span.start.line, 4);
        assert_eq!(span.end.line, 4 + block.lines().count() as u32 - 1, "{keyword}");
    }
}

#[test]
fn references_to_other_earthfiles_are_errors() {
    for (line, message) in [
        ("FROM ./sub+build", "./sub+build names a target of another Earthfile"),
        ("FROM github.com/earthly/lib+go", "github.com/earthly/lib+go names a target of a remote Earthfile"),
        ("COPY lib+build/x /", "lib+build/x names a target through an IMPORT alias"),
        ("COPY +COMPILE/x /", "+COMPILE/x is a function (FUNCTION/COMMAND), not a target"),
        ("FROM --platform=linux/amd64 +other", "kiln does not support FROM --platform with a target"),
    ] {
        let d = the_error(&format!("{HEAD}other:\n    FROM scratch\nbuild:\n    {line}\n"));
        assert_eq!(d.message, message, "{line}");
        assert!(d.hint.is_some());
    }
}

#[test]
fn unsupported_commands_in_unneeded_targets_are_warnings() {
    let g = build(&format!(
        "{HEAD}build:\n    FROM scratch\nrelease:\n    LOCALLY\n    RUN --push ./publish.sh\ntest:\n    WITH DOCKER\n        RUN docker run x\n    END\nCOMPILE:\n    FUNCTION\n    RUN make\n"
    ));
    let messages: Vec<&str> = g.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "kiln does not support LOCALLY: kiln runs every step in a WebAssembly sandbox, never on the host (in +release, which this build does not need)",
            "kiln does not support RUN --push (in +release, which this build does not need)",
            "kiln does not support WITH DOCKER: kiln cannot run containers inside a build (in +test, which this build does not need)",
            "kiln does not support functions: COMPILE is never run",
        ]
    );
    assert!(g.warnings.iter().all(|w| w.severity == Severity::Warning && w.span.is_some()));
    // An unknown command is an error anywhere, as in Earthly.
    let d = the_error(&format!("{HEAD}build:\n    FROM scratch\nother:\n    RUNN x\n"));
    assert_eq!(d.message, "unknown command RUNN");
}

// ---- determinism ----

#[test]
fn the_same_input_gives_the_same_ir() {
    let text = format!(
        "{HEAD}FROM golang:1.22\nWORKDIR /app\ndeps:\n    COPY go.mod go.sum ./\n    RUN go mod download\nbuild:\n    FROM +deps\n    COPY . .\n    RUN go build -o app\n    SAVE ARTIFACT app /bin/app\ndocker:\n    FROM alpine:3.20\n    COPY +build/bin/app /usr/bin/app\n    COPY (+build/bin/app --X=1) /usr/bin/app2\n    SAVE IMAGE app\n"
    );
    let first = serde_json::to_vec(&build_for(&text, Some("+docker"), &[])).unwrap();
    for _ in 0..3 {
        assert_eq!(serde_json::to_vec(&build_for(&text, Some("+docker"), &[])).unwrap(), first);
    }
}

#[test]
fn dir_copies_keep_the_last_component() {
    assert_eq!(dir_sources(vec!["src/web".into()], "/app/"), (vec!["src/./web".to_string()], true));
    assert_eq!(dir_sources(vec!["/out/dist".into()], "."), (vec!["/out/./dist".to_string()], true));
    assert_eq!(dir_sources(vec!["web".into(), "api".into()], "./"), (vec!["web".to_string(), "api".into()], true));
    assert_eq!(dir_sources(vec!["web".into()], "/srv/web"), (vec!["web".to_string()], false));
}
