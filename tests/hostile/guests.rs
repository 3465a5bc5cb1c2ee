//! Programs a RUN step starts that try to exhaust the machine: a fork bomb, endless output,
//! a full disk, endless recursion, endless allocation, pipes nobody reads. Each ends in an
//! error naming the limit that stopped it (or the program's own error, for a full disk), and
//! the store stays whole.

use std::time::{Duration, Instant};

use super::Hostile;
use crate::support::{coreutils, is_root, run_guests, stderr};

/// A context whose first stage holds the guest (`/bin/guest`, the WASI preview 1 build),
/// then `steps` on top of it.
fn guest_build(steps: &str) -> Hostile {
    let mut h = Hostile::new();
    h.sb.copy("ctx/guest.wasm", &run_guests().0);
    h.sb.write("ctx/Dockerfile", format!("FROM scratch AS tools\nCOPY guest.wasm /bin/guest\nFROM tools\n{steps}"));
    h.seal();
    h
}

fn build(h: &Hostile, extra: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push("ctx");
    let out = h.run(&args);
    (out, started.elapsed())
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit() {
    let h = guest_build("RUN [\"guest\", \"bomb\"]\n");
    let (out, took) = build(&h, &[]);
    h.refused(
        &out,
        &[
            "Dockerfile:4",
            "the step tried to run more than 64 programs at once and was stopped",
            "the limit --step-processes is 64; if this is expected, raise it with --step-processes N or KILN_STEP_PROCESSES",
        ],
    );
    assert!(took < Duration::from_secs(120), "the bomb took {took:?} to stop");
    // The setting is honoured, from the flag and from the environment.
    let (out, _) = build(&h, &["--step-processes", "5"]);
    h.refused(&out, &["more than 5 programs at once", "--step-processes is 5"]);
    let out = h.kiln().env("KILN_STEP_PROCESSES", "7").args(["build", "ctx"]).output().unwrap();
    h.refused(&out, &["more than 7 programs at once"]);
}

#[test]
fn endless_output_stops_at_the_output_limit_and_long_logs_are_clipped() {
    // 100 GB asked for; the default budget of 1 GiB stops it.
    let h = guest_build("RUN [\"guest\", \"spam\", \"100000000000\"]\n");
    let (out, took) = build(&h, &[]);
    h.refused(
        &out,
        &[
            "Dockerfile:4",
            "the step wrote more than 1 GiB to its output and was stopped",
            "the limit --step-output is 1 GiB; if this is expected, raise it with --step-output SIZE or KILN_STEP_OUTPUT",
        ],
    );
    eprintln!("1 GiB of output stopped after {took:?}");
    let (out, _) = build(&h, &["--step-output", "8m"]);
    h.refused(&out, &["more than 8 MiB to its output", "--step-output is 8 MiB"]);

    // 10 MiB of output is within the budget: the build works and the log keeps the head.
    let h = guest_build("RUN [\"guest\", \"spam\", \"10485760\"]\n");
    let (out, _) = build(&h, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("[output clipped: the log keeps the first 4 MiB of a step]"), "{err}");
    let printed = err.lines().filter(|l| l.ends_with("] y")).count();
    assert_eq!(printed, (4 << 20) / 2, "the log keeps 4 MiB of the 10 MiB of `y` lines");
    h.verify(&[]);
}

#[test]
fn output_sent_to_a_file_is_not_held_in_memory_or_limited_by_the_log() {
    // 64 MiB through `spawn-to`: more than the log keeps, written to a file in the image.
    let h = guest_build("RUN [\"guest\", \"spawn-to\", \"/big\", \"guest\", \"spam\", \"67108864\"]\n");
    let (out, _) = build(&h, &["-o", "type=local,dest=out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(h.sb.dir.path().join("out/big")).unwrap().len(), 64 << 20);
    h.verify(&["out"]);
}

#[test]
fn endless_recursion_and_allocation_are_clean_errors() {
    let h = guest_build("RUN [\"guest\", \"recurse\"]\n");
    let (out, _) = build(&h, &[]);
    let err = h.refused(&out, &["Dockerfile:4", "the program crashed"]);
    // Rust on wasm32 keeps its stack in linear memory: running out of it is an access below
    // address 0 (or wasmtime's own call-stack limit, for frames it holds).
    assert!(err.contains("out of bounds memory access") || err.contains("call stack exhausted"), "{err}");

    let h = guest_build("RUN [\"guest\", \"alloc\"]\n");
    let (out, _) = build(&h, &["--step-memory", "64"]);
    h.refused(
        &out,
        &[
            "the program tried to use more than 67108864 bytes of memory and was stopped",
            "the limit --step-memory is 64; if this is expected, raise it with --step-memory MIB or KILN_STEP_MEMORY",
        ],
    );
}

#[test]
fn pipes_nobody_reads_neither_hang_the_build_nor_leak() {
    // The parent exits while its child still writes into a pipe nobody reads: the child sees
    // a closed pipe and the step ends.
    let h = guest_build("RUN [\"guest\", \"abandon\", \"guest\", \"spam\", \"100000000000\"]\n");
    let (out, took) = build(&h, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < Duration::from_secs(120), "took {took:?}");
    h.verify(&[]);

    // The parent waits for a child blocked on a full pipe it never reads: a deadlock, as on
    // Linux; the step's time limit ends it.
    let h = guest_build("RUN [\"guest\", \"unread\", \"guest\", \"spam\", \"100000000000\"]\n");
    let (out, took) = build(&h, &["--step-timeout", "3"]);
    h.refused(&out, &["the step ran longer than its limit of 3s and was stopped"]);
    assert!(took < Duration::from_secs(120), "took {took:?}");
}

#[test]
fn a_program_asleep_wakes_for_the_time_limit() {
    // wasmtime's own timers wait where the time limit cannot reach; kiln's wake for it.
    let h = guest_build("RUN [\"guest\", \"sleep\", \"100000\"]\n");
    let (out, took) = build(&h, &["--step-timeout", "2"]);
    h.refused(&out, &["Dockerfile:4", "the step ran longer than its limit of 2s and was stopped"]);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // A short sleep still sleeps.
    let h = guest_build("RUN [\"guest\", \"sleep\", \"1\", \";\", \"write\", \"/slept\", \"yes\"]\n");
    let (out, took) = build(&h, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took >= Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_full_disk_is_the_programs_error_and_loses_nothing() {
    // Mounting a tmpfs needs root.
    if !is_root() {
        assert!(std::env::var_os("KILN_REQUIRE_PEERS").is_none(), "the full-disk case needs root to mount a tmpfs");
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let h = guest_build("RUN [\"guest\", \"fill\", \"/filler\"]\n");
    // The store lives on a 96 MiB tmpfs: the step's writes fill it.
    let store = h.sb.root();
    std::fs::create_dir_all(&store).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m,mode=0700", "kiln-full-disk"])
        .arg(&store)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(store.clone());

    let (out, _) = build(&h, &["-t", "full:1"]);
    let err = h.refused(&out, &["Dockerfile:4", "did not complete successfully: exit code: 3"]);
    assert!(err.contains("No space left on device"), "the program saw a full disk: {err}");
    // The space comes back, and the store still builds.
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY guest.wasm /bin/guest\n");
    let out = h.run(&["build", "-q", "-t", "full:2", "ctx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = h.run(&["prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_step_writing_a_layer_over_the_limit_is_refused_before_it_is_stored() {
    // Output sent to a file is counted as it is written: the 100 MB never reach the disk.
    let h = guest_build("RUN [\"guest\", \"spawn-to\", \"/big\", \"guest\", \"spam\", \"100000000\"]\n");
    let (out, _) = build(&h, &["--max-layer-size", "64m", "-t", "big:1"]);
    h.refused(
        &out,
        &[
            "Dockerfile:4",
            "writing /big would make the step's layer larger than 64 MiB, so the write was refused: the limit --max-layer-size is 64 MiB; if this is expected, raise it with --max-layer-size SIZE or KILN_MAX_LAYER_SIZE",
            "nothing was tagged",
        ],
    );
}

/// The message of a step whose files grew past `--max-layer-size 16m` at `path`.
fn over_16m(path: &str) -> String {
    format!(
        "writing {path} would make the step's layer larger than 16 MiB, so the write was refused: the limit --max-layer-size is 16 MiB; if this is expected, raise it with --max-layer-size SIZE or KILN_MAX_LAYER_SIZE"
    )
}

#[test]
fn a_program_sees_a_full_disk_at_the_layer_limit_and_the_step_fails_even_if_it_ignores_that() {
    // `fill` writes 1 MiB blocks until a write fails, then prints the error and exits 3: the
    // seventeenth block does not fit in 16 MiB. Without the limit it would fill the disk.
    let h = guest_build("RUN [\"guest\", \"fill\", \"/filler\"]\n");
    let (out, took) = build(&h, &["--max-layer-size", "16m"]);
    h.refused(&out, &["Dockerfile:4", &over_16m("/filler"), "fill: after 16777216 bytes: No space left on device"]);
    assert!(took < Duration::from_secs(120), "took {took:?}");

    // A program that ignores every failed write and exits 0 still fails the step.
    let h = guest_build("RUN [\"guest\", \"scribble\", \"/careless\", \"20000000\"]\n");
    let (out, _) = build(&h, &["--max-layer-size", "16m"]);
    h.refused(&out, &["Dockerfile:4", &over_16m("/careless")]);

    // The same program under the limit builds.
    let h = guest_build("RUN [\"guest\", \"scribble\", \"/careful\", \"15000000\"]\n");
    let (out, _) = build(&h, &["--max-layer-size", "16m", "-o", "type=local,dest=out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(h.sb.dir.path().join("out/careful")).unwrap().len(), 15_000_000);
    h.verify(&["out"]);
}

/// A context with the guest and uutils coreutils in a first stage, and one build file per case
/// (`NAME.Dockerfile`: that stage, then the case's steps). One store for all cases, so
/// coreutils is compiled once.
fn coreutils_build(cases: &[(&str, &str)]) -> Hostile {
    let mut h = Hostile::new();
    h.sb.copy("ctx/guest.wasm", &run_guests().0);
    h.sb.copy("ctx/coreutils.wasm", &coreutils());
    for (name, steps) in cases {
        h.sb.write(
            &format!("ctx/{name}.Dockerfile"),
            format!(
                "FROM scratch AS tools\nCOPY guest.wasm /bin/guest\nCOPY coreutils.wasm /bin/coreutils\nFROM tools\n{steps}"
            ),
        );
    }
    h.seal();
    h
}

fn build_case(h: &Hostile, case: &str, extra: &[&str]) -> std::process::Output {
    let file = format!("ctx/{case}.Dockerfile");
    let mut args = vec!["build", "--progress", "plain", "--step-timeout", "600", "-f", &file];
    args.extend_from_slice(extra);
    args.push("ctx");
    h.run(&args)
}

#[test]
fn files_a_step_writes_count_against_the_layer_limit_as_they_are_written() {
    // coreutils itself (10.4 MB, in a layer of its own) is the data: twice is more than 16 MiB.
    // (No pipelines: the shell runs a pipeline with a redirection stage by stage, in memory.)
    let h = coreutils_build(&[
        // Dense, through a redirection (the shell's output file).
        ("redirected", "RUN coreutils cat /bin/coreutils /bin/coreutils > /f\n"),
        // Dense, through the filesystem (cp opens and writes the files itself).
        ("written", "RUN coreutils cp /bin/coreutils /a && coreutils cp /bin/coreutils /f\n"),
        // Sparse: 2 GiB of nothing still makes a 2 GiB layer.
        ("sparse", "RUN coreutils truncate -s 2G /f\n"),
        // Under the limit.
        ("under", "RUN coreutils cat /bin/coreutils > /f\n"),
        // 83 MB written in all, never more than 10.4 MB at once: what is deleted gives back.
        (
            "churn",
            "RUN for i in 1 2 3 4; do coreutils cp /bin/coreutils /t$i; coreutils rm /t$i; coreutils cat /bin/coreutils > /r$i; coreutils rm /r$i; done\n",
        ),
    ]);
    let limit = ["--max-layer-size", "16m"];
    let out = build_case(&h, "redirected", &limit);
    h.refused(&out, &["redirected.Dockerfile:5", &over_16m("/f"), "No space left on device"]);
    let out = build_case(&h, "written", &limit);
    h.refused(&out, &["written.Dockerfile:5", &over_16m("/f"), "No space left on device"]);
    let started = Instant::now();
    let out = build_case(&h, "sparse", &limit);
    h.refused(&out, &["sparse.Dockerfile:5", &over_16m("/f"), "No space left on device"]);
    eprintln!("the sparse file was refused after {:?}", started.elapsed());
    let out = build_case(&h, "under", &limit);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = build_case(&h, "churn", &limit);
    assert!(out.status.success(), "{}", stderr(&out));
    h.verify(&[]);
}
