//! `kiln frontend add|push|pull|ls`: frontend components kept in the store and published
//! to registries as Wasm OCI artifacts. A component is checked to be a frontend before it
//! is stored or published, and a pulled image that is not one is not kept.

use std::path::Path;
use std::process::ExitCode;

use kiln::frontend::{Frontend, FrontendLimits, select};
use kiln::image;
use kiln::pipeline::Session;
use kiln::source::registry;

use crate::args::FrontendCommand;
use crate::error;

/// `kiln frontend add|push|pull|ls`.
pub fn command(command: &FrontendCommand, session: &Session) -> ExitCode {
    let registry = session.registry();
    let store = match session.open_store() {
        Ok(s) => s,
        Err(e) => return error(format!("cannot open kiln's store: {e}")),
    };
    // A component is checked to be a frontend before it is stored or published.
    let checked = |file: &Path| -> anyhow::Result<Vec<u8>> {
        let wasm = select::read_component(file)?;
        Frontend::load(&wasm, &file.display().to_string(), Some(session.compile_cache()?), FrontendLimits::default())?;
        Ok(wasm)
    };
    let name_of = |reference: &str| anyhow::Ok(registry::parse_reference(reference)?.whole());
    let result = match command {
        FrontendCommand::Add { file, name } => (|| -> anyhow::Result<String> {
            let name = image::validate_tag(name)?;
            let d = select::add(&store, checked(file)?, &file.display().to_string(), &name)?;
            Ok(format!("{name} {}", d.digest()))
        })(),
        FrontendCommand::Push { file, reference } => (|| -> anyhow::Result<String> {
            let name = name_of(reference)?;
            let d = select::add(&store, checked(file)?, &file.display().to_string(), &name)?;
            let report = |line: &str| eprintln!("{line}");
            let pushed = registry.push(&store, &d, &name, &report)?;
            Ok(format!("{} {}", pushed.reference, pushed.digest))
        })(),
        FrontendCommand::Pull { reference } => (|| -> anyhow::Result<String> {
            let report = |line: &str| eprintln!("{line}");
            let pulled = registry.pull(&store, reference, &[], &report)?;
            // Only a frontend is kept under the name: anything else is untagged again.
            let fetched = select::fetch(&select::FrontendRef::Image(pulled.name.clone()), Some(&store), None);
            let valid = fetched.map_err(anyhow::Error::from).and_then(|f| {
                Frontend::load(&f.wasm, &f.origin, Some(session.compile_cache()?), FrontendLimits::default())
                    .map_err(anyhow::Error::from)
            });
            if let Err(e) = valid {
                let _ = store.untag(&pulled.name);
                anyhow::bail!("{reference} is not a kiln frontend, so it was not kept: {e}");
            }
            Ok(format!("{} {}", pulled.name, pulled.manifest.digest()))
        })(),
        FrontendCommand::Ls => select::list(&store).map_err(anyhow::Error::from).map(|frontends| {
            frontends.iter().map(|(name, digest)| format!("{name} {digest}")).collect::<Vec<_>>().join("\n")
        }),
    };
    match result {
        Ok(text) => {
            if !text.is_empty() {
                say!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}
