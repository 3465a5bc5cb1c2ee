//! Starting proot on a step's directory and waiting for it: the command line, the
//! environment the step is given and nothing else of kiln's, its output captured (or passed
//! to the terminal), and an end when the step must stop.
//!
//! proot runs in a process group of its own, so stopping a step (Ctrl-C, another stage
//! failed, its time is up, it printed past its budget) kills proot and everything it traces.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::{Bind, OutputSink, RunError, RunSpec};

/// Where a step runs: its directory, proot's own temporary directory, and the program.
pub(super) struct Launch<'a> {
    /// The installed proot.
    pub(super) proot: &'a Path,
    /// The step's root filesystem on disk.
    pub(super) root: &'a Path,
    /// A directory for proot's own files (`PROOT_TMP_DIR`).
    pub(super) tmp: &'a Path,
    /// argv[0] as found on the stage's PATH.
    pub(super) program: &'a str,
}

/// The host paths every step sees: the host's devices, processes and kernel, as a
/// container runtime gives a container.
const HOST_BINDS: [&str; 3] = ["/dev", "/proc", "/sys"];

/// proot's arguments for `spec`: `-0` for root (or `-i UID:GID` for another `USER`), the root
/// filesystem, the working directory, the host's `/dev`, `/proc`, `/sys`, the step's binds,
/// then the program and its arguments.
pub(super) fn arguments(launch: &Launch<'_>, spec: &RunSpec<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    match spec.owner {
        (0, 0) => args.push("-0".into()),
        (uid, gid) => args.extend(["-i".into(), format!("{uid}:{gid}").into()]),
    }
    args.extend(["-r".into(), launch.root.as_os_str().to_owned(), "-w".into(), spec.cwd.into()]);
    for dir in HOST_BINDS {
        args.extend(["-b".into(), dir.into()]);
    }
    for Bind { source, target } in spec.binds {
        let mut bind = source.as_os_str().to_owned();
        bind.push(":");
        bind.push(target);
        args.extend(["-b".into(), bind]);
    }
    args.push(launch.program.into());
    args.extend(spec.argv.iter().skip(1).map(OsString::from));
    args
}

/// The environment of the step: exactly the spec's, with `PATH` and `HOME` as Docker
/// defaults them, and proot's temporary directory.
pub(super) fn environment(launch: &Launch<'_>, spec: &RunSpec<'_>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = spec.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    let has = |name: &str| spec.env.iter().any(|(k, _)| k == name);
    if !has("PATH") {
        env.push(("PATH".into(), crate::platform::DEFAULT_PATH.into()));
    }
    if !has("HOME") {
        env.push(("HOME".into(), if spec.owner.0 == 0 { "/root" } else { "/" }.into()));
    }
    env.push(("PROOT_TMP_DIR".into(), launch.tmp.into()));
    env
}

/// How the step ended.
pub(super) struct Ended {
    /// Its exit status (128 + the signal when a signal ended it).
    pub(super) status: i32,
    /// Output kept, stdout and stderr interleaved.
    pub(super) output: Vec<u8>,
    /// Whether more was printed than kept.
    pub(super) clipped: bool,
}

/// Run proot for `spec` and wait for it (and every program it traces) to end.
pub(super) fn run(launch: &Launch<'_>, spec: &RunSpec<'_>) -> Result<Ended, RunError> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(launch.proot);
    command.args(arguments(launch, spec)).env_clear().envs(environment(launch, spec)).stdin(Stdio::null());
    command.process_group(0);
    let log = Arc::new(Log::new(spec.output_limit, spec.output_budget));
    let reader = match spec.sink {
        OutputSink::Terminal => None,
        OutputSink::Capture => {
            let (read, write) = std::io::pipe().map_err(|e| start_failed(launch.proot, e))?;
            command.stdout(write.try_clone().map_err(|e| start_failed(launch.proot, e))?).stderr(write);
            Some(read)
        }
    };
    let mut child = command.spawn().map_err(|e| start_failed(launch.proot, e))?;
    // The command (and its copies of the pipe's write end) goes now, so the reader sees the
    // end of the output when the step's last program ends.
    drop(command);
    let reading = reader.map(|mut pipe| {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.push(&buf[..n]);
            }
        })
    });
    let stopped = wait(&mut child, spec, &log);
    if let Some(reading) = reading {
        // After a kill a program that left proot's process group may still hold the pipe:
        // its output is not waited for.
        if stopped.is_ok() {
            let _ = reading.join();
        }
    }
    let status = stopped?;
    let output = std::mem::take(&mut *log.kept.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Ended { status, output, clipped: log.clipped.load(Ordering::SeqCst) })
}

fn start_failed(proot: &Path, error: std::io::Error) -> RunError {
    RunError::Linux(super::ProotError::Start { proot: proot.to_path_buf(), error })
}

/// Wait for proot, killing its process group when the step must stop.
fn wait(child: &mut Child, spec: &RunSpec<'_>, log: &Log) -> Result<i32, RunError> {
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))),
            Ok(None) => {}
            Err(e) => return Err(RunError::Engine(format!("waiting for proot: {e}"))),
        }
        let stop = if crate::cancel::requested() || spec.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            Some(RunError::Cancelled)
        } else if let Some(limit) = spec.timeout.filter(|t| started.elapsed() >= *t) {
            Some(RunError::Timeout(limit))
        } else if log.over_budget() {
            Some(RunError::Output(spec.output_budget))
        } else {
            None
        };
        if let Some(error) = stop {
            kill_group(child);
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kill proot's process group and reap proot.
fn kill_group(child: &mut Child) {
    if let Some(group) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A step's captured output: the first `limit` bytes kept, everything counted against the
/// budget.
struct Log {
    kept: Mutex<Vec<u8>>,
    limit: usize,
    budget: u64,
    written: AtomicU64,
    clipped: AtomicBool,
}

impl Log {
    fn new(limit: usize, budget: u64) -> Self {
        Log { kept: Mutex::new(Vec::new()), limit, budget, written: AtomicU64::new(0), clipped: AtomicBool::new(false) }
    }

    fn push(&self, bytes: &[u8]) {
        self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.limit.saturating_sub(kept.len());
        if bytes.len() > room {
            self.clipped.store(true, Ordering::SeqCst);
        }
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn over_budget(&self) -> bool {
        self.written.load(Ordering::SeqCst) > self.budget
    }
}

/// `name` on the host's PATH, as an executable file.
pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(argv: &'a [String], env: &'a [(String, String)], binds: &'a [Bind], owner: (u32, u32)) -> RunSpec<'a> {
        RunSpec {
            argv,
            env,
            cwd: "/src",
            owner,
            epoch: 0,
            seed: 0,
            memory: 0,
            timeout: None,
            output_limit: 0,
            output_budget: 0,
            processes: 1,
            sink: OutputSink::Capture,
            binds,
            stop: None,
        }
    }

    #[test]
    fn the_command_line_gives_the_user_the_root_the_workdir_and_the_binds() {
        let launch = Launch {
            proot: Path::new("/usr/bin/proot"),
            root: Path::new("/store/step/root"),
            tmp: Path::new("/store/step/tmp"),
            program: "/usr/bin/make",
        };
        let argv = ["make".to_string(), "-j2".to_string()];
        let binds = [Bind { source: "/store/cache/apt".into(), target: "/var/cache/apt".into() }];
        let text = |args: Vec<OsString>| args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert_eq!(
            text(arguments(&launch, &spec(&argv, &[], &binds, (0, 0)))),
            [
                "-0",
                "-r",
                "/store/step/root",
                "-w",
                "/src",
                "-b",
                "/dev",
                "-b",
                "/proc",
                "-b",
                "/sys",
                "-b",
                "/store/cache/apt:/var/cache/apt",
                "/usr/bin/make",
                "-j2"
            ]
        );
        assert_eq!(text(arguments(&launch, &spec(&argv, &[], &[], (1000, 100))))[..2], ["-i", "1000:100"]);
    }

    #[test]
    fn the_environment_is_the_steps_with_docker_defaults() {
        let launch =
            Launch { proot: Path::new("proot"), root: Path::new("/r"), tmp: Path::new("/t"), program: "/bin/sh" };
        let argv = ["sh".to_string()];
        let env = [("PATH".to_string(), "/opt/bin".to_string())];
        let got = environment(&launch, &spec(&argv, &env, &[], (1000, 1000)));
        let got: Vec<(String, String)> =
            got.into_iter().map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap())).collect();
        let want = [("PATH", "/opt/bin"), ("HOME", "/"), ("PROOT_TMP_DIR", "/t")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn output_past_the_limit_is_counted_not_kept() {
        let log = Log::new(4, 6);
        log.push(b"abc");
        log.push(b"def");
        assert_eq!(&*log.kept.lock().unwrap(), b"abcd");
        assert!(log.clipped.load(Ordering::SeqCst));
        assert!(!log.over_budget());
        log.push(b"g");
        assert!(log.over_budget());
    }
}
