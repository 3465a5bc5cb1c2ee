//! `kiln build`: multi-stage builds end to end, asserted on the images they produce.

use serde_json::json;
use tar::EntryType;

use crate::oci::{self, check_store, validate};
use crate::support::{Sandbox, run, stderr, stdout, workspace};

fn build_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = run(sb.kiln().arg("build").args(["--progress", "plain"]).args(args));
    assert!(out.status.success(), "kiln build {args:?} failed:\n{}", stderr(&out));
    stderr(&out)
}

fn build_fails(sb: &Sandbox, args: &[&str]) -> String {
    let out = run(sb.kiln().arg("build").args(["--progress", "plain"]).args(args));
    assert_eq!(out.status.code(), Some(1), "kiln build {args:?} should fail:\n{}", stderr(&out));
    check_store(&sb.root());
    stderr(&out)
}

#[test]
fn the_static_site_example_builds_into_a_valid_image() {
    let sb = Sandbox::new();
    let example = workspace().join("examples/static-site");
    let log = build_ok(&sb, &["-t", "site:1", "--build-arg", "VERSION=2.5", example.to_str().unwrap()]);
    assert!(!log.contains("drafts"), "the unneeded stage is not built:\n{log}");
    assert!(log.contains("[content 3/4] COPY site/ ./site/"), "{log}");

    let image = oci::read(&sb.root(), Some("site:1"));
    validate(&sb.root(), "site:1");
    let c = &image.config["config"];
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], "2.5");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["User"], "65534:65534");
    assert_eq!(c["WorkingDir"], "/srv/www");
    assert_eq!(c["Entrypoint"], json!(["/bin/httpd"]));
    assert_eq!(c["Cmd"], json!(["-f", "-p", "8080", "-h", "/srv/www"]));
    assert_eq!(c["Env"], json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]));
    assert_eq!(image.config["created"], "1970-01-01T00:00:00Z");

    // Only the final stage's two COPY layers: the site, then the config file.
    assert_eq!(image.layers.len(), 2);
    assert_eq!(
        image.paths(0),
        ["srv/", "srv/www/", "srv/www/css/", "srv/www/css/style.css", "srv/www/index.html", "srv/www/robots.txt"]
    );
    let robots = image.entry(0, "srv/www/robots.txt");
    assert_eq!((robots.mode, robots.uid, robots.gid), (0o644, 0, 0));
    assert_eq!(robots.data, b"User-agent: *\nAllow: /\n");
    assert_eq!(image.paths(1), ["etc/", "etc/site.conf"]);
    assert_eq!(image.entry(1, "etc/site.conf").data, b"version=2.5\nroot=/srv/www\n");

    let history = image.history();
    assert_eq!(history.iter().filter(|(_, empty)| !empty).count(), 2);
    assert!(history.contains(&("COPY /src/site /srv/www".to_string(), false)), "{history:?}");
    assert!(history.iter().any(|(by, empty)| by == "EXPOSE 8080/tcp" && *empty));

    let images = stdout(&run(sb.kiln().arg("images")));
    assert!(images.lines().next().unwrap().starts_with("REPOSITORY"), "{images}");
    assert!(images.lines().any(|l| l.starts_with("site") && l.contains(" 1 ")), "{images}");
    let history = stdout(&run(sb.kiln().args(["history", "site:1"])));
    assert!(history.contains("COPY /etc/site.conf /etc/"), "{history}");
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout(&run(sb.kiln().args(["inspect", "site:1"])))).unwrap();
    assert_eq!(inspect[0]["RepoTags"], json!(["site:1"]));
    assert_eq!(inspect[0]["Config"]["config"]["User"], "65534:65534");
}

#[test]
fn target_stages_and_unneeded_bases() {
    let sb = Sandbox::new();
    sb.write("ctx/a.txt", "a");
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch AS base\nCOPY a.txt /a.txt\n\
         FROM no-such-image:1 AS broken\nCOPY a.txt /b\n\
         FROM base AS final\nCOPY a.txt /c.txt\n",
    );
    // `broken` is not needed by the default target, so its image is never looked up.
    build_ok(&sb, &["-t", "t:final", "ctx"]);
    let image = oci::read(&sb.root(), Some("t:final"));
    assert_eq!(image.layers.len(), 2, "FROM base carries base's layer");
    assert_eq!(image.paths(0), ["a.txt"]);
    assert_eq!(image.paths(1), ["c.txt"]);
    validate(&sb.root(), "t:final");

    build_ok(&sb, &["-t", "t:base", "--target", "base", "ctx"]);
    assert_eq!(oci::read(&sb.root(), Some("t:base")).layers.len(), 1);

    let err = build_fails(&sb, &["-t", "t:broken", "--target", "broken", "ctx"]);
    assert!(err.contains("Dockerfile:3:1: error:"), "{err}");
    assert!(err.contains("no-such-image:1"), "{err}");
    assert!(!stdout(&run(sb.kiln().arg("images"))).contains("broken"));

    let err = build_fails(&sb, &["--target", "nope", "ctx"]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn named_contexts_stand_in_for_images_directories_and_stages() {
    let sb = Sandbox::new();
    sb.write("one/file.txt", "from one");
    sb.write("one/Dockerfile", "FROM scratch\nCOPY file.txt /data/file.txt\n");
    let layout = sb.dir.path().join("layout");
    build_ok(&sb, &["-t", "one:v1", "-o", &format!("type=oci,dest={}", layout.display()), "one"]);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();

    // A directory: a base (its files are the first layer, its .dockerignore applies) and a
    // COPY --from source, named relative to the current directory as buildx does.
    sb.write("assets/logo.txt", "logo");
    sb.write("assets/secret.txt", "left out");
    sb.write("assets/.dockerignore", "secret.txt\n");
    sb.write("dir/Dockerfile", "FROM assets\nCOPY --from=assets logo.txt /copied.txt\n");
    let image_id = |args: &[&str]| {
        let out = run(sb.kiln().args(["build", "-q"]).args(args));
        assert!(out.status.success(), "kiln build {args:?} failed:\n{}", stderr(&out));
        stdout(&out)
    };
    let id = image_id(&["-t", "dir", "--build-context", "assets=assets", "dir"]);
    let image = oci::read(&sb.root(), Some("dir:latest"));
    assert_eq!(image.paths(0), [".dockerignore", "logo.txt"]);
    assert_eq!(image.entry(0, "logo.txt").uid, 0, "files of a local context are root-owned");
    assert_eq!(image.entry(1, "copied.txt").data, b"logo");
    validate(&sb.root(), "dir:latest");
    assert_eq!(image_id(&["--build-context", "assets=assets", "dir"]), id, "the same inputs, the same image");
    sb.write("assets/logo.txt", "new logo");
    assert_ne!(image_id(&["--build-context", "assets=assets", "dir"]), id, "a changed file, a new image");

    // A stage of the same name is replaced: its instructions never run.
    sb.write("stage/Dockerfile", "FROM scratch AS base\nCOPY no-such-file /\nFROM base\nLABEL on=base\n");
    build_ok(&sb, &["-t", "stage", "--build-context", "base=docker-image://one:v1", "stage"]);
    let image = oci::read(&sb.root(), Some("stage:latest"));
    assert_eq!(image.entry(0, "data/file.txt").data, b"from one");

    // An image name matches in its familiar form; an OCI layout is picked by digest.
    sb.write(
        "names/Dockerfile",
        "FROM docker.io/library/pinned:latest\nCOPY --from=layout /data/file.txt /again.txt\n",
    );
    let by_digest = format!("layout=oci-layout://{}@{digest}", layout.display());
    build_ok(
        &sb,
        &["-t", "names", "--build-context", "pinned=docker-image://one:v1", "--build-context", &by_digest, "names"],
    );
    let image = oci::read(&sb.root(), Some("names:latest"));
    assert_eq!(image.entry(1, "again.txt").data, b"from one");

    // Flags kiln cannot use are usage errors, before any work.
    for (flag, message) in [
        ("base", "--build-context \"base\": write NAME=VALUE"),
        ("Base=assets", "is not a valid context name"),
        ("src=https://example.com/src.tar", "git, http and target: contexts are not supported"),
    ] {
        let out = run(sb.kiln().args(["build", "--build-context", flag, "dir"]));
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{flag}: {}", stderr(&out));
    }
    // A directory that is not there is named with the flag.
    let err = build_fails(&sb, &["--build-context", "assets=no-such-dir", "dir"]);
    assert!(err.contains("--build-context assets=no-such-dir: cannot read no-such-dir"), "{err}");
    check_store(&sb.root());
}

#[test]
fn copy_from_stage_index_store_image_and_oci_layout() {
    let sb = Sandbox::new();
    sb.write("one/file.txt", "from one");
    sb.write("one/Dockerfile", "FROM scratch\nCOPY file.txt /data/file.txt\nENV FROM_ONE=yes\n");
    let layout = sb.dir.path().join("layout");
    build_ok(&sb, &["-t", "one:v1", "-o", &format!("type=oci,dest={}", layout.display()), "one"]);
    validate(&layout, "v1");

    sb.write("two/x", "x");
    sb.write(
        "two/Dockerfile",
        "FROM scratch\nCOPY x /x\n\
             FROM layout AS from-layout\n\
             FROM one:v1\n\
             COPY --from=0 /x /from-index\n\
             COPY --from=layout /data/file.txt /from-layout.txt\n\
             COPY --from=one:v1 /data /copied-dir\n",
    );
    let layout_context = format!("layout=oci-layout://{}:v1", layout.display());
    build_ok(&sb, &["-t", "two", "--build-context", &layout_context, "two"]);
    let image = oci::read(&sb.root(), Some("two:latest"));
    validate(&sb.root(), "two:latest");
    assert_eq!(image.layers.len(), 4, "one:v1's layer plus three COPY layers");
    assert_eq!(image.entry(1, "from-index").data, b"x");
    assert_eq!(image.entry(2, "from-layout.txt").data, b"from one");
    assert_eq!(image.paths(3), ["copied-dir/", "copied-dir/file.txt"]);
    assert_eq!(image.config["config"]["Env"][1], "FROM_ONE=yes", "the base image's ENV is kept");

    // FROM an OCI layout.
    sb.write("three/Dockerfile", "FROM layout\nLABEL three=3\n");
    build_ok(&sb, &["-t", "three", "--build-context", &layout_context, "three"]);
    let image = oci::read(&sb.root(), Some("three:latest"));
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.entry(0, "data/file.txt").data, b"from one");
    validate(&sb.root(), "three:latest");
}

#[test]
fn dockerignore_chown_chmod_and_wildcards() {
    let sb = Sandbox::new();
    sb.write("ctx/app/main.js", "main");
    sb.write("ctx/app/util.js", "util");
    sb.write("ctx/app/notes.md", "notes");
    sb.write("ctx/secret.env", "TOKEN=1");
    sb.write("ctx/.dockerignore", "secret.env\n**/*.md\n");
    sb.write("ctx/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
    sb.write("ctx/group", "root:x:0:\nstaff:x:50:\n");
    std::os::unix::fs::symlink("app/main.js", sb.dir.path().join("ctx/link.js")).unwrap();
    std::os::unix::fs::symlink("main.js", sb.dir.path().join("ctx/app/alias.js")).unwrap();
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch\n\
         COPY passwd group /etc/\n\
         COPY --chown=app:staff --chmod=700 app /srv/app\n\
         COPY --chown=1234 app/*.js /js/\n\
         COPY link.js /linked.js\n\
         COPY --exclude=util.js app /excluded/\n\
         COPY --parents app/main.js /p/\n",
    );
    build_ok(&sb, &["-t", "perm", "ctx"]);
    let image = oci::read(&sb.root(), Some("perm:latest"));
    validate(&sb.root(), "perm:latest");
    let main = image.entry(1, "srv/app/main.js");
    assert_eq!((main.mode, main.uid, main.gid), (0o700, 1000, 50));
    assert_eq!(image.entry(1, "srv/app/").uid, 1000);
    let alias = image.entry(1, "srv/app/alias.js");
    assert_eq!(
        (alias.kind, alias.link.as_deref()),
        (EntryType::Symlink, Some("main.js")),
        "links inside a directory stay links"
    );
    assert!(!image.paths(1).iter().any(|p| p.ends_with(".md")), "ignored by .dockerignore");
    let js = image.entry(2, "js/util.js");
    assert_eq!((js.uid, js.gid), (1234, 1234));
    assert_eq!(image.paths(2), ["js/", "js/alias.js", "js/main.js", "js/util.js"]);
    let linked = image.entry(3, "linked.js");
    assert_eq!((linked.kind, linked.data.as_slice()), (EntryType::Regular, &b"main"[..]));
    assert_eq!(image.paths(4), ["excluded/", "excluded/alias.js", "excluded/main.js"]);
    assert_eq!(image.paths(5), ["p/", "p/app/", "p/app/main.js"]);

    let err = build_fails(&sb, &["nonexistent-ctx"]);
    assert!(err.contains("nonexistent-ctx"), "{err}");
}

#[test]
fn every_config_instruction() {
    let sb = Sandbox::new();
    sb.write("base/Dockerfile", "FROM scratch\nCMD [\"base-cmd\"]\nONBUILD LABEL triggered=yes\nENV KEEP=1\n");
    build_ok(&sb, &["-t", "base", "base"]);
    sb.write(
        "ctx/Dockerfile",
        "FROM base\n\
         ENV A=1 B=\"two words\"\n\
         LABEL version=\"1.0\" description=multi\n\
         WORKDIR /app\n\
         WORKDIR sub\n\
         USER 1000:1000\n\
         EXPOSE 80 53/udp\n\
         VOLUME [\"/data\", \"/logs\"]\n\
         STOPSIGNAL SIGTERM\n\
         SHELL [\"/bin/bash\", \"-c\"]\n\
         HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD [\"/check\"]\n\
         ONBUILD COPY . /src\n\
         MAINTAINER someone@example.com\n\
         ARG BUILD_ONLY=1\n\
         ENTRYPOINT [\"/entry\"]\n",
    );
    build_ok(&sb, &["-t", "cfg", "ctx"]);
    let image = oci::read(&sb.root(), Some("cfg:latest"));
    validate(&sb.root(), "cfg:latest");
    let c = &image.config["config"];
    assert_eq!(
        c["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "KEEP=1", "A=1", "B=two words"])
    );
    assert_eq!(c["Labels"], json!({"description": "multi", "version": "1.0", "triggered": "yes"}));
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["ExposedPorts"], json!({"53/udp": {}, "80/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Shell"], json!(["/bin/bash", "-c"]));
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD", "/check"], "Interval": 5_000_000_000u64, "Timeout": 3_000_000_000u64, "Retries": 2})
    );
    assert_eq!(c["OnBuild"], json!(["COPY . /src"]), "the base's trigger ran and was cleared");
    assert_eq!(c["Entrypoint"], json!(["/entry"]));
    assert!(c.get("Cmd").is_none(), "ENTRYPOINT resets the CMD inherited from the base");
    assert_eq!(image.config["author"], "someone@example.com");
    assert!(!c["Env"].to_string().contains("BUILD_ONLY"), "ARG is not persisted");
    // WORKDIR created the directories (as a layer) the first time only.
    let workdir_layers: Vec<_> = image.history().into_iter().filter(|(by, _)| by.starts_with("WORKDIR")).collect();
    assert_eq!(workdir_layers, [("WORKDIR /app".to_string(), false), ("WORKDIR /app/sub".to_string(), false)]);
    assert_eq!(image.paths(0), ["app/"]);
    assert_eq!(image.paths(1), ["app/", "app/sub/"]);
    assert_eq!(image.entry(1, "app/sub/").uid, 0, "created before USER");
    // The base's 3 entries, its ONBUILD trigger, and one per instruction of this stage.
    assert_eq!(image.history().len(), 3 + 1 + 14);
}

#[test]
fn every_output_type() {
    let sb = Sandbox::new();
    sb.write("ctx/bin/tool", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(sb.dir.path().join("ctx/bin/tool"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    sb.write("ctx/Dockerfile", "FROM scratch\nCOPY bin /usr/bin\nCOPY <<EOF /etc/motd\nhello\nEOF\n");
    let dir = sb.dir.path();
    build_ok(
        &sb,
        &[
            "-t",
            "out:1",
            "-o",
            &format!("type=oci,dest={}", dir.join("oci").display()),
            "-o",
            &format!("type=oci-archive,dest={}", dir.join("image.oci.tar").display()),
            "-o",
            &format!("type=docker,dest={}", dir.join("image.docker.tar").display()),
            "-o",
            &format!("type=local,dest={}", dir.join("rootfs").display()),
            "ctx",
        ],
    );
    let from_layout = oci::read(&dir.join("oci"), Some("1"));
    let from_store = oci::read(&sb.root(), Some("out:1"));
    assert_eq!(from_layout.manifest_digest, from_store.manifest_digest);
    validate(&dir.join("oci"), "1");

    for (archive, docker) in [("image.oci.tar", false), ("image.docker.tar", true)] {
        let unpacked = dir.join(format!("{archive}.d"));
        std::fs::create_dir(&unpacked).unwrap();
        tar::Archive::new(std::fs::File::open(dir.join(archive)).unwrap()).unpack(&unpacked).unwrap();
        assert_eq!(oci::read(&unpacked, Some("1")).manifest_digest, from_store.manifest_digest);
        let manifest_json = unpacked.join("manifest.json");
        assert_eq!(manifest_json.is_file(), docker, "{archive}");
        if docker {
            let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest_json).unwrap()).unwrap();
            assert_eq!(doc[0]["RepoTags"], json!(["out:1"]));
            assert_eq!(doc[0]["Layers"].as_array().unwrap().len(), 2);
            for layer in doc[0]["Layers"].as_array().unwrap() {
                assert!(unpacked.join(layer.as_str().unwrap()).is_file());
            }
        }
    }

    let tool = dir.join("rootfs/usr/bin/tool");
    assert_eq!(std::fs::read_to_string(&tool).unwrap(), "#!/bin/sh\necho hi\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&tool).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(std::fs::read_to_string(dir.join("rootfs/etc/motd")).unwrap(), "hello\n");
}

#[test]
fn an_image_without_layers_is_valid() {
    let sb = Sandbox::new();
    sb.write("ctx/Dockerfile", "FROM scratch\nLABEL empty=yes\nCMD [\"/nothing\"]\n");
    build_ok(&sb, &["-t", "empty", "ctx"]);
    let image = oci::read(&sb.root(), Some("empty:latest"));
    assert!(image.layers.is_empty());
    assert_eq!(image.config["rootfs"], json!({"type": "layers", "diff_ids": []}));
    // oci-image-tool (rc2) still carries a schema that demands a layer; the image spec
    // allows none, and umoci and skopeo accept it.
    crate::oci::validate_with(&sb.root(), "empty:latest", false);
}

#[test]
fn builds_are_reproducible() {
    let sb = Sandbox::new();
    sb.write("ctx/a/b.txt", "content");
    sb.write("ctx/Dockerfile", "FROM scratch AS s\nCOPY a /a\nFROM scratch\nCOPY --from=s /a /copy\nWORKDIR /w\n");
    let first =
        stdout(&run(sb.kiln().args(["build", "-q", "-t", "r", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "ctx"])));
    // Touch the file: the clamp to SOURCE_DATE_EPOCH makes its new mtime irrelevant.
    sb.write("ctx/a/b.txt", "content");
    let second = stdout(&run(sb.kiln().args(["build", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "ctx"])));
    assert!(first.starts_with("sha256:"), "{first}");
    let image = oci::read(&sb.root(), Some("r:latest"));
    assert!(image.layers.iter().flatten().all(|e| e.mtime <= 1_700_000_000), "mtimes are clamped");
    assert_eq!(first, second, "same inputs, same image ID");
}

#[test]
fn bad_inputs_fail_cleanly_and_leave_the_store_valid() {
    let sb = Sandbox::new();
    sb.write("ctx/present.txt", "here");
    std::os::unix::fs::symlink("/etc/passwd", sb.dir.path().join("ctx/escape")).unwrap();
    std::os::unix::fs::symlink("../../outside", sb.dir.path().join("ctx/up")).unwrap();
    let cases: [(&str, &str, &str); 7] = [
        ("FROM scratch\nCOPY missing.txt /\n", "Dockerfile:2:1", "\"missing.txt\" not found in the build context"),
        ("FROM scratch\nCOPY ../outside /\n", "Dockerfile:2:1", "forbidden path outside the build context"),
        ("FROM scratch\nCOPY escape /x\n", "Dockerfile:2:1", "points outside the build context"),
        ("FROM scratch\nCOPY up /x\n", "Dockerfile:2:1", "points outside the build context"),
        ("FROM scratch\nCOPY --from=nowhere:1 /a /b\n", "Dockerfile:2:1", "nowhere:1"),
        ("FROM oci-layout:///nonexistent/layout\n", "Dockerfile:1:1", "a build file cannot name an OCI layout"),
        ("FROM scratch\nCOPY --chown=nobody present.txt /\n", "Dockerfile:2:1", "unknown user \"nobody\""),
    ];
    for (dockerfile, location, message) in cases {
        sb.write("ctx/Dockerfile", dockerfile);
        let err = build_fails(&sb, &["-t", "bad", "ctx"]);
        assert!(err.contains(location), "{dockerfile:?}: {err}");
        assert!(err.contains(message), "{dockerfile:?}: {err}");
        assert!(err.contains("nothing was tagged") || err.contains("no IR"), "{err}");
    }
    // A layout whose blob was tampered with.
    sb.write("good/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let layout = sb.dir.path().join("layout");
    // Built with another store, so the store under test has none of its blobs yet.
    let out = run(sb.kiln().env("KILN_HOME", sb.dir.path().join("other-store")).args([
        "build",
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        "good",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let image = oci::read(&layout, None);
    let layer = image.manifest["layers"][0]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
    std::fs::write(layout.join("blobs/sha256").join(&layer), b"tampered").unwrap();
    sb.write("ctx/Dockerfile", "FROM layout\n");
    let err = build_fails(
        &sb,
        &["-t", "bad", "--build-context", &format!("layout=oci-layout://{}", layout.display()), "ctx"],
    );
    // Shorter than its descriptor says: refused before its bytes are copied.
    let damaged = format!("layer sha256:{layer} in {} is damaged: its blob is 8 bytes, not the", layout.display());
    assert!(err.contains(&damaged), "{err}");
    assert!(!stdout(&run(sb.kiln().arg("images"))).contains("bad"));
}

/// A tar holding `dir/file.txt` (uid 1000, mode 0600) and a symlink.
fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(EntryType::Directory);
    h.set_mode(0o750);
    h.set_size(0);
    b.append_data(&mut h, "dir/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o600);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(5);
    b.append_data(&mut h, "dir/file.txt", &b"hello"[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "dir/link", "file.txt").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_local_archives_and_refuses_urls() {
    use std::io::Write;
    let sb = Sandbox::new();
    let tar_bytes = sample_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).unwrap();
    sb.write("ctx/app.tar.gz", gz.finish().unwrap());
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&tar_bytes).unwrap();
    sb.write("ctx/app.tar.bz2", bz.finish().unwrap());
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar_bytes).unwrap();
    sb.write("ctx/app.tar.xz", xz.finish().unwrap());
    sb.write(
        "ctx/app.tar.zst",
        ruzstd::encoding::compress_to_vec(&tar_bytes[..], ruzstd::encoding::CompressionLevel::Fastest),
    );
    sb.write("ctx/plain.tar", &tar_bytes);
    let mut not_tar = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    not_tar.write_all(b"just text, not an archive").unwrap();
    sb.write("ctx/notes.gz", not_tar.finish().unwrap());
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch\n\
         ADD app.tar.gz /gz/\n\
         ADD app.tar.bz2 /bz2\n\
         ADD app.tar.xz /xz/\n\
         ADD app.tar.zst /zst/\n\
         ADD plain.tar /plain/\n\
         ADD notes.gz /raw/\n\
         COPY app.tar.gz /copied/\n\
         ADD --chown=7:8 app.tar.gz /owned/\n",
    );
    build_ok(&sb, &["-t", "add", "ctx"]);
    let image = oci::read(&sb.root(), Some("add:latest"));
    validate(&sb.root(), "add:latest");
    for (layer, dir) in ["gz", "bz2", "xz", "zst", "plain"].iter().enumerate() {
        let file = image.entry(layer, &format!("{dir}/dir/file.txt"));
        assert_eq!((file.data.as_slice(), file.mode, file.uid), (&b"hello"[..], 0o600, 1000), "{dir}");
        assert_eq!(image.entry(layer, &format!("{dir}/dir/")).mode, 0o750);
        assert_eq!(image.entry(layer, &format!("{dir}/dir/link")).link.as_deref(), Some("file.txt"));
    }
    assert_eq!(image.paths(5), ["raw/", "raw/notes.gz"], "a compressed file that is not a tar is copied as is");
    assert_eq!(image.paths(6), ["copied/", "copied/app.tar.gz"], "COPY never unpacks");
    let owned = image.entry(7, "owned/dir/file.txt");
    assert_eq!((owned.uid, owned.gid), (7, 8));

    sb.write("ctx/Dockerfile", "FROM scratch\nADD https://example.com/file.tar.gz /\n");
    let err = build_fails(&sb, &["ctx"]);
    assert!(err.contains("Dockerfile:2:1") && err.contains("does not fetch remote sources"), "{err}");
}

#[test]
fn rmi_removes_tags_but_not_other_images() {
    let sb = Sandbox::new();
    sb.write("ctx/Dockerfile", "FROM scratch\nLABEL x=1\n");
    build_ok(&sb, &["-t", "a:1", "-t", "b:2", "ctx"]);
    let out = run(sb.kiln().args(["rmi", "a:1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let images = stdout(&run(sb.kiln().arg("images")));
    assert!(!images.contains("a ") && images.contains("b "), "{images}");
    let out = run(sb.kiln().args(["rmi", "a:1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no image named a:1"), "{}", stderr(&out));
    check_store(&sb.root());
}

/// `kiln images | head -0`: a reader that goes away is not a crash.
#[test]
fn a_closed_standard_output_ends_kiln_quietly() {
    let sb = Sandbox::new();
    let mut child = sb
        .kiln()
        .arg("images")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before kiln has written anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
