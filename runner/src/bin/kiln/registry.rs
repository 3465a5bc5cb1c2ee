//! `kiln pull`, `push`, `login`, `logout` and `run`: images between kiln and registries,
//! and an image's command run in the sandbox.

use std::process::ExitCode;
use std::sync::Arc;

use kiln::pipeline::{self, PushError, Session};
use kiln::progress::Progress;
use kiln::source::registry;

use crate::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RunArgs};
use crate::render::{Mode, Terminal};
use crate::{error, usage};

/// Progress for a command that is not a build: its notes, one line each.
fn lines() -> Progress {
    Progress::new(Arc::new(Terminal::new(Mode::Plain)))
}

/// `kiln pull`: the manifest digest on stdout.
pub fn pull(args: &PullArgs, session: &Session) -> ExitCode {
    match pipeline::pull(session, &args.image, args.platform.as_deref(), &lines()) {
        Ok(pulled) => {
            let platform = pulled.platform.map(|p| format!(" ({p})")).unwrap_or_default();
            eprintln!(
                "pulled {}{platform}: {} blob(s) downloaded, {} bytes",
                pulled.name, pulled.downloaded.0, pulled.downloaded.1
            );
            say!("{}", pulled.manifest.digest());
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

/// `kiln push`: the pushed manifest's digest on stdout.
pub fn push(args: &PushArgs, session: &Session) -> ExitCode {
    match pipeline::push(session, &args.image, args.destination.as_deref(), &lines()) {
        Ok(pushed) => {
            eprintln!("pushed {}: {}", pushed.reference, pushed.summary());
            say!("{}", pushed.digest);
            ExitCode::SUCCESS
        }
        Err(e @ PushError::NoDestination { .. }) => usage(e),
        Err(e) => error(e),
    }
}

/// The password: from standard input, or the flag.
fn read_password(args: &LoginArgs) -> Result<String, ExitCode> {
    if args.password_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| usage(format!("cannot read the password from standard input: {e}")))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    Err(usage("give the password with --password-stdin (or -p); kiln does not prompt for it"))
}

/// `kiln login`.
pub fn login(args: &LoginArgs, session: &Session) -> ExitCode {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let Some(user) = &args.username else {
        return usage("give the user name with -u USER (kiln does not prompt for it)");
    };
    let password = match read_password(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.password.is_some() {
        eprintln!("warning: a password on the command line can be seen by other users; prefer --password-stdin");
    }
    match session.registry().login(&server, user, &password) {
        Ok(path) => {
            eprintln!("credentials saved in {}", path.display());
            say!("Login Succeeded");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

/// `kiln logout`.
pub fn logout(args: &LogoutArgs) -> ExitCode {
    let server = args.server.clone().unwrap_or_else(|| "docker.io".into());
    let path = registry::auth::config_path();
    match registry::auth::remove(&path, &server) {
        Ok(true) => {
            say!("Removing login credentials for {server}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("not logged in to {server}");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

/// `kiln run`: exits with the program's status, or kiln's own (see [`crate::run`]).
pub fn run(args: &RunArgs, session: &Session) -> ExitCode {
    match pipeline::run_image(session, &args.request(), &lines()) {
        Ok(finished) => {
            for warning in &finished.warnings {
                eprintln!("warning: {warning}");
            }
            let (code, note) = kiln::run::exit_status(finished.status);
            if let Some(note) = note {
                eprintln!("warning: {note}");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
