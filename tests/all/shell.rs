//! kiln's sandboxed shell against the corpus in `tests/shell/cases`: every script runs with
//! kiln's `sh` inside the RUN sandbox (uutils coreutils on PATH) and must print the expected
//! stdout and exit with the expected status. A second test checks the corpus itself against
//! the host's dash or bash, so the expectations are what real shells do.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::support::{Sandbox, copy_tree, coreutils, run, stderr, workspace};

/// One corpus case.
struct Case {
    name: String,
    script: PathBuf,
    expected: String,
    status: i32,
    compare: String,
    /// An upstream bug that makes kiln's sh fail this case (`known=...` in the directive).
    known: Option<String>,
}

fn cases() -> Vec<Case> {
    let dir = workspace().join("tests/shell/cases");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/shell/cases exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("sh") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let directive = text.lines().next().unwrap_or_default();
        let field = |key: &str| {
            directive
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("{}: first line lacks {key}=", path.display()))
        };
        cases.push(Case {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            expected: std::fs::read_to_string(path.with_extension("out")).unwrap_or_default(),
            status: field("status").parse().expect("numeric status"),
            compare: field("compare"),
            known: directive.split_whitespace().find_map(|w| w.strip_prefix("known=").map(str::to_string)),
            script: path,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// A store holding `shell-corpus`: coreutils linked under /bin, the cases under /cases, and
/// an empty /scratch to run them in.
fn corpus_image() -> &'static Sandbox {
    static IMAGE: OnceLock<Sandbox> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let sb = Sandbox::new();
        sb.copy("ctx/bin/coreutils", &coreutils());
        copy_tree(&workspace().join("tests/shell/cases"), &sb.dir.path().join("ctx/cases"), &|_| false);
        sb.write(
            "ctx/Dockerfile",
            "FROM scratch\nCOPY bin/ /bin/\n\
             RUN for u in $(coreutils --list); do coreutils ln -s coreutils /bin/$u; done\n\
             COPY cases/ /cases/\nWORKDIR /scratch\nENV PATH=/bin\n",
        );
        let out = run(sb.kiln().args(["build", "-q", "-t", "shell-corpus", "ctx"]));
        assert!(out.status.success(), "building the corpus image failed: {}", stderr(&out));
        sb
    })
}

#[test]
fn the_shell_corpus_passes_in_the_sandbox() {
    let sb = corpus_image();
    let cases = cases();
    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let failures = Mutex::new(Vec::new());
    let fixed = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let index = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(case) = cases.get(index) else { break };
                    let out = sb
                        .kiln()
                        .args(["run", "--rm", "-w", "/scratch", "shell-corpus", "sh"])
                        .arg(format!("/cases/{}.sh", case.name))
                        .stdin(Stdio::null())
                        .output()
                        .expect("kiln runs");
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let status = out.status.code().unwrap_or(-1);
                    let passed = stdout == case.expected && status == case.status;
                    if let Some(bug) = &case.known {
                        if passed {
                            fixed.lock().unwrap().push(format!("{} (known={bug})", case.name));
                        }
                    } else if !passed {
                        failures.lock().unwrap().push(format!(
                            "{}: status {status} (want {}); stdout {:?} (want {:?}); stderr {:?}",
                            case.name,
                            case.status,
                            stdout,
                            case.expected,
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let known: Vec<&Case> = cases.iter().filter(|c| c.known.is_some()).collect();
    println!(
        "shell corpus: {} of {} cases pass; {} fail because of known upstream bugs",
        cases.len() - known.len() - failures.len(),
        cases.len(),
        known.len()
    );
    assert!(failures.is_empty(), "{} of {} cases fail:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let fixed = fixed.into_inner().unwrap();
    assert!(fixed.is_empty(), "these cases pass now; drop their known= marker: {}", fixed.join(", "));
}

/// The expectations are what dash (or bash, where a case says so) really does.
#[test]
fn the_corpus_matches_the_host_shells() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases() {
        let mut cmd = match case.compare.as_str() {
            "dash" => Command::new("dash"),
            "bash" => {
                let mut bash = Command::new("bash");
                bash.arg("--posix");
                bash
            }
            _ => continue,
        };
        let dir = tempfile::tempdir().unwrap();
        let out = match cmd
            .arg(&case.script)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => out,
            // A machine without that shell checks nothing here; CI's Debian has both.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot run {}: {e}", case.compare),
        };
        checked += 1;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout != case.expected || out.status.code() != Some(case.status) {
            failures.push(format!("{} ({}): {:?} status {:?}", case.name, case.compare, stdout, out.status.code()));
        }
    }
    println!("host shells agree with {checked} corpus cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
