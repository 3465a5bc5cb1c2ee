//! kiln's integration tests: the `kiln` binary driven as users drive it.

mod build;
mod cache;
mod crash;
mod examples;
mod frontends;
#[path = "../hostile/mod.rs"]
mod hostile;
mod kiln_run;
mod library;
mod oci;
mod parallel;
mod parse;
mod peers;
mod proot;
mod python_frontend;
mod registry;
mod run;
mod sandbox;
mod shell;
mod support;
mod toolchains;
mod wasm_artifact;
