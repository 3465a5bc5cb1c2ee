//! `kiln run`, `kiln pull` and `kiln push` as library calls: an image found the way the
//! user names it (a tag, an image ID, `oci-layout://`), pulled when the store lacks it.

use std::time::Duration;

use super::Session;
use crate::image::{self, ImageRef};
use crate::platform;
use crate::progress::Progress;
use crate::run::{self, Finished, RunImageError, RunRequest};
use crate::source::image::{ImageError, LoadedImage, load, load_from_store};
use crate::source::registry::{Pulled, Pushed, RegistryError};
use crate::source::{ImageSource, SourceError};
use crate::store::{LookupError, Store, StoreError, find_image};

/// What `kiln run` is asked for.
#[derive(Debug, Clone, Default)]
pub struct RunImageRequest {
    /// IMAGE: a tag, an image ID, or `oci-layout://DIR[:TAG]`.
    pub image: String,
    /// ARGS after IMAGE: they replace the image's CMD when there are any.
    pub args: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-e` values in order.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// Wall time, if limited.
    pub timeout: Option<Duration>,
    /// Memory each program may use, bytes.
    pub memory: usize,
    /// Programs that may run at the same time.
    pub processes: usize,
    /// The platform to pick from a multi-platform image (WASI first, then the host's Linux
    /// platform, when unset).
    pub platform: Option<String>,
    /// Which executors may run the program (`--executor`).
    pub executor: crate::executor::ExecutorChoice,
}

/// Load an image for `kiln run` the way FROM finds it (a store tag or `oci-layout://`), or
/// by its ID as `kiln inspect` does.
fn load_image(store: &Store, wanted: &str, platforms: &[String]) -> Result<LoadedImage, ImageError> {
    match load(store, wanted, platforms) {
        Err(not_found @ ImageError::NotFound { .. }) if matches!(image::parse_ref(wanted), ImageRef::Store(_)) => {
            match find_image(store, wanted) {
                Ok(found) => load_from_store(store, wanted, &found.manifest, platforms),
                Err(_) => Err(not_found),
            }
        }
        loaded => loaded,
    }
}

/// Run an image's command on a throwaway copy of its filesystem; its output goes straight to
/// kiln's own stdout and stderr. Pull notes go to `progress`.
///
/// # Errors
/// See [`RunImageError`]; [`RunImageError::exit_code`] is the status to exit with.
pub fn run_image(session: &Session, request: &RunImageRequest, progress: &Progress) -> Result<Finished, RunImageError> {
    let store = session.open_store().map_err(RunImageError::OpenStore)?;
    let platforms = match &request.platform {
        Some(p) => vec![p.clone()],
        // What `kiln run` can execute first: a WASI image, else the Linux one.
        None => vec!["wasip2/wasm".into(), "wasip1/wasm".into(), "wasi/wasm".into(), platform::default_target()],
    };
    let loaded = match load_image(&store, &request.image, &platforms) {
        Ok(l) => l,
        Err(ImageError::NotFound { .. }) if matches!(image::parse_ref(&request.image), ImageRef::Store(_)) => {
            // Not in the store by tag or ID: its registry, which the user named with the image.
            let source =
                ImageSource { store: &store, registry: Some(session.registry()), scope: None, always_pull: false };
            let report = |line: &str| progress.note(&format!("pulling {}: {line}", request.image));
            source.load(&request.image, &platforms, &report).map_err(|error| match error {
                SourceError::Image(e) => RunImageError::Image(e),
                error => RunImageError::Pull { image: request.image.clone(), error: Box::new(error) },
            })?
        }
        Err(e) => return Err(e.into()),
    };
    let run_request = RunRequest {
        args: &request.args,
        entrypoint: request.entrypoint.as_deref(),
        env: &request.env,
        workdir: request.workdir.as_deref(),
        timeout: request.timeout,
        memory: request.memory,
        processes: request.processes.max(1),
        compile_cache: Some(session.compile_cache()?),
        executor: request.executor,
    };
    run::run(&store, &loaded, &run_request)
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// kiln's store cannot be opened.
    #[error("cannot open kiln's store: {0}")]
    OpenStore(StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Pull `reference` (for `platform`, the host's Linux platform when unset) into the store.
///
/// # Errors
/// See [`PullError`].
pub fn pull(
    session: &Session,
    reference: &str,
    platform: Option<&str>,
    progress: &Progress,
) -> Result<Pulled, PullError> {
    let store = session.open_store().map_err(PullError::OpenStore)?;
    let platforms = vec![platform.map_or_else(platform::default_target, str::to_string)];
    let report = |line: &str| progress.note(line);
    Ok(session.registry().pull(&store, reference, &platforms, &report)?)
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// kiln's store cannot be opened.
    #[error("cannot open kiln's store: {0}")]
    OpenStore(StoreError),
    /// No such image.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// An image named by ID, pushed without a destination.
    #[error("{image} is an image ID: give a destination, e.g. kiln push {image} REGISTRY/NAME:TAG")]
    NoDestination {
        /// The ID as given.
        image: String,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Push the store's image `image` (a tag or an image ID) to `destination` (its own name when
/// unset).
///
/// # Errors
/// See [`PushError`].
pub fn push(
    session: &Session,
    image: &str,
    destination: Option<&str>,
    progress: &Progress,
) -> Result<Pushed, PushError> {
    let store = session.open_store().map_err(PushError::OpenStore)?;
    let found = find_image(&store, image)?;
    let by_id = !found.names.contains(&image::normalize_name(image));
    let destination = match destination {
        Some(d) => d,
        None if !by_id => image,
        None => return Err(PushError::NoDestination { image: image.to_string() }),
    };
    let report = |line: &str| progress.note(line);
    Ok(session.registry().push(&store, &found.manifest, destination, &report)?)
}
