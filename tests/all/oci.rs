//! Reading images back for assertions: an OCI layout (the store, or an `-o type=oci` output)
//! to manifest, config and the entries of every layer; plus the third-party validators every
//! image in these tests must pass.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::sha256_hex;

/// One tar entry of a layer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// An image read from a layout.
pub struct Image {
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
    pub layers: Vec<Vec<Entry>>,
}

impl Image {
    /// The layer entries' paths, per layer.
    pub fn paths(&self, layer: usize) -> Vec<String> {
        self.layers[layer].iter().map(|e| e.path.clone()).collect()
    }

    /// Find an entry by path in a layer.
    pub fn entry(&self, layer: usize, path: &str) -> &Entry {
        self.layers[layer]
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no {path} in layer {layer}: {:?}", self.paths(layer)))
    }

    pub fn history(&self) -> Vec<(String, bool)> {
        self.config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        (
                            e["created_by"].as_str().unwrap_or("").to_string(),
                            e["empty_layer"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A blob of a layout, checked against its digest.
pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob exists");
    assert_eq!(sha256_hex(&bytes), hex, "blob {digest} matches its digest");
    bytes
}

/// Read the image tagged `name` (or the only image when `None`) from an OCI layout.
pub fn read(layout: &Path, name: Option<&str>) -> Image {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).unwrap();
    let manifests = index["manifests"].as_array().expect("manifests");
    let descriptor = match name {
        Some(name) => manifests
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {index}")),
        None => {
            assert_eq!(manifests.len(), 1, "one image in {index}");
            &manifests[0]
        }
    };
    let manifest_digest = descriptor["digest"].as_str().unwrap().to_string();
    let manifest: Value = serde_json::from_slice(&blob(layout, &manifest_digest)).unwrap();
    let config: Value = serde_json::from_slice(&blob(layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let mut layers = Vec::new();
    for (i, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        let bytes = blob(layout, layer["digest"].as_str().unwrap());
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar_bytes).expect("gzip layer");
        let diff_id = format!("sha256:{}", sha256_hex(&tar_bytes));
        assert_eq!(config["rootfs"]["diff_ids"][i], diff_id.as_str(), "diff_id of layer {i}");
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            entries.push(Entry {
                path,
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link,
                data,
            });
        }
        layers.push(entries);
    }
    Image { manifest_digest, manifest, config, layers }
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().expect("sh runs");
    assert!(
        found.status.success(),
        "{name} is needed by the image tests; scripts/test installs it (apt-get install skopeo umoci oci-image-tool)"
    );
    Command::new(name)
}

/// Check an image in a layout with umoci, oci-image-tool and skopeo.
pub fn validate(layout: &Path, tag: &str) {
    validate_with(layout, tag, true);
}

/// Like [`validate`], optionally without oci-image-tool.
pub fn validate_with(layout: &Path, tag: &str, image_tool: bool) {
    let unpack = tempfile::tempdir().unwrap();
    let bundle = unpack.path().join("bundle");
    // umoci makes a Linux runtime bundle, and refuses other platforms (a `wasip1/wasm`
    // image); for those it unpacks the root filesystem alone.
    let linux = {
        let out =
            tool("skopeo").args(["inspect", "--config", &format!("oci:{}:{tag}", layout.display())]).output().unwrap();
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        config["os"].as_str().is_none_or(|os| os == "linux")
    };
    let out = tool("umoci")
        .args(if linux { ["unpack", "--rootless", "--image"] } else { ["raw", "unpack", "--rootless"] })
        .args((!linux).then_some("--image"))
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    if image_tool {
        image_tool_validate(layout, tag);
    }
    let out = tool("skopeo").args(["inspect", &format!("oci:{}:{tag}", layout.display())]).output().unwrap();
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
}

fn image_tool_validate(layout: &Path, tag: &str) {
    // oci-image-tool 1.0.0-rc2 refuses a tag when another manifest in the index has the same
    // size ("descriptor ... is not unique"), which is common in a shared store. Validate the
    // image in a layout of its own that shares the blobs.
    let alone = tempfile::tempdir().unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut own = index.clone();
    own["manifests"] = serde_json::Value::Array(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .cloned()
            .collect(),
    );
    std::fs::write(alone.path().join("index.json"), serde_json::to_vec(&own).unwrap()).unwrap();
    std::fs::copy(layout.join("oci-layout"), alone.path().join("oci-layout")).unwrap();
    let blobs = alone.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let image = read(layout, Some(tag));
    let mut digests =
        vec![image.manifest_digest.clone(), image.manifest["config"]["digest"].as_str().unwrap().to_string()];
    digests
        .extend(image.manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    for digest in digests {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::copy(layout.join("blobs/sha256").join(hex), blobs.join(hex)).unwrap();
    }
    let layout = alone.path();
    let out = tool("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", &format!("name={tag}")])
        .arg(layout)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oci-image-tool validate: {}{}\nindex.json: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(layout.join("index.json")).unwrap_or_default()
    );
}

/// Check that a store is intact: `index.json` parses, every blob matches its digest, and
/// every tag points at a manifest whose blobs are all present.
pub fn check_store(root: &Path) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).expect("index.json")).expect("index parses");
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(sha256_hex(&bytes), name, "blob {name} is intact");
    }
    for d in index["manifests"].as_array().unwrap() {
        let digest = d["digest"].as_str().unwrap();
        let document: Value = serde_json::from_slice(&blob(root, digest)).unwrap();
        // A pulled index keeps only the platforms pulled; at least one must be complete.
        let manifests: Vec<Value> = match document["manifests"].as_array() {
            Some(children) => children
                .iter()
                .filter_map(|c| std::fs::read(root.join("blobs").join(c["digest"].as_str()?.replace(':', "/"))).ok())
                .map(|bytes| serde_json::from_slice(&bytes).unwrap())
                .collect(),
            None => vec![document],
        };
        assert!(!manifests.is_empty(), "the index {digest} has at least one platform in the store");
        for manifest in manifests {
            blob(root, manifest["config"]["digest"].as_str().unwrap());
            for l in manifest["layers"].as_array().unwrap() {
                blob(root, l["digest"].as_str().unwrap());
            }
        }
    }
}

/// No build's scratch directory is left in the store's `tmp/`.
pub fn assert_no_build_dirs(root: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("build-"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "stale build directories: {leftovers:?}");
}
