//! `kiln images`, `history`, `inspect`, `rmi` and `prune`: the store shown and tidied, in
//! Docker's formats.

use std::process::ExitCode;

use kiln::image::{self, ImageConfig};
use kiln::pipeline::Session;
use kiln::store::{self, Found, Store, find_image, manifest_and_config};

use crate::error;

/// Open the store; `Err` is the exit code, the error printed.
fn open_store(session: &Session) -> Result<Store, ExitCode> {
    session.open_store().map_err(|e| error(format!("cannot open kiln's store: {e}")))
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.3}{}", units[unit]).replace(".000", "") }
}

fn ago(created: Option<&str>) -> String {
    let Some(time) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "N/A".into();
    };
    match std::time::SystemTime::now().duration_since(time) {
        Ok(d) if d.as_secs() < 60 => "Less than a minute ago".into(),
        Ok(d) if d.as_secs() < 3600 => format!("{} minutes ago", d.as_secs() / 60),
        Ok(d) if d.as_secs() < 86_400 => format!("{} hours ago", d.as_secs() / 3600),
        Ok(d) if d.as_secs() < 86_400 * 365 * 2 => format!("{} days ago", d.as_secs() / 86_400),
        Ok(d) => format!("{} years ago", d.as_secs() / (86_400 * 365)),
        Err(_) => "in the future".into(),
    }
}

pub fn images(session: &Session) -> ExitCode {
    let store = match open_store(session) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let index = match store.index() {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    let mut rows = vec![["REPOSITORY".to_string(), "TAG".into(), "IMAGE ID".into(), "CREATED".into(), "SIZE".into()]];
    for d in index.manifests() {
        let Some(name) = store::ref_name(d) else { continue };
        let (repo, tag) = image::split_tag(name);
        let tag = tag.unwrap_or("<none>");
        let (id, created, size) = match manifest_and_config(&store, d) {
            Ok((manifest, config_digest)) => {
                let config: Option<ImageConfig> = store.read_json(&config_digest).ok();
                let size: u64 = manifest.layers().iter().map(|l| l.size()).sum();
                (
                    config_digest.hex()[..12].to_string(),
                    ago(config.as_ref().and_then(|c| c.created.as_deref())),
                    human_size(size),
                )
            }
            Err(e) => (format!("<damaged: {e}>"), String::new(), String::new()),
        };
        rows.push([repo.to_string(), tag.to_string(), id, created, size]);
    }
    print_table(&rows);
    ExitCode::SUCCESS
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        say!("{}", line.trim_end());
    }
}

/// An image of the store, read for `history` and `inspect`.
struct Opened<C> {
    found: Found,
    manifest: oci_spec::image::ImageManifest,
    config_digest: store::Digest,
    config: C,
}

/// Open the store and read the image named `wanted` (by tag or ID). `Err` is the exit code,
/// the error already printed.
fn open_image<C: serde::de::DeserializeOwned>(session: &Session, wanted: &str) -> Result<Opened<C>, ExitCode> {
    let store = open_store(session)?;
    let found = find_image(&store, wanted).map_err(error)?;
    let (manifest, config_digest) = manifest_and_config(&store, &found.manifest).map_err(error)?;
    let config = store.read_json(&config_digest).map_err(error)?;
    Ok(Opened { found, manifest, config_digest, config })
}

pub fn history(wanted: &str, session: &Session) -> ExitCode {
    let Opened { manifest, config_digest, config, .. } = match open_image::<ImageConfig>(session, wanted) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut layer_sizes = manifest.layers().iter().map(|l| l.size());
    let mut rows = Vec::new();
    for (i, h) in config.history.iter().enumerate() {
        let size = if h.empty_layer { 0 } else { layer_sizes.next().unwrap_or(0) };
        let id = if i + 1 == config.history.len() { config_digest.hex()[..12].to_string() } else { "<missing>".into() };
        let mut created_by = h.created_by.clone().unwrap_or_default();
        if created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        rows.push([id, ago(h.created.as_deref()), created_by, human_size(size), h.comment.clone().unwrap_or_default()]);
    }
    rows.push(["IMAGE".into(), "CREATED".into(), "CREATED BY".into(), "SIZE".into(), "COMMENT".into()]);
    rows.reverse();
    print_table(&rows);
    ExitCode::SUCCESS
}

pub fn inspect(wanted: &str, session: &Session) -> ExitCode {
    let Opened { found, manifest, config_digest, config } = match open_image::<serde_json::Value>(session, wanted) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let doc = serde_json::json!([{
        "Id": config_digest.to_string(),
        "RepoTags": found.names,
        "ManifestDigest": found.manifest.digest().to_string(),
        "Manifest": manifest,
        "Config": config,
    }]);
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => {
            say!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => error(e),
    }
}

pub fn rmi(names: &[String], session: &Session) -> ExitCode {
    let store = match open_store(session) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut code = ExitCode::SUCCESS;
    for name in names {
        match store.untag(&image::normalize_name(name)) {
            Ok(_) => say!("Untagged: {}", image::normalize_name(name)),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

pub fn prune(session: &Session) -> ExitCode {
    let store = match open_store(session) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match store.prune() {
        Ok(report) => {
            let cache_entries = kiln::cache::Cache::new(&store).prune(store.oldest_live_build());
            say!(
                "Removed {} blobs ({}) and {} cached build steps",
                report.blobs,
                human_size(report.bytes),
                cache_entries
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
