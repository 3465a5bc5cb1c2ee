//! `kiln parse`: the built-in Dockerfile frontend end to end, its JSON, its errors.

use serde_json::Value;

use crate::support::{Sandbox, run, stderr, stdout, workspace};

fn parse_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "kiln parse failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).expect("kiln parse prints JSON")
}

#[test]
fn parses_the_go_example_into_three_stages() {
    let sb = Sandbox::new();
    let file = workspace().join("examples/go-server/Dockerfile");
    let out = run(sb.kiln().arg("parse").arg("-f").arg(&file));
    let ir = parse_json(&out);
    let stages = ir["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[0]["name"], "builder");
    assert_eq!(stages[0]["base"]["image"], "golang:1.22");
    assert_eq!(stages[1]["name"], "test");
    assert_eq!(stages[1]["base"]["stage"], 0);
    assert_eq!(stages[2]["name"], Value::Null);
    assert_eq!(stages[2]["base"], "scratch", "ARG BASE=scratch expands in FROM");
    assert_eq!(ir["target"], 2);
    let final_ops: Vec<&Value> = stages[2]["instructions"].as_array().unwrap().iter().map(|i| &i["op"]).collect();
    assert_eq!(final_ops[0]["copy"]["from"]["stage"], 0, "COPY --from=builder");
    assert_eq!(final_ops[1]["copy"]["from"]["stage"], 0, "COPY --from=0");
    assert_eq!(final_ops[2]["config"]["expose"][0], "8080/tcp");
    assert_eq!(final_ops[3]["config"]["healthcheck"]["interval"], 5_000_000_000u64);
    assert_eq!(final_ops[3]["config"]["healthcheck"]["test"][0], "CMD");
    assert_eq!(final_ops[4]["config"]["entrypoint"]["argv"][0], "/server");
    let run_op = &stages[0]["instructions"][2]["op"]["run"];
    assert_eq!(run_op["argv"][0], "/bin/sh");
    assert_eq!(run_op["argv"][2], "go mod download");
    // golang:1.22 is not in the empty store: a warning, not an error.
    assert!(stderr(&out).contains("could not read the configuration of golang:1.22"), "{}", stderr(&out));
}

#[test]
fn target_and_build_args_change_the_graph() {
    let sb = Sandbox::new();
    let file = workspace().join("examples/go-server/Dockerfile");
    let out = run(sb.kiln().args(["parse", "--target", "TEST", "--build-arg", "BASE=alpine:3.20", "-f"]).arg(&file));
    let ir = parse_json(&out);
    assert_eq!(ir["target"], 1, "--target matches stage names case-insensitively");
    assert_eq!(ir["stages"][2]["base"]["image"], "alpine:3.20");
}

#[test]
fn unknown_target_lists_the_stages() {
    let sb = Sandbox::new();
    let file = workspace().join("examples/go-server/Dockerfile");
    let out = run(sb.kiln().args(["parse", "--target", "tset", "-f"]).arg(&file));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("target stage \"tset\" could not be found"), "{err}");
    assert!(err.contains("did you mean test?"), "{err}");
    assert!(err.contains("the stages are: builder, test"), "{err}");
}

#[test]
fn errors_name_file_line_column_with_a_caret_and_hint() {
    let sb = Sandbox::new();
    sb.write("Dockerfile", "FROM scratch\nFORM alpine\nCOPY --form=x a b\n");
    let out = run(sb.kiln().arg("parse"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Dockerfile:2:1: error: unknown instruction: FORM\n2 | FORM alpine\n  | ^^^^^^^^^^^\nhint: did you mean FROM?"), "{err}");
    // Both errors are reported in one run.
    assert!(err.contains("Dockerfile:3:1: error: unknown flag: --form"), "{err}");
    assert!(err.contains("hint: did you mean --from?"), "{err}");
    assert!(stdout(&out).is_empty(), "no IR on failure");
}

#[test]
fn expansion_failures_point_at_their_instruction() {
    let sb = Sandbox::new();
    // The message is quoted: LABEL splits on unquoted blanks before anything is expanded.
    sb.write(
        "Dockerfile",
        "FROM scratch\nARG VERSION\nLABEL v=\"${VERSION:?set VERSION with --build-arg}\"\nCOPY app-${VERSION} /app\n",
    );
    let out = run(sb.kiln().arg("parse"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Dockerfile:3:1: error:"), "{err}");
    assert!(err.contains("set VERSION with --build-arg"), "{err}");
    let out = run(sb.kiln().args(["parse", "--build-arg", "VERSION=1.2"]));
    let ir = parse_json(&out);
    assert_eq!(ir["stages"][0]["instructions"][2]["op"]["copy"]["sources"][0], "app-1.2");
}

#[test]
fn heredocs_reach_the_ir() {
    let sb = Sandbox::new();
    sb.write(
        "Dockerfile",
        "FROM scratch\nENV NAME=kiln\nCOPY <<EOF /greeting\nhello $NAME\nEOF\nRUN <<-SCRIPT\n\techo one\n\techo two\n\tSCRIPT\n",
    );
    let ir = parse_json(&run(sb.kiln().arg("parse")));
    let ops = &ir["stages"][0]["instructions"];
    assert_eq!(ops[1]["op"]["copy"]["inline_sources"][0]["contents"], "hello kiln\n");
    assert_eq!(ops[2]["op"]["run"]["argv"][2], "echo one\necho two\n");
}

#[test]
fn a_missing_build_file_is_a_clear_error() {
    let sb = Sandbox::new();
    let out = run(sb.kiln().args(["parse", "-f", "nope/Dockerfile"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read nope/Dockerfile"), "{}", stderr(&out));
}

#[test]
fn bad_usage_exits_2() {
    let sb = Sandbox::new();
    let out = run(sb.kiln().args(["parse", "--no-such-flag"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compiled_frontend_is_cached_in_the_store() {
    let sb = Sandbox::new();
    sb.write("Dockerfile", "FROM scratch\n");
    // The store's own cache, not the suite's shared one.
    assert!(run(sb.kiln_own_compile_cache().arg("parse")).status.success());
    let cached: Vec<_> = std::fs::read_dir(sb.root().join("compiled"))
        .expect("the store has a compiled/ directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1);
    // A corrupt entry is recompiled, not trusted.
    std::fs::write(cached[0].path(), b"garbage").unwrap();
    assert!(run(sb.kiln_own_compile_cache().arg("parse")).status.success());
    assert_ne!(std::fs::read(cached[0].path()).unwrap(), b"garbage");
}
