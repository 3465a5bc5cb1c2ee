//! Cancellation of a build (Ctrl-C, or SIGTERM or SIGHUP as a service manager or CI runner
//! sends them): one process-wide flag.
//!
//! The binary sets it from its signal handler; a running RUN step notices it at its next
//! epoch tick (every 10 ms) and stops, and the executor checks it between steps. The build
//! then fails like any other: nothing is tagged, its scratch directory is removed, and the
//! store stays valid because every store write is atomic.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ask the running build to stop.
pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether the build was asked to stop.
pub fn requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}
