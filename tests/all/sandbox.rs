//! The frontend sandbox: a hostile frontend can loop, trap, allocate, try to read files or
//! open sockets, or return a malformed graph, and kiln fails cleanly every time.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, hostile_frontend, run, stderr};

/// Run `kiln parse` with the hostile frontend on a build file holding `behaviour`.
fn hostile(behaviour: &str, extra: &[&str]) -> (std::process::Output, Duration) {
    let sb = Sandbox::new();
    sb.write("Dockerfile", behaviour);
    let start = Instant::now();
    let out = run(sb.kiln().arg("parse").arg("--frontend").arg(hostile_frontend()).args(extra));
    (out, start.elapsed())
}

#[test]
fn an_endless_loop_is_stopped_at_the_time_limit() {
    let (out, elapsed) = hostile("loop", &["--frontend-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not finish within 2s and was stopped"), "{}", stderr(&out));
    // Generous: includes compiling the component; the point is that it does not hang.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

#[test]
fn a_trap_is_a_clean_error() {
    let (out, _) = hostile("trap", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("crashed"), "{err}");
    assert!(err.contains("panics on purpose"), "the panic message is shown: {err}");
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let (out, _) = hostile("alloc", &["--frontend-memory", "64"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tried to use more than 67108864 bytes of memory"), "{}", stderr(&out));
}

#[test]
fn host_files_are_invisible() {
    let (out, _) = hostile("read-file /etc/passwd", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot read /etc/passwd"), "{err}");
    assert!(!err.contains("root:"), "the host file leaked: {err}");
}

#[test]
fn sockets_do_not_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (out, _) = hostile(&format!("connect {addr}"), &[]);
    assert!(stderr(&out).contains(&format!("cannot connect to {addr}")), "{}", stderr(&out));
}

#[test]
fn no_environment_arguments_or_clock() {
    let (out, _) = hostile("env", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("env=[] args=[]"), "{}", stderr(&out));
    let (out, _) = hostile("clock", &[]);
    assert!(stderr(&out).contains("clock=0"), "{}", stderr(&out));
}

#[test]
fn malformed_graphs_are_rejected_before_anyone_uses_them() {
    let (out, _) = hostile("stage99", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("returned an invalid build graph"), "{}", stderr(&out));
    assert!(stderr(&out).contains("stage 99, which does not exist"), "{}", stderr(&out));
    let (out, _) = hostile("dotdot", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("outside the build context"), "{}", stderr(&out));
}

#[test]
fn a_crash_shows_what_the_frontend_printed() {
    let (out, _) = hostile("print", &[]);
    let err = stderr(&out);
    assert!(err.contains("hello from the frontend's stdout"), "{err}");
    assert!(err.contains("and from its stderr"), "{err}");
}

#[test]
fn files_that_are_not_frontends_are_refused_with_what_they_export() {
    let sb = Sandbox::new();
    sb.write("Dockerfile", "FROM scratch\n");
    let junk = sb.write("junk.wasm", b"not wasm at all");
    let out = run(sb.kiln().arg("parse").arg("--frontend").arg(&junk));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a valid WebAssembly component"), "{}", stderr(&out));
    // An empty component: valid, but it exports nothing.
    let empty = sb.write("empty.wasm", [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
    let out = run(sb.kiln().arg("parse").arg("--frontend").arg(&empty));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not a kiln frontend"), "{err}");
    assert!(err.contains("the component exports []"), "{err}");
}

/// A registry that answers nothing and counts the connections made to it.
struct Listener {
    addr: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Listener {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Listener { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A frontend can read the build arguments, so it must not be able to make kiln contact a
/// host of its choosing: neither through `resolve-image-config` nor through the images its
/// graph builds on. Only registries the user named are contacted.
#[test]
fn a_frontend_cannot_make_kiln_send_a_build_argument_to_a_registry() {
    let registry = Listener::start();
    let sb = Sandbox::new();
    // The frontend makes the registry's address out of two words: the build file never names it.
    sb.write("ctx/Dockerfile", format!("exfiltrate {}", registry.addr.replace(':', " ")));
    let insecure = format!("--insecure-registry={}", registry.addr);
    let frontend = hostile_frontend();
    let out = run(sb
        .kiln()
        .args(["build", &insecure, "--build-arg", "TOKEN=hunter2", "--frontend"])
        .arg(&frontend)
        .arg("ctx"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not in kiln's store yet (frontends are answered from the store only)"), "{err}");
    assert!(
        err.contains(&format!(
            "its registry {} appears nowhere in the build file, the build arguments or the named contexts",
            registry.addr
        )),
        "{err}"
    );
    assert!(err.contains("nothing was tagged"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(registry.connections(), 0, "kiln connected to the frontend's registry: {err}");

    // `kiln parse` never pulls bases either.
    let out = run(sb
        .kiln()
        .args(["parse", &insecure, "--build-arg", "TOKEN=hunter2", "--frontend"])
        .arg(&frontend)
        .arg("ctx"));
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(registry.connections(), 0, "kiln parse connected to the frontend's registry");
}
