//! Real peers for interop tests: Debian's `docker-registry` (distribution 2.8), a private
//! `dockerd` (docker.io 20.10), `buildah` and `skopeo`.
//!
//! This module owns starting those peers, the scratch directories they live in, and stopping
//! them again (processes, containerd shims, mounts, files). Tests own what they do with them.
//!
//! The peers come from Debian 12 packages (CI installs them as root):
//!
//! ```text
//! apt-get install -y docker.io skopeo buildah docker-registry apache2-utils busybox-static
//! ```
//!
//! A missing peer is a failure when `KILN_REQUIRE_PEERS=1` (CI) and a printed note plus a skip
//! otherwise; see [`or_skip`]:
//!
//! ```ignore
//! let Some(reg) = peers::or_skip(peers::Registry::start(None)) else { return };
//! ```
//!
//! Everything here uses only std and `tempfile`; processes are spawned with argument vectors,
//! never shell strings. `dockerd` needs root.

#![allow(dead_code)] // not every test uses every helper

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Debian's docker client (`docker.io`); not whatever `docker` comes first on PATH.
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's docker daemon (`docker.io`).
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's distribution registry (`docker-registry`).
pub const REGISTRY: &str = "/usr/bin/docker-registry";
/// A statically linked busybox (`busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// Whether `program` (a path, or a name looked up on PATH) is an executable file.
pub fn have(program: &str) -> bool {
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(program))))
}

/// Whether missing peers fail the tests (`KILN_REQUIRE_PEERS=1`, set by CI).
pub fn required() -> bool {
    std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// A started peer, or `None` after printing why the test is skipped.
/// Panics with the reason instead when [`required`].
pub fn or_skip<T>(peer: Result<T, String>) -> Option<T> {
    match peer {
        Ok(p) => Some(p),
        Err(why) if required() => panic!("peer unavailable with KILN_REQUIRE_PEERS=1: {why}"),
        Err(why) => {
            eprintln!("note: skipping, peer unavailable: {why} (set KILN_REQUIRE_PEERS=1 to fail instead)");
            None
        }
    }
}

/// `Err(what is missing)` unless every (program, Debian package) pair's program exists;
/// e.g. `or_skip(need(&[("skopeo", "skopeo")]))`.
pub fn need(programs: &[(&str, &str)]) -> Result<(), String> {
    match programs.iter().find(|(prog, _)| !have(prog)) {
        Some((prog, pkg)) => Err(format!("{prog} not found (apt-get install {pkg})")),
        None => Ok(()),
    }
}

/// The output's stdout (trimmed) if it succeeded, else an error naming `what` with its stderr.
pub fn ok(what: &str, out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{what}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Run `skopeo ARGS` with `--insecure-policy` (no dependence on /etc/containers/policy.json).
pub fn skopeo<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new("skopeo").arg("--insecure-policy").args(args).output().expect("skopeo runs (apt-get install skopeo)")
}

/// Write an OCI image layout at `dest` (created or added to) holding `tag`: a single layer with
/// Debian's static `/bin/busybox` and a `/bin/sh -> busybox` link; entrypoint `/bin/busybox`,
/// cmd `echo hello from busybox`, `PATH=/bin`, timestamps at 0 so the digest is stable.
/// Built with buildah's vfs driver in a private, temporary storage root (needs root).
pub fn buildah_busybox_layout(dest: &Path, tag: &str) -> Result<(), String> {
    need(&[("buildah", "buildah"), (BUSYBOX, "busybox-static")])?;
    let tmp = tempfile::Builder::new().prefix("kiln-buildah-").tempdir().map_err(|e| e.to_string())?;
    let buildah = |args: &[&OsStr]| {
        let out = Command::new("buildah")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(tmp.path().join("root"))
            .arg("--runroot")
            .arg(tmp.path().join("run"))
            .args(args)
            .output()
            .map_err(|e| format!("buildah: {e}"))?;
        ok(&format!("buildah {:?}", args), out)
    };
    let os = |s: &'static str| OsStr::new(s);
    let ctr = buildah(&[os("from"), os("scratch")])?;
    let ctr = OsStr::new(&ctr);
    buildah(&[os("copy"), ctr, os(BUSYBOX), os("/bin/busybox")])?;
    let mnt = buildah(&[os("mount"), ctr])?; // vfs: a plain directory, nothing is mounted
    std::os::unix::fs::symlink("busybox", Path::new(&mnt).join("bin/sh")).map_err(|e| format!("ln -s sh: {e}"))?;
    buildah(&[os("umount"), ctr])?;
    buildah(&[
        os("config"),
        os("--entrypoint"),
        os(r#"["/bin/busybox"]"#),
        os("--cmd"),
        os(r#"["echo","hello from busybox"]"#),
        os("--env"),
        os("PATH=/bin"),
        ctr,
    ])?;
    buildah(&[os("commit"), os("-q"), os("--timestamp"), os("0"), ctr, os("kiln-busybox")])?;
    buildah(&[os("push"), os("-q"), os("kiln-busybox"), &oci_ref(dest, tag)])?;
    Ok(())
}

/// `oci:LAYOUT:TAG` as a containers-image reference.
fn oci_ref(layout: &Path, tag: &str) -> std::ffi::OsString {
    let mut r = OsStr::new("oci:").to_os_string();
    r.push(layout);
    r.push(format!(":{tag}"));
    r
}

/// Send one HTTP/1.0 request on `stream`; the response's status code.
fn http_status(mut stream: impl Read + Write, host: &str, path: &str) -> Option<u16> {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]).ok()? {
            0 => break,
            k => n += k,
        }
    }
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// Wait until `ready()` or the child exits or `timeout` passes; on failure, the log's tail.
fn wait_ready(child: &mut Child, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        let tail = || {
            let text = fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}; log:\n{}", tail()));
        }
        if start.elapsed() > timeout {
            return Err(format!("not ready after {timeout:?}; log:\n{}", tail()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stdout and stderr of a peer both going to `log`.
fn log_to(log: &Path) -> Result<(Stdio, Stdio), String> {
    let f = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    Ok((f.try_clone().map_err(|e| e.to_string())?.into(), f.into()))
}

/// SIGTERM, then SIGKILL if the child has not exited after `grace`; always reaped.
fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        sys::signal(child.id() as i32, sys::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A `docker-registry` serving plain HTTP on 127.0.0.1, storage in its own temporary directory.
/// Logs (errors only, no access log) go to `registry.log` there. Killed on drop.
pub struct Registry {
    /// "127.0.0.1:PORT"
    pub addr: String,
    /// The htpasswd user and password, if started with auth.
    pub auth: Option<(String, String)>,
    child: Child,
    dir: TempDir,
}

impl Registry {
    /// Start a registry on a free port; with `auth`, htpasswd (bcrypt) basic auth for that one user.
    /// Returns once `GET /v2/` answers (200, or 401 with auth).
    pub fn start(auth: Option<(&str, &str)>) -> Result<Registry, String> {
        need(&[(REGISTRY, "docker-registry")])?;
        if auth.is_some() {
            need(&[("htpasswd", "apache2-utils")])?;
        }
        let dir = tempfile::Builder::new().prefix("kiln-registry-").tempdir().map_err(|e| e.to_string())?;
        let mut auth_yaml = String::new();
        if let Some((user, pass)) = auth {
            let line = ok(
                "htpasswd",
                Command::new("htpasswd").args(["-Bbn", user, pass]).output().map_err(|e| e.to_string())?,
            )?;
            let file = dir.path().join("htpasswd");
            fs::write(&file, line + "\n").map_err(|e| e.to_string())?;
            auth_yaml = format!("auth:\n  htpasswd:\n    realm: kiln-test\n    path: {:?}\n", file);
        }
        // The port is free when asked but may be taken before the registry binds it: retry.
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            let yaml = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {:?}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: kiln-test\n{auth_yaml}",
                dir.path().join("data"),
            );
            fs::write(&config, yaml).map_err(|e| e.to_string())?;
            let log = dir.path().join("registry.log");
            let (out, err) = log_to(&log)?;
            let mut cmd = Command::new(REGISTRY);
            cmd.arg("serve").arg(&config).stdin(Stdio::null()).stdout(out).stderr(err);
            // REGISTRY_* variables would override the config file.
            for (k, _) in std::env::vars_os().filter(|(k, _)| k.as_bytes().starts_with(b"REGISTRY_")) {
                cmd.env_remove(k);
            }
            let mut child = cmd.spawn().map_err(|e| format!("{REGISTRY}: {e}"))?;
            let want = if auth.is_some() { 401 } else { 200 };
            let probe = || TcpStream::connect(&addr).ok().and_then(|s| http_status(s, &addr, "/v2/")) == Some(want);
            match wait_ready(&mut child, &log, Duration::from_secs(15), probe) {
                Ok(()) => {
                    let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
                    return Ok(Registry { addr, auth, child, dir });
                }
                Err(e) => {
                    terminate(&mut child, Duration::from_secs(1));
                    last = format!("docker-registry on {addr}: {e}");
                }
            }
        }
        Err(last)
    }

    /// `user:pass` for skopeo's `--creds`/`--dest-creds`, if started with auth.
    pub fn creds(&self) -> Option<String> {
        self.auth.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// Copy `oci:LAYOUT:TAG` to `ADDR/REPO_AND_TAG` (e.g. "busybox:1") with skopeo.
    pub fn push_layout(&self, layout: &Path, tag: &str, repo_and_tag: &str) -> Result<(), String> {
        let mut args = vec![OsStr::new("copy").into(), "--dest-tls-verify=false".into()];
        if let Some(creds) = self.creds() {
            args.extend(["--dest-creds".into(), creds.into()]);
        }
        args.extend([oci_ref(layout, tag), format!("docker://{}/{repo_and_tag}", self.addr).into()]);
        ok("skopeo copy", skopeo(args)).map(drop)
    }

    /// Where the registry keeps what was pushed (its filesystem storage driver's root).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private `dockerd` (vfs storage, no iptables, no bridge) with its own data root, exec root,
/// pidfile, containerd and unix socket, all in one temporary directory, so it collides with no
/// other docker on the machine. Needs root. Stopped and cleaned up on drop.
pub struct Dockerd {
    /// "unix:///…/docker.sock", for `docker -H` and skopeo's `--*-daemon-host`.
    pub host: String,
    child: Child,
    dir: TempDir,
    /// `dir`, resolved: the prefix of everything this daemon starts and mounts.
    root: PathBuf,
}

impl Dockerd {
    /// Start the daemon and wait (up to 60 s) until `GET /_ping` answers on its socket.
    pub fn start() -> Result<Dockerd, String> {
        need(&[(DOCKERD, "docker.io"), (DOCKER, "docker.io")])?;
        let dir = tempfile::Builder::new().prefix("kiln-dockerd-").tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().canonicalize().map_err(|e| e.to_string())?;
        let sock = root.join("docker.sock");
        // containerd's socket sits deepest; unix socket paths are limited to 108 bytes.
        if root.join("exec/containerd/containerd.sock").as_os_str().len() > 100 {
            return Err(format!("temp dir path too long for unix sockets: {}", root.display()));
        }
        // An empty daemon.json: ignore /etc/docker/daemon.json.
        fs::write(root.join("daemon.json"), "{}").map_err(|e| e.to_string())?;
        fs::create_dir(root.join("client")).map_err(|e| e.to_string())?;
        let log = root.join("dockerd.log");
        let (out, err) = log_to(&log)?;
        let mut child = Command::new(DOCKERD)
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .args(["--storage-driver", "vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs", "--log-level", "warn"])
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{DOCKERD}: {e}"))?;
        let ping = || UnixStream::connect(&sock).ok().and_then(|s| http_status(s, "docker", "/_ping")) == Some(200);
        if let Err(e) = wait_ready(&mut child, &log, Duration::from_secs(60), ping) {
            drop(Dockerd { host: String::new(), child, dir, root }); // stops and cleans up
            return Err(format!("dockerd: {e}"));
        }
        Ok(Dockerd { host: format!("unix://{}", sock.display()), child, dir, root })
    }

    /// Run Debian's `docker -H HOST ARGS`, with a private client config dir (for `docker login`).
    pub fn docker<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new(DOCKER)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_CONFIG", self.root.join("client"))
            .stdin(Stdio::null())
            .output()
            .expect("docker client runs")
    }

    /// Load `oci:LAYOUT:TAG` into this daemon as image `name` (e.g. "kiln-busybox:latest").
    pub fn load_layout(&self, layout: &Path, tag: &str, name: &str) -> Result<(), String> {
        let dest = format!("docker-daemon:{name}");
        let args = [
            OsStr::new("copy"),
            "--dest-daemon-host".as_ref(),
            self.host.as_ref(),
            &oci_ref(layout, tag),
            dest.as_ref(),
        ];
        ok("skopeo copy", skopeo(args)).map(drop)
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// Remove all containers (their stop timeout would otherwise delay shutdown), SIGTERM the
    /// daemon (SIGKILL after 30 s), then kill whatever it left behind and unmount what it left
    /// mounted under its directory, so that the directory can be removed.
    fn stop(&mut self) {
        if !self.host.is_empty() && matches!(self.child.try_wait(), Ok(None)) {
            let ids = self.docker(["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(String::from).collect();
            if !ids.is_empty() {
                self.docker(["rm", "-f"].into_iter().map(String::from).chain(ids));
            }
        }
        terminate(&mut self.child, Duration::from_secs(30));
        sys::kill_tree_naming(&self.root);
        sys::unmount_under(&self.root);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = fs::remove_dir_all(self.dir.path()) {
            eprintln!("warning: removing {}: {e}", self.dir.path().display());
        }
    }
}

/// The few libc calls std does not wrap, and /proc scanning for dockerd's leftovers.
mod sys {
    use super::*;

    pub const SIGTERM: i32 = 15;
    const SIGKILL: i32 = 9;
    const MNT_DETACH: i32 = 2;

    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
        fn umount2(target: *const std::ffi::c_char, flags: i32) -> i32;
    }

    pub fn signal(pid: i32, sig: i32) {
        // SAFETY: kill(2) takes plain integers.
        unsafe { kill(pid, sig) };
    }

    /// (pid, parent pid, command line) of every process.
    fn processes() -> Vec<(i32, i32, Vec<u8>)> {
        let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|e| {
                let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
                let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
                if rest.next()? == "Z" {
                    return None;
                }
                let ppid = rest.next()?.parse().ok()?;
                Some((pid, ppid, fs::read(format!("/proc/{pid}/cmdline")).ok()?))
            })
            .collect()
    }

    /// SIGKILL every process whose command line names `dir` (containerd, shims), and all their
    /// descendants (container processes), then wait up to 5 s for them to go.
    pub fn kill_tree_naming(dir: &Path) {
        let needle = dir.as_os_str().as_bytes();
        let procs = processes();
        let me = std::process::id() as i32;
        let mut doomed: Vec<i32> = procs
            .iter()
            .filter(|(pid, _, cmd)| *pid != me && cmd.windows(needle.len()).any(|w| w == needle))
            .map(|(pid, _, _)| *pid)
            .collect();
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            let children: Vec<i32> =
                procs.iter().filter(|(pid, ppid, _)| *ppid == parent && !doomed.contains(pid)).map(|p| p.0).collect();
            doomed.extend(children);
            i += 1;
        }
        for &pid in &doomed {
            signal(pid, SIGKILL);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && processes().iter().any(|(pid, _, _)| doomed.contains(pid)) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lazily unmount every mount point at or under `dir`, deepest first
    /// (dockerd bind-mounts its data root and network namespaces; a clean exit undoes them).
    pub fn unmount_under(dir: &Path) {
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return };
        let mut points: Vec<PathBuf> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape).filter(|p| p.starts_with(dir)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in points {
            if let Ok(c) = CString::new(p.as_os_str().as_bytes()) {
                // SAFETY: a valid NUL-terminated path.
                unsafe { umount2(c.as_ptr(), MNT_DETACH) };
            }
        }
    }

    /// Undo mountinfo's octal escapes (`\040` for space, etc.).
    fn unescape(field: &str) -> PathBuf {
        let b = field.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let octal = b.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
            match (b[i], octal) {
                (b'\\', Some(c)) => {
                    out.push(c);
                    i += 4;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        PathBuf::from(OsStr::from_bytes(&out))
    }
}
