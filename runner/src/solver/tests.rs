//! The solver's unit tests: plans, cache keys, seeds and scheduling, with build files parsed
//! by the built-in Dockerfile frontend and RUN steps handed to the recording executor (no
//! WASI program runs here; the integration tests run real ones).

use std::sync::{Arc, OnceLock};

use kiln_ir::{BuildGraph, NoImages, Request};
use tempfile::TempDir;

use super::cachekey::run_seed;
use super::{Cause, SolveError, SolveRequest, Solved, images_needed, plan::plan, solve};
use crate::context::BuildContext;
use crate::executor::recording::RecordingExecutor;
use crate::frontend::{Frontend, FrontendLimits};
use crate::limits::Limits;
use crate::progress::Progress;
use crate::source::named::NamedContexts;
use crate::source::registry::RegistryScope;
use crate::store::Store;

/// The graph the built-in Dockerfile frontend makes of `dockerfile` (the frontend is
/// compiled once per test process).
fn graph(dockerfile: &str) -> BuildGraph {
    static FRONTEND: OnceLock<Frontend> = OnceLock::new();
    let frontend =
        FRONTEND.get_or_init(|| Frontend::dockerfile(None, FrontendLimits::default()).expect("the frontend loads"));
    let request = Request {
        file_name: "Dockerfile".into(),
        contents: dockerfile.as_bytes().to_vec(),
        build_args: Vec::new(),
        target: None,
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
    };
    frontend.parse(&request, Arc::new(NoImages)).expect("the frontend runs").expect("the Dockerfile parses")
}

/// A store and a build context of its own, in a temporary directory.
struct Fixture {
    dir: TempDir,
    store: Store,
    executor: RecordingExecutor,
}

impl Fixture {
    fn new(context_files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        for (name, text) in context_files {
            std::fs::write(dir.path().join("ctx").join(name), text).unwrap();
        }
        let store = Store::open(&dir.path().join("store")).unwrap();
        Fixture { dir, store, executor: RecordingExecutor::default() }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("ctx").join(name), text).unwrap();
    }

    /// Solve `dockerfile`'s target, with the cache or without.
    fn solve(&self, dockerfile: &str, use_cache: bool) -> Result<Solved, SolveError> {
        let graph = graph(dockerfile);
        let work = self.store.build_dir().unwrap();
        let context = BuildContext::load(&self.dir.path().join("ctx"), None, 1000, 1 << 20, work.path())
            .expect("the context loads");
        let request = SolveRequest {
            graph: &graph,
            context: &context,
            platform: "linux/amd64".into(),
            epoch: None,
            step_timeout: None,
            limits: Limits::default(),
            use_cache,
            frontend_digest: "sha256:test".into(),
            jobs: 2,
            registry: None,
            always_pull: false,
            platform_explicit: false,
            keep_tree: true,
            named_contexts: &NamedContexts::default(),
            registry_scope: &RegistryScope::default(),
            executor: &self.executor,
        };
        solve(&self.store, &Progress::silent(), &request, work.path())
    }

    fn steps_run(&self) -> Vec<Vec<String>> {
        self.executor.argvs()
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn only_the_stages_the_target_needs_are_planned_in_dependency_order() {
    let g = graph(
        "FROM scratch AS unused\nRUN [\"exit\", \"1\"]\n\
         FROM scratch AS tools\n\
         FROM base:1 AS lib\n\
         FROM tools AS app\nCOPY --from=lib /a /a\n",
    );
    assert_eq!(plan(&g, &NamedContexts::default()), vec![1, 2, 3]);
    // The unused stage's base is never resolved; the library's is.
    assert_eq!(images_needed(&g, &NamedContexts::default()), vec!["base:1".to_string()]);
}

#[test]
fn a_run_step_goes_to_the_executor_and_its_writes_become_a_layer() {
    let f = Fixture::new(&[]);
    let solved = f.solve("FROM scratch\nWORKDIR /w\nRUN [\"write\", \"/w/hello\", \"hi\"]\n", true).unwrap();
    assert_eq!(f.steps_run(), vec![argv(&["write", "/w/hello", "hi"])]);
    let steps = f.executor.steps.lock().unwrap().clone();
    assert_eq!(steps[0].cwd, "/w");
    assert_eq!(solved.tree.read_file("/w/hello", 16).as_deref(), Some(&b"hi"[..]));
    // WORKDIR's directory and the RUN's file: two layers.
    assert_eq!(solved.config.rootfs.diff_ids.len(), 2);
}

#[test]
fn a_step_whose_inputs_did_not_change_comes_from_the_cache() {
    let f = Fixture::new(&[("a.txt", "one")]);
    let file = "FROM scratch\nCOPY a.txt /\nRUN [\"write\", \"/b\", \"x\"]\n";
    let first = f.solve(file, true).unwrap();
    assert_eq!(f.steps_run().len(), 1);
    let again = f.solve(file, true).unwrap();
    assert_eq!(f.steps_run().len(), 1, "nothing changed, so nothing runs");
    assert_eq!(again.manifest.digest(), first.manifest.digest());

    // A changed context file changes the COPY's key, and so every later step's.
    f.write("a.txt", "two");
    let changed = f.solve(file, true).unwrap();
    assert_eq!(f.steps_run().len(), 2);
    assert_ne!(changed.manifest.digest(), first.manifest.digest());

    // --no-cache runs the step even though the cache has it.
    f.solve(file, false).unwrap();
    assert_eq!(f.steps_run().len(), 3);
}

#[test]
fn a_changed_instruction_runs_again_but_the_steps_before_it_do_not() {
    let f = Fixture::new(&[]);
    f.solve("FROM scratch\nRUN [\"write\", \"/a\", \"1\"]\nRUN [\"write\", \"/b\", \"1\"]\n", true).unwrap();
    f.solve("FROM scratch\nRUN [\"write\", \"/a\", \"1\"]\nRUN [\"write\", \"/b\", \"2\"]\n", true).unwrap();
    assert_eq!(
        f.steps_run(),
        vec![argv(&["write", "/a", "1"]), argv(&["write", "/b", "1"]), argv(&["write", "/b", "2"])]
    );
}

#[test]
fn a_failing_step_is_a_typed_error_naming_its_step_and_line() {
    let f = Fixture::new(&[]);
    let err = f.solve("FROM scratch AS a\nRUN [\"exit\", \"3\"]\n", true).unwrap_err();
    assert!(matches!(*err.cause, Cause::Exit { status: 3, .. }), "{err:?}");
    assert_eq!(err.step.as_deref(), Some("[a 2/2] RUN [\"exit\", \"3\"]"));
    assert_eq!(err.span.map(|s| s.start.line), Some(2));
    assert_eq!(
        err.to_string(),
        "[a 2/2] RUN [\"exit\", \"3\"]: process \"exit 3\" did not complete successfully: exit code: 3"
    );
}

#[test]
fn a_missing_context_file_says_where_paths_are_relative_to() {
    let f = Fixture::new(&[]);
    let err = f.solve("FROM scratch\nCOPY missing /\n", true).unwrap_err();
    assert!(matches!(*err.cause, Cause::Copy(crate::copy::CopyError::NotFound { .. })), "{err:?}");
    assert!(err.hint.as_deref().is_some_and(|h| h.contains("relative to the build context")), "{err:?}");
}

#[test]
fn a_failed_stage_stops_the_build_and_nothing_after_it_runs() {
    let f = Fixture::new(&[]);
    let err = f
        .solve(
            "FROM scratch AS broken\nRUN [\"exit\", \"2\"]\n\
             FROM broken AS after\nRUN [\"write\", \"/never\", \"x\"]\n",
            true,
        )
        .unwrap_err();
    assert!(matches!(*err.cause, Cause::Exit { status: 2, .. }), "{err:?}");
    assert_eq!(f.steps_run(), vec![argv(&["exit", "2"])]);
}

#[test]
fn the_run_seed_is_fixed_by_the_step_and_differs_between_steps() {
    let a = run_seed("RUN x", &argv(&["x"]), "/", 2);
    assert_eq!(a, run_seed("RUN x", &argv(&["x"]), "/", 2));
    assert_ne!(a, run_seed("RUN x", &argv(&["x"]), "/", 3));
    assert_ne!(a, run_seed("RUN x", &argv(&["x"]), "/w", 2));
    // Fields cannot run into each other.
    assert_ne!(run_seed("RUN x", &argv(&["ab", "c"]), "/", 2), run_seed("RUN x", &argv(&["a", "bc"]), "/", 2));
    // A specified hash: this value is the same for every build of kiln, on every toolchain.
    assert_eq!(a, PINNED_SEED);
}

/// `run_seed("RUN x", ["x"], "/", 2)`, pinned: a change here changes the randomness of every
/// RUN step, and so image digests; it needs a cache-format bump and a note.
const PINNED_SEED: u64 = 2_694_966_693_911_209_308;
