//! Registries with real peers: Debian's `docker-registry` (with and without htpasswd),
//! `skopeo`, `buildah` and a private `dockerd` (see `peers`). Pushes and pulls go through
//! kiln's CLI as a user would type them; what the peers see is checked with the peers.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::oci::check_store;
use crate::peers::{self, Dockerd, Registry, or_skip};
use crate::support::{Sandbox, run, stderr, stdout};

/// A two-stage build whose final stage is `FROM scratch`: a WASI builder stage (kiln's own
/// shell) writes a file, the final stage copies it.
const TWO_STAGE: &str = "FROM scratch AS builder\n\
RUN echo 'made by a WASI builder stage' > /message.txt\n\
FROM scratch\n\
COPY --from=builder /message.txt /message.txt\n\
LABEL org.example.test=registry\n";

fn build(sb: &Sandbox, dockerfile: &str, args: &[&str]) -> std::process::Output {
    let file = sb.write("context/Dockerfile", dockerfile);
    run(sb.kiln().args(["build", "--progress", "plain"]).args(args).arg(file.parent().unwrap()))
}

/// The manifest digest `kiln push`/`kiln pull` print on stdout.
fn digest_of(out: &std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", stderr(out));
    let text = stdout(out);
    let digest = text.trim().lines().last().unwrap_or_default().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{what} printed {text:?}");
    digest
}

/// The manifest digest skopeo sees for `docker://REF`.
fn skopeo_digest(reference: &str, creds: Option<String>) -> String {
    let mut args = vec!["inspect".to_string(), "--tls-verify=false".into()];
    if let Some(c) = creds {
        args.extend(["--creds".into(), c]);
    }
    args.push(format!("docker://{reference}"));
    let text = peers::ok("skopeo inspect", peers::skopeo(&args)).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["Digest"].as_str().unwrap().to_string()
}

/// The digest of the one manifest an OCI layout's index names.
fn layout_digest(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn push_then_pull_into_a_fresh_store_gives_the_same_image() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let name = format!("{}/kiln/two-stage:1", registry.addr);

    // Build and push in one go; the tag is also the push destination.
    let sb = Sandbox::new();
    let out = build(&sb, TWO_STAGE, &[&insecure, "-t", &name, "-o", "type=registry"]);
    assert!(out.status.success(), "build and push:\n{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("pushing {name}")), "{}", stderr(&out));
    let pushed = digest_of(&run(sb.kiln().args([&insecure, "push", &name])), "kiln push again");
    let again = stderr(&run(sb.kiln().args([&insecure, "push", &name])));
    assert!(again.contains("0 blob(s) uploaded") && again.contains("already there"), "nothing re-uploaded:\n{again}");

    // Another repository of the same registry: the blobs are mounted, not uploaded.
    let other = format!("{}/kiln/copy:2", registry.addr);
    let out = run(sb.kiln().args([&insecure, "push", &name, &other]));
    assert_eq!(digest_of(&out, "push to another repository"), pushed);
    assert!(stderr(&out).contains("mounted from") && stderr(&out).contains("0 blob(s) uploaded"), "{}", stderr(&out));

    // The registry serves exactly what kiln pushed.
    assert_eq!(skopeo_digest(&name, None), pushed);
    let skopeo_layout = sb.dir.path().join("skopeo-layout");
    let copy = peers::skopeo([
        "copy".into(),
        "--src-tls-verify=false".into(),
        format!("docker://{name}"),
        format!("oci:{}:copied", skopeo_layout.display()),
    ]);
    peers::ok("skopeo copy to an OCI layout", copy).unwrap();
    assert_eq!(layout_digest(&skopeo_layout), pushed, "skopeo's copy keeps the digest");

    // A fresh store pulls the same image, and runs it from there.
    let fresh = Sandbox::new();
    let pulled = digest_of(&run(fresh.kiln().args([&insecure, "pull", &other])), "kiln pull");
    assert_eq!(pulled, pushed);
    let inspect = stdout(&run(fresh.kiln().args(["inspect", &other])));
    assert!(inspect.contains("org.example.test"), "{inspect}");
    let export = fresh.dir.path().join("files");
    let out = run(fresh.kiln().args(["build", "--progress", "plain", &insecure, "-o"]).arg(&export).arg({
        let ctx = fresh.write("ctx/Dockerfile", format!("FROM {other}\n"));
        ctx.parent().unwrap().to_path_buf()
    }));
    assert!(out.status.success(), "FROM the pulled image:\n{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(export.join("message.txt")).unwrap(), "made by a WASI builder stage\n");
    check_store(&fresh.root());
}

#[test]
fn from_pulls_a_missing_base_and_uses_the_store_after() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let base = format!("{}/kiln/base:1", registry.addr);
    let publisher = Sandbox::new();
    let out = build(&publisher, TWO_STAGE, &[&insecure, "-t", &base, "--push"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let sb = Sandbox::new();
    let dockerfile = format!("FROM {base}\nRUN read -r line < /message.txt && echo \"$line\" > /copy.txt\n");
    let out = build(&sb, &dockerfile, &[&insecure, "-t", "app:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("pulling {base}")), "the base was pulled:\n{}", stderr(&out));
    let images = stdout(&run(sb.kiln().arg("images")));
    assert!(images.contains(&format!("{}/kiln/base", registry.addr)), "the base is tagged:\n{images}");

    // COPY --from=<image> pulls too.
    let other = Sandbox::new();
    let files = other.dir.path().join("files");
    let copy_from = format!("FROM scratch\nCOPY --from={base} /message.txt /from-image.txt\n");
    let out = build(&other, &copy_from, &[&insecure, "-o", &files.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(files.join("from-image.txt")).unwrap(), "made by a WASI builder stage\n");

    // Once in the store, the registry is not needed.
    drop(registry);
    let out = build(&sb, &dockerfile, &[&insecure, "-t", "app:2"]);
    assert!(out.status.success(), "offline rebuild:\n{}", stderr(&out));
    assert!(!stderr(&out).contains("pulling"), "{}", stderr(&out));
    // --pull insists on the registry, which is gone now.
    let out = build(&sb, &dockerfile, &[&insecure, "--pull", "-t", "app:3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach the registry"), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was tagged"), "{}", stderr(&out));
}

#[test]
fn htpasswd_registry_needs_a_login() {
    let Some(registry) = or_skip(Registry::start(Some(("alice", "s3cret!")))) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let name = format!("{}/private/app:1", registry.addr);
    let sb = Sandbox::new();
    let out = build(&sb, TWO_STAGE, &["-t", &name]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = run(sb.kiln().args([&insecure, "push", &name]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused access") && err.contains(&format!("kiln login {}", registry.addr)), "{err}");

    let login = |password: &str| {
        let mut cmd = sb.kiln();
        cmd.args([&insecure, "login", "-u", "alice", "--password-stdin", &registry.addr]);
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        cmd.stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = login("wrong");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("check the user name and password"), "{}", stderr(&out));
    let config = sb.dir.path().join("docker-config/config.json");
    assert!(!config.exists(), "a refused login saves nothing");
    let out = login("s3cret!");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Login Succeeded");
    let saved: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(saved["auths"][&registry.addr]["auth"].is_string(), "{saved}");

    let pushed = digest_of(&run(sb.kiln().args([&insecure, "push", &name])), "push with credentials");
    assert_eq!(skopeo_digest(&name, registry.creds()), pushed);

    // Credentials come from the same file docker uses; without them, pulls are refused.
    let fresh = Sandbox::new();
    let out = run(fresh.kiln().args([&insecure, "pull", &name]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("refused access"), "{}", stderr(&out));
    assert!(stdout(&run(fresh.kiln().arg("images"))).lines().count() <= 1, "nothing was tagged");
    fresh.copy("docker-config/config.json", &config);
    assert_eq!(digest_of(&run(fresh.kiln().args([&insecure, "pull", &name])), "pull with credentials"), pushed);

    let out = run(sb.kiln().args(["logout", &registry.addr]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(sb.kiln().args([&insecure, "push", &name]));
    assert_eq!(out.status.code(), Some(1), "logged out: {}", stderr(&out));
}

#[test]
fn registry_errors_say_what_to_do() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let sb = Sandbox::new();

    // TLS to a plain-HTTP registry.
    let out = run(sb.kiln().args(["pull", &format!("{}/nothing:1", registry.addr)]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("plain HTTP") && err.contains(&format!("--insecure-registry {}", registry.addr)), "{err}");

    // An image the registry does not have.
    let out = run(sb.kiln().args([&insecure, "pull", &format!("{}/nothing:1", registry.addr)]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found in the registry"), "{}", stderr(&out));

    // Nobody listening: the network is down, as far as kiln can tell.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = run(sb.kiln().args([&format!("--insecure-registry={closed}"), "pull", &format!("{closed}/x:1")]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot reach the registry {closed}")) && err.contains("refused"), "{err}");

    // A build whose base is nowhere says where kiln looked.
    let out = build(&sb, &format!("FROM {closed}/x:1\n"), &[&format!("--insecure-registry={closed}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Dockerfile:1") && err.contains("not in kiln's store"), "{err}");

    // A bad reference is a usage error.
    let out = run(sb.kiln().args(["pull", "Not/A:Valid:Ref"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a valid image reference"), "{}", stderr(&out));
    check_store(&sb.root());
}

/// Every file under `dir` whose content is exactly `bytes`.
fn files_holding(dir: &Path, bytes: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| b == bytes) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_nothing_is_tagged() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let name = format!("{}/kiln/damaged:1", registry.addr);
    let sb = Sandbox::new();
    let out = build(&sb, TWO_STAGE, &[&insecure, "-t", &name, "--push"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Damage the layer in the registry's storage: same size, one byte changed.
    let manifest: Value = serde_json::from_str(&stdout(&run(sb.kiln().args(["inspect", &name])))).unwrap();
    let layer = manifest[0]["Manifest"]["layers"][0]["digest"].as_str().unwrap().to_string();
    let bytes = std::fs::read(sb.root().join("blobs/sha256").join(&layer["sha256:".len()..])).unwrap();
    let stored = files_holding(&registry.storage(), &bytes);
    assert_eq!(stored.len(), 1, "the registry stores the layer once");
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(&stored[0], &damaged).unwrap();

    let fresh = Sandbox::new();
    let out = run(fresh.kiln().args([&insecure, "pull", &name]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&layer) && err.contains("discarded and nothing was tagged"), "{err}");
    assert!(stdout(&run(fresh.kiln().arg("images"))).lines().count() <= 1, "nothing was tagged");
    check_store(&fresh.root());
    assert!(!fresh.root().join("blobs/sha256").join(&layer["sha256:".len()..]).exists());
}

/// A multi-platform index in the registry: kiln picks the WASI image for a stage that RUNs,
/// the target platform for one that only copies, and `--platform` overrides both.
#[test]
fn platforms_are_picked_from_an_index() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let sb = Sandbox::new();
    // Two single-platform images pushed by digest, then an index naming both.
    let mut entries = Vec::new();
    for (platform, text) in [("linux/amd64", "linux"), ("wasip1/wasm", "wasi")] {
        let repo = format!("{}/kiln/multi:{}", registry.addr, text);
        let dockerfile = format!("FROM scratch\nRUN echo {text} > /which.txt\n");
        let out = build(&sb, &dockerfile, &[&insecure, "--platform", platform, "-t", &repo, "--push"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let digest = digest_of(&run(sb.kiln().args([&insecure, "push", &repo])), "push");
        let size = skopeo_raw_size(&repo);
        let (os, arch) = platform.split_once('/').unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size, "platform": {"os": os, "architecture": arch}
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    put_manifest(&registry.addr, "kiln/multi", "both", &index.to_string());
    let both = format!("{}/kiln/multi:both", registry.addr);

    let which = |dockerfile: &str, extra: &[&str]| {
        let fresh = Sandbox::new();
        let export = fresh.dir.path().join("files");
        let mut args = vec![insecure.as_str(), "-o"];
        let dest = export.display().to_string();
        args.push(&dest);
        args.extend_from_slice(extra);
        let out = build(&fresh, dockerfile, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(export.join("which.txt")).unwrap()
    };
    let arch = if cfg!(target_arch = "x86_64") { "amd64" } else { "arm64" };
    if arch == "amd64" {
        assert_eq!(which(&format!("FROM {both}\n"), &[]), "linux\n", "a stage that only copies takes linux");
    }
    assert_eq!(which(&format!("FROM {both}\nRUN echo >> /which.txt\n"), &[]), "wasi\n\n", "a RUN stage takes WASI");
    assert_eq!(
        which(&format!("FROM {both}\nRUN echo >> /which.txt\n"), &["--platform", "linux/amd64"]),
        "linux\n\n",
        "--platform overrides"
    );
    let fresh = Sandbox::new();
    let out = build(&fresh, &format!("FROM {both}\n"), &[&insecure, "--platform", "linux/s390x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it offers linux/amd64, wasip1/wasm"), "{}", stderr(&out));
}

fn skopeo_raw_size(reference: &str) -> usize {
    let raw = peers::skopeo([
        "inspect".to_string(),
        "--raw".into(),
        "--tls-verify=false".into(),
        format!("docker://{reference}"),
    ]);
    raw.stdout.len()
}

/// PUT a manifest document with a raw HTTP/1.0 request (no client tool needed).
fn put_manifest(addr: &str, repo: &str, tag: &str, body: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let media = serde_json::from_str::<Value>(body).unwrap()["mediaType"].as_str().unwrap().to_string();
    write!(
        stream,
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {media}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 201") || answer.starts_with("HTTP/1.1 201"), "PUT manifest: {answer}");
}

/// A Linux image built by kiln runs in Docker: its base is busybox, made by kiln from
/// Debian's static binary with FROM scratch + COPY; its final stage copies what a WASI
/// builder stage made. It goes to Docker twice: as a `docker load` archive, and pushed to
/// the registry and pulled by dockerd.
#[test]
fn docker_loads_and_runs_a_kiln_image_on_a_busybox_base() {
    if or_skip(peers::need(&[(peers::BUSYBOX, "busybox-static")])).is_none() {
        return;
    }
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let insecure = format!("--insecure-registry={}", registry.addr);
    let sb = Sandbox::new();
    let base_ctx = sb.dir.path().join("busybox");
    sb.copy("busybox/bin/busybox", Path::new(peers::BUSYBOX));
    for applet in ["sh", "cat", "echo", "ls"] {
        std::os::unix::fs::symlink("busybox", base_ctx.join("bin").join(applet)).unwrap();
    }
    std::fs::write(base_ctx.join("Dockerfile"), "FROM scratch\nCOPY bin /bin\nENV PATH=/bin\nCMD [\"sh\"]\n").unwrap();
    let out = run(sb
        .kiln()
        .args(["build", "--progress", "plain", "--platform", "linux/amd64", "-t", "busybox-base:1"])
        .arg(&base_ctx));
    assert!(out.status.success(), "{}", stderr(&out));

    let app = "FROM scratch AS builder\n\
RUN echo 'hello from a WASI builder stage' > /greeting.txt\n\
FROM busybox-base:1\n\
COPY --from=builder /greeting.txt /greeting.txt\n\
CMD [\"cat\", \"/greeting.txt\"]\n";
    let archive = sb.dir.path().join("app.tar");
    let name = format!("{}/kiln/app:1", registry.addr);
    let out =
        build(&sb, app, &[&insecure, "-t", &name, "--push", "-o", &format!("type=docker,dest={}", archive.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config: Value = serde_json::from_str(&stdout(&run(sb.kiln().args(["inspect", &name])))).unwrap();
    assert_eq!(config[0]["Config"]["os"], "linux", "a Linux base keeps its platform: {config}");

    let Some(docker) = or_skip(Dockerd::start()) else { return };
    let load = docker.docker(["load", "-i", archive.to_str().unwrap()]);
    let loaded = peers::ok("docker load", load).unwrap();
    assert!(loaded.contains(&name), "{loaded}");
    let ran = peers::ok("docker run", docker.docker(["run", "--rm", "--network", "none", &name]));
    assert_eq!(ran.unwrap_or_else(|e| panic!("{e}\n{}", docker.log())), "hello from a WASI builder stage");

    // The pushed copy, pulled by dockerd (which trusts 127.0.0.1 over plain HTTP).
    peers::ok("docker rmi", docker.docker(["rmi", &name])).unwrap();
    peers::ok("docker pull", docker.docker(["pull", &name])).unwrap();
    let ran = peers::ok("docker run pulled", docker.docker(["run", "--rm", "--network", "none", &name, "ls", "/"]));
    let listing = ran.unwrap();
    assert!(listing.contains("greeting.txt") && listing.contains("bin"), "{listing}");
}

/// An image made by buildah is a base for kiln, from an OCI layout and from a registry.
#[test]
fn a_buildah_image_is_a_base() {
    let Some(registry) = or_skip(Registry::start(None)) else { return };
    let sb = Sandbox::new();
    let layout = sb.dir.path().join("buildah-layout");
    if or_skip(peers::buildah_busybox_layout(&layout, "busybox")).is_none() {
        return;
    }
    registry.push_layout(&layout, "busybox", "buildah/busybox:1").unwrap();
    let insecure = format!("--insecure-registry={}", registry.addr);
    let layout_context = format!("--build-context=buildah-busybox=oci-layout://{}:busybox", layout.display());
    for (base, flag) in
        [("buildah-busybox".to_string(), layout_context), (format!("{}/buildah/busybox:1", registry.addr), insecure)]
    {
        let dockerfile = format!("FROM {base}\nCOPY Dockerfile /etc/built-from\n");
        let export = sb.dir.path().join("files");
        let out = build(&sb, &dockerfile, &[&flag, "-t", "on-buildah:1", "-o", &export.display().to_string()]);
        assert!(out.status.success(), "FROM {base}:\n{}", stderr(&out));
        assert!(export.join("bin/busybox").is_file() && export.join("etc/built-from").is_file());
        assert_eq!(std::fs::read_link(export.join("bin/sh")).unwrap(), Path::new("busybox"));
        let inspect: Value = serde_json::from_str(&stdout(&run(sb.kiln().args(["inspect", "on-buildah:1"])))).unwrap();
        assert_eq!(inspect[0]["Config"]["config"]["Entrypoint"][0], "/bin/busybox", "{inspect}");
    }
    check_store(&sb.root());
}
