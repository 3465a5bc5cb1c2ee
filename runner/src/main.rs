//! The `kiln` binary: parse flags, install logging, run, exit.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = kiln::cli::Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    // Ctrl-C, SIGTERM and SIGHUP stop the build cleanly (see kiln::cancel); a second one exits
    // at once (and the next kiln removes what that left in the store's tmp/).
    let _ = ctrlc::set_handler(|| {
        if kiln::cancel::requested() {
            std::process::exit(130);
        }
        kiln::cancel::request();
    });
    kiln::cli::run(cli)
}
