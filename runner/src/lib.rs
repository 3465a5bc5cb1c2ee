//! kiln: container images built from Dockerfiles with no privileges at all.
//!
//! The path of a build, one module per stage:
//!
//! - [`frontend`]: a WebAssembly frontend component turns the build file into the stage IR
//!   ([`kiln_ir`]), inside a sandbox with no authority;
//! - [`diagnostics`]: what the frontend says about the file, rendered for people;
//! - [`cli`]: the `kiln` command line over all of it.
//!
//! The library never installs a logger and never exits the process; `main.rs` does both.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod builder;
pub mod cache;
pub mod cancel;
pub mod cli;
pub mod context;
pub mod copy;
pub mod diagnostics;
pub mod export;
pub mod frontend;
pub mod ignore;
pub mod image;
pub mod layer;
pub mod layout;
pub mod limits;
pub mod named_context;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod rootfs;
pub mod run;
pub mod sandbox;
pub mod store;
pub mod verify;
pub mod wasm_artifact;

pub use kiln_ir as ir;
