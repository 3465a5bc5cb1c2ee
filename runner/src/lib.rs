//! kiln: container images built from build files with no privileges at all.
//!
//! Call it through [`pipeline`] ([`build`], [`parse`], [`run_image`], [`pull`], [`push`]):
//! requests of plain data in, typed outcomes and errors out, progress reported to a
//! [`progress::Reporter`] of the caller's. The rooms, in BuildKit's words:
//!
//! - [`frontend`]: a WebAssembly frontend component turns the build file into the stage IR
//!   ([`kiln_ir`]), inside a sandbox with no authority; [`diagnostics`] renders what it says;
//! - [`solver`]: plans the stages the target needs, keys each step for the [`cache`], runs
//!   the instructions, and hands RUN steps to an [`executor`];
//! - [`executor`]: runs a step's program against the stage's root filesystem ([`rootfs`]);
//!   today in the WASI sandbox;
//! - [`source`]: images from the [`store`], OCI layouts, registries and named contexts;
//! - [`exporter`]: outputs besides the store: OCI layouts and archives, docker archives,
//!   plain files, Wasm artifacts;
//! - [`store`]: kiln's own OCI layout, the only place the library writes besides scratch
//!   directories and the outputs it is asked for.
//!
//! The library never installs a logger, never prints, and never exits the process; the
//! `kiln` binary (`src/bin/kiln/`) does all three.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
pub mod cancel;
pub mod compression;
pub mod context;
pub mod copy;
pub mod diagnostics;
pub mod executor;
pub mod exporter;
pub mod frontend;
pub mod ignore;
pub mod image;
pub mod layer;
pub mod limits;
pub mod pipeline;
pub mod platform;
pub mod progress;
pub mod rootfs;
pub mod run;
pub mod scratch;
pub mod snapshot;
pub mod solver;
pub mod source;
pub mod store;
pub mod verify;
pub mod wasm;

pub use kiln_ir as ir;
pub use pipeline::{
    BuildError, BuildOutcome, BuildRequest, ParseRequest, Session, build, parse, pull, push, run_image,
};
