//! Unit tests of the converter's helpers (path joins, signals, `--from` values); the
//! end-to-end tests are in the crate root and `tests/go_tables.rs`.

use super::dispatch::valid_signal;
use super::*;

#[test]
fn joins_paths_like_go() {
    assert_eq!(kiln_ir::join_path("/", "app"), "/app");
    assert_eq!(kiln_ir::join_path("/app", "sub/../x"), "/app/x");
    assert_eq!(kiln_ir::join_path("/app", "/abs"), "/abs");
    assert_eq!(kiln_ir::join_path("/", "../.."), "/");
}

#[test]
fn signals() {
    for ok in ["SIGTERM", "sigkill", "9", "QUIT", "SIGRTMIN+3"] {
        assert!(valid_signal(ok), "{ok}");
    }
    for bad in ["SIGFOO", "0", "99", ""] {
        assert!(!valid_signal(bad), "{bad}");
    }
}

#[test]
fn from_values() {
    let names: BTreeMap<String, usize> = [("builder".to_string(), 0)].into_iter().collect();
    assert_eq!(resolve_from("0", &names, 2), Ok(CopySource::Stage(0)));
    assert_eq!(resolve_from("Builder", &names, 2), Ok(CopySource::Stage(0)));
    assert_eq!(resolve_from("alpine:3", &names, 2), Ok(CopySource::Image("alpine:3".into())));
    assert_eq!(resolve_from("5", &names, 2), Err("invalid stage index 5".into()));
    assert_eq!(resolve_from("-1", &names, 2), Err("invalid stage index -1".into()));
}
