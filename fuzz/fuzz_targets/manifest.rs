//! Fuzz the decoding of what registries and archives hand us: image manifests, indexes and
//! configs, and the helpers that read them (descriptors, diffIDs, platform selection, digests,
//! references). Run with `cargo +nightly fuzz run manifest` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_oci::manifest::{decode_config, decode_index, decode_manifest, descriptor_digest, diff_ids, select_platform};
use rbuild_oci::{Digest, Platform, Reference};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_manifest(data) {
        for layer in m.layers() {
            let _ = descriptor_digest(layer);
        }
    }
    if let Ok(index) = decode_index(data) {
        let _ = select_platform(&index, &Platform::host());
    }
    if let Ok(config) = decode_config(data) {
        let _ = diff_ids(&config);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Digest>();
        let _ = text.parse::<Reference>();
    }
});
