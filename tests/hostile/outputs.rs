//! Outputs aimed at what must not be lost: a directory of the user's files, an OCI layout
//! holding other images, kiln's own store, the build context being read. Each output adds to
//! its destination or is refused with an error saying why, and no temporary file is left
//! behind: not after success, not after a failed export, not after Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Hostile;
use crate::oci::{self, check_store};
use crate::run::{layout_with_blob, layout_with_layer};
use crate::support::{drain, is_root, read_string, sha256_hex, signal, stderr};

/// Every path under `dir` whose name starts with `.kiln-` (kiln's temporary names); the
/// store is skipped.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == "store" {
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with(".kiln-") {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

fn assert_no_temporaries(h: &Hostile) {
    let left = temporaries(h.sb.dir.path());
    assert!(left.is_empty(), "temporary files were left behind: {left:?}");
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `kiln build --progress plain ARGS` (the context comes last in ARGS); must succeed.
fn build_ok(h: &Hostile, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    let out = h.run(&all);
    let err = stderr(&out);
    assert!(out.status.success(), "kiln build {args:?} failed:\n{err}");
    err
}

/// `kiln build ARGS` must be refused before building (exit status 2) with `message`, and
/// change nothing.
fn refused_early(h: &Hostile, args: &[&str], message: &str) {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    let out = h.run(&all);
    let err = h.refused(&out, &[message]);
    assert_eq!(out.status.code(), Some(2), "refused as a bad flag: {err}");
    assert!(!err.contains("exporting to"), "refused before building: {err}");
    assert_no_temporaries(h);
}

/// The entries of a layout's `index.json`: (ref name, manifest digest).
fn index_entries(layout: &Path) -> Vec<(Option<String>, String)> {
    let index: Value = serde_json::from_str(&read_string(&layout.join("index.json"))).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string);
            (name, e["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_local_output_writes_into_a_directory_of_user_files() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY app/ /\n");
    h.sb.write("ctx/app/etc/motd", "from the image\n");
    h.sb.write("ctx/app/etc/hostname", "box\n");
    h.sb.write("ctx/app/new/deep/file", "deep\n");
    let tool = h.sb.write("ctx/app/bin/tool", "#!/bin/sh\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The user's directory: files the image does not have, one it has, and a link where
    // the image has a file (replaced, never written through).
    h.sb.write("out/mine.txt", "mine\n");
    h.sb.write("out/.git/HEAD", "ref: refs/heads/main\n");
    h.sb.write("out/etc/user.conf", "user\n");
    h.sb.write("out/etc/motd", "old\n");
    std::os::unix::fs::symlink("../mine.txt", h.sb.dir.path().join("out/etc/hostname")).unwrap();
    h.seal();
    let out = h.sb.dir.path().join("out");
    for args in [&["-o", "out", "ctx"][..], &["-o", "type=local,dest=out", "ctx"]] {
        build_ok(&h, args);
        assert_eq!(read_string(&out.join("mine.txt")), "mine\n");
        assert_eq!(read_string(&out.join(".git/HEAD")), "ref: refs/heads/main\n");
        assert_eq!(read_string(&out.join("etc/user.conf")), "user\n");
        assert_eq!(read_string(&out.join("etc/motd")), "from the image\n");
        assert!(std::fs::symlink_metadata(out.join("etc/hostname")).unwrap().is_file(), "the link was replaced");
        assert_eq!(read_string(&out.join("etc/hostname")), "box\n");
        assert_eq!(read_string(&out.join("new/deep/file")), "deep\n");
        assert_eq!(std::fs::metadata(out.join("bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(names(&out), [".git", "bin", "etc", "mine.txt", "new"]);
        assert_no_temporaries(&h);
        h.verify(&["out"]);
    }
}

#[test]
fn a_local_output_refuses_to_replace_a_directory_or_a_link_before_writing_anything() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY app/ /\n");
    h.sb.write("ctx/app/a.txt", "first in name order\n");
    h.sb.write("ctx/app/bin/tool", "tool\n");
    h.sb.write("ctx/app/etc/motd", "motd\n");
    // A directory where the image has a file, and a file where it has a directory.
    h.sb.write("out/etc/motd/keep", "the user's\n");
    h.sb.write("out/bin", "a file\n");
    // A link to a directory where the image has a directory.
    h.sb.write("elsewhere/kept", "kept\n");
    std::fs::create_dir(h.sb.dir.path().join("linked")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", h.sb.dir.path().join("linked/bin")).unwrap();
    h.seal();
    let out = h.run(&["build", "--progress", "plain", "-o", "out", "ctx"]);
    let err = h.refused(
        &out,
        &["error: output out: refused: out/bin is a file and the image has a directory there (and 1 more paths like it); \
           kiln replaces files and links but never deletes a directory or writes through a link to make room: move it \
           away, or give another destination"],
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    let out = h.run(&["build", "--progress", "plain", "-o", "linked", "ctx"]);
    h.refused(
        &out,
        &["error: output linked: refused: linked/bin is a symlink and the image has a directory there; kiln"],
    );
    std::fs::remove_file(h.sb.dir.path().join("out/bin")).unwrap();
    h.seal();
    let out = h.run(&["build", "--progress", "plain", "-o", "out", "ctx"]);
    h.refused(&out, &["error: output out: refused: out/etc/motd is a directory and the image has a file there; kiln"]);
    assert_no_temporaries(&h);
}

#[test]
fn an_oci_output_adds_the_image_to_an_existing_layout() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile.a", "FROM scratch\nCOPY a.txt /\n");
    h.sb.write("ctx/Dockerfile.b", "FROM scratch\nCOPY b.txt /\n");
    h.sb.write("ctx/a.txt", "a\n");
    h.sb.write("ctx/b.txt", "b\n");
    h.seal();
    let layout = h.sb.dir.path().join("layout");
    build_ok(&h, &["-f", "ctx/Dockerfile.a", "-t", "app:1", "-o", "type=oci,dest=layout", "ctx"]);
    // What another tool put there stays: a field of index.json, a file beside the layout.
    let mut index: Value = serde_json::from_str(&read_string(&layout.join("index.json"))).unwrap();
    index["annotations"] = serde_json::json!({"org.example.kept": "yes"});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(layout.join("README"), "notes\n").unwrap();
    build_ok(&h, &["-f", "ctx/Dockerfile.b", "-t", "lib:2", "-o", "type=oci,dest=layout", "ctx"]);
    let app = oci::read(&h.sb.root(), Some("app:1")).manifest_digest;
    let lib = oci::read(&h.sb.root(), Some("lib:2")).manifest_digest;
    assert_eq!(index_entries(&layout), [(Some("1".into()), app.clone()), (Some("2".into()), lib.clone())]);
    assert_eq!(oci::read(&layout, Some("1")).manifest_digest, app);
    assert_eq!(oci::read(&layout, Some("2")).manifest_digest, lib);
    let index: Value = serde_json::from_str(&read_string(&layout.join("index.json"))).unwrap();
    assert_eq!(index["annotations"]["org.example.kept"], "yes");
    assert_eq!(read_string(&layout.join("README")), "notes\n");

    // The same tag again replaces its entry; the earlier image's blobs stay.
    h.sb.write("ctx/a.txt", "a, changed\n");
    build_ok(&h, &["-f", "ctx/Dockerfile.a", "-t", "app:1", "-o", "type=oci,dest=layout", "ctx"]);
    let app2 = oci::read(&h.sb.root(), Some("app:1")).manifest_digest;
    assert_ne!(app2, app);
    assert_eq!(index_entries(&layout), [(Some("2".into()), lib.clone()), (Some("1".into()), app2.clone())]);
    assert!(layout.join("blobs/sha256").join(app.strip_prefix("sha256:").unwrap()).is_file());
    // An image with no name is added without one, once.
    for _ in 0..2 {
        build_ok(&h, &["-f", "ctx/Dockerfile.b", "-o", "type=oci,dest=layout", "ctx"]);
    }
    assert_eq!(index_entries(&layout).len(), 3);
    assert!(index_entries(&layout).contains(&(None, lib.clone())));
    // Other tools read both images from the shared layout.
    oci::validate(&layout, "1");
    oci::validate(&layout, "2");
    assert_no_temporaries(&h);
    h.verify(&["layout", "ctx/a.txt"]);
}

#[test]
fn outputs_refuse_destinations_of_the_wrong_kind_and_change_nothing() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    h.sb.write("ctx/a.txt", "a\n");
    h.sb.write("project/main.rs", "fn main() {}\n");
    h.sb.write("file.txt", "a file\n");
    std::fs::create_dir(h.sb.dir.path().join("empty")).unwrap();
    h.seal();
    for kind in ["oci", "wasm"] {
        refused_early(
            &h,
            &["-o", &format!("type={kind},dest=project"), "ctx"],
            "error: output project: refused: the directory is not empty and is not an OCI layout (it has no \
             oci-layout file), and kiln never deletes what is there; give a new or empty directory, or an OCI layout \
             to add the image to",
        );
    }
    for kind in ["oci-archive", "docker"] {
        refused_early(
            &h,
            &["-o", &format!("type={kind},dest=project"), "ctx"],
            "error: output project: refused: it is a directory; give the path of the archive file to write, such as \
             DIR/image.tar",
        );
    }
    for kind in ["local", "oci"] {
        refused_early(
            &h,
            &["-o", &format!("type={kind},dest=file.txt"), "ctx"],
            "error: output file.txt: refused: it is not a directory; give a directory (it is created if missing)",
        );
    }
    // An empty directory becomes a layout; an archive replaces the file there.
    build_ok(&h, &["-t", "a:1", "-o", "type=oci,dest=empty", "-o", "type=oci-archive,dest=file.txt", "ctx"]);
    assert_eq!(
        oci::read(&h.sb.dir.path().join("empty"), Some("1")).manifest_digest,
        oci::read(&h.sb.root(), Some("a:1")).manifest_digest
    );
    let mut tar = tar::Archive::new(std::fs::File::open(h.sb.dir.path().join("file.txt")).unwrap());
    let paths: Vec<String> = tar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert!(paths.contains(&"oci-layout".to_string()) && paths.contains(&"index.json".to_string()), "{paths:?}");
    assert_no_temporaries(&h);
    h.verify(&["empty", "file.txt"]);
}

#[test]
fn outputs_into_the_store_are_refused_and_the_store_stays_whole() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    h.sb.write("ctx/a.txt", "a\n");
    build_ok(&h, &["-t", "kept:1", "ctx"]);
    let store = std::fs::canonicalize(h.sb.root()).unwrap();
    std::os::unix::fs::symlink(&store, h.sb.dir.path().join("store-link")).unwrap();
    h.seal();
    let index_before = read_string(&store.join("index.json"));
    let is_store = "refused: it is kiln's store (--root or KILN_HOME), and writing an output there could break the \
                    store; tag the image with -t to keep it in the store, or write the output somewhere else";
    refused_early(&h, &["-o", "type=oci,dest=store", "ctx"], &format!("error: output store: {is_store}"));
    refused_early(&h, &["-o", "type=local,dest=store-link", "ctx"], &format!("error: output store-link: {is_store}"));
    let inside = format!(
        "refused: it is inside kiln's store {} (--root or KILN_HOME), and writing an output there could break the \
         store; write the output somewhere else",
        store.display()
    );
    refused_early(&h, &["-o", "type=oci,dest=store/blobs", "ctx"], &format!("error: output store/blobs: {inside}"));
    refused_early(&h, &["-o", "type=docker,dest=store/new/image.tar", "ctx"], &inside);
    refused_early(
        &h,
        &["-o", "type=local,dest=.", "ctx"],
        &format!("error: output .: refused: it holds kiln's store {} (--root or KILN_HOME)", store.display()),
    );
    // The store keeps its images, and builds on.
    assert_eq!(read_string(&store.join("index.json")), index_before);
    check_store(&store);
    build_ok(&h, &["-t", "kept:2", "ctx"]);
    assert_eq!(oci::read(&store, Some("kept:1")).manifest_digest, oci::read(&store, Some("kept:2")).manifest_digest);
}

#[test]
fn outputs_inside_the_build_context_are_refused_unless_it_leaves_them_out() {
    let mut h = Hostile::new();
    h.sb.write("proj/ctx/Dockerfile", "FROM scratch\nCOPY . /src/\n");
    h.sb.write("proj/ctx/main.rs", "fn main() {}\n");
    h.seal();
    let ctx = std::fs::canonicalize(h.sb.dir.path().join("proj/ctx")).unwrap();
    refused_early(
        &h,
        &["-o", "proj/ctx", "proj/ctx"],
        "error: output proj/ctx: refused: it is the build context, and the output would overwrite the files the \
         build reads; write the output outside the context",
    );
    refused_early(
        &h,
        &["-o", "type=oci,dest=proj", "proj/ctx"],
        &format!(
            "error: output proj: refused: it holds the build context {}, and the output would overwrite the files the \
             build reads; write the output outside the context",
            ctx.display()
        ),
    );
    let inside = |rel: &str| {
        format!(
            "error: output proj/ctx/{rel}: refused: it is inside the build context {} and the build reads it, so the \
             output would overwrite files the build reads and the next build would read the output; add the line \
             \"{rel}\" at the end of proj/ctx/.dockerignore, or write the output outside the context",
            ctx.display()
        )
    };
    refused_early(&h, &["-o", "proj/ctx/out", "proj/ctx"], &inside("out"));
    refused_early(&h, &["-o", "type=oci-archive,dest=proj/ctx/image.tar", "proj/ctx"], &inside("image.tar"));
    // Left out, but a `!` line brings a path below it back: still read.
    h.sb.write("proj/ctx/.dockerignore", "out\n!out/keep\n");
    h.seal();
    refused_early(&h, &["-o", "proj/ctx/out", "proj/ctx"], &inside("out"));

    // Left out by .dockerignore: written, and never read by the next build.
    h.sb.write("proj/ctx/.dockerignore", "out\n");
    std::fs::create_dir(h.sb.dir.path().join("proj/ctx/out")).unwrap();
    h.seal();
    for _ in 0..2 {
        build_ok(&h, &["-o", "proj/ctx/out", "proj/ctx"]);
    }
    let src = h.sb.dir.path().join("proj/ctx/out/src");
    assert_eq!(names(&src), [".dockerignore", "Dockerfile", "main.rs"]);
    assert_no_temporaries(&h);
    h.verify(&["proj/ctx/out"]);
}

#[test]
fn output_into_the_current_directory_leaves_no_temporary_behind() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    h.sb.write("ctx/a.txt", "a\n");
    h.sb.write("here/notes.txt", "notes\n");
    std::fs::create_dir(h.sb.dir.path().join("layout-here")).unwrap();
    h.seal();
    let ctx = h.sb.dir.path().join("ctx");
    for (dir, output) in [("here", "."), ("layout-here", "type=oci,dest=.")] {
        let out = h
            .kiln()
            .current_dir(h.sb.dir.path().join(dir))
            .args(["build", "--progress", "plain", "-t", "a:1", "-o", output])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(out.status.success(), "-o {output}: {}", stderr(&out));
    }
    assert_eq!(names(&h.sb.dir.path().join("here")), ["a.txt", "notes.txt"]);
    assert_eq!(read_string(&h.sb.dir.path().join("here/a.txt")), "a\n");
    assert_eq!(
        oci::read(&h.sb.dir.path().join("layout-here"), Some("1")).manifest_digest,
        oci::read(&h.sb.root(), Some("a:1")).manifest_digest
    );
    assert_no_temporaries(&h);
    h.verify(&["here", "layout-here"]);
}

/// Bytes that do not compress: a xorshift stream.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_failed_export_removes_what_it_added_and_leaves_no_temporary() {
    // Mounting a tmpfs needs root.
    if !is_root() {
        assert!(std::env::var_os("KILN_REQUIRE_PEERS").is_none(), "the full-disk case needs root to mount a tmpfs");
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt big /\n");
    h.sb.write("ctx/a.txt", "written first\n");
    h.sb.write("ctx/big", noise(24 << 20));
    h.sb.write("ctx/small/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    h.sb.write("ctx/small/a.txt", "a\n");
    // The outputs go to a 16 MiB tmpfs: the 24 MiB file does not fit.
    let disk = h.sb.dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "kiln-full-output"]).arg(&disk).status();
    assert!(mounted.unwrap().success(), "mount a tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());
    // A layout already holding an image, which must keep it.
    build_ok(&h, &["-t", "small:1", "-o", "type=oci,dest=disk/kept", "ctx/small"]);
    let kept = index_entries(&disk.join("kept"));
    let blobs_before = names(&disk.join("kept/blobs/sha256"));
    h.seal();
    for (output, message) in [
        ("type=oci,dest=disk/new", "error: output disk/new: cannot write "),
        ("type=oci,dest=disk/kept", "error: output disk/kept: cannot write "),
        ("type=oci-archive,dest=disk/image.tar", "error: output disk/image.tar: cannot write "),
        ("type=local,dest=disk/files", "error: output disk/files: cannot write "),
    ] {
        let out = h.run(&["build", "--progress", "plain", "-t", "big:1", "-o", output, "ctx"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{output}: {err}");
        assert!(err.contains(message) && err.contains("No space left on device"), "{output}: {err}");
        assert_no_temporaries(&h);
    }
    // The new layout and the archive are gone; the old layout is as it was; the local
    // output holds the file written before the disk filled, and nothing half-written.
    assert_eq!(names(&disk), ["files", "kept"]);
    assert_eq!(index_entries(&disk.join("kept")), kept);
    assert_eq!(names(&disk.join("kept/blobs/sha256")), blobs_before);
    assert_eq!(names(&disk.join("files")), ["a.txt"]);
    assert_eq!(read_string(&disk.join("files/a.txt")), "written first\n");
    h.verify(&["disk"]);
}

/// Start `kiln ARGS`, wait until `ready()` says the export is under way, press Ctrl-C (one
/// SIGINT), and wait for kiln to end: (its status, its stderr).
fn interrupt_export(h: &Hostile, args: &[&str], ready: impl Fn() -> bool) -> (ExitStatus, String) {
    let mut child =
        h.kiln().args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = drain(child.stderr.take().unwrap());
    let err = move || String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("kiln ended ({status}) before its export was under way:\n{}", err());
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the export never started");
        if ready() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, "INT");
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("kiln did not stop within a minute of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, err())
}

#[test]
fn ctrl_c_during_a_local_export_leaves_whole_files_and_no_temporary() {
    // A 6 GiB sparse file takes seconds to copy, and no disk space.
    let size: u64 = 6 << 30;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_path("sparse").unwrap();
    let gnu = header.as_gnu_mut().unwrap();
    gnu.sparse[0].set_offset(size - 4096);
    gnu.sparse[0].set_length(4096);
    gnu.set_real_size(size);
    header.set_size(4096);
    header.set_cksum();
    let mut layer = header.as_bytes().to_vec();
    layer.extend_from_slice(&[b'x'; 4096]);
    layer.extend_from_slice(&[0; 1024]);
    let mut h = Hostile::new();
    layout_with_layer(&h.sb.dir.path().join("base"), &layer, "sparse");
    h.sb.write("ctx/Dockerfile", "FROM sparse-base\nCOPY Dockerfile /\n");
    h.seal();
    let out = h.sb.dir.path().join("out");
    // `Dockerfile` is written first (name order), then the long copy begins.
    let ready = || out.join("Dockerfile").exists() || !temporaries(h.sb.dir.path()).is_empty();
    let (status, err) = interrupt_export(
        &h,
        &[
            "build",
            "--progress",
            "plain",
            "--build-context",
            "sparse-base=oci-layout://base:sparse",
            "-o",
            "out",
            "ctx",
        ],
        ready,
    );
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("error: output out: interrupted; the files written so far are whole; the rest were not written"),
        "{err}"
    );
    assert!(err.contains("the build was interrupted; nothing was tagged"), "{err}");
    assert_eq!(names(&out), ["Dockerfile"]);
    assert_no_temporaries(&h);
    h.verify(&["out"]);
}

#[test]
fn ctrl_c_during_an_oci_export_leaves_the_destination_as_it_was() {
    // A 256 MiB layer of noise, stored uncompressed in its gzip stream: seconds to copy.
    let data = noise(256 << 20);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_path("noise").unwrap();
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut tar_bytes = header.as_bytes().to_vec();
    tar_bytes.extend_from_slice(&data);
    tar_bytes.extend_from_slice(&[0; 1024]);
    drop(data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let blob = gz.finish().unwrap();
    let diff_id = sha256_hex(&tar_bytes);
    drop(tar_bytes);
    let mut h = Hostile::new();
    layout_with_blob(&h.sb.dir.path().join("base"), &blob, &diff_id, "noise");
    drop(blob);
    h.sb.write("ctx/Dockerfile", "FROM noise-base\nCOPY Dockerfile /\n");
    h.seal();
    let layout = h.sb.dir.path().join("layout");
    let ready = || layout.join("oci-layout").exists() || !temporaries(h.sb.dir.path()).is_empty();
    let args = [
        "build",
        "--progress",
        "plain",
        "--build-context",
        "noise-base=oci-layout://base:noise",
        "-t",
        "noise:1",
        "-o",
        "type=oci,dest=layout",
        "ctx",
    ];
    let (status, err) = interrupt_export(&h, &args, ready);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("error: output layout: interrupted; the destination is as it was"), "{err}");
    assert!(!layout.exists(), "the new layout was removed: {:?}", names(&layout));
    assert_no_temporaries(&h);
    h.verify(&[]);
}
