//! The IR validator on arbitrary graphs (any JSON that deserialises into one): it must never
//! panic, whatever indices, names and paths a hostile frontend sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = serde_json::from_slice::<kiln_ir::BuildGraph>(data) {
        let _ = graph.validate();
    }
});
