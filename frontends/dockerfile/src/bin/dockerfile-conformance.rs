//! Runs BuildKit's Dockerfile conformance data against kiln's Dockerfile frontend.
//!
//! ```text
//! dockerfile-conformance parser DIR     # <case>/Dockerfile + <case>/result (golden dumps);
//!                                       # every case must fail when DIR is testfiles-negative
//! dockerfile-conformance env-var FILE   # envVarTest vectors (single-word expansion)
//! dockerfile-conformance words FILE     # wordsTest vectors (expansion + word splitting)
//! ```
//!
//! Prints one line per failing case with a readable diff, then `N passed, N failed`; exits 1
//! when any case fails and 2 on bad usage. The formats are described in the data's FORMAT.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kiln_dockerfile::parser;
use kiln_dockerfile::shell::{EnvList, Lexer};

/// Pass/fail tally with the failure lines already printed.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn pass(&mut self) {
        self.passed += 1;
    }

    fn fail(&mut self, line: String) {
        self.failed += 1;
        println!("FAIL {line}");
    }

    fn finish(self) -> ExitCode {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: dockerfile-conformance parser DIR | env-var FILE | words FILE");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, path, negative_flag) = match args.as_slice() {
        [mode, path] => (mode.as_str(), PathBuf::from(path), false),
        [mode, flag, path] if flag == "--negative" => (mode.as_str(), PathBuf::from(path), true),
        _ => return usage(),
    };
    let result = match mode {
        "parser" => {
            let negative = negative_flag || path.file_name().is_some_and(|n| n == "testfiles-negative");
            run_parser(&path, negative)
        }
        "env-var" => run_env_var(&path),
        "words" => run_words(&path),
        _ => return usage(),
    };
    match result {
        Ok(tally) => tally.finish(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A compact line diff: each differing line as `-expected` / `+got`.
fn diff(expected: &str, got: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(g.len()) {
        match (e.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("\n    line {}: -{a}", i + 1));
                }
                if let Some(b) = b {
                    out.push_str(&format!("\n    line {}: +{b}", i + 1));
                }
            }
        }
    }
    if out.is_empty() && expected != got {
        out.push_str("\n    (differs only in line endings or a final newline)");
    }
    out
}

fn run_parser(dir: &Path, negative: bool) -> Result<Tally, String> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    if cases.is_empty() {
        return Err(format!("{} holds no <case>/Dockerfile", dir.display()));
    }
    let mut tally = Tally::default();
    for case in cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = read(&case.join("Dockerfile"))?;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|text| parser::parse(text).map_err(|e| e.message));
        if negative {
            match parsed {
                Err(_) => tally.pass(),
                Ok(result) => tally.fail(format!("{name}: expected a parse error, got:\n{}", result.dump())),
            }
            continue;
        }
        let expected = String::from_utf8_lossy(&read(&case.join("result"))?).replace("\r\n", "\n");
        match parsed {
            Err(e) => tally.fail(format!("{name}: parse error: {e}")),
            Ok(result) => {
                let got = result.dump();
                if got == expected {
                    tally.pass();
                } else {
                    tally.fail(format!("{name}:{}", diff(&expected, &got)));
                }
            }
        }
    }
    Ok(tally)
}

fn run_env_var(file: &Path) -> Result<Tally, String> {
    let text = String::from_utf8(read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    let env: Vec<String> = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="].map(String::from).to_vec();
    let lexer = Lexer::new('\\');
    let mut tally = Tally::default();
    for (n, raw) in text.lines().enumerate() {
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.trim().split('|').map(str::trim).collect();
        let [platform, input, expected] = fields.as_slice() else {
            tally.fail(format!("line {}: malformed vector {raw:?}", n + 1));
            continue;
        };
        let list = match *platform {
            "A" | "U" => EnvList::new(&env),
            "W" => EnvList::new(&env).case_insensitive(true),
            other => {
                tally.fail(format!("line {}: unknown platform {other:?}", n + 1));
                continue;
            }
        };
        let got = lexer.process_word(input, &list);
        let ok = match (&got, *expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => v == e,
            (Err(_), _) => false,
        };
        if ok {
            tally.pass();
        } else {
            let got = match got {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("error ({e})"),
            };
            tally.fail(format!("line {}: {platform}|{input} expected {expected:?}, got {got}", n + 1));
        }
    }
    Ok(tally)
}

fn run_words(file: &Path) -> Result<Tally, String> {
    let text = String::from_utf8(read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    let lexer = Lexer::new('\\');
    let mut env: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    for (n, raw) in text.lines().enumerate() {
        if raw.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("ENV ") {
            env.push(rest.trim_start().to_string());
            continue;
        }
        let parts: Vec<&str> = raw.split('|').collect();
        let [input, expected] = parts.as_slice() else {
            tally.fail(format!("line {}: malformed vector {raw:?}", n + 1));
            continue;
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = match lexer.process_words(input, &EnvList::new(&env)) {
            Ok(words) => words,
            Err(_) => vec!["error".to_string()],
        };
        if got == expected {
            tally.pass();
        } else {
            tally.fail(format!("line {}: {input} expected {expected:?}, got {got:?}", n + 1));
        }
    }
    Ok(tally)
}
