//! kiln's integration tests: the `kiln` binary driven as users drive it.

mod parse;
mod sandbox;
mod support;
