//! The `kiln` binary: parse flags, install logging and the signal handler, call the library,
//! render what it reports, exit with a code.
//!
//! Exit codes: 0 success, 1 the build file or the build failed, 2 bad usage (clap's own),
//! 130 interrupted. `kiln run` exits as `docker run` does: with the program's status, or 125
//! when kiln or the sandbox failed, 126 when the program cannot run, 127 when it is not there.
//! Everything the commands do is [`kiln::pipeline`]'s; this binary only wires flags to it
//! and shows the result.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Print a line on standard output. A reader that went away (`kiln inspect IMAGE | head -1`)
/// is not an error: kiln stops quietly there, as Unix tools do; any other write error is
/// reported.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }};
}

mod args;
mod build;
mod frontends;
mod images;
mod registry;
mod render;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    run(cli)
}

/// Run one command; returns the process exit code.
fn run(cli: Cli) -> ExitCode {
    let root = args::store_root(cli.root.as_deref());
    // An empty KILN_COMPILE_CACHE means none, as an unset one does.
    let compile_cache = cli.compile_cache.clone().filter(|d| !d.as_os_str().is_empty());
    let session = kiln::pipeline::Session::new(root, cli.registry_options()).with_compile_cache(compile_cache);
    match cli.command {
        Command::Parse(args) => build::parse(&args, &session),
        Command::Build(args) => build::build(&args, &session),
        Command::Pull(args) => registry::pull(&args, &session),
        Command::Push(args) => registry::push(&args, &session),
        Command::Login(args) => registry::login(&args, &session),
        Command::Logout(args) => registry::logout(&args),
        Command::Frontend(command) => frontends::command(&command, &session),
        Command::Images => images::images(&session),
        Command::History(arg) => images::history(&arg.image, &session),
        Command::Inspect(arg) => images::inspect(&arg.image, &session),
        Command::Rmi(args) => images::rmi(&args.images, &session),
        Command::Prune => images::prune(&session),
        Command::Run(args) => registry::run(&args, &session),
    }
}

/// Print an error; exit code 1.
fn error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Print a usage error; exit code 2, as clap's own.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Print why flags could not become a request, with the exit code that says which kind.
fn flag_error(e: args::FlagError) -> ExitCode {
    match e {
        args::FlagError::Usage(e) => usage(e),
        args::FlagError::Failed(e) => error(e),
    }
}
