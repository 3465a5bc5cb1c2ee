//! Image documents as a registry or an OCI layout could hold them: arbitrary bytes parsed as
//! an image index, manifest and config, through kiln's own functions, then loaded the way a
//! build loads its base image (`kiln::source::image::load` from a layout, `load_from_store`), and
//! swept by `Store::prune`, which reads every document the store's tags reach.
//!
//! The input is `TOP [\0 MIDDLE] \0 CONFIG`: TOP is tried as an index, a manifest and a
//! config, MIDDLE as a manifest, each piece as a config. The fuzzer cannot compute sha256, so
//! besides the raw documents the harness stores the manifest (TOP's, else MIDDLE's) with its
//! config descriptor naming CONFIG, and TOP as an index whose entries all name that manifest:
//! loading then gets from an index to a config and the checks after it.
//!
//! Errors are fine; panics are bugs. Checked besides: what a loaded image holds is consistent
//! (as many diff_ids as layers), a config survives kiln's serde round trip unchanged, names
//! normalise idempotently, and nothing is created outside the store and layout directories.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::image::{self, ImageConfig, ImageRef};
use kiln::source::image::{self as loading, LoadedImage};
use kiln::store::{self, Digest, Store};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

/// What images are loaded for, most wanted first (as from `--platform`).
const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64/v8"];

/// Docker's media types, which kiln also accepts.
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Dirs {
    base: PathBuf,
    layout: PathBuf,
    store: Store,
}

/// This process's own directory in the system's temporary directory. The fuzzer exits without
/// running destructors (and a crash never runs them), so the directory is named by the
/// process ID and those of processes that are gone are removed here instead.
fn process_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    if Path::new("/proc/self").is_dir() {
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix(prefix).filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create this process's temporary directory");
    dir
}

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = process_dir("kiln-fuzz-oci-");
        let layout = base.join("layout");
        fs::create_dir_all(layout.join("blobs/sha256")).expect("create the layout");
        fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
        let store = Store::open(&base.join("store")).expect("open a store");
        Dirs { base, layout, store }
    })
}

fn empty(dir: &Path) {
    for entry in fs::read_dir(dir).expect("read a blob directory").flatten() {
        let _ = fs::remove_file(entry.path());
    }
}

fn platforms() -> Vec<String> {
    PLATFORMS.map(String::from).to_vec()
}

/// A descriptor of `bytes` (which need not be valid) with a tag.
fn described(media_type: MediaType, bytes: &[u8], tag: &str) -> Descriptor {
    let mut d = store::descriptor(media_type, &Digest::of(bytes), bytes.len() as u64);
    d.set_annotations(Some([(store::REF_NAME.to_string(), tag.to_string())].into()));
    d
}

/// The digest of `bytes` as oci-spec spells it.
fn oci_digest(bytes: &[u8]) -> oci_spec::image::Digest {
    oci_spec::image::Digest::try_from(Digest::of(bytes).as_str()).expect("a sha256 digest is valid")
}

/// Names must normalise to a fixed point, and a valid tag is its own normal form.
fn names(text: &str) {
    let normal = image::normalize_name(text);
    assert_eq!(image::normalize_name(&normal), normal, "normalize_name is not idempotent on {text:?}");
    if let Ok(valid) = image::validate_tag(text) {
        assert_eq!(valid, normal, "validate_tag and normalize_name disagree on {text:?}");
        assert_eq!(image::validate_tag(&valid).as_deref(), Ok(valid.as_str()), "{valid:?} is not valid again");
    }
    match image::parse_ref(text) {
        ImageRef::Layout { tag: Some(tag), .. } => assert!(!tag.contains('/'), "a layout tag with a slash: {tag:?}"),
        ImageRef::Layout { .. } => {}
        ImageRef::Store(name) => assert_eq!(name, normal),
    }
    let _ = kiln::source::registry::parse_reference(text);
    if let Ok(digest) = Digest::parse(text) {
        assert_eq!(digest.hex().len(), 64);
    }
}

/// What kiln does with an index it was sent: list its platforms, pick one.
fn index_document(index: &ImageIndex, wanted_extra: &str) {
    for d in index.manifests() {
        let _ = image::platform_of(d);
        let _ = image::is_index(d.media_type());
        let _ = store::descriptor_digest(d);
        let _ = store::ref_name(d);
    }
    for wanted in [vec![], platforms(), vec![wanted_extra.to_string(), "linux".into()]] {
        match image::pick_platform(index, &wanted) {
            Some(d) => assert!(index.manifests().iter().any(|m| std::ptr::eq(m, d)), "picked a descriptor not in it"),
            None => assert!(index.manifests().len() != 1, "the only entry of an index was not picked"),
        }
    }
}

/// A config must survive kiln's round trip (a base image's config is rewritten on export).
fn config_document(bytes: &[u8]) {
    let Ok(mut config) = serde_json::from_slice::<ImageConfig>(bytes) else { return };
    let text = serde_json::to_vec(&config).expect("a parsed config serialises");
    let again: ImageConfig = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!("a config kiln wrote does not parse again: {e}: {}", String::from_utf8_lossy(&text))
    });
    assert_eq!(again, config, "a config changed in a round trip: {}", String::from_utf8_lossy(&text));
    let _ = config.platform();
    let keys: Vec<String> =
        config.config.env.iter().take(4).map(|e| e.split('=').next().unwrap_or("").to_string()).collect();
    for key in keys.iter().filter(|k| !k.is_empty()) {
        config.set_env(key, "fuzz");
        assert_eq!(config.env(key), Some("fuzz"), "ENV {key} set but not read back");
    }
}

fn check_loaded(loaded: &LoadedImage, known: &[Digest]) {
    assert_eq!(loaded.config.rootfs.diff_ids.len(), loaded.manifest.layers().len());
    assert!(known.contains(&loaded.manifest_digest), "loaded a manifest that was never stored");
}

fuzz_target!(|data: &[u8]| {
    // TOP [\0 MIDDLE] \0 CONFIG.
    let mut pieces = data.splitn(3, |b| *b == 0);
    let top = pieces.next().unwrap_or_default();
    let (middle, config) = match (pieces.next(), pieces.next()) {
        (Some(middle), Some(config)) => (Some(middle), config),
        (Some(config), None) => (None, config),
        _ => (None, &[][..]),
    };
    let text = String::from_utf8_lossy(top);
    for line in text.lines().take(4) {
        names(line);
    }
    names(&text);

    // The documents on their own.
    let index = serde_json::from_slice::<ImageIndex>(top).ok();
    let manifest = serde_json::from_slice::<ImageManifest>(top)
        .ok()
        .or_else(|| middle.and_then(|m| serde_json::from_slice::<ImageManifest>(m).ok()));
    if let Some(index) = &index {
        index_document(index, text.lines().next().unwrap_or(""));
    }
    if let Some(manifest) = &manifest {
        let _ = store::descriptor_digest(manifest.config());
        for layer in manifest.layers() {
            let _ = store::descriptor_digest(layer);
            let _ = image::is_index(layer.media_type());
        }
    }
    for piece in [Some(top), middle, Some(config)].into_iter().flatten() {
        config_document(piece);
    }

    // The manifest (TOP or MIDDLE) naming CONFIG, and TOP as an index naming that manifest.
    let fixed_manifest = manifest.map(|mut m| {
        let mut c = m.config().clone();
        c.set_digest(oci_digest(config));
        m.set_config(c);
        serde_json::to_vec(&m).expect("a manifest serialises")
    });
    let fixed_index = index.map(|mut i| {
        let target = fixed_manifest.as_deref().or(middle).unwrap_or(top);
        let entries = i
            .manifests()
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.set_digest(oci_digest(target));
                d
            })
            .collect();
        i.set_manifests(entries);
        serde_json::to_vec(&i).expect("an index serialises")
    });
    let mut blobs: Vec<&[u8]> = vec![top, config];
    blobs.extend(middle);
    blobs.extend(fixed_manifest.as_deref());
    blobs.extend(fixed_index.as_deref());
    let known: Vec<Digest> = blobs.iter().map(|b| Digest::of(b)).collect();
    let mut tagged = vec![
        described(MediaType::ImageManifest, top, "m-raw"),
        described(MediaType::ImageIndex, top, "i-raw"),
        described(MediaType::Other(DOCKER_MANIFEST.into()), top, "dm-raw"),
        described(MediaType::Other(DOCKER_LIST.into()), top, "dl-raw"),
    ];
    if let Some(m) = &fixed_manifest {
        tagged.push(described(MediaType::ImageManifest, m, "m"));
    }
    if let Some(i) = &fixed_index {
        tagged.push(described(MediaType::ImageIndex, i, "i"));
        tagged.push(described(MediaType::Other(DOCKER_LIST.into()), i, "dl"));
    }

    // Loading reads nothing but JSON: other input has been tried enough above.
    if serde_json::from_slice::<serde::de::IgnoredAny>(top).is_err() {
        return;
    }
    let dirs = dirs();
    let layout_blobs = dirs.layout.join("blobs/sha256");
    let store_blobs = dirs.store.root().join("blobs/sha256");
    empty(&layout_blobs);
    empty(&store_blobs);
    for (bytes, digest) in blobs.iter().zip(&known) {
        fs::write(layout_blobs.join(digest.hex()), bytes).expect("write a layout blob");
        fs::write(dirs.store.blob_path(digest), bytes).expect("write a store blob");
    }

    // A layout whose index.json is TOP itself, then one naming the stored documents.
    let layout_ref = format!("oci-layout://{}", dirs.layout.display());
    fs::write(dirs.layout.join("index.json"), top).expect("write index.json");
    for reference in [layout_ref.clone(), format!("{layout_ref}:latest")] {
        if let Ok(loaded) = loading::load(&dirs.store, &reference, &platforms()) {
            check_loaded(&loaded, &known);
        }
    }
    let mut layout_index = store::empty_index();
    layout_index.set_manifests(tagged.clone());
    fs::write(dirs.layout.join("index.json"), serde_json::to_vec(&layout_index).expect("serialise")).expect("write");
    for d in &tagged {
        let tag = store::ref_name(d).expect("tagged");
        if let Ok(loaded) = loading::load(&dirs.store, &format!("{layout_ref}:{tag}"), &platforms()) {
            check_loaded(&loaded, &known);
        }
        if let Ok(loaded) = loading::load_from_store(&dirs.store, tag, d, &platforms()) {
            check_loaded(&loaded, &known);
        }
    }

    // The store's own index: TOP as it, then the tags; prune follows what they reach.
    let store_index = dirs.store.root().join("index.json");
    fs::write(&store_index, top).expect("write the store's index.json");
    let _ = dirs.store.lookup("m:latest");
    let _ = dirs.store.prune();
    let store_tags: Vec<Descriptor> = tagged
        .iter()
        .map(|d| {
            let mut d = d.clone();
            let tag = format!("{}:latest", store::ref_name(&d).expect("tagged"));
            d.set_annotations(Some([(store::REF_NAME.to_string(), tag)].into()));
            d
        })
        .collect();
    let mut index_doc = store::empty_index();
    index_doc.set_manifests(store_tags);
    fs::write(&store_index, serde_json::to_vec(&index_doc).expect("serialise")).expect("write the store's index.json");
    for tag in ["m", "i", "dl", "m-raw"] {
        if let Ok(loaded) = loading::load(&dirs.store, tag, &platforms()) {
            check_loaded(&loaded, &known);
        }
    }
    let _ = dirs.store.prune();

    // Nothing beside the two directories.
    let mut entries: Vec<String> = fs::read_dir(&dirs.base)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["layout", "store"], "something was created beside the store and the layout");
});
