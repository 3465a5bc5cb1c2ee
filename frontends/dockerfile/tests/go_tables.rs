//! The tables BuildKit keeps inside its Go tests (tests/conformance/buildkit/GO_TEST_CASES.md),
//! read from that file and checked against kiln's Dockerfile frontend: parser (P), heredocs
//! (P8), instructions (I), conversion (D) and error locations (E). Word expansion (S) is
//! tested next to the lexer in `src/shell.rs`.

use kiln_dockerfile::{instructions, parser};
use kiln_ir::{BuildGraph, Diagnostic, KeyValue, NoImages, Op, Request};
use serde_json::Value;

fn cases_file() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance/buildkit/GO_TEST_CASES.md");
    std::fs::read_to_string(path).expect("GO_TEST_CASES.md is in the repository")
}

/// The text of one section: a `### {id}.` or `## {id}.` heading, or a `**{id} ` paragraph
/// inside a section (P8a…P8e), up to the next heading, sub-section or rule.
fn section(id: &str) -> String {
    let text = cases_file();
    let start = [format!("\n### {id}."), format!("\n## {id}."), format!("\n**{id} ")]
        .iter()
        .find_map(|marker| text.find(marker.as_str()))
        .unwrap_or_else(|| panic!("no section {id}"));
    let rest = &text[start + 1..];
    let end = ["\n### ", "\n## ", "\n---", "\n**P8"]
        .iter()
        .filter_map(|marker| rest[4..].find(marker).map(|i| i + 4))
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Every row of every ```jsonl block in a section.
fn rows(id: &str) -> Vec<Value> {
    let text = section(id);
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```jsonl") {
            in_block = true;
        } else if line.starts_with("```") {
            in_block = false;
        } else if in_block && !line.trim().is_empty() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{id}: bad row {line}: {e}")));
        }
    }
    assert!(!out.is_empty(), "section {id} has no rows");
    out
}

/// The first plain fenced block of a section, with `<TAB>` turned into a tab.
fn fenced(id: &str) -> String {
    let text = section(id);
    let start = text.find("\n```\n").expect("a fenced block") + 5;
    let end = text[start..].find("\n```").expect("its end") + start;
    format!("{}\n", &text[start..end]).replace("<TAB>", "\t")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn parse_df(src: &str, target: Option<&str>) -> Result<BuildGraph, Vec<Diagnostic>> {
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: src.as_bytes().to_vec(),
        build_args: vec![],
        target: target.map(str::to_string),
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
    };
    kiln_dockerfile::parse(&request, &NoImages)
}

#[test]
fn p1_word_splitting() {
    for row in rows("P1") {
        let words = parser::parse_words(s(&row["input"]), '\\');
        let expected: Vec<String> = serde_json::from_value(row["words"].clone()).unwrap();
        assert_eq!(words, expected, "{row}");
    }
}

#[test]
fn p3_empty_continuation_warnings() {
    let input = fenced("P3");
    let result = parser::parse(&input).expect("parses");
    assert_eq!(result.warnings.len(), 2);
    let row = &rows("P3")[0];
    for (w, key) in result.warnings.iter().zip(["warning_1_contains", "warning_2_contains"]) {
        for needle in row[key].as_array().unwrap() {
            assert!(w.short.contains(s(needle)), "{} lacks {needle}", w.short);
        }
        assert!(w.detail.contains(s(&row["detail_contains"])));
    }
}

#[test]
fn p4_over_long_line() {
    let row = &rows("P4")[0];
    let src = format!("\n\t\tFROM image\n\t\tLABEL test={}\n", "a".repeat(65536));
    assert_eq!(parser::parse(&src).unwrap_err().message, s(&row["error_exact"]));
}

#[test]
fn p5_json_arrays() {
    for row in rows("P5") {
        let src = format!("CMD {}", s(&row["input"]));
        match row.get("elements") {
            Some(elements) => {
                let result = parser::parse(&src).unwrap_or_else(|e| panic!("{row}: {e}"));
                let node = &result.children[0];
                assert!(node.json, "{row}");
                let expected: Vec<String> = serde_json::from_value(elements.clone()).unwrap();
                assert_eq!(node.arg_values(), expected, "{row}");
            }
            None => assert!(parser::parse(&src).is_err(), "{row}"),
        }
    }
}

#[test]
fn p6_env_label_key_values() {
    for row in rows("P6") {
        let result = parser::parse(s(&row["dockerfile"]));
        match row.get("dump") {
            Some(dump) => assert_eq!(result.unwrap().dump(), format!("{}\n", s(dump))),
            None => assert!(result.unwrap_err().message.contains(s(&row["expect_error"])), "{row}"),
        }
    }
}

#[test]
fn p8a_heredocs_extracted_from_a_whole_file() {
    let src = fenced("P8a");
    let result = parser::parse(&src).expect("parses");
    for row in rows("P8a") {
        let child = row["child"].as_u64().unwrap() as usize;
        let node = &result.children[child];
        let first_line = node.original.lines().next().unwrap_or_default();
        assert_eq!(first_line, s(&row["instruction_first_line"]), "{row}");
        let got: Vec<Value> = node
            .heredocs
            .iter()
            .map(|h| {
                serde_json::json!({"name": h.name, "fd": h.fd, "expand": h.expand, "chomp": h.chomp, "content": h.content})
            })
            .collect();
        let expected = if row["heredocs"].is_null() { vec![] } else { row["heredocs"].as_array().unwrap().clone() };
        assert_eq!(got, expected, "child {child}");
    }
}

#[test]
fn p8b_json_form_never_starts_a_heredoc() {
    for row in rows("P8b") {
        let result = parser::parse(s(&row["dockerfile"])).unwrap();
        for node in &result.children[1..=3] {
            assert!(node.heredocs.is_empty(), "{}", node.original);
        }
    }
}

#[test]
fn p8c_chomp() {
    for row in rows("P8c") {
        assert_eq!(parser::chomp_heredoc(s(&row["input"])), s(&row["chomped"]));
    }
}

#[test]
fn p8d_heredoc_words() {
    for row in rows("P8d") {
        let got = parser::parse_heredoc(s(&row["word"]));
        match s(&row["result"]) {
            "heredoc" => assert_eq!(got.unwrap().unwrap().name, s(&row["name"]), "{row}"),
            "error" => assert!(got.is_err(), "{row}"),
            _ => assert_eq!(got, Ok(None), "{row}"),
        }
    }
}

#[test]
fn p8e_heredocs_from_a_line() {
    for row in rows("P8e") {
        let names: Vec<String> =
            parser::heredocs_from_line(s(&row["line"])).unwrap().into_iter().map(|h| h.name).collect();
        let expected: Vec<String> = serde_json::from_value(row["names"].clone()).unwrap();
        assert_eq!(names, expected, "{row}");
    }
}

fn instruction_error(src: &str) -> Option<String> {
    let parsed = parser::parse(src).ok()?;
    instructions::parse_node(&parsed.children[0]).err().map(|(m, _)| m)
}

#[test]
fn i1_i6_instruction_errors() {
    for id in ["I1", "I6"] {
        for row in rows(id) {
            let src = s(&row["dockerfile"]);
            let err = instruction_error(src).unwrap_or_else(|| panic!("{id}: {src:?} should fail"));
            if let Some(exact) = row.get("error_exact") {
                assert_eq!(err, s(exact), "{row}");
            } else {
                assert!(err.contains(s(&row["error_contains"])), "{row}: {err}");
            }
        }
    }
}

#[test]
fn i2_blank_names() {
    for row in rows("I2").iter().filter(|r| r.get("dockerfile").is_some()) {
        assert_eq!(instruction_error(s(&row["dockerfile"])).as_deref(), Some(s(&row["error_exact"])));
    }
}

#[test]
fn d1_whole_dockerfile_outcomes() {
    for row in rows("D1") {
        let src = s(&row["dockerfile"]);
        let result = parse_df(src, row.get("target").map(s));
        if row.get("final_image_label_marker").is_some() {
            // COPY --from=sibling brings files, not the sibling's labels: the consumer is
            // based on `base` and holds no LABEL of its own.
            let graph = result.unwrap();
            let consumer = &graph.stages[2];
            assert_eq!(consumer.base, kiln_ir::Base::Stage(0));
            assert!(
                !consumer.instructions.iter().any(|i| matches!(&i.op, Op::Config(kiln_ir::ConfigChange::Label(_))))
            );
            continue;
        }
        match (row.get("ok").and_then(Value::as_bool), row.get("error_exact")) {
            (Some(true), _) => {
                assert!(result.is_ok(), "{src:?}: {:?}", result.err());
            }
            (_, Some(exact)) => {
                let errors = result.unwrap_err();
                assert_eq!(errors[0].message, s(exact), "{src:?}");
            }
            _ => assert!(result.is_err(), "{src:?} should fail"),
        }
    }
}

#[test]
fn d4_healthcheck_history() {
    let row = &rows("D4")[2];
    let graph = parse_df(
        "FROM scratch\nHEALTHCHECK --interval=1s --timeout=10s --start-period=3s --start-interval=100ms --retries=5 CMD [\"bin\",\"-c\",\"exit 0\"]\n",
        None,
    )
    .unwrap();
    // The Go test builds the config by hand with `Test: [bin -c exit 0]`; parsed from a
    // Dockerfile the test list starts with `CMD` (as Docker stores it), and the text says so.
    let expected = s(&row["created_by"]).replace("Test:[", "Test:[CMD ");
    assert_eq!(graph.stages[0].instructions[0].created_by, expected);
}

#[test]
fn e_error_locations() {
    for row in rows("E") {
        let src = s(&row["dockerfile"]);
        let lines: Vec<u64> = serde_json::from_value(row["error_lines"].clone()).unwrap();
        match parse_df(src, None) {
            Err(errors) => {
                let span = errors[0].span.expect("a located error");
                let covered: Vec<u64> = (u64::from(span.start.line)..=u64::from(span.end.line)).collect();
                assert_eq!(covered, lines, "{}", row["name"]);
            }
            // The others fail only when built (a missing file, an unknown image, a RUN of a
            // program scratch lacks, a frontend that does not exist).
            Ok(_) => assert!(
                ["invalidrun", "invalidcopy", "invalidcopyfrom", "invalidsyntax", "invalidmultiline"]
                    .contains(&s(&row["name"])),
                "{} should fail while parsing",
                row["name"]
            ),
        }
    }
}

#[test]
fn arg_scoping_follows_buildkit() {
    let src = "ARG V=global\nARG OTHER=o\nFROM scratch AS a\nARG V\nENV FROM_ARG=$V OTHER=${OTHER:-unset}\nFROM a AS b\nARG LATE=late\nRUN echo $V\n";
    let graph = parse_df(src, None).unwrap();
    let Op::Config(kiln_ir::ConfigChange::Env(env)) = &graph.stages[0].instructions[1].op else { panic!() };
    assert_eq!(env[0], KeyValue::new("FROM_ARG", "global"), "a redeclared global ARG keeps its value");
    assert_eq!(env[1], KeyValue::new("OTHER", "unset"), "undeclared globals are not visible in a stage");
    let Op::Run(run) = &graph.stages[1].instructions[1].op else { panic!() };
    assert_eq!(run.build_args, vec![KeyValue::new("V", "global"), KeyValue::new("LATE", "late")]);
    assert_eq!(graph.stages[1].instructions[1].created_by, "RUN |2 V=global LATE=late /bin/sh -c echo $V");
}

#[test]
fn env_of_a_base_image_is_visible_and_onbuild_triggers_run() {
    struct OneImage;
    impl kiln_ir::ImageResolver for OneImage {
        fn resolve_image_config(&self, reference: &str, _: Option<&str>) -> Result<kiln_ir::ImageConfig, String> {
            if reference != "base:1" {
                return Err("unknown".into());
            }
            Ok(kiln_ir::ImageConfig {
                env: vec!["GOPATH=/go".into(), "PATH=/go/bin:/usr/bin".into()],
                working_dir: "/src".into(),
                user: String::new(),
                shell: vec!["/bin/bash".into(), "-ec".into()],
                on_build: vec!["COPY . /app".into()],
                platform: "linux/amd64".into(),
            })
        }
    }
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: b"FROM base:1\nENV P=$GOPATH/pkg\nRUN make\n".to_vec(),
        build_args: vec![],
        target: None,
        build_platform: "linux/amd64".into(),
        target_platform: "linux/arm64".into(),
    };
    let graph = kiln_dockerfile::parse(&request, &OneImage).unwrap();
    let ins = &graph.stages[0].instructions;
    assert!(matches!(&ins[0].op, Op::Copy(c) if c.sources == ["."] && c.dest == "/app"), "ONBUILD trigger first");
    let Op::Config(kiln_ir::ConfigChange::Env(env)) = &ins[1].op else { panic!() };
    assert_eq!(env[0].value, "/go/pkg");
    let Op::Run(run) = &ins[2].op else { panic!() };
    assert_eq!(run.argv, vec!["/bin/bash", "-ec", "make"], "the image's SHELL wraps the shell form");
}

#[test]
fn unreachable_stages_do_not_resolve_images_or_fail_the_build() {
    struct Refuse;
    impl kiln_ir::ImageResolver for Refuse {
        fn resolve_image_config(&self, reference: &str, _: Option<&str>) -> Result<kiln_ir::ImageConfig, String> {
            panic!("{reference} was resolved although the target does not need it")
        }
    }
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: b"FROM unneeded:1 AS other\nCOPY ${NOPE:?boom} /\nFROM scratch AS final\nCOPY a /a\n".to_vec(),
        build_args: vec![],
        target: Some("final".into()),
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
    };
    let graph = kiln_dockerfile::parse(&request, &Refuse).unwrap();
    assert_eq!(graph.target, 1);
    assert!(graph.warnings.iter().any(|w| w.message.contains("boom")), "{:?}", graph.warnings);
}
