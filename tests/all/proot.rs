//! The Linux executor: ordinary Dockerfiles on a Debian base, their RUN steps under proot
//! (`--executor=proot`), and its edges: no proot, no ptrace, another architecture, and a
//! Linux program without the flag.
//!
//! The Debian base is an OCI layout that `scripts/debian-base` makes with debootstrap
//! (`KILN_TEST_DEBIAN_BASE`; `scripts/test` sets it). Without it these tests are skipped,
//! unless `KILN_REQUIRE_PEERS=1`, when they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers::{self, Dockerd, need, or_skip};
use crate::support::*;

/// The Debian base's layout, or `None` after saying why the test is skipped.
fn debian_base() -> Option<PathBuf> {
    let base = std::env::var_os("KILN_TEST_DEBIAN_BASE")
        .map(PathBuf::from)
        .filter(|p| p.join("index.json").is_file())
        .ok_or_else(|| "KILN_TEST_DEBIAN_BASE names no OCI layout (scripts/debian-base makes one)".to_string());
    or_skip(base.and_then(|b| need(&[("proot", "proot")]).map(|()| b)))
}

fn base_context(base: &Path) -> String {
    format!("debian=oci-layout://{}", base.display())
}

/// The `[stage n/m] ...` lines a plain-progress build reported as CACHED.
fn cached_steps(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.strip_suffix(" CACHED")).map(|l| l.trim().to_string()).collect()
}

/// Docker's multi-stage guide, on Debian: apt-get installs gcc, a C program is built, tested
/// in a test stage, and shipped alone; the image runs in kiln (under proot) and in docker,
/// and a second build runs nothing.
#[test]
fn a_debian_multi_stage_build_installs_a_compiler_builds_tests_and_is_cached() {
    let Some(base) = debian_base() else { return };
    let sb = Sandbox::new();
    let example = workspace().join("examples/linux-c");
    let context = base_context(&base);
    let build = |extra: &[&str]| {
        run(sb
            .kiln()
            .args(["build", "--progress", "plain", "--executor=proot", "--build-context", &context])
            .args(extra)
            .arg(&example))
    };
    let out = build(&["-t", "linux-c:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = stdout(&out).trim().to_string();
    assert!(cached_steps(&stderr(&out)).is_empty(), "a cold build runs every step: {}", stderr(&out));

    let ran = run(sb.kiln().args(["run", "--executor=proot", "linux-c:1"]));
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(stdout(&ran), "hello from kiln\n");
    let ran = run(sb.kiln().args(["run", "--executor=proot", "linux-c:1", "proot", "Debian"]));
    assert_eq!(stdout(&ran), "hello from proot\nhello from Debian\n", "{}", stderr(&ran));

    // The final stage is the program alone.
    let listing = run(sb.kiln().args(["inspect", "linux-c:1"]));
    let config: serde_json::Value = serde_json::from_str(&stdout(&listing)).unwrap();
    assert_eq!(config[0]["Config"]["config"]["Entrypoint"][0], "/usr/local/bin/greet", "{config}");
    assert_eq!(config[0]["Manifest"]["layers"].as_array().map(Vec::len), Some(1), "{config}");

    // Nothing changed: nothing runs, and the image is the same.
    let again = build(&["-t", "linux-c:1"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), first, "a cached rebuild gives the same image");
    let cached = cached_steps(&stderr(&again));
    assert!(
        cached.iter().any(|s| s.contains("apt-get install")) && cached.iter().any(|s| s.contains("gcc -O2")),
        "a rebuild with nothing changed is all CACHED: {}",
        stderr(&again)
    );
    assert!(!stderr(&again).contains("greet: 3 tests passed"), "the default target skips the test stage");

    // The test stage runs the program's tests, on the cached build stage.
    let tested = build(&["--target", "test"]);
    assert!(tested.status.success(), "{}", stderr(&tested));
    assert!(stderr(&tested).contains("greet: 3 tests passed"), "{}", stderr(&tested));

    // docker runs the image kiln made.
    let archive = sb.dir.path().join("linux-c.tar");
    let out = build(&["-t", "linux-c:1", "-o", &format!("type=docker,dest={}", archive.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let Some(docker) = or_skip(Dockerd::start()) else { return };
    peers::ok("docker load", docker.docker(["load", "-i", archive.to_str().unwrap()])).unwrap();
    let ran = peers::ok("docker run", docker.docker(["run", "--rm", "--network", "none", "linux-c:1", "docker"]));
    assert_eq!(ran.unwrap_or_else(|e| panic!("{e}\n{}", docker.log())), "hello from docker");
}

/// What a step does to files becomes a layer by kiln's rules: new files root's, modes kept,
/// hardlinks and symlinks kept, deletions whited out, times clamped, the host's name
/// resolution files left out, and nothing a step did not touch.
#[test]
fn a_steps_changes_become_a_layer_with_whiteouts_links_modes_and_clamped_times() {
    let Some(base) = debian_base() else { return };
    let sb = Sandbox::new();
    sb.write(
        "ctx/Dockerfile",
        "FROM debian\n\
         RUN mkdir /data && echo one > /data/a && ln /data/a /data/b && ln -s a /data/c \
             && chmod 4750 /data/a && mkfifo /data/p && rm /etc/issue && echo changed > /etc/hosts \
             && touch -d 2030-01-01 /data/late\n\
         USER 1000:1000\n\
         RUN echo mine > /tmp/owned\n",
    );
    let dest = sb.dir.path().join("out");
    let out = run(sb
        .kiln()
        .args(["build", "--executor=proot", "--build-context", &base_context(&base)])
        .arg("-o")
        .arg(format!("type=oci,dest={}", dest.display()))
        .arg(sb.dir.path().join("ctx"))
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(out.status.success(), "{}", stderr(&out));
    let layers = oci_layers(&dest);
    let (first, second) = (&layers[layers.len() - 2], &layers[layers.len() - 1]);
    let entry = |layer: &[Entry], path: &str| {
        layer.iter().find(|e| e.path == path).cloned().unwrap_or_else(|| panic!("{path} not in {layer:#?}"))
    };
    let a = entry(first, "data/a");
    assert_eq!((a.mode, a.uid, a.gid, a.kind), (0o4750, 0, 0, b'0'), "{a:?}");
    assert_eq!(a.mtime, 1_700_000_000, "times are clamped to SOURCE_DATE_EPOCH");
    assert_eq!(entry(first, "data/late").mtime, 1_700_000_000, "a time after the epoch is clamped");
    let b = entry(first, "data/b");
    assert_eq!((b.kind, b.link.as_str()), (b'1', "data/a"), "a hardlink stays one: {b:?}");
    let c = entry(first, "data/c");
    assert_eq!((c.kind, c.link.as_str()), (b'2', "a"), "{c:?}");
    assert_eq!(entry(first, "data/p").kind, b'6', "a FIFO stays one");
    entry(first, "etc/.wh.issue");
    assert!(
        first.iter().all(|e| !e.path.starts_with("etc/hosts") && !e.path.starts_with("etc/resolv.conf")),
        "the host's name resolution files never reach a layer: {first:#?}"
    );
    assert!(
        first.iter().all(|e| !e.path.starts_with("usr/") && !e.path.starts_with("proc/")),
        "only what the step changed is in its layer: {first:#?}"
    );
    let owned = entry(second, "tmp/owned");
    assert_eq!((owned.uid, owned.gid), (1000, 1000), "a file made under USER is that user's: {owned:?}");
}

/// Steps that read no network and no clock give the same image every time, under proot too:
/// `--verify-reproducible` builds twice in scratch stores of their own, then in the store.
#[test]
fn a_proot_build_without_network_or_clock_verifies_as_reproducible() {
    let Some(base) = debian_base() else { return };
    let sb = Sandbox::new();
    sb.write(
        "ctx/Dockerfile",
        "FROM debian\nRUN echo built > /built && mkdir /d && ln -s /built /d/link\nRUN cat /built /d/link > /twice\n",
    );
    let out = run(sb
        .kiln()
        .args(["build", "--progress", "plain", "--verify-reproducible", "--executor=proot"])
        .args(["--build-context", &base_context(&base)])
        .arg(sb.dir.path().join("ctx")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("both gave sha256:"), "{}", stderr(&out));
}

/// Without `--executor=proot`, a Linux program stays an error, which says what the flag would
/// run and what it would trade.
#[test]
fn without_the_flag_a_linux_program_is_an_error_that_names_the_executor_and_its_trade() {
    let Some(base) = debian_base() else { return };
    let sb = Sandbox::new();
    sb.write("ctx/Dockerfile", "FROM debian\nRUN apt-get --version\n");
    let out = run(sb.kiln().args(["build", "--build-context", &base_context(&base)]).arg(sb.dir.path().join("ctx")));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("is a Linux program"), "{said}");
    assert!(said.contains("--executor=proot would run it under proot"), "{said}");
    assert!(said.contains("kaniko's trust model"), "{said}");

    // An exec-form step names its program directly.
    sb.write("ctx/Dockerfile", "FROM debian\nRUN [\"/usr/bin/apt-get\", \"--version\"]\n");
    let out = run(sb.kiln().args(["build", "--build-context", &base_context(&base)]).arg(sb.dir.path().join("ctx")));
    let said = stderr(&out);
    let arch = if std::env::consts::ARCH == "aarch64" { "arm64" } else { "amd64" };
    assert!(said.contains(&format!("/usr/bin/apt-get is a Linux program (ELF, {arch})")), "{said}");
    assert!(said.contains("--executor=proot"), "{said}");
}

/// A stage whose program is for another architecture is refused before anything runs: kiln
/// does not emulate.
#[test]
fn a_program_for_another_architecture_is_refused() {
    let sb = Sandbox::new();
    // The first bytes of an ELF executable for the other common architecture.
    let other = if std::env::consts::ARCH == "aarch64" { 62u16 } else { 183u16 };
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(16, 0);
    elf.extend([2, 0]);
    elf.extend(other.to_le_bytes());
    elf.resize(64, 0);
    sb.write("ctx/prog", elf);
    sb.write("ctx/Dockerfile", "FROM scratch\nCOPY --chmod=755 prog /bin/prog\nRUN [\"/bin/prog\"]\n");
    let out = run(sb.kiln().args(["build", "--executor=proot"]).arg(sb.dir.path().join("ctx")));
    assert!(!out.status.success());
    let said = stderr(&out);
    let (theirs, ours) = if other == 183 { ("arm64", "amd64") } else { ("amd64", "arm64") };
    assert!(said.contains(&format!("/bin/prog is a Linux program for {theirs}, and this machine is {ours}")), "{said}");
    assert!(said.contains("does not emulate"), "{said}");
}

/// A Linux step with no proot installed says so and how to install it; with ptrace denied
/// (here: kiln traced by strace, and a process has one tracer), it says that.
#[test]
fn no_proot_and_no_ptrace_are_clear_errors() {
    let sb = Sandbox::new();
    sb.write("ctx/prog", native_program());
    sb.write("ctx/Dockerfile", "FROM scratch\nCOPY --chmod=755 prog /bin/prog\nRUN [\"/bin/prog\"]\n");
    let empty = sb.dir.path().join("no-programs");
    std::fs::create_dir(&empty).unwrap();
    let out = run(sb.kiln().args(["build", "--executor=proot"]).arg(sb.dir.path().join("ctx")).env("PATH", &empty));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("proot is not installed"), "{said}");
    assert!(said.contains("apt-get install proot"), "{said}");

    if or_skip(need(&[("proot", "proot"), ("strace", "strace")])).is_none() {
        return;
    }
    let mut traced = Command::new("strace");
    traced.args(["-f", "-o", "/dev/null", env!("CARGO_BIN_EXE_kiln"), "build", "--executor=proot"]);
    traced.arg(sb.dir.path().join("ctx")).env("KILN_HOME", sb.root()).env("KILN_COMPILE_CACHE", compile_cache());
    let out = run(&mut traced);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("proot cannot trace programs on this machine"), "{said}");
    assert!(said.contains("ptrace(TRACEME)"), "{said}");
}

/// The host's own `true`, a Linux program of this machine's architecture.
fn native_program() -> Vec<u8> {
    ["/bin/true", "/usr/bin/true"].iter().find_map(|p| std::fs::read(p).ok()).expect("the host has true")
}

/// One entry of a layer.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: String,
}

/// The entries of every layer of the one image in the OCI layout `dir`, base first.
fn oci_layers(dir: &Path) -> Vec<Vec<Entry>> {
    let blob = |digest: &str| dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let index: serde_json::Value = serde_json::from_slice(&read(&dir.join("index.json"))).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&blob(index["manifests"][0]["digest"].as_str().unwrap()))).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let file = std::fs::File::open(blob(layer["digest"].as_str().unwrap())).unwrap();
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
            archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    Entry {
                        path: e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string(),
                        kind: h.entry_type().as_byte(),
                        mode: h.mode().unwrap(),
                        uid: h.uid().unwrap(),
                        gid: h.gid().unwrap(),
                        mtime: h.mtime().unwrap(),
                        link: e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .collect()
}
