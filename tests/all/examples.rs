//! The toolbox image and the examples built on it: `scripts/toolbox` builds kiln-toolbox with
//! the kiln under test, every example in `examples/` that starts `FROM kiln-toolbox` builds
//! from it, and each final image runs with `kiln run` and holds only what it should.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::json;

use crate::oci::{self, check_store, validate};
use crate::support::{
    self, Sandbox, compile_cache, copy_tree, coreutils, run, stderr, stdout, target_dir, wasm_tools, workspace,
};

/// The examples this file tests; every other directory in `examples/` is tested elsewhere
/// (see `every_example_is_tested_and_in_the_readme`).
const TOOLBOX_EXAMPLES: &[&str] =
    &["single-vs-multi", "named-stages", "healthcheck", "test-stage", "copy-from-image", "earthfile-hello"];

/// The build file of an example: its Dockerfile, or the file another frontend reads.
fn build_file(dir: &Path) -> PathBuf {
    ["Dockerfile", "Earthfile", "Kilnfile.toml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{} has no build file", dir.display()))
}

/// The toolbox built once per test run: a store holding kiln-toolbox:latest, with the
/// programs the examples run already compiled into the suite's compile cache, and the same
/// image as an OCI layout (tag `latest`). The directory is locked while this process runs; a
/// later run removes the ones nobody holds.
struct Toolbox {
    dir: PathBuf,
    _lock: File,
}

impl Toolbox {
    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn layout(&self) -> PathBuf {
        self.dir.join("layout")
    }
}

const TOOLBOX_PREFIX: &str = "kiln-test-toolbox-";

fn toolbox() -> &'static Toolbox {
    static BUILT: OnceLock<Toolbox> = OnceLock::new();
    BUILT.get_or_init(|| {
        remove_stale_toolboxes();
        let dir = tempfile::Builder::new().prefix(TOOLBOX_PREFIX).tempdir().expect("temp dir").keep();
        let lock = File::create(dir.join(".lock")).expect("create the lock");
        lock.lock().expect("lock");
        let toolbox = Toolbox { dir, _lock: lock };

        // The shared helpers build the tools (once, for every test that needs them); the
        // script then finds them built.
        coreutils();
        wasm_tools();
        let out = run(Command::new(workspace().join("scripts/toolbox"))
            .env("KILN", env!("CARGO_BIN_EXE_kiln"))
            .env("CARGO_TARGET_DIR", target_dir())
            .env("KILN_COMPILE_CACHE", compile_cache())
            .env_remove("KILN_HOME")
            .env_remove("KILN_LOG")
            .arg("--root")
            .arg(toolbox.store())
            .args(["--progress", "plain", "-o"])
            .arg(format!("type=oci,dest={}", toolbox.layout().display())));
        assert!(out.status.success(), "scripts/toolbox failed:\n{}", stderr(&out));
        // Compile what the examples run, once, into the suite's compile cache.
        for (args, expected) in
            [(&["wasm-tools", "--version"][..], "wasm-tools 1.263.0\n"), (&["which", "ls"], "/bin/ls\n")]
        {
            let out = run(support::kiln().arg("--root").arg(toolbox.store()).args(["run", "kiln-toolbox"]).args(args));
            assert_eq!(stdout(&out), expected, "kiln run kiln-toolbox {args:?}:\n{}", stderr(&out));
        }
        toolbox
    })
}

/// Remove toolbox directories of earlier test runs: those whose lock nobody holds.
fn remove_stale_toolboxes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TOOLBOX_PREFIX) {
            continue;
        }
        // No lock file yet: another run is creating it.
        let Ok(lock) = File::open(entry.path().join(".lock")) else { continue };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A sandbox whose store starts as a copy of the toolbox's. Blobs and compiled programs are
/// content-addressed and never rewritten, so they are hard-linked when the file system allows.
pub(crate) fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    copy_tree(&toolbox().store(), &sb.root(), &|rel| rel.starts_with("blobs") || rel.starts_with("compiled"));
    sb
}

fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// A copy of `examples/NAME` in the sandbox, to change.
fn example_copy(sb: &Sandbox, name: &str) -> PathBuf {
    let dest = sb.dir.path().join(name);
    copy_tree(&example(name), &dest, &|_| false);
    dest
}

fn kiln_build(sb: &Sandbox, args: &[&str], context: &Path) -> Output {
    run(sb.kiln().args(["build", "--progress", "plain"]).args(args).arg(context))
}

/// `kiln build ARGS CONTEXT`, which must succeed; returns its progress log.
fn build_ok(sb: &Sandbox, args: &[&str], context: &Path) -> String {
    let out = kiln_build(sb, args, context);
    assert!(out.status.success(), "kiln build {args:?} {} failed:\n{}", context.display(), stderr(&out));
    stderr(&out)
}

/// `kiln run ARGS`, which must exit with `code`; returns (stdout, stderr).
fn kiln_run(sb: &Sandbox, args: &[&str], code: i32) -> (String, String) {
    let out = run(sb.kiln().arg("run").args(args));
    assert_eq!(out.status.code(), Some(code), "kiln run {args:?}:\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    (stdout(&out), stderr(&out))
}

/// Every path in every layer of the image tagged `tag` in the sandbox's store.
fn files(sb: &Sandbox, tag: &str) -> BTreeSet<String> {
    oci::read(&sb.root(), Some(tag)).layers.iter().flatten().map(|e| e.path.clone()).collect()
}

/// The image's size as its manifest gives it: the sum of its layers.
fn layers_size(sb: &Sandbox, tag: &str) -> u64 {
    let image = oci::read(&sb.root(), Some(tag));
    image.manifest["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn the_toolbox_links_every_utility_and_finds_programs_with_which() {
    let sb = sandbox();
    assert_eq!(kiln_run(&sb, &["kiln-toolbox", "which", "ls"], 0).0, "/bin/ls\n");
    assert_eq!(kiln_run(&sb, &["kiln-toolbox", "which", "wasm-tools", "cat"], 0).0, "/bin/wasm-tools\n/bin/cat\n");
    let (out, _) = kiln_run(&sb, &["kiln-toolbox", "which", "ls", "no-such-tool"], 1);
    assert_eq!(out, "/bin/ls\n");

    // The default command lists /bin: coreutils, a link per utility, wasm-tools and which.
    let (listing, _) = kiln_run(&sb, &["kiln-toolbox"], 0);
    let bin: BTreeSet<&str> = listing.lines().collect();
    for tool in ["coreutils", "wasm-tools", "which", "ls", "ln", "mkdir", "cat", "tr", "["] {
        assert!(bin.contains(tool), "no /bin/{tool}: {listing}");
    }
    assert_eq!(kiln_run(&sb, &["kiln-toolbox", "readlink", "/bin/ls"], 0).0, "coreutils\n");

    let image = oci::read(&sb.root(), Some("kiln-toolbox:latest"));
    let config = &image.config["config"];
    assert_eq!(config["Labels"]["org.opencontainers.image.title"], "kiln-toolbox");
    assert_eq!(config["Env"], json!(["PATH=/usr/local/bin:/usr/bin:/bin"]));
    assert_eq!(config["Cmd"], json!(["ls", "/bin"]));
    validate(&sb.root(), "kiln-toolbox:latest");
}

#[test]
fn single_and_multi_stage_build_the_same_program_and_only_multi_stage_drops_the_tools() {
    let sb = sandbox();
    let ctx = example("single-vs-multi");
    let single = ctx.join("Dockerfile.single");
    build_ok(&sb, &["-t", "hello:single", "-f", single.to_str().unwrap()], &ctx);
    build_ok(&sb, &["-t", "hello:multi"], &ctx);
    for tag in ["hello:single", "hello:multi"] {
        assert_eq!(kiln_run(&sb, &[tag], 0).0, "hello from a WASI program\n", "{tag}");
        validate(&sb.root(), tag);
    }

    // The final image is the program and nothing else: one layer, no build tool.
    assert_eq!(files(&sb, "hello:multi"), set(&["bin/", "bin/hello"]));
    let multi = oci::read(&sb.root(), Some("hello:multi"));
    // Its program is a WASI preview 1 module, and its platform says so.
    assert_eq!((&multi.config["os"], &multi.config["architecture"]), (&json!("wasip1"), &json!("wasm")));
    assert_eq!(multi.layers.len(), 1);
    assert_eq!(multi.config["config"]["Entrypoint"], json!(["/bin/hello"]));
    let single_files = files(&sb, "hello:single");
    for tool in ["bin/wasm-tools", "bin/coreutils", "src/hello.wat", "out/hello.wasm"] {
        assert!(single_files.contains(tool), "the single-stage image holds {tool}: {single_files:?}");
    }
    // The module is the same file in both.
    let program = |image: &oci::Image, path: &str| {
        image.layers.iter().flatten().find(|e| e.path == path).map(|e| e.data.clone()).unwrap()
    };
    let single_image = oci::read(&sb.root(), Some("hello:single"));
    assert_eq!(program(&multi, "bin/hello"), program(&single_image, "out/hello.wasm"));

    // Sizes: the toolbox's megabytes against a few hundred bytes, in the manifests and in
    // `kiln images`.
    let (single_size, multi_size) = (layers_size(&sb, "hello:single"), layers_size(&sb, "hello:multi"));
    assert!(multi_size < 1000, "multi-stage: {multi_size} bytes");
    assert!(single_size > 1000 * multi_size, "single-stage: {single_size} bytes, multi-stage: {multi_size}");
    let images = stdout(&run(sb.kiln().arg("images")));
    let row = |tag: &str| {
        images.lines().find(|l| l.split_whitespace().take(2).eq(["hello", tag])).unwrap_or_else(|| panic!("{images}"))
    };
    assert!(row("single").ends_with("MB"), "{images}");
    assert!(row("multi").ends_with(&format!(" {multi_size}B")), "{images}");
    // What `kiln history` shows of the final image: its one COPY, and the ENTRYPOINT.
    let history = stdout(&run(sb.kiln().args(["history", "hello:multi"])));
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(history.contains("COPY /out/hello.wasm /bin/hello") && history.contains("ENTRYPOINT"), "{history}");
}

#[test]
fn stages_are_copied_from_by_name_and_by_index() {
    let sb = sandbox();
    let log = build_ok(&sb, &["-t", "greet"], &example("named-stages"));
    assert!(log.contains("COPY --from=0 /out/version.wasm /bin/version"), "{log}");
    assert_eq!(files(&sb, "greet:latest"), set(&["bin/", "bin/greet", "bin/version"]));
    validate(&sb.root(), "greet:latest");

    // ENTRYPOINT and CMD as docker run combines them.
    assert_eq!(kiln_run(&sb, &["greet"], 0).0, "hello, kiln!\n");
    assert_eq!(kiln_run(&sb, &["greet", "Docker"], 0).0, "hello, Docker!\n");
    assert_eq!(kiln_run(&sb, &["--entrypoint", "/bin/version", "greet"], 0).0, "greet 1.0\n");
    let (out, err) = kiln_run(&sb, &["greet", "two", "names"], 2);
    assert_eq!((out.as_str(), err.as_str()), ("", "usage: greet [NAME]\n"));
}

/// The Earthfile take on named-stages: one `+wasm` target instantiated once per program
/// (`COPY (+wasm/greet.wasm --NAME=greet)`), the image on scratch; chosen by the file's name.
#[test]
fn the_earthfile_example_builds_with_the_earthfile_frontend() {
    let sb = sandbox();
    let dir = example("earthfile-hello");
    let earthfile = dir.join("Earthfile");
    let log = build_ok(&sb, &["-t", "greet:earthly", "-f", earthfile.to_str().unwrap()], &dir);
    assert!(log.contains("SAVE IMAGE names the image greet:earthly"), "the SAVE IMAGE hint: {log}");
    assert_eq!(files(&sb, "greet:earthly"), set(&["bin/", "bin/greet", "bin/version"]));
    validate(&sb.root(), "greet:earthly");
    assert_eq!(kiln_run(&sb, &["greet:earthly"], 0).0, "hello, kiln!\n");
    assert_eq!(kiln_run(&sb, &["greet:earthly", "Earthly"], 0).0, "hello, Earthly!\n");
    assert_eq!(kiln_run(&sb, &["--entrypoint", "/bin/version", "greet:earthly"], 0).0, "greet 1.0\n");
    // --target takes Earthly's +name.
    let out = kiln_build(&sb, &["--target", "+nope", "-f", earthfile.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("+build") && stderr(&out).contains("+wasm"),
        "the targets are listed: {}",
        stderr(&out)
    );
}

#[test]
fn the_app_and_its_health_check_are_built_in_stages_of_their_own() {
    let sb = sandbox();
    build_ok(&sb, &["-t", "app"], &example("healthcheck"));
    assert_eq!(files(&sb, "app:latest"), set(&["app", "healthcheck"]));
    let image = oci::read(&sb.root(), Some("app:latest"));
    let config = &image.config["config"];
    assert_eq!(config["Healthcheck"]["Test"], json!(["CMD", "/healthcheck"]));
    assert_eq!(config["Entrypoint"], json!(["/app"]));
    validate(&sb.root(), "app:latest");

    assert_eq!(kiln_run(&sb, &["app"], 0).0, "app: ready\n");
    // The probe, run as the runtime would run HEALTHCHECK's command.
    assert_eq!(kiln_run(&sb, &["--entrypoint", "/healthcheck", "app"], 0).0, "healthy\n");
}

#[test]
fn the_test_stage_runs_with_target_test_and_not_by_default() {
    let sb = sandbox();
    let ctx = example("test-stage");
    let log = build_ok(&sb, &["-t", "fib"], &ctx);
    assert!(!log.contains("test.sh") && !log.contains("[test "), "the default target skips the test stage:\n{log}");
    assert_eq!(files(&sb, "fib:latest"), set(&["bin/", "bin/fib"]));
    validate(&sb.root(), "fib:latest");
    assert_eq!(kiln_run(&sb, &["fib"], 0).0, "1 1 2 3 5 8 13 21 34 55\n");
    assert_eq!(kiln_run(&sb, &["fib", "5"], 0).0, "1 1 2 3 5\n");
    let (out, err) = kiln_run(&sb, &["fib", "91"], 2);
    assert_eq!((out.as_str(), err.as_str()), ("", "usage: fib [N], N from 1 to 90\n"));

    let log = build_ok(&sb, &["--target", "test", "-t", "fib:test"], &ctx);
    for check in ["first ten", "first one", "the 90th", "fib 0 is a usage error", "fib ten is a usage error"] {
        assert!(log.contains(&format!("ok   {check}")), "{check}:\n{log}");
    }
    assert!(!log.contains("FAIL"), "{log}");
}

#[test]
fn a_failing_test_stage_fails_the_build_with_the_tests_output() {
    let sb = sandbox();
    // A wrong expectation, then a wrong program.
    let wrong_test = example_copy(&sb, "test-stage");
    let test_sh = wrong_test.join("test.sh");
    let script = std::fs::read_to_string(&test_sh).unwrap();
    std::fs::write(&test_sh, script.replacen("13 21 34 55", "13 21 34 56", 1)).unwrap();

    let wrong_program = sb.dir.path().join("wrong-program");
    copy_tree(&example("test-stage"), &wrong_program, &|_| false);
    let fib_wat = wrong_program.join("src/fib.wat");
    let source = std::fs::read_to_string(&fib_wat).unwrap();
    let broken = source.replacen("(local.set $a (i64.const 1))", "(local.set $a (i64.const 0))", 1);
    assert_ne!(broken, source);
    std::fs::write(&fib_wat, broken).unwrap();

    for (ctx, failure) in [
        (&wrong_test, "FAIL first ten: expected '1 1 2 3 5 8 13 21 34 56', got '1 1 2 3 5 8 13 21 34 55'"),
        (&wrong_program, "FAIL first ten: expected '1 1 2 3 5 8 13 21 34 55', got '0 1 1 2 3 5 8 13 21 34'"),
    ] {
        let out = kiln_build(&sb, &["--target", "test", "-t", "fib:test"], ctx);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "the build fails:\n{err}");
        assert!(err.contains(failure), "the test's output is shown:\n{err}");
        assert!(err.contains("RUN sh test.sh") && err.contains("exit code: 1"), "the step is named:\n{err}");
        assert!(err.contains("nothing was tagged"), "{err}");
        check_store(&sb.root());

        // The default target does not need the test stage, so it still builds.
        build_ok(&sb, &["-t", "fib:untested"], ctx);
    }
    let images = stdout(&run(sb.kiln().arg("images")));
    assert!(!images.lines().any(|l| l.split_whitespace().take(2).eq(["fib", "test"])), "{images}");
    // The wrong program got through, since nothing tested it.
    assert_eq!(kiln_run(&sb, &["fib:untested", "3"], 0).0, "0 1 1\n");
}

#[test]
fn a_program_is_copied_from_an_image_in_the_store_or_an_oci_layout() {
    let sb = sandbox();
    let ctx = example("copy-from-image");
    build_ok(&sb, &["-t", "wasm-tools:store"], &ctx);
    let from_layout = format!("kiln-toolbox=oci-layout://{}:latest", toolbox().layout().display());
    build_ok(&sb, &["-t", "wasm-tools:layout", "--build-context", &from_layout], &ctx);

    let built = std::fs::read(wasm_tools()).unwrap();
    for tag in ["wasm-tools:store", "wasm-tools:layout"] {
        assert_eq!(kiln_run(&sb, &[tag], 0).0, "wasm-tools 1.263.0\n", "{tag}");
        let image = oci::read(&sb.root(), Some(tag));
        assert_eq!(image.paths(0), ["bin/", "bin/wasm-tools"], "{tag}");
        let program = image.entry(0, "bin/wasm-tools");
        assert!(program.data == built, "{tag}: /bin/wasm-tools is the program scripts/wasm-tools built");
        assert_eq!(program.mode, 0o755, "{tag}");
        validate(&sb.root(), tag);
    }
}

#[test]
fn every_example_is_tested_and_in_the_readme() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let mut others = String::new();
    for file in std::fs::read_dir(workspace().join("tests/all")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("examples.rs") {
            others.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    for dir in std::fs::read_dir(workspace().join("examples")).unwrap() {
        let dir = dir.unwrap();
        if !dir.file_type().unwrap().is_dir() {
            continue;
        }
        let name = dir.file_name().to_string_lossy().into_owned();
        let path = format!("examples/{name}");
        assert!(
            TOOLBOX_EXAMPLES.contains(&name.as_str()) || others.contains(&format!("\"{path}")),
            "{path} has no test: add it to TOOLBOX_EXAMPLES here, or test it in another file"
        );
        assert!(readme.contains(&format!("`{path}`")), "README.md has no line for {path}");
        assert!(dir.path().join("README.md").is_file(), "{path} has no README.md");
        let build_file = std::fs::read_to_string(build_file(&dir.path())).unwrap();
        if TOOLBOX_EXAMPLES.contains(&name.as_str()) {
            assert!(build_file.contains("kiln-toolbox"), "{path}: the examples tested here are built on kiln-toolbox");
        }
    }
}

/// Bit-for-bit: each example gives one digest from the repository (cold, then warm) and from
/// a copy elsewhere whose files have other times, built with `--no-cache`, `--jobs 1` and
/// another umask into another store.
/// The digests are printed (`-- --nocapture`) so that two machines can be compared.
#[test]
fn every_example_builds_to_the_same_digest_anywhere_cold_or_warm() {
    let id = |sb: &Sandbox, args: &[&str], context: &Path| {
        let out = run(sb.kiln().args(["build", "-q"]).args(args).arg(context));
        assert!(out.status.success(), "kiln build {}: {}", context.display(), stderr(&out));
        stdout(&out).trim().to_string()
    };
    for name in TOOLBOX_EXAMPLES {
        let here = sandbox();
        let file = build_file(&example(name));
        let file = file.to_str().unwrap();
        let cold = id(&here, &["-f", file], &example(name));
        let warm = id(&here, &["-f", file], &example(name));
        let elsewhere = sandbox();
        let copy = example_copy(&elsewhere, name);
        touch_all(&copy, std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890));
        // Another umask too, and one stage at a time: neither may reach the image.
        let out = Command::new("sh")
            .args(["-c", "umask 077 && exec \"$@\"", "sh", env!("CARGO_BIN_EXE_kiln")])
            .args(["build", "-q", "--no-cache", "--jobs", "1", "-f"])
            .arg(build_file(&copy))
            .arg(&copy)
            .env("KILN_HOME", elsewhere.root())
            .env("KILN_COMPILE_CACHE", compile_cache())
            .env_remove("KILN_LOG")
            .output()
            .expect("sh runs kiln");
        assert!(out.status.success(), "kiln build {}: {}", copy.display(), stderr(&out));
        let moved = stdout(&out).trim().to_string();
        assert_eq!(cold, warm, "{name}: a warm build gives another image");
        assert_eq!(cold, moved, "{name}: another path, file times, umask, --jobs or no cache give another image");
        println!("example digest: {name} {cold}");
    }
}

fn touch_all(dir: &Path, time: std::time::SystemTime) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            touch_all(&path, time);
        } else {
            File::options().write(true).open(&path).unwrap().set_modified(time).unwrap();
        }
    }
}
