//! Tests of statements to typed commands: flag syntax and support, positional shapes, and
//! the diagnostics for commands kiln refuses.

use super::*;
use crate::lexer::{Item, lex};

/// A statement that lives for the test (commands borrow their statement).
fn statement(text: &str) -> &'static Statement {
    match lex(text).unwrap().remove(0) {
        Item::Statement(s) => Box::leak(Box::new(s)),
        Item::Header { .. } => panic!("header"),
    }
}

fn err(text: &str) -> Diagnostic {
    parse(statement(text)).unwrap_err().remove(0)
}

#[test]
fn flags_in_every_spelling() {
    let s = statement("RUN --network=none --secret A=b --secret C --mount type=cache,target=/c -- --help");
    let p = parse(s).unwrap();
    let Command::Run(run) = p.command else { panic!() };
    assert_eq!(run.flags.value("network").unwrap().0, "none");
    assert_eq!(run.flags.values("secret").iter().map(|v| v.0).collect::<Vec<_>>(), ["A=b", "C"]);
    assert_eq!(run.flags.values("mount")[0].0, "type=cache,target=/c");
    let Form::Shell(words) = run.form else { panic!() };
    assert_eq!(Form::joined(words), "--help");
}

#[test]
fn exec_and_shell_forms() {
    let p = parse(statement(r#"RUN ["echo", "a b"]"#)).unwrap();
    assert!(matches!(p.command, Command::Run(Run { form: Form::Exec(ref v), .. }) if v == &["echo", "a b"]));
    let p = parse(statement(r#"CMD echo "a  b" $X"#)).unwrap();
    let Command::Cmd(Form::Shell(words)) = p.command else { panic!() };
    assert_eq!(Form::joined(words), "echo \"a  b\" $X");
}

#[test]
fn unknown_and_unsupported_flags() {
    let d = err("RUN --netwrk=none x");
    assert_eq!(d.message, "unknown flag --netwrk for RUN");
    assert!(d.hint.unwrap().starts_with("did you mean --network?"));
    let d = err("RUN --push ./deploy.sh");
    assert_eq!(d.message, "kiln does not support RUN --push");
    assert_eq!(d.code.as_deref(), Some("unsupported-flag"));
    assert_eq!((d.span.unwrap().start.column, d.span.unwrap().end.column), (5, 10));
    let p = parse(statement("RUN --no-cache make")).unwrap();
    assert_eq!(p.warnings[0].code.as_deref(), Some("ignored-flag"));
}

#[test]
fn copy_sources_with_arguments() {
    let s = statement("COPY --dir (+build/bin --GOOS=linux --X=1) +other/a ./");
    let Command::Copy(copy) = parse(s).unwrap().command else { panic!() };
    assert!(copy.flags.on("dir"));
    assert_eq!(copy.sources[0].text, "+build/bin");
    assert_eq!(copy.sources[0].args.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["--GOOS=linux", "--X=1"]);
    assert_eq!(copy.sources[1].text, "+other/a");
    assert_eq!(copy.dest.text, "./");
    assert_eq!(err("COPY onlyone").message, "COPY needs a source and a destination");
}

#[test]
fn save_artifact_shapes() {
    let Command::SaveArtifact(a) = parse(statement("SAVE ARTIFACT out/app /bin/ AS LOCAL dist/app")).unwrap().command
    else {
        panic!()
    };
    assert_eq!(
        (a.src.text.as_str(), a.dest.unwrap().text.as_str(), a.local.unwrap().text.as_str()),
        ("out/app", "/bin/", "dist/app")
    );
    assert_eq!(err("SAVE ARTIFACT a AS b").message, "SAVE ARTIFACT ... AS takes LOCAL and a path");
    assert_eq!(err("SAVE ARTIFACT a b c").message, "SAVE ARTIFACT takes a source and an optional destination");
}

#[test]
fn from_shapes() {
    let Command::From(f) = parse(statement("FROM --platform linux/arm64 +base --X=1")).unwrap().command else {
        panic!()
    };
    assert_eq!(f.flags.value("platform").unwrap().0, "linux/arm64");
    assert_eq!(f.base.text, "+base");
    assert_eq!(f.args[0].text, "--X=1");
    assert_eq!(err("FROM alpine AS build").message, "Earthfiles have no FROM ... AS: each target is its own stage");
}

#[test]
fn variables() {
    assert_eq!(err("ARG 1X=a").message, "invalid variable name \"1X\"");
    assert_eq!(err("ARG --required X=a").message, "ARG --required takes no default value");
    assert_eq!(err("LET X").message, "LET needs a value");
    let Command::Env(e) = parse(statement("ENV A b c")).unwrap().command else { panic!() };
    assert_eq!(e.value, "b c");
    let Command::Label(pairs) = parse(statement(r#"LABEL a=1 "b c"="d e" f = g"#)).unwrap().command else { panic!() };
    assert_eq!(
        pairs,
        [
            ("a".to_string(), "1".to_string()),
            ("\"b c\"".to_string(), "\"d e\"".to_string()),
            ("f".to_string(), "g".to_string())
        ]
    );
}

#[test]
fn unknown_commands() {
    let d = err("run echo hi");
    assert_eq!(d.message, "unknown command run");
    assert_eq!(d.hint.as_deref(), Some("Earthfile commands are upper case: RUN"));
    assert_eq!(err("COPPY a b").hint.as_deref(), Some("did you mean COPY?"));
}

#[test]
fn build_says_what_to_do_instead() {
    let d = err("BUILD --platform=linux/amd64 +docker");
    assert!(d.message.starts_with("kiln does not support BUILD"), "{}", d.message);
    assert!(d.hint.unwrap().contains("kiln build --target +docker -f Earthfile ."));
}
