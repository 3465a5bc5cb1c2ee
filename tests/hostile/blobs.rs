//! Blobs of kiln's store changed after kiln wrote them (a disk error, a stray edit, another
//! tool): a base image's layer, a cached step's layer. Whatever reads one for a build, a
//! `kiln run` or an export checks its bytes against its digest as they stream, so a changed
//! blob ends in an error naming it and the way out, never in an image or output built from
//! the wrong bytes under the old digest.

use std::path::{Path, PathBuf};

use kiln::exporter::Output;
use kiln::rootfs::Tree;

use super::Hostile;
use super::layers::BASE_CONTEXT;
use crate::oci;
use crate::run::layout_with_blob;
use crate::support::{sha256_hex, stderr};

/// The remedy every damaged store blob's error gives.
const REMEDY: &str =
    "untag the images that use it (`kiln rmi NAME`), delete it with `kiln prune`, then pull or build them again";

/// An uncompressed tar holding `etc/motd` with `motd`.
fn motd_tar(motd: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(motd.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, "etc/motd", motd).unwrap();
    b.into_inner().unwrap()
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256").join(digest.strip_prefix("sha256:").expect("a sha256 digest"))
}

/// The digest of the first layer of the image tagged `name` in the store.
fn first_layer(root: &Path, name: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let descriptor = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {index}"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(root, descriptor["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_base_layer_changed_in_the_store_is_refused_by_builds_runs_and_exports() {
    let mut h = Hostile::new();
    // The layer is a plain tar, so a changed byte still makes a valid layer of the same size:
    // read without a check, it would be used as it is.
    let good = motd_tar(b"hello\n");
    let diff_id = sha256_hex(&good);
    layout_with_blob(&h.sb.dir.path().join("base"), &good, &diff_id, "evil");
    h.sb.write("import/Dockerfile", "FROM evil-base\nLABEL imported=yes\n");
    h.sb.write("ctx/Dockerfile", "FROM base:1\nCOPY Dockerfile /\n");
    h.sb.write("label/Dockerfile", "FROM base:1\nLABEL more=yes\n");
    let out = h.run(&["build", "--build-context", BASE_CONTEXT, "-t", "base:1", "import"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let layer = first_layer(&h.sb.root(), "base:1");
    let stored = blob_path(&h.sb.root(), &layer);
    let bad = motd_tar(b"HACKED");
    assert_eq!(bad.len(), good.len());
    std::fs::write(&stored, &bad).unwrap();
    let bad_digest = format!("sha256:{}", sha256_hex(&bad));
    h.seal();
    let damaged =
        format!("base:1: layer {layer} in kiln's store is damaged: its content has digest {bad_digest}; {REMEDY}");

    // A build that needs its files.
    let out = h.run(&["build", "-t", "child:1", "-o", "type=local,dest=out", "ctx"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "built on a changed layer:\n{err}");
    assert!(err.contains(&damaged), "{err}");
    assert!(err.contains("nothing was tagged"), "{err}");
    // `kiln run`.
    let out = h.run(&["run", "base:1", "/bin/true"]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains(&damaged), "{err}");
    // Exports: kiln unpacks the image first (and stops there); the export itself copies each
    // blob through a check too, for a blob changed after that.
    let in_store = format!("{layer} in kiln's store is damaged: its content has digest {bad_digest}; {REMEDY}");
    for (output, dest) in [
        ("type=oci,dest=out", "out"),
        ("type=oci-archive,dest=oci.tar", "oci.tar"),
        ("type=docker,dest=docker.tar", "docker.tar"),
    ] {
        let out = h.run(&["build", "-t", "child:2", "-o", output, "label"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "exported a changed layer:\n{err}");
        assert!(err.contains(&in_store), "{err}");
        assert!(!h.sb.dir.path().join(dest).exists(), "{dest} was written");
    }
    let store = kiln::store::Store::open(&h.sb.root()).unwrap();
    let manifest = store.lookup("base:1").unwrap().expect("base:1 is tagged");
    let protected = kiln::exporter::Protected::new(&h.sb.root(), None).unwrap();
    for output in [
        Output::Oci(h.sb.dir.path().join("out")),
        Output::OciArchive(h.sb.dir.path().join("oci.tar")),
        Output::Docker(h.sb.dir.path().join("docker.tar")),
    ] {
        let err =
            kiln::exporter::write(&store, &manifest, &[], &Tree::new(), &output, &protected).unwrap_err().to_string();
        assert!(err.contains(&format!("blob {in_store}")), "{err}");
    }
    let index = std::fs::read_to_string(h.sb.root().join("index.json")).unwrap();
    assert!(!index.contains("child:"), "nothing was tagged: {index}");
    // With the blob whole again, the store is sound and nothing outside it changed.
    std::fs::write(&stored, &good).unwrap();
    h.verify(&[]);
}

#[test]
fn a_cached_step_whose_layer_changed_runs_again_and_exports_the_right_bytes() {
    let mut h = Hostile::new();
    h.sb.write("ctx/a", "first\n");
    h.sb.write("ctx/b", "second\n");
    h.sb.write("ctx/Dockerfile", "FROM scratch\nCOPY a /a\nCOPY b /b\n");
    let out = h.run(&["build", "-t", "img:1", "ctx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let layer = first_layer(&h.sb.root(), "img:1");
    let stored = blob_path(&h.sb.root(), &layer);
    let good = std::fs::read(&stored).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&stored, &bad).unwrap();
    h.seal();

    let out = h.run(&["build", "--progress", "plain", "-t", "img:2", "-o", "type=oci,dest=out", "ctx"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // The step whose layer changed ran again (and wrote its layer anew); the next one, whose
    // own layer is whole, came from the cache.
    assert!(!err.contains("COPY a /a CACHED"), "{err}");
    assert!(err.contains("COPY b /b CACHED"), "{err}");
    let exported = oci::read(&h.sb.dir.path().join("out"), None);
    assert_eq!(exported.manifest["layers"][0]["digest"], layer.as_str());
    assert_eq!(exported.entry(0, "a").data, b"first\n");
    assert_eq!(std::fs::read(&stored).unwrap(), good, "the store's copy is whole again");
    h.verify(&["out"]);
}
