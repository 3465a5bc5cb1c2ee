//! Stores and signals: a store (or a KILN_COMPILE_CACHE) another user could write to, what a
//! killed or signalled kiln leaves in the store's `tmp/`, and a USER that names nobody.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::Hostile;
use crate::support::{is_root, signal, stderr};

/// Half-written files in the store's `tmp/`.
fn temporaries(h: &Hostile) -> Vec<String> {
    std::fs::read_dir(h.sb.root().join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("blob-") || n.starts_with(".write-") || n.starts_with(".new-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_store_others_can_write_is_refused() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    assert!(h.run(&["images"]).status.success());
    let root = h.sb.root();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    h.seal();
    let out = h.run(&["build", "-t", "x:1", "ctx"]);
    h.refused(
        &out,
        &[&format!(
            "kiln's store is not safe to use: {} can be written by every user, so another user could change the images and cached steps kiln builds from; run `chmod -R o-w {}`",
            root.display(),
            root.display()
        )],
    );
    // A part of the store, too.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("blobs/sha256"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = h.run(&["images"]);
    h.refused(&out, &["blobs/sha256 can be written by every user"]);
    std::fs::set_permissions(root.join("blobs/sha256"), std::fs::Permissions::from_mode(0o755)).unwrap();

    // Owned by another user (only root can make one here).
    if is_root() {
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        let out = h.run(&["images"]);
        h.refused(
            &out,
            &[
                "belongs to user 65534 (kiln runs as user 0)",
                "give kiln a store of your own with --root DIR or KILN_HOME",
            ],
        );
        std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
    }
    assert!(h.run(&["images"]).status.success());
}

#[test]
fn what_a_killed_kiln_left_in_tmp_goes_at_the_next_start_but_live_writes_stay() {
    let h = Hostile::new();
    assert!(h.run(&["images"]).status.success());
    let tmp = h.sb.root().join("tmp");
    // A blob a killed kiln was writing: nobody holds its lock.
    std::fs::write(tmp.join("blob-killed"), "half a blob").unwrap();
    std::fs::write(tmp.join(".write-killed"), "half an index").unwrap();
    // One another kiln is writing right now: locked.
    let live = std::fs::File::create(tmp.join("blob-live")).unwrap();
    live.lock().unwrap();
    assert!(h.run(&["images"]).status.success());
    assert_eq!(temporaries(&h), ["blob-live"]);
    drop(live);
    assert!(h.run(&["images"]).status.success());
    assert!(temporaries(&h).is_empty(), "{:?}", temporaries(&h));
}

#[test]
fn sigterm_stops_a_build_and_leaves_nothing_half_written() {
    let mut h = Hostile::new();
    // A layer big enough that its blob is being written for a while.
    let big = h.sb.dir.path().join("ctx/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&big).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut writer = std::io::BufWriter::new(file);
    for _ in 0..(384 << 20) / 8 {
        // Incompressible, so that gzip takes its time.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::io::Write::write_all(&mut writer, &seed.to_le_bytes()).unwrap();
    }
    drop(writer);
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY big /big\n");
    h.seal();
    let mut child = h
        .kiln()
        .args(["build", "--progress", "plain", "-t", "big:1", "ctx"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while temporaries(&h).iter().all(|n| !n.starts_with("blob-")) {
        assert!(started.elapsed() < Duration::from_secs(120), "no blob was ever being written");
        assert!(child.try_wait().unwrap().is_none(), "the build ended before it was signalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(signal(&child, "TERM"));
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("nothing was tagged"), "{err}");
    assert!(temporaries(&h).is_empty(), "left behind: {:?}", temporaries(&h));
    h.verify(&[]);
}

#[test]
fn a_user_nobody_knows_is_named_as_user() {
    let h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nUSER ../../root\nWORKDIR /app\n");
    let out = h.run(&["build", "ctx"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("unknown user \"../../root\" in USER: not in the stage's /etc/passwd"), "{err}");
    assert!(!err.contains("--chown"), "{err}");
}

#[test]
fn a_compile_cache_is_made_private_used_instead_of_the_stores_and_refused_when_others_can_write_it() {
    let mut h = Hostile::new();
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let outside = tempfile::tempdir().unwrap();
    let cache = outside.path().join("made/compiled");
    h.seal();
    let build = |h: &Hostile| h.kiln().env("KILN_COMPILE_CACHE", &cache).args(["build", "-t", "x:1", "ctx"]).output();
    let out = build(&h).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    h.verify(&[]);
    // Made private, and the frontend compiled there rather than in the store.
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the compile cache is made with mode {mode:o}");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert!(!entries.is_empty(), "nothing was compiled into KILN_COMPILE_CACHE");
    let in_store = std::fs::read_dir(h.sb.root().join("compiled")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(in_store, 0, "the store's compiled/ was used too");

    // Writable by its group or by everyone: refused, with the way out.
    for (mode, problem) in [(0o770, "can be written by its group"), (0o777, "can be written by every user")] {
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = build(&h).unwrap();
        h.refused(
            &out,
            &[&format!(
                "kiln's store is not safe to use: {} (KILN_COMPILE_CACHE, the compiled WebAssembly kiln runs) {problem}",
                cache.display()
            ), &format!("run `chmod go-w {}`", cache.display())],
        );
    }
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Owned by another user (only root can make one here).
    if is_root() {
        std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
        let out = build(&h).unwrap();
        h.refused(
            &out,
            &["belongs to user 65534 (kiln runs as user 0)", "point KILN_COMPILE_CACHE at a directory of your own"],
        );
        std::os::unix::fs::chown(&cache, Some(0), Some(0)).unwrap();
    }
    let out = build(&h).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
