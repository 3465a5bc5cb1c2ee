//! The `kiln` command line: flags in, library calls, an exit code out.
//!
//! Exit codes: 0 success, 1 the build file or the build failed, 2 bad usage (clap's own).
//! Nothing here is needed by the library; it only wires flags to it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use kiln_ir::{ImageResolver, KeyValue, Request, Severity};

use crate::diagnostics;
use crate::frontend::{Frontend, FrontendLimits};
use crate::platform;

/// Builds OCI images from Dockerfiles with no privileges.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// kiln's store (images, cache, compiled modules) [default: $XDG_DATA_HOME/kiln]
    #[arg(long, global = true, env = "KILN_HOME", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Log more (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse a build file and print its stage IR as JSON
    Parse(ParseArgs),
}

/// `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The build file [default: CONTEXT/Dockerfile]; `-` reads standard input
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Set a build argument (KEY=VALUE, or KEY to take the value from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,

    /// The stage to build [default: the last one]
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// A frontend component to use instead of the built-in Dockerfile frontend
    #[arg(long, value_name = "PATH.wasm")]
    pub frontend: Option<PathBuf>,

    /// The platform to build for (os/arch[/variant]) [default: linux/<host arch>]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Seconds the frontend may run
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub frontend_timeout: u64,

    /// Memory the frontend may use, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub frontend_memory: usize,

    /// The build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

/// Run the command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let root = store_root(cli.root.as_deref());
    match cli.command {
        Command::Parse(args) => parse(&args, &root),
    }
}

/// The store directory: `--root`/`KILN_HOME`, else `$XDG_DATA_HOME/kiln`, else
/// `~/.local/share/kiln`.
pub fn store_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(root) = explicit {
        return root.to_path_buf();
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("kiln");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/kiln")
}

fn error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// `--build-arg` values: `K=V`, or `K` alone to take the value from kiln's environment
/// (skipped when unset, as `docker build` does).
fn build_args(raw: &[String]) -> Result<Vec<KeyValue>, String> {
    let mut out = Vec::new();
    for arg in raw {
        match arg.split_once('=') {
            Some(("", _)) => return Err(format!("--build-arg {arg:?}: the name is empty")),
            Some((k, v)) => out.push(KeyValue::new(k, v)),
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.push(KeyValue::new(arg, v));
                }
            }
        }
    }
    Ok(out)
}

/// An image resolver that knows no image yet: `kiln parse` goes on without base images'
/// configuration and says so in a warning.
struct NoImages;

impl ImageResolver for NoImages {
    fn resolve_image_config(&self, reference: &str, _platform: Option<&str>) -> Result<kiln_ir::ImageConfig, String> {
        Err(format!("{reference} is not in kiln's image store"))
    }
}

fn parse(args: &ParseArgs, root: &Path) -> ExitCode {
    let file = args.file.clone().unwrap_or_else(|| args.context.join("Dockerfile"));
    let file_name = file.display().to_string();
    let contents = if file == Path::new("-") {
        let mut buf = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
            return error(format!("cannot read the build file from standard input: {e}"));
        }
        buf
    } else {
        match std::fs::read(&file) {
            Ok(c) => c,
            Err(e) => {
                return error(format!(
                    "cannot read {file_name}: {e}\nhint: pass the build file with -f, or run kiln in the directory that holds the Dockerfile"
                ));
            }
        }
    };
    let build_args = match build_args(&args.build_args) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    let target_platform = match &args.platform {
        Some(p) => p.clone(),
        None => platform::default_target(),
    };
    let request = Request {
        file_name: file_name.clone(),
        contents,
        build_args,
        target: args.target.clone(),
        build_platform: platform::host(),
        target_platform,
    };
    let limits = FrontendLimits {
        memory_bytes: args.frontend_memory.saturating_mul(1 << 20),
        time: Duration::from_secs(args.frontend_timeout.max(1)),
        ..FrontendLimits::default()
    };
    let cache = Some(root.join("compiled"));
    let frontend = match &args.frontend {
        None => Frontend::dockerfile(cache, limits),
        Some(path) => match std::fs::read(path) {
            Ok(wasm) => Frontend::load(&wasm, &path.display().to_string(), cache, limits),
            Err(e) => return error(format!("cannot read the frontend {}: {e}", path.display())),
        },
    };
    let frontend = match frontend {
        Ok(f) => f,
        Err(e) => return error(e),
    };
    match frontend.parse(&request, Arc::new(NoImages)) {
        Err(e) => error(e),
        Ok(Err(diagnostics)) => {
            for d in &diagnostics {
                eprint!("{}", diagnostics::render(&file_name, &request.contents, d));
            }
            let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
            eprintln!("{file_name}: {errors} error(s); no IR was produced");
            ExitCode::FAILURE
        }
        Ok(Ok(graph)) => {
            for w in &graph.warnings {
                eprint!("{}", diagnostics::render(&file_name, &request.contents, w));
            }
            match serde_json::to_string_pretty(&graph) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => error(format!("cannot print the IR: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_forms() {
        let parsed = build_args(&["A=1".into(), "B=".into(), "C=x=y".into()]).unwrap();
        assert_eq!(parsed, vec![KeyValue::new("A", "1"), KeyValue::new("B", ""), KeyValue::new("C", "x=y")]);
        assert!(build_args(&["=x".into()]).is_err());
        assert_eq!(build_args(&["KILN_TEST_SURELY_UNSET_VARIABLE".into()]).unwrap(), vec![]);
    }

    #[test]
    fn store_root_prefers_explicit() {
        assert_eq!(store_root(Some(Path::new("/tmp/x"))), PathBuf::from("/tmp/x"));
    }
}
