//! Golden tests: realistic Earthfiles in `tests/golden/<case>/Earthfile` and the IR (or the
//! diagnostics) each request gives, in `tests/golden/<case>/<variant>.json`. The example in
//! `examples/earthfile-hello` is one of them.
//!
//! `KILN_BLESS=1 cargo test -p kiln-earthfile --test golden` rewrites the expected files;
//! read the diff before committing.

use std::path::{Path, PathBuf};

use kiln_ir::{ImageConfig, ImageResolver, KeyValue, Request};

/// The base images the golden Earthfiles may resolve; any other is unknown.
struct Store;

impl ImageResolver for Store {
    fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<ImageConfig, String> {
        let config = |env: &[&str], working_dir: &str| ImageConfig {
            env: env.iter().map(|e| e.to_string()).collect(),
            working_dir: working_dir.into(),
            ..ImageConfig::default()
        };
        match reference {
            "golang:1.22" => Ok(config(
                &[
                    "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "GOPATH=/go",
                ],
                "/go",
            )),
            "node:20" => Ok(config(&["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=20.11.0"], "")),
            "alpine:3.20" | "kiln-toolbox" => Ok(config(&["PATH=/usr/local/bin:/usr/bin:/bin"], "")),
            other => Err(format!("{other} is not in the test store")),
        }
    }
}

struct Case {
    /// The directory holding the Earthfile.
    dir: &'static str,
    /// The name of the expected file.
    variant: &'static str,
    target: Option<&'static str>,
    build_args: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case { dir: "tests/golden/go-tutorial", variant: "build", target: None, build_args: &[] },
    Case { dir: "tests/golden/go-tutorial", variant: "docker", target: Some("+docker"), build_args: &[] },
    Case { dir: "tests/golden/go-tutorial", variant: "all", target: Some("all"), build_args: &[] },
    Case { dir: "tests/golden/monorepo", variant: "no-target", target: None, build_args: &[] },
    Case {
        dir: "tests/golden/monorepo",
        variant: "image",
        target: Some("+image"),
        build_args: &[("VERSION", "1.4.2")],
    },
    Case { dir: "tests/golden/monorepo", variant: "api-arm64", target: Some("+api-arm64"), build_args: &[] },
    Case { dir: "tests/golden/python-0.6", variant: "build", target: None, build_args: &[("PYTHON_VERSION", "3.11")] },
    Case { dir: "tests/golden/unsupported", variant: "build", target: None, build_args: &[] },
    Case { dir: "../../examples/earthfile-hello", variant: "earthfile-hello", target: None, build_args: &[] },
];

fn request(case: &Case, contents: Vec<u8>) -> Request {
    Request {
        file_name: "Earthfile".into(),
        contents,
        build_args: case.build_args.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
        target: case.target.map(str::to_string),
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
    }
}

fn expected_path(case: &Case) -> PathBuf {
    let dir = if case.dir.starts_with("../") { "tests/golden/examples" } else { case.dir };
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(format!("{}.json", case.variant))
}

fn render(case: &Case) -> String {
    let earthfile = Path::new(env!("CARGO_MANIFEST_DIR")).join(case.dir).join("Earthfile");
    let contents = std::fs::read(&earthfile).unwrap_or_else(|e| panic!("{}: {e}", earthfile.display()));
    let result = kiln_earthfile::parse(&request(case, contents.clone()), &Store);
    // The same request gives the same IR, byte for byte.
    let again = kiln_earthfile::parse(&request(case, contents), &Store);
    assert_eq!(result, again, "{}: two parses differ", case.dir);
    let value = match &result {
        Ok(graph) => {
            if let Err(errors) = graph.validate() {
                panic!("{} ({}): the IR does not validate: {errors:?}", case.dir, case.variant);
            }
            serde_json::json!({ "ok": graph })
        }
        Err(diagnostics) => serde_json::json!({ "err": diagnostics }),
    };
    serde_json::to_string_pretty(&value).expect("JSON") + "\n"
}

#[test]
fn golden() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let mut failed = Vec::new();
    for case in CASES {
        let actual = render(case);
        let path = expected_path(case);
        if bless {
            std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
            std::fs::write(&path, &actual).expect("write");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failed.push(format!("{} ({})", case.dir, case.variant));
            eprintln!("--- {} differs; actual:\n{actual}", path.display());
        }
    }
    assert!(failed.is_empty(), "golden files differ (rerun with KILN_BLESS=1 and read the diff): {failed:?}");
}
