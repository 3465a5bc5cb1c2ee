//! Crash safety and concurrency: a store survives `kill -9` at any moment of a build, and
//! concurrent builds on one store neither fail nor lose each other's tags.

use std::time::{Duration, Instant};

use crate::oci::{assert_no_build_dirs, check_store};
use crate::support::{Sandbox, run, stderr};

/// A context big enough that a build takes a while: many small files and a few large ones.
fn busy_context(sb: &Sandbox) {
    for i in 0..300 {
        sb.write(&format!("ctx/src/dir{}/file{i}.txt", i % 20), format!("file {i}\n").repeat(20));
    }
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    sb.write("ctx/big1.bin", &big);
    sb.write("ctx/big2.bin", &big[..6_000_000]);
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch AS files\nCOPY src /src\nCOPY big1.bin /big/\n\
         FROM scratch\nCOPY --from=files /src /app/src\nCOPY big2.bin /app/\nCOPY --from=files /big /app/big\nLABEL done=yes\n",
    );
}

/// A small deterministic generator, so a failure can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn a_store_survives_sigkill_at_random_moments() {
    let sb = Sandbox::new();
    busy_context(&sb);
    // The first build also compiles the frontend; time a warm one.
    let out = run(sb.kiln().args(["build", "-q", "-t", "crash:warmup", "ctx"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // The fastest of three warm builds: kills land inside a build even when the machine is
    // busy and builds vary (a release kiln builds this in a few hundred milliseconds).
    let mut full = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = run(sb.kiln().args(["build", "-q", "-t", "crash:timed", "ctx"]));
        assert!(out.status.success(), "{}", stderr(&out));
        full = full.min(started.elapsed());
    }

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut killed = 0;
    for round in 0..20 {
        let delay = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 9 / 10).max(1));
        let mut child = sb
            .kiln()
            .args(["build", "-q", "-t", &format!("crash:{round}"), "ctx"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // After every kill: blobs match their digests, index.json parses, tags resolve.
        check_store(&sb.root());
    }
    assert!(killed >= 5, "only {killed} of 20 builds were killed mid-way (seed {seed}); the timing is off");
    let out = run(sb.kiln().args(["build", "-q", "-t", "crash:after", "ctx"]));
    assert!(out.status.success(), "a build after the crashes works (seed {seed}): {}", stderr(&out));
    check_store(&sb.root());
    // Killed builds' scratch directories are cleaned by the next build.
    assert_no_build_dirs(&sb.root());
}

#[test]
fn four_concurrent_builds_on_one_store() {
    let sb = Sandbox::new();
    busy_context(&sb);
    let children: Vec<_> = (0..4)
        .map(|i| {
            sb.kiln()
                .args(["build", "-q", "-t", &format!("many:{i}"), "ctx"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    check_store(&sb.root());
    let index = std::fs::read_to_string(sb.root().join("index.json")).unwrap();
    for i in 0..4 {
        assert!(index.contains(&format!("\"many:{i}\"")), "tag many:{i} is kept: {index}");
    }
}
