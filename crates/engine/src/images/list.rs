//! What the store holds: images newest first (`docker images`), an image's history.

use rbuild_oci::Reference;
use rbuild_store::Image;

use crate::Engine;
use crate::error::Result;

/// One image of the list.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The image.
    pub image: Image,
    /// Its names that the list's reference selects (all without one; empty: untagged).
    pub names: Vec<Reference>,
    /// When it was created (its config's `created`, else when it was stored), in seconds.
    pub created: i64,
    /// The size of its layers, uncompressed.
    pub size: u64,
}

/// One step of an image's history (docker's `HistoryResponseItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When, in seconds (`None` when the config does not say).
    pub created: Option<i64>,
    /// The instruction that made it.
    pub created_by: String,
    /// The size of its layer (0 for a config-only step).
    pub size: u64,
    /// Its comment.
    pub comment: String,
}

/// When `img` was created: its config's `created`, else when it was stored, in seconds.
pub(crate) fn created(img: &Image) -> i64 {
    img.config
        .created()
        .as_deref()
        .and_then(rbuild_oci::time::parse_rfc3339)
        .map(|ns| ns.div_euclid(1_000_000_000))
        .unwrap_or(img.added as i64)
}

impl Engine {
    /// The stored images, newest first; with `reference` (`repo` or `repo:tag`), only those
    /// with a name it selects, and only those names.
    pub fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageSummary>> {
        let store = self.store()?;
        let mut images = store.images()?;
        images.sort_by_key(|i| std::cmp::Reverse(created(i)));
        let filter = reference.map(|r| {
            let explicit_tag = r.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
            (r.parse::<Reference>().ok(), explicit_tag)
        });
        let mut out = Vec::new();
        for image in images {
            let names: Vec<Reference> = match &filter {
                None => image.names.clone(),
                Some((None, _)) => continue,
                Some((Some(w), explicit_tag)) => {
                    let names: Vec<Reference> = image
                        .names
                        .iter()
                        .filter(|n| {
                            w.repository() == n.repository()
                                && (!explicit_tag || w.tag() == Some(n.tag().unwrap_or("<none>")))
                        })
                        .cloned()
                        .collect();
                    if names.is_empty() {
                        continue;
                    }
                    names
                }
            };
            out.push(ImageSummary {
                created: created(&image),
                size: store.image_size(&image),
                names,
                image,
            });
        }
        Ok(out)
    }

    /// The history of the image `name` names, newest first, each step with its layer's size.
    pub fn history(&self, name: &str) -> Result<(Image, Vec<HistoryEntry>)> {
        let store = self.store()?;
        let img = store.resolve(name)?;
        let diff_ids = img.diff_ids()?;
        let history = img.config.history().clone().unwrap_or_default();
        // Pair history entries with layers: every non-empty entry consumes the next layer.
        let mut layer_iter = diff_ids.iter();
        let mut out: Vec<HistoryEntry> = history
            .iter()
            .map(|h| HistoryEntry {
                size: if h.empty_layer().unwrap_or(false) {
                    0
                } else {
                    layer_iter
                        .next()
                        .and_then(|d| store.layer_content_size(d).ok())
                        .unwrap_or(0)
                },
                created: h
                    .created()
                    .as_deref()
                    .and_then(rbuild_oci::time::parse_rfc3339)
                    .map(|ns| ns.div_euclid(1_000_000_000)),
                created_by: h.created_by().clone().unwrap_or_default(),
                comment: h.comment().clone().unwrap_or_default(),
            })
            .collect();
        out.reverse();
        Ok((img, out))
    }
}
