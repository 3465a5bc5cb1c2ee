//! `kiln run`: an image's command, run as a WASI program in the RUN sandbox (or, with
//! `--executor=proot`, a Linux program under proot) on a throwaway copy of the image's root
//! filesystem.
//!
//! This module owns what `docker run` decides before a process starts: which argv runs
//! ([`command`]: ENTRYPOINT, CMD, ARGS and `--entrypoint` combined by Docker's rules), its
//! environment ([`environment`]: the image's Env, then `-e`), its working directory and user,
//! and what the outcome means as an exit status ([`exit_status`], [`RunImageError::exit_code`]).
//!
//! It passes on resolving IMAGE (the CLI, through [`crate::image`]), unpacking layers
//! ([`LoadedImage::rootfs`]) and running programs (the executors of [`crate::executor`], with output sent straight to
//! kiln's own stdout and stderr as it is written).
//!
//! Nothing goes back into the store: the files a program creates or changes live in a
//! scratch directory under the store's `tmp/` for the length of the run and are gone when it
//! ends, as with `docker run --rm`. Only the cache of compiled programs (`compiled/`) may grow.

use std::sync::Arc;
use std::time::Duration;

use crate::copy;
use crate::executor::wasi::{self, OutputSink, RunSpec, program::ProgramError};
use crate::executor::{Dispatch, Executor, ExecutorChoice, proot};
use crate::image::RunConfig;
use crate::platform::DEFAULT_PATH;
use crate::rootfs::{self, Meta};
use crate::scratch::Scratch;
use crate::source::image::{ImageError, LoadedImage};
use crate::store::{Store, StoreError};

/// What `kiln run` is asked for besides the image.
#[derive(Debug, Clone, Default)]
pub struct RunRequest<'a> {
    /// ARGS after IMAGE: they replace the image's CMD when there are any.
    pub args: &'a [String],
    /// `--entrypoint`: replaces the image's ENTRYPOINT and drops its CMD; the empty string
    /// clears the ENTRYPOINT, as with Docker.
    pub entrypoint: Option<&'a str>,
    /// `-e` values in order: `KEY=VALUE`, or `KEY` to take the value from kiln's environment.
    pub env: &'a [String],
    /// `-w`: the working directory (absolute) instead of the image's WorkingDir.
    pub workdir: Option<&'a str>,
    /// Wall time the program (and what it starts) may take, if limited.
    pub timeout: Option<Duration>,
    /// Memory each program may use, bytes.
    pub memory: usize,
    /// Programs that may run at the same time.
    pub processes: usize,
    /// Where compiled programs are cached (none: nowhere, they are compiled every time).
    pub compile_cache: Option<std::path::PathBuf>,
    /// Which executors may run the program (`--executor`).
    pub executor: ExecutorChoice,
}

/// How a program that ran to its end ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit status the program gave (see [`exit_status`] for kiln's own).
    pub status: i32,
    /// What the sandbox had to say (for example a working directory the program cannot use).
    pub warnings: Vec<String>,
}

/// Why an image's program could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunImageError {
    /// Neither ENTRYPOINT, CMD, ARGS nor `--entrypoint` says what to run.
    #[error("{image} has no command to run: it sets neither ENTRYPOINT nor CMD")]
    NoCommand {
        /// The image as the user named it.
        image: String,
    },
    /// A `-e` value without a name.
    #[error("-e {value:?}: the variable name is empty")]
    Env {
        /// The value as given.
        value: String,
    },
    /// The working directory is unusable.
    #[error("working directory {dir:?}: {detail}")]
    Workdir {
        /// The directory as given.
        dir: String,
        /// What is wrong.
        detail: String,
    },
    /// The image's USER is not one its /etc/passwd and /etc/group know.
    #[error("USER {user:?} of {image}: {detail}")]
    User {
        /// The image as the user named it.
        image: String,
        /// The USER value.
        user: String,
        /// What is wrong.
        detail: String,
    },
    /// The image's layers cannot be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The store failed (the scratch directory).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// kiln's store cannot be opened.
    #[error("cannot open kiln's store: {0}")]
    OpenStore(StoreError),
    /// The image is not in the store, and pulling it failed.
    #[error("image {image} is not in kiln's store, and pulling it failed: {error}")]
    Pull {
        /// The image as the user named it.
        image: String,
        /// Why the pull failed.
        error: Box<crate::source::SourceError>,
    },
    /// The program could not start, crashed or was stopped.
    #[error("{}", sandbox_message(.0))]
    Sandbox(#[from] wasi::RunError),
}

impl RunImageError {
    /// kiln's exit status for this failure, as `docker run` has it: 127 when the program is
    /// not there, 126 when it is there but cannot run, 130 when interrupted, 125 for every
    /// other failure of kiln or of the sandbox (a crash, a limit, a missing image).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunImageError::Sandbox(wasi::RunError::Program(ProgramError::NotFound { .. })) => 127,
            RunImageError::Sandbox(wasi::RunError::Program(ProgramError::Empty)) => 125,
            RunImageError::Sandbox(wasi::RunError::Program(_)) => 126,
            RunImageError::Sandbox(wasi::RunError::Cancelled) => 130,
            _ => 125,
        }
    }

    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            RunImageError::NoCommand { .. } => {
                "name the program after the image (kiln run IMAGE PROGRAM [ARGS...]) or pass --entrypoint PROGRAM"
            }
            RunImageError::Image(ImageError::NotFound { .. }) => {
                "images come from kiln's store (`kiln images`) or an OCI layout (oci-layout://DIR[:TAG])"
            }
            RunImageError::Pull { .. } => {
                "images come from kiln's store (`kiln images`), a registry (`kiln pull`), or an OCI layout (oci-layout://DIR[:TAG])"
            }
            RunImageError::Sandbox(wasi::RunError::Program(ProgramError::NotFound { .. })) => {
                "check the image's PATH (kiln inspect IMAGE), or give the program's absolute path"
            }
            RunImageError::Sandbox(wasi::RunError::Timeout(_)) => "give it longer with --timeout SECONDS",
            RunImageError::Sandbox(wasi::RunError::Memory(_)) => "give it more with --memory MIB",
            RunImageError::Sandbox(wasi::RunError::Processes(_)) => "allow more with --processes N",
            RunImageError::Sandbox(wasi::RunError::Program(ProgramError::Linux { .. })) => proot::TRADE_OFF,
            _ => return None,
        })
    }
}

/// The sandbox's errors, worded for a program run on its own rather than a build step.
fn sandbox_message(e: &wasi::RunError) -> String {
    match e {
        wasi::RunError::Program(ProgramError::NotFound { name, on_path: true }) => {
            format!("{name}: executable file not found on the image's PATH")
        }
        wasi::RunError::Program(ProgramError::NotFound { name, on_path: false }) => {
            format!("{name}: no such file in the image")
        }
        wasi::RunError::Timeout(limit) => {
            format!("the program ran longer than its limit of {}s (--timeout) and was stopped", limit.as_secs())
        }
        wasi::RunError::Memory(bytes) => {
            format!("the program tried to use more than {} MiB of memory (--memory) and was stopped", bytes >> 20)
        }
        wasi::RunError::LayerSize { path, limit, .. } => format!(
            "writing {path} would take the files the program wrote past {}, the most kiln run keeps, so the write was refused",
            crate::limits::human_size(*limit)
        ),
        other => other.to_string(),
    }
}

/// The argv to run, by Docker's rules: ENTRYPOINT followed by CMD; ARGS replace CMD;
/// `--entrypoint` replaces ENTRYPOINT (the empty string clears it) and drops the image's CMD,
/// so only ARGS follow it.
///
/// # Errors
///
/// [`RunImageError::NoCommand`] when the result is empty.
pub fn command(
    config: &RunConfig,
    entrypoint: Option<&str>,
    args: &[String],
    image: &str,
) -> Result<Vec<String>, RunImageError> {
    let (entrypoint, cmd): (Vec<String>, &[String]) = match entrypoint {
        Some("") => (Vec::new(), args),
        Some(program) => (vec![program.to_string()], args),
        None if args.is_empty() => {
            (config.entrypoint.clone().unwrap_or_default(), config.cmd.as_deref().unwrap_or_default())
        }
        None => (config.entrypoint.clone().unwrap_or_default(), args),
    };
    let mut argv = entrypoint;
    argv.extend_from_slice(cmd);
    if argv.is_empty() {
        return Err(RunImageError::NoCommand { image: image.to_string() });
    }
    Ok(argv)
}

/// The program's environment: the image's Env (with Docker's default PATH when it sets
/// none), then each `-e` in order, replacing a variable of the same name in place. `-e KEY`
/// takes the value `host` gives (kiln's environment) and is skipped when there is none, as
/// with Docker.
///
/// # Errors
///
/// [`RunImageError::Env`] for a `-e` without a name.
pub fn environment(
    image_env: &[String],
    overrides: &[String],
    host: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, RunImageError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| match env.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v,
        None => env.push((k.to_string(), v)),
    };
    for entry in image_env {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set(k, v.to_string());
    }
    if !image_env.iter().any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH") {
        set("PATH", DEFAULT_PATH.to_string());
    }
    for value in overrides {
        match value.split_once('=') {
            Some(("", _)) => return Err(RunImageError::Env { value: value.clone() }),
            Some((k, v)) => set(k, v.to_string()),
            None if value.is_empty() => return Err(RunImageError::Env { value: value.clone() }),
            None => {
                if let Some(v) = host(value) {
                    set(value, v);
                }
            }
        }
    }
    Ok(env)
}

/// kiln's exit status for a program's: a status of 0-255 as it is; anything else as the low
/// eight bits, as a POSIX shell reports it, with a warning saying so.
pub fn exit_status(status: i32) -> (u8, Option<String>) {
    match u8::try_from(status) {
        Ok(code) => (code, None),
        Err(_) => {
            let code = (status & 0xff) as u8;
            (code, Some(format!("the program's exit status {status} is outside 0-255; kiln exits with {code}")))
        }
    }
}

/// A seed for the program's random numbers that differs from run to run (a build step's is
/// fixed; a program run on its own is not a build).
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// Run `image`'s command as `request` asks, on a copy of its root filesystem that is thrown
/// away afterwards. The program's stdout and stderr go to kiln's own as it writes them.
///
/// # Errors
///
/// The request is invalid (no command, a bad `-e` or `-w`, an unknown USER), the image's
/// layers cannot be read, or the program cannot start, crashes or is stopped by a limit or
/// Ctrl-C. A program that exits with a failing status is not an error: see
/// [`Finished::status`].
pub fn run(store: &Store, image: &LoadedImage, request: &RunRequest<'_>) -> Result<Finished, RunImageError> {
    let config = &image.config.config;
    let name = image.reference.as_str();
    // Everything that can be checked without the filesystem is checked first.
    let argv = command(config, request.entrypoint, request.args, name)?;
    let env = environment(&config.env, request.env, |k| std::env::var(k).ok())?;
    let cwd = match request.workdir {
        Some(dir) if !dir.starts_with('/') => {
            return Err(RunImageError::Workdir { dir: dir.to_string(), detail: "it must be an absolute path".into() });
        }
        Some(dir) => dir.to_string(),
        None => config.working_dir.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "/".into()),
    };
    let cwd = format!("/{}", rootfs::join(&rootfs::clean(&cwd)));

    let scratch_dir = store.build_dir()?;
    let scratch = Arc::new(Scratch::new(scratch_dir.path()));
    let mut tree = image.rootfs(store, &scratch)?;
    let owner = match config.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => copy::resolve_owner(user, &tree, copy::OwnerSpec::User).map_err(|e| RunImageError::User {
            image: name.to_string(),
            user: user.to_string(),
            detail: e.to_string(),
        })?,
        None => (0, 0),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    // Docker creates a missing working directory, owned by root.
    tree.mkdir_all(&[], &cwd, Meta { mode: 0o755, uid: 0, gid: 0, mtime: now })
        .map_err(|e| RunImageError::Workdir { dir: cwd.clone(), detail: e.to_string() })?;

    tracing::debug!(image = name, ?argv, cwd, "running");
    let spec = RunSpec {
        argv: &argv,
        env: &env,
        cwd: &cwd,
        owner,
        epoch: now,
        seed: fresh_seed(),
        memory: request.memory,
        timeout: request.timeout,
        // Output goes to the terminal: nothing is kept, nothing is counted.
        output_limit: 0,
        output_budget: u64::MAX,
        processes: request.processes,
        sink: OutputSink::Terminal,
        binds: &[],
        stop: None,
    };
    let executor = Dispatch::new(request.executor, request.compile_cache.clone());
    let (tree, outcome) = executor.run(tree, scratch, &spec);
    // The tree's files live in the scratch directory: both go now, after the executor, whose
    // step directories (in the scratch directory, with whatever modes the program left) it
    // removes itself.
    drop(tree);
    drop(executor);
    drop(scratch_dir);
    let outcome = outcome?;
    Ok(Finished { status: outcome.status, warnings: outcome.warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> RunConfig {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        RunConfig { entrypoint: entrypoint.map(owned), cmd: cmd.map(owned), ..RunConfig::default() }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// One line per case: image ENTRYPOINT, image CMD, --entrypoint, ARGS => argv (None: no command).
    macro_rules! argv_case {
        ($name:ident: $ep:expr, $cmd:expr, $flag:expr, $args:expr => $want:expr) => {
            #[test]
            fn $name() {
                let got = command(&config($ep, $cmd), $flag, &strings($args), "img").ok();
                let want: Option<&[&str]> = $want;
                assert_eq!(got, want.map(strings));
            }
        };
    }

    argv_case!(cmd_alone: None, Some(&["a", "b"]), None, &[] => Some(&["a", "b"]));
    argv_case!(args_replace_cmd: None, Some(&["a", "b"]), None, &["c"] => Some(&["c"]));
    argv_case!(entrypoint_then_cmd: Some(&["e", "1"]), Some(&["a"]), None, &[] => Some(&["e", "1", "a"]));
    argv_case!(entrypoint_then_args: Some(&["e"]), Some(&["a"]), None, &["x", "y"] => Some(&["e", "x", "y"]));
    argv_case!(entrypoint_alone: Some(&["e"]), None, None, &[] => Some(&["e"]));
    argv_case!(flag_drops_cmd: Some(&["e"]), Some(&["a"]), Some("p"), &[] => Some(&["p"]));
    argv_case!(flag_keeps_args: Some(&["e"]), Some(&["a"]), Some("p"), &["x"] => Some(&["p", "x"]));
    argv_case!(empty_flag_clears: Some(&["e"]), Some(&["a"]), Some(""), &["x"] => Some(&["x"]));
    argv_case!(empty_flag_alone: Some(&["e"]), Some(&["a"]), Some(""), &[] => None);
    argv_case!(nothing: None, None, None, &[] => None);
    argv_case!(empty_lists: Some(&[]), Some(&[]), None, &[] => None);

    #[test]
    fn environment_overrides_in_place() {
        let image = strings(&["A=1", "PATH=/bin", "B=x=y"]);
        let host = |k: &str| (k == "FROM_HOST").then(|| "h".to_string());
        let env = environment(&image, &strings(&["B=2", "C=", "FROM_HOST", "UNSET_HERE"]), host).unwrap();
        let want = [("A", "1"), ("PATH", "/bin"), ("B", "2"), ("C", ""), ("FROM_HOST", "h")];
        assert_eq!(env, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(matches!(environment(&[], &strings(&["=v"]), host), Err(RunImageError::Env { .. })));
        assert!(matches!(environment(&[], &strings(&[""]), host), Err(RunImageError::Env { .. })));
    }

    #[test]
    fn environment_has_a_path() {
        let env = environment(&[], &[], |_| None).unwrap();
        assert_eq!(env, vec![("PATH".to_string(), DEFAULT_PATH.to_string())]);
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status(0), (0, None));
        assert_eq!(exit_status(255), (255, None));
        assert_eq!(exit_status(256).0, 0);
        assert!(exit_status(256).1.is_some());
        assert_eq!(exit_status(-1).0, 255);
    }

    #[test]
    fn exit_codes_follow_docker() {
        let not_found = wasi::RunError::Program(ProgramError::NotFound { name: "x".into(), on_path: true });
        assert_eq!(RunImageError::from(not_found).exit_code(), 127);
        let not_wasi = wasi::RunError::Program(ProgramError::NotWasi { path: "/x".into(), what: "ELF".into() });
        assert_eq!(RunImageError::from(not_wasi).exit_code(), 126);
        assert_eq!(RunImageError::from(wasi::RunError::Timeout(Duration::from_secs(1))).exit_code(), 125);
        assert_eq!(RunImageError::NoCommand { image: "i".into() }.exit_code(), 125);
        assert_eq!(RunImageError::from(wasi::RunError::Cancelled).exit_code(), 130);
    }
}
