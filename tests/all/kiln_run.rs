//! `kiln run`: an image's ENTRYPOINT and CMD run in the sandbox as `docker run` would run
//! them, with output and exit status passed through and nothing written back to the store.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::oci::{assert_no_build_dirs, check_store};
use crate::support::{Sandbox, run, run_guests, sha256_hex, stderr, stdout};

/// Build `tag` from a context holding both guests (`/bin/guest` is the WASI preview 1
/// module, `/bin/guest2` the preview 2 component) and `/data/data.txt`, with `dockerfile`
/// after those COPYs. Returns the image ID `kiln build -q` prints.
fn build(sb: &Sandbox, tag: &str, dockerfile: &str) -> String {
    let (p1, p2) = run_guests();
    sb.copy("ctx/guest1.wasm", &p1);
    sb.copy("ctx/guest2.wasm", &p2);
    sb.write("ctx/data.txt", "data here\n");
    sb.write("ctx/notwasm", "just text\n");
    sb.write(
        "ctx/Dockerfile",
        format!(
            "FROM scratch\nCOPY guest1.wasm /bin/guest\nCOPY guest2.wasm /bin/guest2\nCOPY data.txt /data/data.txt\n\
             COPY notwasm /bin/notwasm\n{dockerfile}"
        ),
    );
    let out = run(sb.kiln().args(["build", "-q", "-t", tag, "ctx"]));
    assert!(out.status.success(), "building {tag} failed:\n{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn kiln_run(sb: &Sandbox, args: &[&str]) -> Output {
    run(sb.kiln().arg("run").args(args))
}

/// Run and expect exit status `code`; returns (stdout, stderr).
fn run_expect(sb: &Sandbox, args: &[&str], code: i32) -> (String, String) {
    let out = kiln_run(sb, args);
    assert_eq!(out.status.code(), Some(code), "kiln run {args:?}:\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    (stdout(&out), stderr(&out))
}

const GUEST_ENTRYPOINT: &str = "ENV A=from-image B=from-image\nWORKDIR /app\nENTRYPOINT [\"guest\"]\nCMD [\"pwd\"]\n";

#[test]
fn output_and_exit_status_pass_through() {
    let sb = Sandbox::new();
    build(&sb, "app", "CMD [\"guest\", \"cat\", \"/data/data.txt\"]\n");
    assert_eq!(run_expect(&sb, &["app"], 0).0, "data here\n");
    for status in [3, 42, 255] {
        let (out, _) = run_expect(&sb, &["app", "guest", "exit", &status.to_string()], status);
        assert_eq!(out, "");
    }
    // The preview 2 component's output passes too.
    assert_eq!(run_expect(&sb, &["app", "guest2", "cat", "/data/data.txt"], 0).0, "data here\n");
    // stdout and stderr stay apart.
    let (out, err) = run_expect(&sb, &["app", "guest", "cat", "/data/data.txt", ";", "cat", "/nope"], 3);
    assert_eq!(out, "data here\n");
    assert!(err.contains("cat: "), "{err}");
    assert!(!err.contains("error:"), "a failing program is not a kiln error: {err}");
}

#[test]
fn output_streams_while_the_program_runs() {
    let sb = Sandbox::new();
    build(&sb, "app", "CMD [\"guest\", \"cat\", \"/data/data.txt\", \";\", \"loop\"]\n");
    let mut child = sb
        .kiln()
        .args(["run", "--timeout", "120", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx.recv_timeout(Duration::from_secs(90));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first.expect("the first line arrives while the program still runs"), "data here\n");
    assert!(still_running, "the line came before the program ended");
}

#[test]
fn env_overrides_and_host_values() {
    let sb = Sandbox::new();
    build(&sb, "app", GUEST_ENTRYPOINT);
    let show = ["env", "A", ";", "env", "B", ";", "env", "C", ";", "env", "KILN_RUN_FROM_HOST", ";", "env", "PATH"];
    let (out, _) = run_expect(&sb, &[&["app"][..], &show].concat(), 0);
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert_eq!(
        out,
        format!("from-image\nfrom-image\n<unset>\n<unset>\n{path}\n"),
        "the image's Env, nothing of kiln's"
    );
    let out = run(sb
        .kiln()
        .env("KILN_RUN_FROM_HOST", "host value")
        .args(["run", "-e", "A=from-cli", "--env", "C=x=y", "-e", "KILN_RUN_FROM_HOST", "-e", "KILN_RUN_UNSET", "app"])
        .args(show));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("from-cli\nfrom-image\nx=y\nhost value\n{path}\n"));
    let (_, err) = run_expect(&sb, &["-e", "=v", "app"], 125);
    assert!(err.contains("the variable name is empty"), "{err}");
}

#[test]
fn workdir_from_the_image_or_the_flag() {
    let sb = Sandbox::new();
    build(&sb, "app", GUEST_ENTRYPOINT);
    assert_eq!(run_expect(&sb, &["app"], 0).0, "/app\n");
    assert_eq!(run_expect(&sb, &["-w", "/data", "app"], 0).0, "/data\n");
    // A missing directory is created, as Docker does.
    assert_eq!(run_expect(&sb, &["--workdir", "/new/dir", "app", "pwd", ";", "ls", "."], 0).0, "/new/dir\n");
    let (_, err) = run_expect(&sb, &["-w", "relative", "app"], 125);
    assert!(err.contains("must be an absolute path"), "{err}");
    // No WORKDIR: `/`.
    build(&sb, "plain", "CMD [\"guest\", \"pwd\"]\n");
    assert_eq!(run_expect(&sb, &["plain"], 0).0, "/\n");
}

#[test]
fn args_replace_cmd() {
    let sb = Sandbox::new();
    build(&sb, "app", "CMD [\"guest\", \"pwd\"]\n");
    assert_eq!(run_expect(&sb, &["app"], 0).0, "/\n");
    // Everything after IMAGE belongs to the program, flags included.
    assert_eq!(run_expect(&sb, &["app", "guest2", "cat", "/data/data.txt"], 0).0, "data here\n");
    let (_, err) = run_expect(&sb, &["app", "guest", "-e", "x"], 3);
    assert!(err.contains("-e: unknown operation"), "{err}");
}

#[test]
fn entrypoint_and_cmd_combine() {
    let sb = Sandbox::new();
    build(&sb, "app", "ENV A=a\nENTRYPOINT [\"guest\", \"env\", \"A\", \";\"]\nCMD [\"cat\", \"/data/data.txt\"]\n");
    assert_eq!(run_expect(&sb, &["app"], 0).0, "a\ndata here\n", "ENTRYPOINT then CMD");
    assert_eq!(run_expect(&sb, &["app", "pwd"], 0).0, "a\n/\n", "ARGS replace CMD only");
    let (out, err) = run_expect(&sb, &["app", "-e", "x"], 3);
    assert_eq!(out, "a\n", "flags after IMAGE are ARGS");
    assert!(err.contains("-e: unknown operation"), "{err}");
    // --entrypoint replaces ENTRYPOINT and drops CMD...
    assert_eq!(run_expect(&sb, &["--entrypoint", "guest2", "app"], 0).0, "");
    // ...unless ARGS are given.
    assert_eq!(run_expect(&sb, &["--entrypoint", "guest2", "app", "env", "A"], 0).0, "a\n");
    assert_eq!(run_expect(&sb, &["--entrypoint", "/bin/guest", "app", "exit", "5"], 5).0, "");
    // An empty --entrypoint clears it: ARGS are the whole command.
    assert_eq!(run_expect(&sb, &["--entrypoint", "", "app", "guest", "pwd"], 0).0, "/\n");
}

#[test]
fn an_image_with_no_command_is_a_clear_error() {
    let sb = Sandbox::new();
    build(&sb, "bare", "");
    let (_, err) = run_expect(&sb, &["bare"], 125);
    assert!(err.contains("error: bare has no command to run: it sets neither ENTRYPOINT nor CMD"), "{err}");
    assert!(err.contains("hint: name the program after the image"), "{err}");
    // Given one, it runs.
    assert_eq!(run_expect(&sb, &["bare", "guest", "pwd"], 0).0, "/\n");
    let (_, err) = run_expect(&sb, &["--entrypoint", "", "bare"], 125);
    assert!(err.contains("has no command to run"), "{err}");
}

#[test]
fn a_missing_image_is_a_clear_error() {
    let sb = Sandbox::new();
    let (out, err) = run_expect(&sb, &["nosuch:1.0"], 125);
    assert_eq!(out, "");
    // Not in the store, so kiln tries Docker Hub, which this test cannot count on reaching.
    assert!(err.contains("error: image nosuch:1.0 is not in kiln's store, and pulling it failed"), "{err}");
    assert!(err.contains("hint: images come from kiln's store (`kiln images`), a registry"), "{err}");
    let (_, err) = run_expect(&sb, &["oci-layout://no/such/dir"], 125);
    assert!(err.contains("is not an OCI image layout"), "{err}");
}

#[test]
fn programs_that_cannot_run_exit_like_docker() {
    let sb = Sandbox::new();
    build(&sb, "app", GUEST_ENTRYPOINT);
    let (_, err) = run_expect(&sb, &["--entrypoint", "nope", "app"], 127);
    assert!(err.contains("error: nope: executable file not found on the image's PATH"), "{err}");
    let (_, err) = run_expect(&sb, &["--entrypoint", "/bin/nope", "app"], 127);
    assert!(err.contains("/bin/nope: no such file in the image"), "{err}");
    let (_, err) = run_expect(&sb, &["--entrypoint", "notwasm", "app"], 126);
    assert!(err.contains("kiln runs WASI programs"), "{err}");
    let (_, err) = run_expect(&sb, &["app", "trap"], 125);
    assert!(err.contains("error: the program crashed"), "{err}");
    let (_, err) = run_expect(&sb, &["--timeout", "1", "app", "loop"], 125);
    assert!(err.contains("longer than its limit of 1s (--timeout)"), "{err}");
    let (_, err) = run_expect(&sb, &["--memory", "64", "app", "alloc"], 125);
    assert!(err.contains("more than 64 MiB of memory (--memory)"), "{err}");
}

#[test]
fn an_unknown_user_is_a_clear_error() {
    let sb = Sandbox::new();
    build(&sb, "app", "CMD [\"guest\", \"pwd\"]\nUSER nobody\n");
    let (_, err) = run_expect(&sb, &["app"], 125);
    assert!(err.contains("USER \"nobody\" of app"), "{err}");
    build(&sb, "numeric", "CMD [\"guest\", \"pwd\"]\nUSER 1000:1000\n");
    assert_eq!(run_expect(&sb, &["numeric"], 0).0, "/\n");
}

/// Every file of a store that holds images (not its caches and scratch), with a digest of
/// its content.
fn store_snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if ["tmp", "compiled", "lock"].contains(&name.as_str()) {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(name, sha256_hex(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn a_run_leaves_the_store_as_it_was() {
    let sb = Sandbox::new();
    build(&sb, "app", GUEST_ENTRYPOINT);
    let before = store_snapshot(&sb.root());
    assert!(before.contains_key("index.json"), "{before:?}");
    let writes = "--rm app write /data/new.txt new ; rm /data/data.txt ; mkdir /app/made ; ls /data";
    let (out, _) = run_expect(&sb, &writes.split(' ').collect::<Vec<_>>(), 0);
    assert_eq!(out, "new.txt\n", "the program saw its own changes");
    assert_eq!(store_snapshot(&sb.root()), before, "no image, tag or blob changed");
    assert_no_build_dirs(&sb.root());
    check_store(&sb.root());
    // The next run starts from the image again.
    assert_eq!(run_expect(&sb, &["app", "ls", "/data", ";", "ls", "/app"], 0).0, "data.txt\n");
}

#[test]
fn images_by_id_and_from_an_oci_layout() {
    let sb = Sandbox::new();
    let id = build(&sb, "app", "CMD [\"guest\", \"cat\", \"/data/data.txt\"]\n");
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(run_expect(&sb, &[&id], 0).0, "data here\n");
    assert_eq!(run_expect(&sb, &[&id["sha256:".len().."sha256:".len() + 12]], 0).0, "data here\n");

    // An OCI layout is read where it is: nothing of it is imported into the store.
    let out = run(sb.kiln().args(["build", "-q", "-t", "app", "-o", "type=oci,dest=layout", "ctx"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let other = sb.dir.path().join("other-store");
    let layout = format!("oci-layout://{}", sb.dir.path().join("layout").display());
    let out = run(sb.kiln().env("KILN_HOME", &other).args(["run", &layout]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "data here\n");
    let blobs = std::fs::read_dir(other.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "the layout's blobs stay where they are");
}

#[test]
fn a_shell_form_cmd_runs_through_sh() {
    let sb = Sandbox::new();
    build(&sb, "app", "ENV GREETING=hello\nCMD guest env GREETING && guest2 cat /data/data.txt && guest exit 4\n");
    // The programs sh starts write to kiln's own stdout too, and sh's status is kiln's.
    assert_eq!(run_expect(&sb, &["app"], 4).0, "hello\ndata here\n");
}
