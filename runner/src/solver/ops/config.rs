//! Instructions that change the image config (ENV, LABEL, WORKDIR, USER, CMD, ...);
//! WORKDIR also makes its directory, as Docker does.

use kiln_ir::{ConfigChange, Instruction};

use crate::image::Healthcheck;
use crate::rootfs::{self, Meta};
use crate::solver::error::{Cause, SolveError};
use crate::solver::stage::user_owner;
use crate::solver::{Solver, StageOut};

impl Solver<'_> {
    pub(in crate::solver) fn config(
        &self,
        out: &mut StageOut,
        instruction: &Instruction,
        change: &ConfigChange,
        cmd_set: &mut bool,
    ) -> Result<String, SolveError> {
        let run = &mut out.config.config;
        match change {
            ConfigChange::Env(pairs) => {
                for kv in pairs {
                    out.config.set_env(&kv.key, &kv.value);
                }
            }
            ConfigChange::Label(pairs) => {
                for kv in pairs {
                    run.labels.insert(kv.key.clone(), kv.value.clone());
                }
            }
            ConfigChange::Workdir(path) => {
                let current = run.working_dir.clone().unwrap_or_else(|| "/".into());
                let joined = if path.starts_with('/') { path.clone() } else { format!("{current}/{path}") };
                let absolute = format!("/{}", rootfs::join(&rootfs::clean(&joined)));
                run.working_dir = Some(absolute.clone());
                // Docker creates the directory, owned by the current USER.
                let (uid, gid) = user_owner(out)?;
                let meta = Meta { mode: 0o755, uid, gid, mtime: self.input.epoch.unwrap_or(0) };
                out.tree
                    .mkdir_all(&[], &absolute, meta)
                    .map_err(|error| SolveError::new(Cause::Workdir { path: absolute.clone(), error }))?;
                return self.commit(out, instruction);
            }
            ConfigChange::User(user) => run.user = Some(user.clone()),
            ConfigChange::Cmd(command) => {
                run.cmd = Some(command.argv.clone());
                *cmd_set = true;
            }
            ConfigChange::Entrypoint(command) => {
                run.entrypoint = Some(command.argv.clone());
                // An ENTRYPOINT resets a CMD inherited from the base, as in Docker.
                if !*cmd_set {
                    run.cmd = None;
                }
            }
            ConfigChange::Expose(ports) => {
                for port in ports {
                    run.exposed_ports.insert(port.clone(), serde_json::json!({}));
                }
            }
            ConfigChange::Volume(paths) => {
                for path in paths {
                    run.volumes.insert(path.clone(), serde_json::json!({}));
                }
            }
            ConfigChange::Healthcheck(h) => {
                run.healthcheck = Some(Healthcheck {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries,
                });
            }
            ConfigChange::StopSignal(signal) => run.stop_signal = Some(signal.clone()),
            ConfigChange::Shell(shell) => run.shell = shell.clone(),
            ConfigChange::Onbuild(trigger) => run.on_build.push(trigger.clone()),
            ConfigChange::Maintainer(who) => out.config.author = Some(who.clone()),
        }
        self.history(out, instruction, true);
        Ok(String::new())
    }
}
