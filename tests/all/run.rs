//! RUN steps: WASI programs from the stage's own filesystem, in the sandbox, and the layers
//! they leave.

use tar::EntryType;

use crate::oci::{self, check_store, validate};
use crate::support::{Sandbox, coreutils, run, run_guests, sha256_hex, signal, stderr};

/// A context holding both guests (`/bin/guest` is the p1 module, `/bin/guest2` the p2
/// component) and a data file.
fn guest_context(sb: &Sandbox, dockerfile: &str) {
    let (p1, p2) = run_guests();
    sb.copy("ctx/guest1.wasm", &p1);
    sb.copy("ctx/guest2.wasm", &p2);
    sb.write("ctx/data.txt", "data here\n");
    sb.write(
        "ctx/Dockerfile",
        format!(
            "FROM scratch AS tools\nCOPY guest1.wasm /bin/guest\nCOPY guest2.wasm /bin/guest2\nCOPY data.txt /data/data.txt\n\
             FROM tools\n{dockerfile}"
        ),
    );
}

/// What the programs of RUN steps printed, line by line, without the `  [stage] ` that
/// names the stage each line came from.
fn output_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.strip_prefix("  ["))
        .map(|l| l.split_once("] ").map_or("", |(_, text)| text).trim())
        .collect()
}

fn build(sb: &Sandbox, extra: &[&str]) -> std::process::Output {
    run(sb.kiln().args(["build", "--progress", "plain", "-t", "run-test"]).args(extra).arg("ctx"))
}

#[test]
fn file_operations_become_layers() {
    let sb = Sandbox::new();
    guest_context(
        &sb,
        "RUN [\"guest\", \"mkdir\", \"/made/deep\", \";\", \"write\", \"/made/out.txt\", \"hello\", \";\", \"ln\", \"/data/data.txt\", \"/made/abs\", \";\", \"ln\", \"../data/data.txt\", \"/made/rel\", \";\", \"cat\", \"/made/abs\", \";\", \"cat\", \"/made/rel\"]\n\
         RUN [\"guest2\", \"append\", \"/made/out.txt\", \" world\", \";\", \"rm\", \"/data/data.txt\", \";\", \"mv\", \"/made/deep\", \"/moved\"]\n\
         RUN [\"guest\", \"ls\", \"/\"]\n",
    );
    let out = build(&sb, &[]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("data here").count(), 2, "read through both links: {log}");
    let image = oci::read(&sb.root(), Some("run-test:latest"));
    validate(&sb.root(), "run-test:latest");
    // tools' three COPY layers, then one layer per RUN that changed something.
    assert_eq!(image.layers.len(), 5, "the last RUN changed nothing");
    assert_eq!(image.paths(3), ["made/", "made/abs", "made/deep/", "made/out.txt", "made/rel"]);
    let abs = image.entry(3, "made/abs");
    assert_eq!((abs.kind, abs.link.as_deref()), (EntryType::Symlink, Some("/data/data.txt")));
    assert_eq!(image.entry(3, "made/out.txt").data, b"hello");
    assert_eq!(image.entry(3, "made/out.txt").mtime, 0, "mtimes are the step's normalised time");
    assert_eq!(
        image.paths(4),
        ["data/", "data/.wh.data.txt", "made/", "made/.wh.deep", "made/out.txt", "moved/"],
        "deletions are whiteouts"
    );
    assert_eq!(image.entry(4, "made/out.txt").data, b"hello world");
    assert!(image.history().last().unwrap().1, "an unchanged rootfs adds no layer");
    check_store(&sb.root());
}

#[test]
fn exit_statuses_reach_the_build() {
    let sb = Sandbox::new();
    for (guest, status) in [("guest", 7), ("guest2", 0), ("guest", 125), ("guest", 255)] {
        guest_context(&sb, &format!("RUN [\"{guest}\", \"exit\", \"{status}\"]\n"));
        let out = build(&sb, &[]);
        if status == 0 {
            assert!(out.status.success(), "{}", stderr(&out));
            continue;
        }
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(&format!("exit code: {status}")), "{guest} {status}: {err}");
        assert!(err.contains("Dockerfile:6:1"), "{err}");
        assert!(err.contains("[stage-1 2/2]"), "{err}");
    }
    // A failing step shows the end of its output.
    guest_context(&sb, "RUN [\"guest\", \"cat\", \"/nope\"]\n");
    let err = stderr(&build(&sb, &[]));
    assert!(err.contains("exit code: 3") && err.contains("cat: "), "{err}");
}

#[test]
fn user_environment_and_clock() {
    let sb = Sandbox::new();
    guest_context(
        &sb,
        "ARG FLAVOUR=mild\nENV GREETING=hi\nUSER 1000:1000\nWORKDIR /work\n\
         RUN [\"guest\", \"write\", \"/tmp-owned\", \"x\", \";\", \"env\", \"GREETING\", \";\", \"env\", \"FLAVOUR\", \";\", \"env\", \"HOME\", \";\", \"time\"]\n\
         RUN [\"guest\", \"pwd\", \";\", \"write\", \"relative.txt\", \"in workdir\", \";\", \"cat\", \"../data/data.txt\"]\n\
         RUN [\"guest2\", \"pwd\", \";\", \"cat\", \"relative.txt\"]\n",
    );
    let out = build(&sb, &["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    for expected in ["  hi", "  mild", "  <unset>", "  1700000000"] {
        assert!(output_lines(&log).contains(&expected.trim()), "{expected:?} in {log}");
    }
    // Preview 1 modules and preview 2 components both run in the WORKDIR.
    assert_eq!(output_lines(&log).iter().filter(|l| **l == "/work").count(), 2, "pwd in the WORKDIR: {log}");
    assert!(output_lines(&log).contains(&"in workdir"), "the component read the module's relative file: {log}");
    assert!(!log.contains("warning: WORKDIR"), "{log}");
    let image = oci::read(&sb.root(), Some("run-test:latest"));
    let file = image.entry(4, "tmp-owned");
    assert_eq!((file.uid, file.gid, file.mode, file.mtime), (1000, 1000, 0o644, 1_700_000_000));
    let relative = image.entry(5, "work/relative.txt");
    assert_eq!((relative.data.as_slice(), relative.uid), (&b"in workdir"[..], 1000));
}

#[test]
fn a_program_once_tried_as_a_frontend_still_runs_in_its_workdir() {
    let sb = Sandbox::new();
    guest_context(&sb, "WORKDIR /work\nRUN [\"guest2\", \"pwd\"]\n");
    // Trying the component as a frontend compiles it into the same cache, under its digest;
    // that entry must not pass for the program compiled without its working directory.
    let tried = sb.kiln().args(["parse", "--frontend", "ctx/guest2.wasm", "ctx"]).output().unwrap();
    assert!(!tried.status.success(), "guest2 is not a frontend");
    let out = build(&sb, &[]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(output_lines(&log).contains(&"/work"), "pwd in the WORKDIR: {log}");
    assert!(!log.contains("warning: WORKDIR"), "{log}");
}

#[test]
fn programs_that_cannot_run_are_clear_errors() {
    let sb = Sandbox::new();
    let cases = [
        ("RUN [\"nosuch\"]\n", "nosuch: not found on the stage's PATH"),
        (
            "COPY data.txt /bin/notwasm\nRUN [\"notwasm\"]\n",
            "/bin/notwasm is not a WebAssembly program or a #! script; kiln runs WASI programs (.wasm)",
        ),
        (
            "COPY elf /bin/elf\nRUN [\"elf\"]\n",
            "/bin/elf is a Linux program (ELF, machine 28265); kiln's default executor runs only WASI programs (.wasm)",
        ),
        ("COPY elf /bin/elf\nRUN [\"elf\"]\n", "--executor=proot would run it under proot"),
        // Shell form runs kiln's own sh (no /bin/sh in this stage); what it cannot find is 127.
        ("RUN echo shell form && nosuch\n", "nosuch: not found on the stage's PATH"),
        ("RUN echo shell form && nosuch\n", "exit code: 127"),
    ];
    for (dockerfile, message) in cases {
        guest_context(&sb, dockerfile);
        sb.write("ctx/elf", b"\x7fELF\x02\x01\x01rest of a binary");
        let out = build(&sb, &[]);
        assert_eq!(out.status.code(), Some(1), "{dockerfile}");
        assert!(stderr(&out).contains(message), "{dockerfile}: {}", stderr(&out));
    }
    // A #! script runs its interpreter from the rootfs with the script's path.
    guest_context(&sb, "COPY script /bin/script\nRUN [\"script\", \"/data/data.txt\"]\n");
    sb.write("ctx/script", "#!/bin/guest cat\n");
    let out = build(&sb, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn runaway_programs_are_stopped() {
    let sb = Sandbox::new();
    guest_context(&sb, "RUN [\"guest\", \"loop\"]\n");
    let started = std::time::Instant::now();
    let out = build(&sb, &["--step-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("longer than its limit"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));

    guest_context(&sb, "RUN [\"guest2\", \"alloc\"]\n");
    let out = build(&sb, &["--step-memory", "64"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("more than 67108864 bytes of memory"), "{}", stderr(&out));

    guest_context(&sb, "RUN [\"guest\", \"trap\"]\n");
    let out = build(&sb, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("crashed"), "{}", stderr(&out));
    check_store(&sb.root());
}

/// Each attempt to reach the host from a RUN step stays inside the stage's filesystem: reads
/// find nothing, writes land in the image, and the host is untouched.
#[test]
fn escape_attempts_stay_inside_the_rootfs() {
    let sb = Sandbox::new();
    let marker = format!("kiln-escape-{}", std::process::id());
    let host_marker = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&host_marker);
    let reads = ["cat ../../../../../etc/passwd", "cat /../../etc/hostname", "hardlink /etc/passwd /stolen"];
    for attempt in reads {
        let args: Vec<String> = attempt.split(' ').map(|a| format!("\"{a}\"")).collect();
        guest_context(&sb, &format!("RUN [\"guest\", {}]\n", args.join(", ")));
        let out = build(&sb, &[]);
        assert_eq!(out.status.code(), Some(1), "{attempt} must fail: {}", stderr(&out));
        assert!(stderr(&out).contains("exit code: 3"), "{attempt}: {}", stderr(&out));
        assert!(!stderr(&out).contains("root:"), "{attempt} read a host file: {}", stderr(&out));
    }
    // Links that point out are followed inside the rootfs; writes through them land there.
    let tmp = std::env::temp_dir().display().to_string();
    guest_context(
        &sb,
        &format!(
            "RUN [\"guest\", \"mkdir\", \"{tmp}\", \";\", \"ln\", \"/\", \"/etc-link\", \";\", \"ln\", \"../../../../..{tmp}\", \"/data/up\", \";\", \
             \"write\", \"/data/up/{marker}\", \"inside\", \";\", \"cat\", \"/etc-link/etc-link{tmp}/{marker}\", \";\", \
             \"mv\", \"/data/data.txt\", \"/../../../{tmp}/moved\"]\n"
        ),
    );
    let out = build(&sb, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("inside"), "{}", stderr(&out));
    assert!(!host_marker.exists(), "a RUN step wrote {} on the host", host_marker.display());
    assert!(
        !std::env::temp_dir().join("moved").exists()
            || std::fs::read(std::env::temp_dir().join("moved")).unwrap() != b"data here\n"
    );
    let image = oci::read(&sb.root(), Some("run-test:latest"));
    let top = image.layers.last().unwrap();
    let tmp_rel = tmp.trim_start_matches('/');
    assert!(top.iter().any(|e| e.path == format!("{tmp_rel}/{marker}")), "the write landed in the image");
    assert!(top.iter().any(|e| e.path == format!("{tmp_rel}/moved")), "the rename stayed in the image");
}

/// Real third-party WASI programs: uutils coreutils, one multicall binary linked under each
/// utility's name, working on the stage's filesystem.
#[test]
fn uutils_coreutils_in_run_steps() {
    let sb = Sandbox::new();
    let ctx = sb.dir.path().join("ctx");
    sb.copy("ctx/bin/coreutils", &coreutils());
    for tool in ["mkdir", "cp", "mv", "rm", "ln", "cat", "ls"] {
        std::os::unix::fs::symlink("coreutils", ctx.join("bin").join(tool)).unwrap();
    }
    sb.write("ctx/real/data.txt", "from the base image\n");
    std::fs::create_dir_all(ctx.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/opt/real/data.txt", ctx.join("usr/bin/data")).unwrap();
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch AS base\nCOPY bin /bin\nCOPY real /opt/real\nCOPY usr /usr\n\
         FROM base\n\
         RUN [\"mkdir\", \"-p\", \"/a/b/c\"]\n\
         RUN [\"cp\", \"-r\", \"/opt/real\", \"/a/b/c/copy\"]\n\
         RUN [\"mv\", \"/a/b/c/copy\", \"/moved\"]\n\
         RUN [\"rm\", \"-r\", \"/a/b\"]\n\
         RUN [\"ln\", \"-s\", \"/moved/data.txt\", \"/abs-link\"]\n\
         RUN [\"ln\", \"-s\", \"moved/data.txt\", \"/rel-link\"]\n\
         RUN [\"cat\", \"/usr/bin/data\", \"/abs-link\", \"/rel-link\"]\n\
         RUN [\"ls\", \"/moved\"]\n\
         USER 1000:1000\n\
         RUN [\"mkdir\", \"/owned\"]\n\
         WORKDIR /moved\n\
         RUN [\"cat\", \"data.txt\"]\n\
         RUN [\"mkdir\", \"-p\", \"sub/dir\"]\n\
         RUN [\"ls\", \"/nonexistent\"]\n",
    );
    let out = build(&sb, &["--target", "base"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = build(&sb, &[]);
    let log = stderr(&out);
    // The last step fails like ls does on Linux: exit status 2.
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("exit code: 2"), "{log}");
    assert_eq!(log.matches("from the base image").count(), 4, "cat read through the links and in WORKDIR: {log}");
    assert!(!log.contains("warning: WORKDIR"), "uutils gets its working directory: {log}");
    assert!(output_lines(&log).contains(&"data.txt"), "ls listed /moved: {log}");

    // Build again without the failing step, and look at the layers.
    let text = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    sb.write("ctx/Dockerfile", text.replace("RUN [\"ls\", \"/nonexistent\"]\n", ""));
    let out = build(&sb, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = oci::read(&sb.root(), Some("run-test:latest"));
    validate(&sb.root(), "run-test:latest");
    let layers = &image.layers;
    let mkdir = &layers[3];
    assert_eq!(mkdir.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["a/", "a/b/", "a/b/c/"]);
    assert!(layers[4].iter().any(|e| e.path == "a/b/c/copy/data.txt" && e.data == b"from the base image\n"));
    let mv: Vec<&str> = layers[5].iter().map(|e| e.path.as_str()).collect();
    assert!(mv.contains(&"a/b/c/.wh.copy") && mv.contains(&"moved/data.txt"), "{mv:?}");
    assert!(layers[6].iter().any(|e| e.path == "a/.wh.b"), "rm -r is a whiteout");
    let abs = layers[7].iter().find(|e| e.path == "abs-link").unwrap();
    assert_eq!((abs.kind, abs.link.as_deref()), (EntryType::Symlink, Some("/moved/data.txt")));
    let rel = layers[8].iter().find(|e| e.path == "rel-link").unwrap();
    assert_eq!(rel.link.as_deref(), Some("moved/data.txt"));
    let owned = layers[9].iter().find(|e| e.path == "owned/").unwrap();
    assert_eq!((owned.uid, owned.gid, owned.mode, owned.mtime), (1000, 1000, 0o755, 0));
    let relative = layers[10].iter().map(|e| e.path.as_str()).collect::<Vec<_>>();
    assert_eq!(relative, ["moved/", "moved/sub/", "moved/sub/dir/"], "mkdir -p of a relative path in WORKDIR /moved");
    assert_eq!(layers.len(), 11, "cat and ls changed nothing, WORKDIR /moved existed");
}

/// Ctrl-C on a running build stops the guest, removes the build's scratch directory, tags
/// nothing and leaves the store valid.
#[test]
fn ctrl_c_stops_a_running_step_cleanly() {
    let sb = Sandbox::new();
    guest_context(&sb, "RUN [\"guest\", \"loop\"]\n");
    // Compile the guest first, so the interrupt lands while it runs.
    let _ = build(&sb, &["--step-timeout", "1"]);
    let mut child = sb
        .kiln()
        .args(["build", "--progress", "plain", "-t", "interrupted", "ctx"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "the build is still running");
    assert!(signal(&child, "INT"));
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "it stopped promptly");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted; nothing was tagged"));
    check_store(&sb.root());
    let index = std::fs::read_to_string(sb.root().join("index.json")).unwrap();
    assert!(!index.contains("interrupted"));
    crate::oci::assert_no_build_dirs(&sb.root());
}

/// `kiln:sandbox/spawn`: a program starts programs from the same rootfs; their changes are
/// the step's, their statuses come back, and their limits are the step's.
#[test]
fn programs_start_programs() {
    let sb = Sandbox::new();
    guest_context(
        &sb,
        "WORKDIR /data\n\
         RUN [\"guest\", \"spawn\", \"guest\", \"write\", \"from-child\", \"child wrote\", \";\", \"spawn-to\", \"/out.txt\", \"guest\", \"cat\", \"data.txt\", \";\", \"spawn\", \"guest\", \"exit\", \"4\", \";\", \"cat\", \"/out.txt\"]\n",
    );
    let out = build(&sb, &[]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = output_lines(&log);
    assert_eq!(lines, ["status 0", "status 0", "status 4", "data here"], "{log}");
    let image = oci::read(&sb.root(), Some("run-test:latest"));
    let layer = image.layers.last().unwrap();
    assert!(layer.iter().any(|e| e.path == "data/from-child" && e.data == b"child wrote"), "the child ran in WORKDIR");
    assert!(layer.iter().any(|e| e.path == "out.txt" && e.data == b"data here\n"), "stdout went to the file");

    guest_context(&sb, "RUN [\"guest\", \"spawn\", \"missing-program\"]\n");
    let out = build(&sb, &[]);
    assert!(stderr(&out).contains("missing-program: not found on the stage's PATH"), "{}", stderr(&out));

    // A child that runs away ends the whole step at the step's limit.
    guest_context(&sb, "RUN [\"guest\", \"spawn\", \"guest\", \"loop\"]\n");
    let out = build(&sb, &["--step-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("longer than its limit"), "{}", stderr(&out));
}

/// A base image whose layer carries `../` entries and symlinks aimed at the host: unpacked
/// inside the stage's tree, and a RUN step that follows them stays inside it.
#[test]
fn a_hostile_base_image_cannot_reach_the_host() {
    let sb = Sandbox::new();
    let (p1, _) = run_guests();
    let guest = std::fs::read(p1).unwrap();
    let marker = format!("kiln-hostile-base-{}", std::process::id());
    // The layer: the guest, a `../../` entry, a link to the host's root and one climbing out.
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let fresh = || {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h
        };
        let mut h = fresh();
        h.set_mode(0o755);
        h.set_size(guest.len() as u64);
        b.append_data(&mut h, "bin/guest", &guest[..]).unwrap();
        let mut h = fresh();
        h.set_size(8);
        h.set_mode(0o644);
        let name = format!("../../../../tmp/{marker}");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &b"dotdot!\n"[..]).unwrap();
        for (link, target) in [("hostroot", "/"), ("climb", "../../../../../../../")] {
            let mut h = fresh();
            h.set_entry_type(EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, link, target).unwrap();
        }
        b.finish().unwrap();
    }
    let layout = sb.dir.path().join("hostile");
    layout_with_layer(&layout, &tar_bytes, "evil");

    sb.write(
        "ctx/Dockerfile",
        format!(
            "FROM hostile\n\
             RUN [\"guest\", \"cat\", \"/tmp/{marker}\", \";\", \"ls\", \"/hostroot\", \";\", \"write\", \"/climb/{marker}-written\", \"x\", \";\", \"ls\", \"/climb\"]\n"
        ),
    );
    let base = format!("hostile=oci-layout://{}:evil", layout.display());
    let out =
        run(sb.kiln().args(["build", "--progress", "plain", "--build-context", &base, "-t", "evil-child", "ctx"]));
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("dotdot!"), "the ../ entry was unpacked inside the rootfs: {log}");
    assert!(!output_lines(&log).iter().any(|l| *l == "etc" || *l == "usr"), "a host directory was listed: {log}");
    assert!(!std::env::temp_dir().join(&marker).exists(), "the layer wrote on the host");
    assert!(!std::path::Path::new("/").join(format!("{marker}-written")).exists(), "the step wrote on the host");
    let image = oci::read(&sb.root(), Some("evil-child:latest"));
    assert!(
        image.layers.last().unwrap().iter().any(|e| e.path == format!("{marker}-written")),
        "the write stayed in the image"
    );
    check_store(&sb.root());
}

/// Write an OCI layout at `layout` holding one Linux image, tagged `tag`, whose only layer
/// is `tar_bytes` (gzipped).
pub(crate) fn layout_with_layer(layout: &std::path::Path, tar_bytes: &[u8], tag: &str) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, tar_bytes).unwrap();
    let layer = gz.finish().unwrap();
    layout_with_blob(layout, &layer, &sha256_hex(tar_bytes), tag);
}

/// Write an OCI layout at `layout` holding one Linux image, tagged `tag`, whose only layer
/// is the gzipped blob `layer`, whose uncompressed tar has the sha256 `diff_id_hex`.
pub(crate) fn layout_with_blob(layout: &std::path::Path, layer: &[u8], diff_id_hex: &str, tag: &str) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| {
        let h = sha256_hex(bytes);
        std::fs::write(layout.join("blobs/sha256").join(&h), bytes).unwrap();
        h
    };
    let layer_hex = put(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id_hex}")]},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_hex = put(&config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config_bytes.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{layer_hex}"), "size": layer.len()}],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_hex = put(&manifest_bytes);
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{manifest_hex}"),
        "size": manifest_bytes.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Layers that try to reach the host through hardlinks, or carry device nodes: a hardlink out
/// of the root is refused with the layer and entry named; device nodes and FIFOs stay entries
/// of the image (kiln never makes them on the host), and `-o local` skips them with a warning.
#[test]
fn hostile_hardlinks_are_refused_and_device_nodes_never_reach_the_host() {
    let sb = Sandbox::new();
    let layer = |entries: &dyn Fn(&mut tar::Builder<&mut Vec<u8>>)| {
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            entries(&mut b);
            b.finish().unwrap();
        }
        bytes
    };
    let header = |kind: EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let linked_out = layer(&|b| {
        let mut h = header(EntryType::Link);
        let target = b"../../../../etc/passwd";
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        h.as_old_mut().name[..6].copy_from_slice(b"stolen");
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    });
    layout_with_layer(&sb.dir.path().join("linked"), &linked_out, "linked");
    sb.write("ctx/Dockerfile", "FROM linked\nCOPY Dockerfile /\n");
    let base = format!("linked=oci-layout://{}:linked", sb.dir.path().join("linked").display());
    let out = run(sb.kiln().args(["build", "--progress", "plain", "--build-context", &base, "-t", "linked", "ctx"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stolen") && err.contains("hardlink to /etc/passwd which is not a file"), "{err}");
    assert!(err.contains("nothing was tagged"), "{err}");

    let devices = layer(&|b| {
        let mut h = header(EntryType::Char);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/null", &[][..]).unwrap();
        let mut h = header(EntryType::Fifo);
        b.append_data(&mut h, "run/fifo", &[][..]).unwrap();
        let mut h = header(EntryType::Regular);
        h.set_size(3);
        b.append_data(&mut h, "etc/ok", &b"ok\n"[..]).unwrap();
    });
    layout_with_layer(&sb.dir.path().join("devices"), &devices, "devices");
    sb.write("ctx/Dockerfile", "FROM devices\nCOPY Dockerfile /\n");
    let files = sb.dir.path().join("files");
    let base = format!("devices=oci-layout://{}:devices", sb.dir.path().join("devices").display());
    let out = run(sb
        .kiln()
        .args(["build", "--progress", "plain", "--build-context", &base, "-t", "devices", "-o"])
        .arg(&files)
        .arg("ctx"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped 2 device or FIFO entries"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(files.join("etc/ok")).unwrap(), "ok\n");
    assert!(!files.join("dev/null").exists() && !files.join("run/fifo").exists());
    let image = oci::read(&sb.root(), Some("devices:latest"));
    let first = &image.layers[0];
    assert!(first.iter().any(|e| e.path == "dev/null"), "the device node is kept in the image");
    check_store(&sb.root());
}

/// Pipes between programs that run at the same time: `cat | wc -c`, an endless `yes` into
/// `head` (backpressure, then the writer sees the pipe close), input fed by the parent, and
/// output captured by a preview 2 parent.
#[test]
fn pipes_connect_running_programs() {
    let sb = Sandbox::new();
    guest_context(
        &sb,
        "COPY coreutils.wasm /bin/coreutils\nWORKDIR /data\n\
         RUN [\"guest\", \"pipe\", \"coreutils\", \"cat\", \"data.txt\", \"|\", \"coreutils\", \"wc\", \"-c\"]\n\
         RUN [\"guest\", \"pipe\", \"coreutils\", \"yes\", \"|\", \"coreutils\", \"head\", \"-n\", \"3\"]\n\
         RUN [\"guest\", \"feed\", \"fed through a pipe\\n\", \"coreutils\", \"cat\"]\n\
         RUN [\"guest2\", \"capture\", \"coreutils\", \"ls\", \"/data\"]\n",
    );
    sb.copy("ctx/coreutils.wasm", &coreutils());
    // Generous: the first step also compiles coreutils, and a hang must not hang the tests.
    let out = build(&sb, &["--step-timeout", "600"]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = output_lines(&log);
    let at = |needle: &str| lines.iter().position(|l| *l == needle).unwrap_or_else(|| panic!("{needle:?} in {log}"));
    assert_eq!(lines[at("10") + 1], "statuses 0 0", "cat | wc -c counted data.txt: {log}");
    assert_eq!(lines.iter().filter(|l| **l == "y").count(), 3, "head took three lines of yes: {log}");
    assert!(
        lines.iter().any(|l| l.starts_with("statuses ") && l.ends_with(" 0") && *l != "statuses 0 0"),
        "yes saw the pipe close: {log}"
    );
    assert_eq!(lines[at("fed through a pipe") + 1], "status 0");
    assert!(lines.contains(&"captured \"data.txt\\n\" status 0"), "{log}");
}
