//! The instruction cache: an unchanged step is skipped (one `CACHED` line), a changed input
//! re-runs exactly the steps it affects, and a damaged cache entry is rebuilt, never used.

use crate::oci::check_store;
use crate::support::{Sandbox, run, run_guests, stderr, stdout};

/// The classic pattern: dependencies first, then the sources.
const DOCKERFILE: &str = "FROM scratch AS builder\n\
    COPY guest.wasm /bin/guest\n\
    WORKDIR /src\n\
    COPY deps.txt ./\n\
    RUN [\"guest\", \"cat\", \"/src/deps.txt\", \";\", \"write\", \"/deps-done\", \"fetched\"]\n\
    COPY . .\n\
    ARG FLAVOUR=plain\n\
    RUN [\"guest\", \"cat\", \"/src/main.txt\", \";\", \"write\", \"/built\", \"built\"]\n\
    FROM scratch\n\
    COPY --from=builder /built /built\n";

fn project(sb: &Sandbox) {
    sb.copy("ctx/guest.wasm", &run_guests().0);
    sb.write("ctx/deps.txt", "dep 1.0\n");
    sb.write("ctx/main.txt", "fn main\n");
    sb.write("ctx/extra.txt", "notes\n");
    sb.write("ctx/Dockerfile", DOCKERFILE);
}

/// Build and return (the step lines that were CACHED, the image digest).
fn build(sb: &Sandbox, extra: &[&str]) -> (Vec<String>, String) {
    let out = run(sb.kiln().args(["build", "--progress", "plain", "-t", "cached:latest"]).args(extra).arg("ctx"));
    assert!(out.status.success(), "{}", stderr(&out));
    let cached = stderr(&out)
        .lines()
        .filter_map(|l| l.strip_suffix(" CACHED"))
        .map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()).unwrap_or_default())
        .collect();
    (cached, stdout(&out).trim().to_string())
}

const DEPS_STEPS: [&str; 4] = [
    "[builder 2/8] COPY guest.wasm /bin/guest",
    "[builder 3/8] WORKDIR /src",
    "[builder 4/8] COPY deps.txt ./",
    "[builder 5/8] RUN [\"guest\", \"cat\", \"/src/deps.txt\", \";\", \"write\", \"/deps-done\", \"fetched\"]",
];
const SOURCE_STEPS: [&str; 2] = [
    "[builder 6/8] COPY . .",
    "[builder 8/8] RUN [\"guest\", \"cat\", \"/src/main.txt\", \";\", \"write\", \"/built\", \"built\"]",
];
const FINAL_STEP: &str = "[stage-1 2/2] COPY --from=builder /built /built";

fn all_steps() -> Vec<String> {
    DEPS_STEPS.iter().chain(SOURCE_STEPS.iter()).chain([FINAL_STEP].iter()).map(|s| s.to_string()).collect()
}

#[test]
fn editing_a_source_file_reruns_only_the_steps_after_it_is_copied() {
    let sb = Sandbox::new();
    project(&sb);
    let (cached, first) = build(&sb, &[]);
    assert!(cached.is_empty(), "a cold build runs everything: {cached:?}");
    let (cached, second) = build(&sb, &[]);
    assert_eq!(cached, all_steps(), "a rebuild with nothing changed is all CACHED");
    assert_eq!(first, second, "the same image");

    sb.write("ctx/main.txt", "fn main, edited\n");
    let (cached, _) = build(&sb, &[]);
    // COPY . . and the RUN after it run again, and so does the final COPY --from=builder:
    // a COPY from a stage is keyed by that stage.
    assert_eq!(cached, DEPS_STEPS.to_vec(), "only COPY . . and what follows run");
    check_store(&sb.root());
}

#[test]
fn build_args_ignore_files_modes_and_bases_invalidate_what_they_must() {
    let sb = Sandbox::new();
    project(&sb);
    build(&sb, &[]);

    // A build arg in scope of the last RUN only.
    let (cached, _) = build(&sb, &["--build-arg", "FLAVOUR=spicy"]);
    let mut expected: Vec<&str> = DEPS_STEPS.to_vec();
    expected.push(SOURCE_STEPS[0]);
    assert_eq!(cached, expected, "the arg changes only the RUN it is in scope of (and what copies from its stage)");

    // A .dockerignore line changes what `COPY . .` copies, nothing before it.
    sb.write("ctx/.dockerignore", "extra.txt\n");
    let (cached, _) = build(&sb, &[]);
    assert_eq!(cached, DEPS_STEPS.to_vec(), "COPY . . and after re-run");

    // A file mode is part of what COPY copies.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sb.dir.path().join("ctx/deps.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (cached, _) = build(&sb, &[]);
    assert_eq!(cached, DEPS_STEPS[..2].to_vec(), "everything from COPY deps.txt");

    // A different base image invalidates every step on it.
    sb.write("base/Dockerfile", "FROM scratch\nLABEL v=1\n");
    let out = run(sb.kiln().args(["build", "-q", "-t", "base:1", "base"]));
    assert!(out.status.success(), "{}", stderr(&out));
    sb.write("ctx/Dockerfile", DOCKERFILE.replacen("FROM scratch AS builder", "FROM base:1 AS builder", 1));
    build(&sb, &[]);
    let (cached, _) = build(&sb, &[]);
    assert_eq!(cached.len(), all_steps().len(), "warm on the base: {cached:?}");
    sb.write("base/Dockerfile", "FROM scratch\nLABEL v=2\n");
    let out = run(sb.kiln().args(["build", "-q", "-t", "base:1", "base"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let (cached, _) = build(&sb, &[]);
    assert!(cached.is_empty(), "a new base re-runs its stage and what copies from it: {cached:?}");
}

#[test]
fn no_cache_runs_every_step_and_gives_the_same_image() {
    let sb = Sandbox::new();
    project(&sb);
    let (_, first) = build(&sb, &[]);
    let (cached, again) = build(&sb, &["--no-cache"]);
    assert!(cached.is_empty(), "{cached:?}");
    assert_eq!(first, again);
}

#[test]
fn a_damaged_cache_entry_is_rebuilt_not_used() {
    let sb = Sandbox::new();
    project(&sb);
    let (_, first) = build(&sb, &[]);
    let entries: Vec<_> = std::fs::read_dir(sb.root().join("cache")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(!entries.is_empty());
    // Damage every layer a cache entry points at: none may be used.
    for entry in &entries {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
        if let Some(digest) = json["layer"]["digest"].as_str() {
            let blob = sb.root().join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
            std::fs::write(blob, b"damaged").unwrap();
        }
    }
    let (cached, second) = build(&sb, &[]);
    // Every builder step runs again. (The final COPY's layer holds the same bytes as the last
    // RUN's, so re-running that RUN already restored the blob it needs: it may be a sound hit.)
    assert!(cached.iter().all(|step| !step.starts_with("[builder")), "damaged layers are never reused: {cached:?}");
    assert_eq!(first, second, "the rebuilt image is the same");
    check_store(&sb.root());
    // Garbage in the entries themselves: also rebuilt.
    for entry in &entries {
        std::fs::write(entry, b"{ not json").unwrap();
    }
    let (cached, third) = build(&sb, &[]);
    assert!(cached.is_empty(), "{cached:?}");
    assert_eq!(first, third);
    // And the rewritten entries work again.
    let (cached, _) = build(&sb, &[]);
    assert_eq!(cached, all_steps());
}

/// Two checkouts of one project, at different paths, written at different times, built into
/// different stores (one cold, one with a warm cache from an earlier build): one image.
#[test]
fn the_same_inputs_give_the_same_image_whatever_the_path_mtimes_or_cache() {
    let a = Sandbox::new();
    project(&a);
    let (_, first) = build(&a, &[]);
    let (_, warm) = build(&a, &[]);
    let b = Sandbox::new();
    project(&b);
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for name in ["deps.txt", "main.txt", "extra.txt", "guest.wasm", "Dockerfile"] {
        std::fs::File::options()
            .write(true)
            .open(b.dir.path().join("ctx").join(name))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let (_, cold) = build(&b, &[]);
    assert_eq!(first, warm);
    assert_eq!(first, cold, "context path and file times must not change the image");
    // SOURCE_DATE_EPOCH is the only time that enters the image.
    let out = run(b.kiln().args(["build", "-q", "ctx"]).env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(stdout(&out).trim(), first, "a different epoch is a different image");
}

#[test]
fn prune_removes_what_no_tag_references_and_spares_live_builds() {
    let sb = Sandbox::new();
    project(&sb);
    let (_, digest) = build(&sb, &[]);
    sb.write("other/Dockerfile", "FROM scratch\nCOPY x /x\n");
    sb.write("other/x", "unreferenced soon\n");
    assert!(run(sb.kiln().args(["build", "-q", "-t", "other:1", "other"])).status.success());
    assert!(run(sb.kiln().args(["rmi", "other:1"])).status.success());

    // A build in progress: its scratch directory is locked, and what it wrote is newer.
    let live = sb.root().join("tmp/build-live");
    std::fs::create_dir_all(&live).unwrap();
    let lock = std::fs::File::create(live.join(".lock")).unwrap();
    lock.lock().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = b"written by the live build";
    let fresh = sb.root().join("blobs/sha256").join(kiln::store::Digest::of(bytes).hex());
    std::fs::write(&fresh, bytes).unwrap();

    let out = run(sb.kiln().arg("prune"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("Removed "), "{}", stdout(&out));
    assert!(!stdout(&out).starts_with("Removed 0 blobs"), "the untagged image's blobs go: {}", stdout(&out));
    assert!(fresh.exists(), "a live build's blob stays");
    check_store(&sb.root());
    // The tagged image is whole, and builds again to the same digest.
    let out = run(sb.kiln().args(["inspect", "cached:latest"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, again) = build(&sb, &[]);
    assert_eq!(digest, again);

    drop(lock);
    std::fs::remove_dir_all(&live).unwrap();
    assert!(run(sb.kiln().arg("prune")).status.success());
    assert!(!fresh.exists(), "once no build is live, an unreferenced blob goes");
    check_store(&sb.root());
}

#[test]
fn verify_reproducible_builds_twice_and_names_what_differs() {
    let sb = Sandbox::new();
    project(&sb);
    let out = run(sb.kiln().args(["build", "--verify-reproducible", "--progress", "plain", "-t", "v:1", "ctx"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("both gave sha256:"), "{}", stderr(&out));
    assert!(
        std::fs::read_dir(sb.root().join("tmp"))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("build-")),
        "the scratch stores are gone"
    );
    check_store(&sb.root());

    // What a difference looks like: two images whose one layer differs in one file.
    for (tag, text) in [("d:a", "one\n"), ("d:b", "two\n")] {
        sb.write("diff/Dockerfile", "FROM scratch\nCOPY same.txt different.txt /\n");
        sb.write("diff/same.txt", "same\n");
        sb.write("diff/different.txt", text);
        assert!(run(sb.kiln().args(["build", "-q", "-t", tag, "diff"])).status.success());
    }
    let store = kiln::store::Store::open(&sb.root()).unwrap();
    let a = store.lookup("d:a").unwrap().unwrap();
    let b = store.lookup("d:b").unwrap().unwrap();
    let report = kiln::verify::differences(&store, &a, &store, &b).join("\n");
    assert!(report.contains("layer 1 differs"), "{report}");
    assert!(report.contains("/different.txt: Regular"), "{report}");
    assert!(!report.contains("/same.txt"), "an equal file is not reported: {report}");
    assert!(kiln::verify::differences(&store, &a, &store, &a).is_empty());
}

/// The frontend is part of every key: the same Dockerfile through another frontend build
/// (here the Dockerfile component with one extra custom section: other bytes, same language)
/// is a cold build.
#[test]
fn another_frontend_is_a_cold_build() {
    let sb = Sandbox::new();
    project(&sb);
    build(&sb, &[]);
    let (cached, _) = build(&sb, &[]);
    assert_eq!(cached, all_steps());
    let builtin = crate::support::target_dir().join("wasm-frontends/wasm32-wasip2/wasm-frontend/kiln_dockerfile.wasm");
    let mut other = std::fs::read(&builtin).expect("runner/build.rs built the Dockerfile component");
    let name = b"kiln-test";
    other.extend_from_slice(&[0, (name.len() + 1) as u8, name.len() as u8]);
    other.extend_from_slice(name);
    let path = sb.write("other-frontend.wasm", &other);
    let (cached, _) = build(&sb, &["--frontend", path.to_str().unwrap()]);
    assert!(cached.is_empty(), "{cached:?}");
    let (cached, _) = build(&sb, &["--frontend", path.to_str().unwrap()]);
    assert_eq!(cached, all_steps(), "and warm with it afterwards");
}
