//! The instructions' operations on a stage: one module per kind of instruction.

pub(super) mod config;
pub(super) mod copy;
pub(super) mod run;
