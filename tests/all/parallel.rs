//! Stages that do not depend on each other are built at the same time (`--jobs`), their
//! output stays attributable, the first failure stops the rest, and the image does not
//! depend on how many ran at once.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, run, run_guests, stderr, stdout};

fn context(sb: &Sandbox, dockerfile: &str) {
    sb.copy("ctx/guest.wasm", &run_guests().0);
    sb.write("ctx/Dockerfile", dockerfile);
}

const TWO_BRANCHES: &str = "FROM scratch AS tools\nCOPY guest.wasm /bin/guest\n\
    FROM tools AS left\nRUN [\"guest\", \"write\", \"/left.txt\", \"left\", \";\", \"cat\", \"/left.txt\"]\n\
    FROM tools AS right\nRUN [\"guest\", \"write\", \"/right.txt\", \"right\", \";\", \"cat\", \"/right.txt\"]\n\
    FROM scratch\nCOPY --from=left /left.txt /\nCOPY --from=right /right.txt /\n";

#[test]
fn the_image_does_not_depend_on_how_many_stages_run_at_once() {
    let sb = Sandbox::new();
    context(&sb, TWO_BRANCHES);
    let mut digests = Vec::new();
    for jobs in ["1", "2", "4"] {
        let out = run(sb.kiln().args(["build", "--no-cache", "--progress", "plain", "--jobs", jobs, "ctx"]));
        assert!(out.status.success(), "{}", stderr(&out));
        // Each program's output names its stage.
        assert!(stderr(&out).contains("  [left] left"), "{}", stderr(&out));
        assert!(stderr(&out).contains("  [right] right"), "{}", stderr(&out));
        digests.push(stdout(&out));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn independent_stages_run_side_by_side_and_the_first_failure_stops_the_rest() {
    let sb = Sandbox::new();
    // `left` never ends on its own; `right` fails at once. Built one at a time, `left` would
    // run into the 60 s step limit first; side by side, `right`'s failure stops it.
    context(
        &sb,
        "FROM scratch AS tools\nCOPY guest.wasm /bin/guest\n\
         FROM tools AS left\nRUN [\"guest\", \"loop\"]\n\
         FROM tools AS right\nRUN [\"guest\", \"exit\", \"3\"]\n\
         FROM scratch\nCOPY --from=left /bin/guest /a\nCOPY --from=right /bin/guest /b\n",
    );
    let started = Instant::now();
    let out =
        run(sb.kiln().args(["build", "--progress", "plain", "--jobs", "2", "--step-timeout", "60", "-t", "x", "ctx"]));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("exit code: 3"), "the failing stage's error is the build's: {err}");
    assert!(err.contains("nothing was tagged"), "{err}");
    assert!(took < Duration::from_secs(45), "the looping stage was stopped, not waited for ({took:?})");
    assert!(!run(sb.kiln().args(["inspect", "x"])).status.success(), "no tag");
}
