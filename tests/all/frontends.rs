//! Choosing a frontend: `--frontend`, a `# syntax=` line, the file's name; frontends as
//! files and as images in the store or a registry (Wasm OCI artifacts), checked against
//! their digests; components that are not frontends refused with what they are.

use serde_json::Value;

use crate::peers::{Registry, or_skip};
use crate::support::{Sandbox, hostile_frontend, run, run_guests, stderr, stdout};

/// The hostile frontend answers a file whose first word it does not know with one
/// `FROM scratch` stage and no instructions; the Dockerfile frontend never does that for a
/// file with a COPY. So the stages' instruction count tells which frontend parsed.
fn instructions_of_first_stage(out: &std::process::Output) -> usize {
    assert!(out.status.success(), "kiln parse failed:\n{}", stderr(out));
    let graph: Value = serde_json::from_str(&stdout(out)).unwrap();
    graph["stages"][0]["instructions"].as_array().unwrap().len()
}

#[test]
fn the_flag_the_syntax_line_and_the_default_pick_the_frontend() {
    let sb = Sandbox::new();
    sb.copy("fe.wasm", &hostile_frontend());
    let parse = |dockerfile: &str, extra: &[&str]| {
        sb.write("ctx/Dockerfile", dockerfile);
        run(sb.kiln().arg("parse").args(extra).arg("ctx"))
    };
    // No directive: the built-in Dockerfile frontend (one COPY).
    assert_eq!(instructions_of_first_stage(&parse("FROM scratch\nCOPY a /\n", &[])), 1);
    // Docker's own syntax references mean the built-in one.
    assert_eq!(instructions_of_first_stage(&parse("# syntax=docker/dockerfile:1.7\nFROM scratch\nCOPY a /\n", &[])), 1);
    // A path, relative to the current directory: the hostile frontend's plain graph.
    assert_eq!(instructions_of_first_stage(&parse("# syntax=./fe.wasm\nFROM scratch\nCOPY a /\n", &[])), 0);
    // --frontend wins over the directive.
    let out = parse("# syntax=./fe.wasm\nFROM scratch\nCOPY a /\n", &["--frontend", "dockerfile"]);
    assert_eq!(instructions_of_first_stage(&out), 1);
    // A directive after the first line that is not one is just a comment.
    assert_eq!(instructions_of_first_stage(&parse("FROM scratch\n# syntax=./fe.wasm\nCOPY a /\n", &[])), 1);
    // A missing frontend names the line that asked for it.
    let out = parse("# syntax=./missing.wasm\nFROM scratch\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("ctx/Dockerfile:1") && err.contains("missing.wasm"), "{err}");
}

#[test]
fn a_component_that_is_not_a_frontend_is_refused_with_what_it_is() {
    let sb = Sandbox::new();
    sb.write("ctx/Dockerfile", "FROM scratch\n");
    let (_, p2) = run_guests();
    let out = run(sb.kiln().arg("parse").arg("--frontend").arg(&p2).arg("ctx"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not a kiln frontend") && err.contains("kiln:build/frontend@0.1.0"), "{err}");
    assert!(err.contains("wasi:cli/run"), "what it exports is named: {err}");
    let out = run(sb.kiln().args(["frontend", "add"]).arg(&p2).arg("fe/not:1"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a kiln frontend"), "{}", stderr(&out));
}

#[test]
fn frontends_are_published_pulled_and_verified_like_images() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let reference = format!("{}/frontends/hostile:1", registry.addr);
    let publisher = Sandbox::new();
    let out = run(publisher.kiln().args([&insecure, "frontend", "push"]).arg(hostile_frontend()).arg(&reference));
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = stdout(&out).split_whitespace().last().unwrap().to_string();
    let listed = stdout(&run(publisher.kiln().args(["frontend", "ls"])));
    assert!(listed.contains(&reference), "{listed}");

    // A build file whose # syntax= names it pulls it into the store.
    let user = Sandbox::new();
    user.write("ctx/Dockerfile", format!("# syntax={reference}\nFROM scratch\nCOPY Dockerfile /\n"));
    let out = run(user.kiln().args([&insecure, "parse", "ctx"]));
    assert_eq!(instructions_of_first_stage(&out), 0, "the published frontend parsed it");
    let listed = stdout(&run(user.kiln().args(["frontend", "ls"])));
    assert!(listed.contains(&reference), "pulled into the store: {listed}");
    let out = run(user.kiln().args([&insecure, "build", "-q", "-t", "by-published-frontend:1", "ctx"]));
    assert!(out.status.success(), "kiln build with the pulled frontend:\n{}", stderr(&out));

    // Pinned by digest: the right one works offline (from the store); a wrong one is refused.
    user.write("ctx/Dockerfile", format!("# syntax={}/frontends/hostile@{digest}\nFROM scratch\n", registry.addr));
    assert_eq!(instructions_of_first_stage(&run(user.kiln().args([&insecure, "parse", "ctx"]))), 0);
    let wrong = format!("sha256:{}", "0".repeat(64));
    user.write("ctx/Dockerfile", format!("# syntax={}/frontends/hostile@{wrong}\nFROM scratch\n", registry.addr));
    let out = run(user.kiln().args([&insecure, "parse", "ctx"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ctx/Dockerfile:1"), "{}", stderr(&out));

    // A registry that serves other bytes under the component's digest is caught.
    let component = std::fs::read(hostile_frontend()).unwrap();
    let mut stored = Vec::new();
    let mut pending = vec![registry.storage()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else if std::fs::read(entry.path()).is_ok_and(|b| b == component) {
                stored.push(entry.path());
            }
        }
    }
    assert_eq!(stored.len(), 1);
    let mut damaged = component.clone();
    damaged[100] ^= 0xff;
    std::fs::write(&stored[0], &damaged).unwrap();
    let fresh = Sandbox::new();
    fresh.write("ctx/Dockerfile", format!("# syntax={reference}\nFROM scratch\n"));
    let out = run(fresh.kiln().args([&insecure, "parse", "ctx"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("discarded and nothing was tagged"), "{err}");
    assert!(stdout(&run(fresh.kiln().args(["frontend", "ls"]))).trim().is_empty(), "nothing was kept");
}
