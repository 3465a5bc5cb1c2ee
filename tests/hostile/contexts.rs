//! Build contexts, `.dockerignore` files and ADDed archives written to reach the host or
//! stall the build: links out of the context, FIFOs and sockets, unreadable files, a million
//! files, names of 255 bytes, paths deeper than PATH_MAX, names that are not UTF-8, archive
//! entries aimed outside the image, and ignore files of 100,000 patterns or of one pattern a
//! megabyte long, and files rewritten while the build reads them. Each builds (nothing from
//! outside the context in the image, and the cache never serves other bytes than its key
//! names) or ends in the error a user sees, naming the file and the way out; none panics or
//! hangs.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tar::{EntryType, Header};

use super::Hostile;
use crate::support::{DEADLINE, is_root, mkfifo, read, run_within, sh, stderr};

/// A sandbox with `ctx/seed` and one build file per case, `df/NAME`, holding
/// `FROM scratch` and the case's instructions. Not sealed: add to `ctx/` first.
fn sandbox(cases: &[(&str, &str)]) -> Hostile {
    let h = Hostile::new();
    h.sb.write("ctx/seed", "seed\n");
    for (name, steps) in cases {
        h.sb.write(&format!("df/{name}"), format!("FROM scratch\n{steps}\n"));
    }
    h
}

fn ctx(h: &Hostile) -> PathBuf {
    h.sb.dir.path().join("ctx")
}

/// `kiln build --progress plain -f df/CASE ARGS ctx`, under [`DEADLINE`].
fn build(h: &Hostile, case: &str, args: &[&str]) -> (Output, Duration) {
    let mut cmd = h.kiln();
    cmd.args(["build", "--progress", "plain", "-f", &format!("df/{case}")]).args(args).arg("ctx");
    cmd.stdin(Stdio::null());
    run_within(cmd, DEADLINE)
}

/// Build CASE into `out-CASE` and return stderr; the build must succeed.
fn build_out(h: &Hostile, case: &str) -> (String, Duration) {
    let dest = format!("type=local,dest=out-{case}");
    let (out, took) = build(h, case, &["-o", &dest]);
    let err = stderr(&out);
    assert!(out.status.success(), "case {case} failed:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    (err, took)
}

fn out_path(h: &Hostile, case: &str, rel: &str) -> PathBuf {
    h.sb.dir.path().join(format!("out-{case}")).join(rel)
}

/// Every regular file under `dir` (links not followed) holds nothing from the canary.
fn assert_nothing_from_the_canary(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let text = std::fs::read(&path).unwrap();
                let text = String::from_utf8_lossy(&text);
                assert!(
                    !text.contains("host secret") && !text.contains("host file"),
                    "{} came from the host",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn symlinks_out_of_the_context_are_copied_as_links_never_followed() {
    let cases = [
        ("abs", "COPY abs /x"),
        ("abs-slash", "COPY abs/ /x"),
        ("abs-inside", "COPY abs/secret /x"),
        ("abs-file", "COPY absfile /x"),
        ("rel", "COPY rel /x"),
        ("rel-canary", "COPY relcanary/secret /x"),
        ("climb", "COPY sub/climb/etc/passwd /x"),
        ("wildcard", "COPY abs* /x/"),
        ("all", "COPY . /"),
        ("sub", "COPY sub /s"),
    ];
    let mut h = sandbox(&cases);
    let canary = h.canary().to_path_buf();
    let c = ctx(&h);
    symlink(&canary, c.join("abs")).unwrap();
    symlink(canary.join("secret"), c.join("absfile")).unwrap();
    symlink("../../..", c.join("rel")).unwrap();
    // The canary by a relative path: up to / from ctx, then down.
    let ups = "../".repeat(c.components().count() - 1);
    let relcanary = format!("{ups}{}", canary.strip_prefix("/").unwrap().display());
    symlink(&relcanary, c.join("relcanary")).unwrap();
    std::fs::create_dir(c.join("sub")).unwrap();
    symlink("../".repeat(40), c.join("sub/climb")).unwrap();
    h.seal();

    let outside = |link: &str, target: &str| format!("symlink /{link} points outside the build context ({target})");
    let canary_text = canary.display().to_string();
    let refusals = [
        ("abs", format!("COPY abs /x: /abs: {}", outside("abs", &canary_text))),
        ("abs-slash", outside("abs", &canary_text)),
        ("abs-inside", format!("abs/secret: {}", outside("abs", &canary_text))),
        ("abs-file", outside("absfile", &format!("{canary_text}/secret"))),
        ("rel", outside("rel", "../../..")),
        ("rel-canary", outside("relcanary", &relcanary)),
        ("climb", outside("sub/climb", &"../".repeat(40))),
        ("wildcard", outside("abs", &canary_text)),
    ];
    for (case, needle) in refusals {
        let (out, _) = build(&h, case, &[]);
        let line = format!("df/{case}:2:1: error: [stage-0 2/2] {}", cases.iter().find(|c| c.0 == case).unwrap().1);
        h.refused(&out, &[&line, &needle]);
    }

    // The context as a whole: the links are copied as links, as Docker does.
    build_out(&h, "all");
    let link = |rel: &str| std::fs::read_link(out_path(&h, "all", rel)).unwrap();
    assert_eq!(link("abs"), canary);
    assert_eq!(link("absfile"), canary.join("secret"));
    assert_eq!(link("rel"), Path::new("../../.."));
    assert_eq!(link("sub/climb"), Path::new(&"../".repeat(40)));
    build_out(&h, "sub");
    assert_eq!(std::fs::read_link(out_path(&h, "sub", "s/climb")).unwrap(), Path::new(&"../".repeat(40)));
    for case in ["all", "sub"] {
        assert_nothing_from_the_canary(&h.sb.dir.path().join(format!("out-{case}")));
    }
    h.verify(&["out-all", "out-sub"]);
}

#[test]
fn fifos_and_sockets_in_the_context_are_skipped() {
    let mut h = sandbox(&[("all", "COPY . /"), ("fifo", "COPY fifo /x"), ("sock", "ADD sock /x")]);
    let c = ctx(&h);
    mkfifo(&c.join("fifo"));
    drop(std::os::unix::net::UnixListener::bind(c.join("sock")).unwrap());
    h.seal();

    for (case, what) in [("fifo", "COPY fifo /x: \"fifo\""), ("sock", "ADD sock /x: \"sock\"")] {
        let (out, _) = build(&h, case, &[]);
        h.refused(&out, &[&format!("df/{case}:2:1: error: [stage-0 2/2] {what} not found in the build context")]);
    }
    let (_, took) = build_out(&h, "all");
    eprintln!("a context with FIFOs and a socket built in {took:?}");
    let mut names: Vec<String> = std::fs::read_dir(out_path(&h, "all", ""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["seed"]);
    h.verify(&["out-all"]);
}

#[test]
fn an_ignore_file_that_is_a_fifo_is_an_error_not_a_hang() {
    // Reading an ignore file that is a FIFO would wait for a writer forever; the shared one and
    // the build-file specific one are both refused by name, before anything is built.
    for ignore in ["ctx/.dockerignore", "df/all.dockerignore"] {
        let mut h = sandbox(&[("all", "COPY . /")]);
        mkfifo(&h.sb.dir.path().join(ignore));
        h.seal();
        let (out, took) = build(&h, "all", &[]);
        assert!(took < Duration::from_secs(60), "kiln waited on the FIFO for {took:?}");
        h.refused(&out, &[ignore, "is not a regular file (it is a FIFO); point kiln at a file"]);
    }
}

/// `kiln` as the unprivileged user 65534 (through setpriv), when the tests run as root:
/// the sandbox is handed to that user first. `None` when that is not possible.
fn kiln_as_nobody(h: &Hostile) -> Option<Command> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|p| Path::new(p).exists())?;
    sh(h.sb.dir.path(), "chown -R 65534:65534 .");
    // The suite's compile cache is the test user's: that user keeps compiled modules in the
    // store it was handed, as without KILN_COMPILE_CACHE.
    let mut inner = h.kiln();
    inner.env_remove("KILN_COMPILE_CACHE");
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(inner.get_program());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(h.sb.dir.path());
    Some(cmd)
}

#[test]
fn unreadable_files_and_directories_are_named_with_the_way_out() {
    let mut h = sandbox(&[("seed", "COPY seed /"), ("ignored", "COPY seed /")]);
    let c = ctx(&h);
    std::fs::write(c.join("secret"), "private\n").unwrap();
    std::fs::create_dir(c.join("locked")).unwrap();
    std::fs::write(c.join("locked/inside"), "private\n").unwrap();
    h.sb.write("df/ignored.dockerignore", "secret\nlocked\n");
    // Root reads any file: run kiln as an unprivileged user then.
    let as_nobody = is_root();
    if as_nobody && kiln_as_nobody(&h).is_none() {
        eprintln!("NOTE: running as root without setpriv: unreadable files cannot be tested");
        return;
    }
    std::fs::set_permissions(c.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    h.seal();
    let kiln = |h: &Hostile, case: &str| -> Output {
        let mut cmd = if as_nobody { kiln_as_nobody(h).unwrap() } else { h.kiln() };
        cmd.args(["build", "--progress", "plain", "-f", &format!("df/{case}"), "ctx"]);
        run_within(cmd, DEADLINE).0
    };
    // Before: a file only its owner may read failed halfway through the COPY that used it,
    // as "write /secret: Permission denied". Now the walk names it, and the COPY need not
    // touch it at all (Docker refuses it too).
    let out = kiln(&h, "seed");
    h.refused(
        &out,
        &["error: cannot read ctx/secret: Permission denied (os error 13); make it readable, or leave it out of the build context with .dockerignore"],
    );
    let out = kiln(&h, "ignored");
    assert!(out.status.success(), "{}", stderr(&out));
    h.verify(&[]);

    std::fs::set_permissions(c.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(c.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    h.seal();
    let out = kiln(&h, "seed");
    h.refused(
        &out,
        &["error: cannot read ctx/locked: Permission denied (os error 13); make it readable, or leave it out of the build context with .dockerignore"],
    );
    let out = kiln(&h, "ignored");
    assert!(out.status.success(), "{}", stderr(&out));
    h.verify(&[]);
    std::fs::set_permissions(c.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_million_files_stop_at_the_context_limit_unless_ignored() {
    let mut h = sandbox(&[("plain", "COPY seed /"), ("ignored", "COPY seed /"), ("except", "COPY . /")]);
    h.sb.write("df/ignored.dockerignore", "d*\n");
    h.sb.write("df/except.dockerignore", "d*\n!d5/f5\n");
    // 1000 directories of 1000 names each: hard links to one empty file per directory (a
    // file has at most 65,000 links on ext4), two threads.
    let c = ctx(&h);
    std::fs::write(c.join("empty"), "").unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for half in 0..2 {
            let c = &c;
            s.spawn(move || {
                for d in (half..1000).step_by(2) {
                    let dir = c.join(format!("d{d}"));
                    std::fs::create_dir(&dir).unwrap();
                    std::fs::write(dir.join("f0"), "").unwrap();
                    for f in 1..1000 {
                        std::fs::hard_link(dir.join("f0"), dir.join(format!("f{f}"))).unwrap();
                    }
                }
            });
        }
    });
    eprintln!("1,000,000 context entries created in {:?}", started.elapsed());
    h.seal();

    let (out, took) = build(&h, "plain", &[]);
    h.refused(
        &out,
        &["error: the build context ctx holds more than 500000 files, directories and links: the limit --max-context-files is 500000; \
           if this is expected, raise it with --max-context-files N or KILN_MAX_CONTEXT_FILES; \
           or leave what the build does not need out with .dockerignore"],
    );
    eprintln!("kiln refused the 1,000,000-entry context in {took:?}");
    let (out, took) = build(&h, "plain", &["--max-context-files", "2000000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("with --max-context-files 2000000 it built in {took:?}");
    let (out, _) = build(&h, "plain", &["--max-context-files", "100"]);
    h.refused(&out, &["holds more than 100 files, directories and links", "--max-context-files is 100"]);

    let (_, took) = build_out(&h, "ignored");
    eprintln!("with the directories ignored it built in {took:?}");
    let (_, took) = build_out(&h, "except");
    eprintln!("with one file re-included from an ignored directory it built in {took:?}");
    let mut found: Vec<String> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(out_path(&h, "except", &rel.to_string_lossy())).unwrap() {
            let entry = entry.unwrap();
            let path = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    assert_eq!(found, ["d5/f5", "empty", "seed"]);
    h.verify(&["out-ignored", "out-except"]);
}

#[test]
fn long_names_deep_paths_and_names_that_are_not_utf8() {
    let mut h = sandbox(&[("all", "COPY . /"), ("deep", "COPY seed /"), ("deep-ignored", "COPY seed /")]);
    let c = ctx(&h);
    let long = "n".repeat(255);
    std::fs::write(c.join(&long), "long\n").unwrap();
    std::fs::create_dir(c.join("x".repeat(255))).unwrap();
    std::fs::write(c.join("x".repeat(255)).join("y".repeat(255)), "nested long\n").unwrap();
    std::fs::write(c.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "not utf-8\n").unwrap();
    std::fs::create_dir(c.join(std::ffi::OsStr::from_bytes(b"baddir\xfe"))).unwrap();
    std::fs::write(c.join(std::ffi::OsStr::from_bytes(b"baddir\xfe/inner")), "inner\n").unwrap();
    // 300 directories deep, within PATH_MAX.
    let chain = "a/".repeat(300);
    std::fs::create_dir_all(c.join(&chain)).unwrap();
    std::fs::write(c.join(&chain).join("f"), "deep\n").unwrap();
    // Deeper than PATH_MAX: made with relative steps by a shell, as no path can name it.
    let deep = h.sb.dir.path().join("deepctx");
    std::fs::create_dir(&deep).unwrap();
    std::fs::write(deep.join("seed"), "seed\n").unwrap();
    let d = "d".repeat(200);
    sh(
        &deep,
        &format!("i=0; while [ $i -lt 21 ]; do mkdir {d} && cd -P {d} || exit 1; i=$((i+1)); done; echo deep > f"),
    );
    h.sb.write("df/deep-ignored.dockerignore", "d*\n");
    h.seal();

    let mut cmd = h.kiln();
    cmd.args(["build", "-f", "df/deep", "deepctx"]);
    let (out, _) = run_within(cmd, DEADLINE);
    h.refused(
        &out,
        &[&format!(
            "error: the build context deepctx holds a path of 4220 bytes, more than the 4095 Linux accepts: {}...{}; leave it out with .dockerignore",
            "d".repeat(60),
            "d".repeat(40)
        )],
    );
    let mut cmd = h.kiln();
    cmd.args(["build", "-f", "df/deep-ignored", "deepctx"]);
    let (out, _) = run_within(cmd, DEADLINE);
    assert!(out.status.success(), "{}", stderr(&out));
    let (err, took) = build_out(&h, "all");
    eprintln!("255-byte names, 300 levels and names that are not UTF-8 built in {took:?}");
    assert_eq!(read(&out_path(&h, "all", &long)), b"long\n");
    assert_eq!(read(&out_path(&h, "all", &format!("{}/{}", "x".repeat(255), "y".repeat(255)))), b"nested long\n");
    assert_eq!(read(&out_path(&h, "all", &format!("{chain}f"))), b"deep\n");
    for name in ["bad\u{FFFD}name", "baddir\u{FFFD}"] {
        assert!(
            err.contains(&format!(
                "skipping ctx/{name}: its name is not UTF-8, which kiln cannot put in an image; rename it, or leave it out with .dockerignore"
            )),
            "{err}"
        );
    }
    let names = std::fs::read_dir(out_path(&h, "all", "")).unwrap().count();
    assert_eq!(names, 4, "seed, the long name, the long directory, a/, and nothing not UTF-8");

    h.verify(&["out-all"]);
}

/// Found by this corpus: a layer's parents were collected once per path and per level
/// (`kiln::layer::layer_items`), cubic in the depth; 2,000 levels (a 4,000 byte path, which
/// Linux accepts) did not finish in 90 s.
#[test]
fn a_context_two_thousand_directories_deep_copies_in_reasonable_time() {
    let mut h = sandbox(&[("all", "COPY . /")]);
    sh(&ctx(&h), "i=0; while [ $i -lt 2000 ]; do mkdir a && cd -P a || exit 1; i=$((i+1)); done; echo deep > f");
    h.seal();
    let (_, took) = build_out(&h, "all");
    eprintln!("2,000 levels built in {took:?}");
    h.verify(&["out-all"]);
}

/// A tar entry written by hand, so that its name and link can be anything (the tar crate
/// refuses `..` and absolute names).
fn entry(tar: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
    let mut header = Header::new_gnu();
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

fn archive(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        entry(&mut tar, name, *kind, link, data);
    }
    tar.into_inner().unwrap()
}

#[test]
fn add_archives_aimed_outside_stay_inside_the_image() {
    use EntryType::{Link, Regular, Symlink};
    let mut h = sandbox(&[
        ("dotdot", "ADD dotdot.tar /app/"),
        ("dotdot-gz", "ADD dotdot.tar.gz /app/"),
        ("abs", "ADD abs.tar /app/"),
        ("through-root", "ADD root.tar /app/"),
        ("through-up", "ADD up.tar /app/"),
        ("hard-out", "ADD hard-out.tar /app/"),
        ("hard-canary", "ADD hard-canary.tar /app/"),
        ("whiteout-up", "COPY seed /seed\nADD whiteout.tar /app/"),
        ("whiteout-opq", "COPY seed /app/seed\nADD opq.tar /app/"),
    ]);
    let canary = h.canary().to_path_buf();
    let canary_rel = canary.strip_prefix("/").unwrap().display().to_string();
    let c = ctx(&h);
    let dotdot = archive(&[("../../escape", Regular, "", b"dotdot\n")]);
    std::fs::write(c.join("dotdot.tar"), &dotdot).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &dotdot).unwrap();
    std::fs::write(c.join("dotdot.tar.gz"), gz.finish().unwrap()).unwrap();
    let planted = format!("{}/planted", canary.display());
    std::fs::write(c.join("abs.tar"), archive(&[(&planted, Regular, "", b"abs\n")])).unwrap();
    let through = format!("root/{canary_rel}/through");
    std::fs::write(c.join("root.tar"), archive(&[("root", Symlink, "/", b""), (&through, Regular, "", b"through\n")]))
        .unwrap();
    let up = format!("{}{canary_rel}", "../".repeat(8));
    std::fs::write(c.join("up.tar"), archive(&[("up", Symlink, &up, b""), ("up/x", Regular, "", b"up\n")])).unwrap();
    std::fs::write(c.join("hard-out.tar"), archive(&[("h", Link, "../../../../etc/passwd", b"")])).unwrap();
    let secret = format!("{}/secret", canary.display());
    std::fs::write(c.join("hard-canary.tar"), archive(&[("h", Link, &secret, b"")])).unwrap();
    std::fs::write(c.join("whiteout.tar"), archive(&[("../.wh.seed", Regular, "", b"")])).unwrap();
    let opq = archive(&[(".wh..wh..opq", Regular, "", b""), (".wh.seed", Regular, "", b"w\n")]);
    std::fs::write(c.join("opq.tar"), opq).unwrap();
    h.seal();

    let (out, _) = build(&h, "through-up", &[]);
    h.refused(
        &out,
        &[
            "df/through-up:2:1: error: [stage-0 2/2] ADD up.tar /app/: layer archive up.tar: entry up/x: ",
            "no such file or directory",
        ],
    );
    let (out, _) = build(&h, "hard-out", &[]);
    h.refused(&out, &["layer archive hard-out.tar: entry h: hardlink to /app/etc/passwd which is not a file"]);
    let (out, _) = build(&h, "hard-canary", &[]);
    h.refused(
        &out,
        &[&format!("layer archive hard-canary.tar: entry h: hardlink to /app/{canary_rel}/secret which is not a file")],
    );

    // `..` and absolute names are cleaned into the destination, as Docker's unpacking does.
    build_out(&h, "dotdot");
    assert_eq!(read(&out_path(&h, "dotdot", "app/escape")), b"dotdot\n");
    build_out(&h, "dotdot-gz");
    assert_eq!(read(&out_path(&h, "dotdot-gz", "app/escape")), b"dotdot\n");
    build_out(&h, "abs");
    assert_eq!(read(&out_path(&h, "abs", &format!("app/{canary_rel}/planted"))), b"abs\n");
    // A link to / is the image's root, as Docker's chrooted unpacking sees it.
    build_out(&h, "through-root");
    assert_eq!(std::fs::read_link(out_path(&h, "through-root", "app/root")).unwrap(), Path::new("/"));
    assert_eq!(read(&out_path(&h, "through-root", &format!("{canary_rel}/through"))), b"through\n");
    // A whiteout cannot climb out of the destination either.
    build_out(&h, "whiteout-up");
    assert_eq!(read(&out_path(&h, "whiteout-up", "seed")), b"seed\n");
    // An archive's whiteouts are plain files, as Docker's ADD writes them: they delete nothing.
    build_out(&h, "whiteout-opq");
    assert_eq!(read(&out_path(&h, "whiteout-opq", "app/seed")), b"seed\n");
    assert_eq!(read(&out_path(&h, "whiteout-opq", "app/.wh.seed")), b"w\n");
    assert!(out_path(&h, "whiteout-opq", "app/.wh..wh..opq").is_file());

    let outs =
        ["dotdot", "dotdot-gz", "abs", "through-root", "whiteout-up", "whiteout-opq"].map(|c| format!("out-{c}"));
    for out in &outs {
        assert_nothing_from_the_canary(&h.sb.dir.path().join(out));
    }
    h.verify(&outs.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn pathological_ignore_files_finish_quickly_with_the_right_result() {
    let mut h = sandbox(&[("many", "COPY . /"), ("stars", "COPY . /"), ("huge", "COPY . /"), ("except", "COPY . /")]);
    let c = ctx(&h);
    for d in 0..10 {
        for f in 0..100 {
            h.sb.write(&format!("ctx/src/d{d}/f{f}.txt"), "x");
        }
    }
    // 100 levels of x/, each with a file `a` and a file `b`.
    let mut dir = c.join("deep");
    for _ in 0..100 {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), "a").unwrap();
        std::fs::write(dir.join("b"), "b").unwrap();
        dir = dir.join("x");
    }
    for rel in ["target/debug/bin", "target/keep", "docs/sub/b/keep.md", "docs/sub/b/drop.md", "docs/top.md"] {
        h.sb.write(&format!("ctx/{rel}"), rel);
    }
    let many: String = (0..100_000).map(|i| format!("pattern{i}/*.tmp\n")).collect();
    h.sb.write("df/many.dockerignore", many);
    h.sb.write("df/stars.dockerignore", "**/**/**/**/**/**/**/**/a\n");
    h.sb.write("df/huge.dockerignore", format!("{}\n{}\n", "a".repeat(1 << 20), "*?".repeat(1 << 19)));
    h.sb.write("df/except.dockerignore", "target\n!target/keep\ndocs\n!docs/sub/b/keep.md\n");
    h.seal();

    let count = |case: &str| {
        let mut files = 0;
        let mut stack = vec![out_path(&h, case, "")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    files += 1;
                }
            }
        }
        files
    };
    // 1,000 in src/, 200 in deep/, 5 more and the seed. (100,000 patterns took 4 minutes
    // over 1,000 files before the matcher skipped patterns by their literal start.)
    let (_, many) = build_out(&h, "many");
    eprintln!("100,000 ignore patterns over 1,206 files built in {many:?}");
    assert_eq!(count("many"), 1206);
    let (_, stars) = build_out(&h, "stars");
    eprintln!("**/**/**/**/**/**/**/**/a over 100 levels built in {stars:?}");
    assert_eq!(count("stars"), 1106);
    assert!(!out_path(&h, "stars", &format!("deep/{}a", "x/".repeat(99))).exists());
    assert!(out_path(&h, "stars", &format!("deep/{}b", "x/".repeat(99))).exists());
    let (_, huge) = build_out(&h, "huge");
    eprintln!("two patterns of a megabyte built in {huge:?}");
    assert_eq!(count("huge"), 1206);
    for took in [many, stars, huge] {
        assert!(took < Duration::from_secs(60), "took {took:?}");
    }
    build_out(&h, "except");
    assert!(out_path(&h, "except", "target/keep").is_file());
    assert!(out_path(&h, "except", "docs/sub/b/keep.md").is_file());
    for gone in ["target/debug", "docs/sub/b/drop.md", "docs/top.md"] {
        assert!(!out_path(&h, "except", gone).exists(), "{gone}");
    }
    h.verify(&["out-many", "out-stars", "out-huge", "out-except"]);

    // Malformed patterns name the file and the line.
    for (text, needle) in [
        ("ok\n\n[abc\n", "error: ctx/.dockerignore:3: bad pattern \"[abc\": unterminated character class '['"),
        ("# comment\n!\n", "error: ctx/.dockerignore:2: bad pattern \"!\": illegal exclusion pattern \"!\""),
        ("[z-a]\n", "error: ctx/.dockerignore:1: bad pattern \"[z-a]\": character range z-a is out of order"),
    ] {
        let mut h = sandbox(&[("copy", "COPY . /")]);
        h.sb.write("ctx/.dockerignore", text);
        h.seal();
        let (out, _) = build(&h, "copy", &[]);
        h.refused(&out, &[needle]);
    }

    // An ignore file linked out of the context is refused, not read (a pattern error would
    // quote the host file) and not skipped (the user meant it to apply).
    let mut h = sandbox(&[("copy", "COPY . /")]);
    symlink(h.canary().join("secret"), ctx(&h).join(".dockerignore")).unwrap();
    h.seal();
    let (out, _) = build(&h, "copy", &[]);
    let err = h.refused(
        &out,
        &["error: ctx/.dockerignore: the ignore file is a symlink that leads outside the build context, and kiln reads nothing outside it; put a copy of the file there instead"],
    );
    assert!(!err.contains("host secret"), "{err}");
}

/// `kiln build --progress plain ARGS ctx` (the default build file: `ctx/Dockerfile`), under
/// [`DEADLINE`].
fn build_default(h: &Hostile, args: &[&str]) -> Output {
    let mut cmd = h.kiln();
    cmd.args(["build", "--progress", "plain"]).args(args).arg("ctx").stdin(Stdio::null());
    run_within(cmd, DEADLINE).0
}

#[test]
fn build_files_in_the_context_are_read_inside_it() {
    // The default Dockerfile linked out of the context is refused, never read: a parse error
    // would quote the host file.
    let mut h = sandbox(&[]);
    symlink(h.canary().join("secret"), ctx(&h).join("Dockerfile")).unwrap();
    h.seal();
    let err = h.refused(
        &build_default(&h, &[]),
        &["error: ctx/Dockerfile: the build file is a symlink that leads outside the build context, and kiln reads nothing outside it; pass the file you mean with -f"],
    );
    assert!(!err.contains("host secret"), "{err}");

    // A link that stays inside the context is followed.
    let mut h = sandbox(&[]);
    h.sb.write("ctx/build/Dockerfile.real", "FROM scratch\nCOPY seed /\n");
    symlink("build/Dockerfile.real", ctx(&h).join("Dockerfile")).unwrap();
    h.seal();
    let out = build_default(&h, &["-t", "linked:1"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A FIFO as the Dockerfile is refused at once, not waited on.
    let mut h = sandbox(&[]);
    mkfifo(&ctx(&h).join("Dockerfile"));
    h.seal();
    h.refused(
        &build_default(&h, &[]),
        &["error: ctx/Dockerfile: the build file is not a regular file (it is a FIFO); point kiln at a file"],
    );

    // Dockerfile.dockerignore linked out of the context: refused, like .dockerignore.
    let mut h = sandbox(&[]);
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY . /\n");
    symlink(h.canary().join("secret"), ctx(&h).join("Dockerfile.dockerignore")).unwrap();
    h.seal();
    let err = h.refused(
        &build_default(&h, &[]),
        &["error: ctx/Dockerfile.dockerignore: the ignore file is a symlink that leads outside the build context, and kiln reads nothing outside it; put a copy of the file there instead"],
    );
    assert!(!err.contains("host secret"), "{err}");

    // A build file the user names with -f is read wherever it is, and so is the ignore file
    // next to it.
    let mut h = sandbox(&[]);
    h.seal();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("Build.df"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(elsewhere.path().join("Build.df.dockerignore"), "seed\n").unwrap();
    let file = elsewhere.path().join("Build.df");
    let out = build_default(&h, &["-f", file.to_str().unwrap(), "-o", "type=local,dest=out-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!h.sb.dir.path().join("out-f/seed").exists(), "the ignore file next to -f applied");
    h.verify(&["out-f"]);
}

/// Every COPY and ADD reads its source twice: for its cache key, then for its layer. A thread
/// swaps the source between two versions of the same size as fast as it can while the build
/// runs; then, with the source held at each version in turn, a build from the cache must give
/// that version everywhere: a cache entry whose layer holds the other version (a key made
/// from one read, a layer from another) is served for the wrong content and shows here.
#[test]
fn a_file_rewritten_during_the_build_never_puts_other_bytes_under_its_cache_key() {
    const STAGES: usize = 24;
    let version = |c: u8| (vec![c; 64 << 10], archive(&[("x", EntryType::Regular, "", &[c; 4096])]));
    let mut h = Hostile::new();
    let mut dockerfile = String::new();
    for i in 0..STAGES {
        dockerfile += &format!("FROM scratch AS copy{i}\nCOPY f /f{i}\nFROM scratch AS add{i}\nADD a.tar /a{i}/\n");
    }
    dockerfile += "FROM scratch\n";
    for i in 0..STAGES {
        dockerfile += &format!("COPY --from=copy{i} /f{i} /\nCOPY --from=add{i} /a{i} /a{i}\n");
    }
    h.sb.write("ctx/Dockerfile", dockerfile);
    let swap = h.sb.dir.path().join("swap");
    std::fs::create_dir_all(&swap).unwrap();
    // Whole versions replace each other (written aside, renamed over): every read sees one
    // version or the other, never a mixture or a short file.
    let context = ctx(&h);
    let put = |c: u8| {
        let (file, tar) = version(c);
        for (name, bytes) in [("f", file), ("a.tar", tar)] {
            std::fs::write(swap.join(name), bytes).unwrap();
            std::fs::rename(swap.join(name), context.join(name)).unwrap();
        }
    };
    put(b'a');
    h.seal();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let (out, swaps) = std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                put(if swaps.is_multiple_of(2) { b'b' } else { b'a' });
                swaps += 1;
            }
            swaps
        });
        let mut cmd = h.kiln();
        cmd.args(["build", "--progress", "plain", "ctx"]).stdin(Stdio::null());
        let (out, _) = run_within(cmd, DEADLINE);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, swapper.join().unwrap())
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(swaps > 10, "the files were swapped {swaps} times during the build");

    for c in [b'a', b'b'] {
        put(c);
        let (file, _) = version(c);
        let dest = format!("type=local,dest=out-{}", c as char);
        let mut cmd = h.kiln();
        cmd.args(["build", "--progress", "plain", "-o", &dest, "ctx"]).stdin(Stdio::null());
        let (out, _) = run_within(cmd, DEADLINE);
        assert!(out.status.success(), "{}", stderr(&out));
        let out_dir = h.sb.dir.path().join(format!("out-{}", c as char));
        for i in 0..STAGES {
            let copied = read(&out_dir.join(format!("f{i}")));
            assert!(
                copied == file,
                "COPY f in stage copy{i}: the cache gave the other version for version {}",
                c as char
            );
            let added = read(&out_dir.join(format!("a{i}/x")));
            assert!(
                added == [c; 4096],
                "ADD a.tar in stage add{i}: the cache gave the other version for version {}",
                c as char
            );
        }
    }
    h.verify(&["ctx", "swap", "out-a", "out-b"]);
}
