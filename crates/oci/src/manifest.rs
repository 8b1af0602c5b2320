//! Image manifests, indexes and configs: the `oci-spec` types, decoded with their descriptors
//! checked (schema version, known media types, valid digests), so later code can trust them.

pub use oci_spec::image::{
    Descriptor, ImageConfiguration as ImageConfig, ImageIndex, ImageManifest,
};

use crate::{Digest, DigestError, MediaType, Platform};

/// Why bytes are not a usable manifest, index or config.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("{what} is not valid JSON of the expected shape: {source}")]
    Json {
        /// `manifest`, `index` or `config`.
        what: &'static str,
        /// The decoder's complaint.
        source: serde_json::Error,
    },
    /// `schemaVersion` is not 2.
    #[error("{what} has schemaVersion {found}, only 2 is supported")]
    SchemaVersion {
        /// `manifest` or `index`.
        what: &'static str,
        /// The version found.
        found: u32,
    },
    /// A descriptor names a media type rbuild does not know, or one of the wrong kind.
    #[error("{what}: unsupported media type {media_type:?} for {role}")]
    MediaType {
        /// `manifest` or `index`.
        what: &'static str,
        /// `config`, `layer` or `manifest`.
        role: &'static str,
        /// The media type found.
        media_type: String,
    },
    /// A descriptor's digest is invalid.
    #[error("{what}: {source}")]
    Digest {
        /// `manifest`, `index` or `config`.
        what: &'static str,
        /// What is wrong.
        source: DigestError,
    },
}

fn json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json { what, source })
}

/// The validated digest of a descriptor.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, DigestError> {
    d.digest().to_string().parse()
}

/// The rbuild media type of a descriptor, if known.
pub fn descriptor_media_type(d: &Descriptor) -> Option<MediaType> {
    d.media_type().to_string().parse().ok()
}

/// A descriptor for content of `media_type` with `digest` and `size`.
pub fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(
        oci_spec::image::MediaType::from(media_type.as_str()),
        size,
        oci_spec::image::Digest::from(digest),
    )
}

/// The platform an index entry names, when it names one.
pub fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| Platform {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone().filter(|v| !v.is_empty()),
    })
}

/// `d` with `platform` set (an index entry).
pub fn with_platform(mut d: Descriptor, platform: &Platform) -> Descriptor {
    let mut p = oci_spec::image::Platform::default();
    p.set_os(oci_spec::image::Os::from(platform.os.as_str()));
    p.set_architecture(oci_spec::image::Arch::from(platform.architecture.as_str()));
    p.set_variant(platform.variant.clone());
    d.set_platform(Some(p));
    d
}

/// An OCI image index listing `manifests` (descriptors with their platforms), in order.
pub fn index_of(manifests: Vec<Descriptor>) -> ImageIndex {
    oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("all index fields are set")
}

/// The image entries of an index (image manifests that are not attestations), with platforms.
pub fn index_images(index: &ImageIndex) -> Vec<(Digest, Option<Platform>, &Descriptor)> {
    index
        .manifests()
        .iter()
        .filter(|d| descriptor_media_type(d).is_some_and(MediaType::is_manifest))
        .filter(|d| descriptor_platform(d).is_none_or(|p| p.os != "unknown"))
        .filter_map(|d| Some((descriptor_digest(d).ok()?, descriptor_platform(d), d)))
        .collect()
}

/// Decode an image manifest (OCI or Docker schema 2), checking every descriptor.
pub fn decode_manifest(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
    const WHAT: &str = "manifest";
    let m: ImageManifest = json(WHAT, bytes)?;
    if m.schema_version() != 2 {
        return Err(ManifestError::SchemaVersion {
            what: WHAT,
            found: m.schema_version(),
        });
    }
    if let Some(mt) = m.media_type() {
        let ok = mt
            .to_string()
            .parse::<MediaType>()
            .is_ok_and(|t| t.is_manifest());
        if !ok {
            return Err(ManifestError::MediaType {
                what: WHAT,
                role: "manifest",
                media_type: mt.to_string(),
            });
        }
    }
    let config_ok = matches!(
        descriptor_media_type(m.config()),
        Some(MediaType::OciConfig | MediaType::DockerConfig)
    );
    if !config_ok {
        return Err(ManifestError::MediaType {
            what: WHAT,
            role: "config",
            media_type: m.config().media_type().to_string(),
        });
    }
    check_digest(WHAT, m.config())?;
    for layer in m.layers() {
        if descriptor_media_type(layer)
            .and_then(MediaType::layer_compression)
            .is_none()
        {
            return Err(ManifestError::MediaType {
                what: WHAT,
                role: "layer",
                media_type: layer.media_type().to_string(),
            });
        }
        check_digest(WHAT, layer)?;
    }
    Ok(m)
}

/// Decode an image index (OCI index or Docker manifest list), checking every descriptor's digest.
/// Entries of unknown media types are kept (indexes may list attestations); use
/// [`select_platform`] to pick an image.
pub fn decode_index(bytes: &[u8]) -> Result<ImageIndex, ManifestError> {
    const WHAT: &str = "index";
    let i: ImageIndex = json(WHAT, bytes)?;
    if i.schema_version() != 2 {
        return Err(ManifestError::SchemaVersion {
            what: WHAT,
            found: i.schema_version(),
        });
    }
    for d in i.manifests() {
        check_digest(WHAT, d)?;
    }
    Ok(i)
}

/// Decode an image config, checking its `rootfs.diff_ids`.
pub fn decode_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    const WHAT: &str = "config";
    let c: ImageConfig = json(WHAT, bytes)?;
    for d in c.rootfs().diff_ids() {
        d.parse::<Digest>()
            .map_err(|source| ManifestError::Digest { what: WHAT, source })?;
    }
    Ok(c)
}

/// The config's layer diffIDs, in order (bottom layer first).
pub fn diff_ids(config: &ImageConfig) -> Result<Vec<Digest>, DigestError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse())
        .collect()
}

/// The first image manifest in `index` for `platform` (entries without platform match any).
pub fn select_platform<'a>(index: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    index.manifests().iter().find(|d| {
        let is_manifest = descriptor_media_type(d).is_some_and(|t| t.is_manifest() || t.is_index());
        let fits = match d.platform() {
            None => true,
            Some(p) => platform.matches(&Platform {
                os: p.os().to_string(),
                architecture: p.architecture().to_string(),
                variant: p.variant().clone(),
            }),
        };
        is_manifest && fits
    })
}

fn check_digest(what: &'static str, d: &Descriptor) -> Result<(), ManifestError> {
    descriptor_digest(d)
        .map(|_| ())
        .map_err(|source| ManifestError::Digest { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CFG: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},
            "layers":[{{"mediaType":"{layer_type}","digest":"{CFG}","size":3}}]}}"#
        )
    }

    #[test]
    fn decodes_a_valid_manifest() {
        let m = decode_manifest(manifest("application/vnd.oci.image.layer.v1.tar+gzip").as_bytes())
            .unwrap();
        assert_eq!(m.layers().len(), 1);
        assert_eq!(descriptor_digest(&m.layers()[0]).unwrap().to_string(), CFG);
    }

    #[test]
    fn rejects_unknown_layer_media_type() {
        let e = decode_manifest(manifest("application/x-weird").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("application/x-weird"), "{e}");
    }

    #[test]
    fn an_index_round_trips_with_platforms() {
        let d: Digest = CFG.parse().unwrap();
        let amd: Platform = "linux/amd64".parse().unwrap();
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        let index = index_of(vec![
            with_platform(descriptor(MediaType::OciManifest, &d, 10), &amd),
            with_platform(descriptor(MediaType::OciManifest, &d, 10), &arm),
        ]);
        let bytes = serde_json::to_vec(&index).unwrap();
        let back = decode_index(&bytes).unwrap();
        let images = index_images(&back);
        assert_eq!(images.len(), 2);
        assert_eq!(images[1].1.as_ref(), Some(&arm));
        assert_eq!(
            select_platform(&back, &arm).and_then(descriptor_platform),
            Some(arm)
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("application/vnd.oci.image.index.v1+json"),
            "{text}"
        );
    }

    #[test]
    fn rejects_schema_version_1() {
        let s = manifest("application/vnd.oci.image.layer.v1.tar")
            .replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(matches!(
            decode_manifest(s.as_bytes()),
            Err(ManifestError::SchemaVersion { found: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_manifest(&bytes);
            let _ = decode_index(&bytes);
            let _ = decode_config(&bytes);
        }

        #[test]
        fn random_json_never_panics(s in r#"\{("[a-zA-Z]{1,12}":("[ -~]{0,20}"|[0-9]{1,4}|\[\]|\{\}),?){0,6}\}"#) {
            let _ = decode_manifest(s.as_bytes());
            let _ = decode_index(s.as_bytes());
            let _ = decode_config(s.as_bytes());
        }
    }
}
