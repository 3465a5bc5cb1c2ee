//! The TOML frontend written in Python (`frontends/toml-py`), a component built with
//! componentize-py against `wit/kiln-build.wit`: `kiln parse --frontend` and `kiln build
//! --frontend` with `examples/python-frontend`, its diagnostics, `--target` and `--build-arg`.
//!
//! The component is built once per test run by `frontends/toml-py/build.sh` (which installs
//! componentize-py from PyPI into the target directory the first time). It carries CPython, so
//! compiling it takes seconds: the parse tests share one store in the target directory, whose
//! compiled-module cache is filled once per component.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{Sandbox, run, stderr, stdout, target_dir, workspace};

/// The example, relative to the workspace.
const EXAMPLE: &str = "examples/python-frontend";

/// `frontends/toml.wasm`, built once per test run, and a store with it already compiled.
struct Built {
    wasm: PathBuf,
    store: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out =
            run(Command::new(workspace().join("frontends/toml-py/build.sh")).env("CARGO_TARGET_DIR", target_dir()));
        assert!(out.status.success(), "frontends/toml-py/build.sh failed:\n{}", stderr(&out));
        let wasm = workspace().join("frontends/toml.wasm");
        assert!(wasm.is_file(), "build.sh did not leave {}", wasm.display());
        // The store outlives the run, so a later run finds the component compiled; it starts
        // afresh when the component changed (its stamp is the component's size and time).
        let store = target_dir().join("toml-py-test-store");
        let meta = std::fs::metadata(&wasm).expect("stat toml.wasm");
        let stamp = format!("{} {:?}\n", meta.len(), meta.modified().expect("mtime"));
        if std::fs::read_to_string(store.join("stamp")).ok().as_deref() != Some(stamp.as_str()) {
            let _ = std::fs::remove_dir_all(&store);
            std::fs::create_dir_all(&store).expect("create the store");
            std::fs::write(store.join("stamp"), &stamp).expect("write the stamp");
        }
        // Compile it into the shared store once, so the tests below only instantiate it.
        let sb = Sandbox::new();
        let file = sb.write("Kilnfile.toml", "[[stage]]\nfrom = \"scratch\"\n");
        let out = run(sb.kiln().env("KILN_HOME", &store).arg("parse").arg("--frontend").arg(&wasm).arg("-f").arg(file));
        assert!(out.status.success(), "the TOML frontend does not parse a one-stage file: {}", stderr(&out));
        Built { wasm, store }
    })
}

/// `kiln parse --frontend frontends/toml.wasm` in the sandbox, with the shared store.
fn parse(sb: &Sandbox) -> Command {
    let mut cmd = sb.kiln();
    cmd.env("KILN_HOME", &built().store).arg("parse").arg("--frontend").arg(&built().wasm);
    cmd
}

fn ir(out: &Output) -> Value {
    assert!(out.status.success(), "kiln parse failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).expect("kiln parse prints JSON")
}

/// Parse `text` as `Kilnfile.toml` with extra `kiln parse` arguments.
fn parse_text(text: &str, args: &[&str]) -> Output {
    let sb = Sandbox::new();
    let file = sb.write("Kilnfile.toml", text);
    run(parse(&sb).args(args).arg("-f").arg(file).arg(sb.dir.path()))
}

/// Parse the example with extra `kiln parse` arguments.
fn parse_example(args: &[&str]) -> Output {
    let sb = Sandbox::new();
    let example = workspace().join(EXAMPLE);
    run(parse(&sb).args(args).arg("-f").arg(example.join("Kilnfile.toml")).arg(&example))
}

/// A failed parse's stderr, checked to be one.
fn rejected(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "expected diagnostics, got: {}{}", stdout(out), stderr(out));
    assert!(stdout(out).is_empty(), "no IR on failure");
    stderr(out)
}

/// Each stage as (name, base, [(op, created_by)]): what the runner executes, without spans and
/// source text, which differ between syntaxes.
fn executed(ir: &Value) -> Value {
    let stages = ir["stages"].as_array().expect("stages");
    Value::Array(
        stages
            .iter()
            .map(|s| {
                let steps: Vec<Value> = s["instructions"]
                    .as_array()
                    .expect("instructions")
                    .iter()
                    .map(|i| json!([i["op"], i["created_by"]]))
                    .collect();
                json!([s["name"], s["base"], steps])
            })
            .collect(),
    )
}

#[test]
fn python_frontend_parses_the_example_like_the_dockerfile_it_mirrors() {
    let toml = parse_example(&[]);
    let graph = ir(&toml);
    let stages = graph["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "builder");
    assert_eq!(stages[0]["base"]["image"], "kiln-toolbox");
    assert_eq!(stages[0]["text"], "from = \"kiln-toolbox\"");
    assert_eq!(stages[0]["span"]["start"]["line"], 11, "the stage's from line");
    assert_eq!(stages[1]["name"], Value::Null);
    assert_eq!(stages[1]["base"], "scratch");
    assert_eq!(graph["target"], 1);
    assert_eq!(graph["global_args"], json!([{"name": "NAME", "value": "hello"}]));
    let copy = &stages[1]["instructions"][0];
    assert_eq!(copy["op"]["copy"]["from"]["stage"], 0, "from = \"builder\" is stage 0");
    assert_eq!(copy["op"]["copy"]["dest"], "/bin/hello", "${{NAME}} expands to its default");
    assert_eq!(copy["span"]["start"]["line"], 21);
    assert_eq!(copy["text"], "copy = [\"/out/hello.wasm\"], from = \"builder\", to = \"/bin/${NAME}\"");
    let run_step = &stages[0]["instructions"][2]["op"]["run"];
    assert_eq!(run_step["argv"][0], "/bin/sh", "shell form runs in the default shell");
    assert_eq!(run_step["shell_form"], true);

    // What the runner executes is exactly what the Dockerfile of single-vs-multi gives.
    let sb = Sandbox::new();
    let dockerfile = workspace().join("examples/single-vs-multi");
    let docker = ir(&run(sb.kiln().arg("parse").arg("-f").arg(dockerfile.join("Dockerfile")).arg(&dockerfile)));
    assert_eq!(executed(&graph), executed(&docker));

    // The same file gives the same IR.
    assert_eq!(stdout(&parse_example(&[])), stdout(&toml));
}

#[test]
fn python_frontend_reports_an_unknown_key_at_its_line() {
    let text = "[[stage]]\nname = \"builder\"\nfrom = \"scratch\"\nsteps = [\n  { workdir = \"/src\" },\n  { copy = [\"a\"], form = \"x\", to = \"/\" },\n]\n\n[[stage]]\nfrom = \"builder\"\ncolour = \"red\"\n";
    let err = rejected(&parse_text(text, &[]));
    assert!(
        err.contains("Kilnfile.toml:6:19: error: unknown key \"form\" in a copy step\n6 |   { copy = [\"a\"], form = \"x\", to = \"/\" },\n  |                   ^^^^^^^^^^\nhint: did you mean \"from\"?"),
        "{err}"
    );
    // Every error of the file, in one run.
    assert!(err.contains("Kilnfile.toml:11:1: error: unknown key \"colour\" in stage 1"), "{err}");
    assert!(err.contains("the keys here are: name, from, steps"), "{err}");
}

#[test]
fn python_frontend_reports_a_bad_stage_reference_at_its_line() {
    let text = "[[stage]]\nname = \"app\"\nfrom = \"tools\"\n\n[[stage]]\nname = \"tools\"\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"/x\"], from = 7, to = \"/x\" },\n]\n";
    let err = rejected(&parse_text(text, &[]));
    assert!(
        err.contains("Kilnfile.toml:3:1: error: from names stage \"tools\": stage 1, which comes after this one"),
        "{err}"
    );
    assert!(err.contains("hint: a stage can only use the stages above it; move that stage up"), "{err}");
    assert!(
        err.contains("Kilnfile.toml:9:20: error: copy from names stage 7, but only stages above this one"),
        "{err}"
    );

    // A name close to a stage's is taken as an image, with a warning at its line.
    let out = parse_text("[[stage]]\nname = \"builder\"\nfrom = \"scratch\"\n\n[[stage]]\nfrom = \"buidler\"\n", &[]);
    let graph = ir(&out);
    assert_eq!(graph["stages"][1]["base"]["image"], "buidler");
    let err = stderr(&out);
    assert!(err.contains("Kilnfile.toml:6:1: warning: \"buidler\" is not a stage of this file"), "{err}");
    assert!(err.contains("did you mean the stage \"builder\"?"), "{err}");
}

#[test]
fn python_frontend_target_and_build_args() {
    let graph = ir(&parse_example(&["--target", "BUILDER", "--build-arg", "NAME=hi"]));
    assert_eq!(graph["target"], 0, "--target matches stage names in any case");
    assert_eq!(graph["stages"][1]["instructions"][0]["op"]["copy"]["dest"], "/bin/hi");
    assert_eq!(graph["global_args"], json!([{"name": "NAME", "value": "hi"}]));

    let err = rejected(&parse_example(&["--target", "buildr"]));
    assert!(err.contains("error: target stage \"buildr\" could not be found"), "{err}");
    assert!(err.contains("hint: did you mean \"builder\"? the stages are: builder"), "{err}");

    // An argument the file does not declare is ignored with a warning; an undeclared ${NAME}
    // is an error at its line.
    let out = parse_text("[[stage]]\nfrom = \"scratch\"\n", &["--build-arg", "UNUSED=1"]);
    ir(&out);
    assert!(
        stderr(&out).contains("warning: build arguments not declared in [args] were ignored: UNUSED"),
        "{}",
        stderr(&out)
    );
    let err =
        rejected(&parse_text("[[stage]]\nfrom = \"scratch\"\nsteps = [\n  { run = \"echo ${NOPE}\" },\n]\n", &[]));
    assert!(err.contains("Kilnfile.toml:4:5: error: \"${NOPE}\" names no build argument"), "{err}");
}

/// The example builds, with the toolbox, into the very image the Dockerfile of
/// single-vs-multi gives, and it runs.
#[test]
fn python_frontend_builds_the_same_image_as_the_dockerfile() {
    // A store holding the toolbox the toolbox examples share (built once per test run).
    let sb = crate::examples::sandbox();
    let example = workspace().join(EXAMPLE);
    let out = run(sb
        .kiln()
        .args(["build", "-q", "-t", "hello:toml", "--frontend"])
        .arg(&built().wasm)
        .arg("-f")
        .arg(example.join("Kilnfile.toml"))
        .arg(&example));
    assert!(out.status.success(), "kiln build --frontend toml.wasm: {}", stderr(&out));
    let toml = stdout(&out).trim().to_string();
    let out =
        run(sb.kiln().args(["build", "-q", "-t", "hello:multi"]).arg(workspace().join("examples/single-vs-multi")));
    assert!(out.status.success(), "kiln build single-vs-multi: {}", stderr(&out));
    assert_eq!(toml, stdout(&out).trim(), "the TOML and the Dockerfile give one image");
    let out = run(sb.kiln().args(["run", "hello:toml"]));
    assert_eq!(stdout(&out), "hello from a WASI program\n", "{}", stderr(&out));
}

/// The example's first line, `# syntax=./frontends/toml.wasm`, selects the Python frontend
/// when kiln runs from the repository root, as the README says to build it: no `--frontend`.
#[test]
fn the_syntax_line_selects_the_python_frontend() {
    let sb = Sandbox::new();
    let with_flag = ir(&parse_example(&[]));
    let out = run(sb.kiln().env("KILN_HOME", &built().store).current_dir(workspace()).args([
        "parse",
        "-f",
        "examples/python-frontend/Kilnfile.toml",
        EXAMPLE,
    ]));
    assert_eq!(ir(&out), with_flag, "the # syntax= line picked frontends/toml.wasm");
    // Elsewhere, the relative path names nothing, and the error says which line asked for it.
    let out = run(sb
        .kiln()
        .env("KILN_HOME", &built().store)
        .arg("parse")
        .arg("-f")
        .arg(workspace().join("examples/python-frontend/Kilnfile.toml"))
        .arg(workspace().join(EXAMPLE)));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Kilnfile.toml:1") && err.contains("relative to the current directory"), "{err}");
}
