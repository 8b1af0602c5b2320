//! What the store holds: images newest first (`docker images`), an image's history.

use rbuild_oci::{Platform, Reference};
use rbuild_store::{Image, ImageList};

use crate::Engine;
use crate::error::{EngineError, Result};

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
    /// Set for a multi-platform image (a name of an index): the index and each platform's
    /// image (`None` when not in the store). `image` is then this machine's platform's image
    /// (or the first stored one), and `size` the sum of the stored images' sizes.
    pub index: Option<IndexSummary>,
}

/// A multi-platform image in the list.
#[derive(Debug, Clone)]
pub struct IndexSummary {
    /// The index.
    pub list: ImageList,
    /// Each entry's platform and image, in the index's order.
    pub platforms: Vec<(Option<Platform>, Option<Image>)>,
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
        let mut summaries = Vec::new();
        // Multi-platform images first become rows of their own; the images they list show
        // only under names of their own.
        let mut listed = std::collections::HashSet::new();
        for list in store.indexes()? {
            let mut platforms = Vec::new();
            for (digest, platform) in list.entries() {
                listed.insert(digest.clone());
                platforms.push((platform, store.image(&digest).ok()));
            }
            let host = Platform::host();
            let shown = platforms
                .iter()
                .find(|(p, i)| i.is_some() && p.as_ref().is_none_or(|p| host.matches(p)))
                .or_else(|| platforms.iter().find(|(_, i)| i.is_some()))
                .and_then(|(_, i)| i.clone());
            let Some(mut image) = shown else { continue };
            let size = platforms
                .iter()
                .filter_map(|(_, i)| i.as_ref())
                .map(|i| store.image_size(i))
                .sum();
            image.names = list.names.clone();
            summaries.push(ImageSummary {
                created: created(&image),
                size,
                names: Vec::new(),
                image,
                index: Some(IndexSummary { list, platforms }),
            });
        }
        for image in store.images()? {
            if image.names.is_empty() && listed.contains(&image.manifest_digest) {
                continue;
            }
            summaries.push(ImageSummary {
                created: created(&image),
                size: store.image_size(&image),
                names: Vec::new(),
                image,
                index: None,
            });
        }
        summaries.sort_by_key(|s| std::cmp::Reverse(s.created));
        let filter = reference.map(|r| {
            let explicit_tag = r.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
            (r.parse::<Reference>().ok(), explicit_tag)
        });
        let mut out = Vec::new();
        for mut summary in summaries {
            let all = match &summary.index {
                Some(i) => i.list.names.clone(),
                None => summary.image.names.clone(),
            };
            summary.names = match &filter {
                None => all,
                Some((None, _)) => continue,
                Some((Some(w), explicit_tag)) => {
                    let names: Vec<Reference> = all
                        .into_iter()
                        .filter(|n| {
                            w.repository() == n.repository()
                                && (!explicit_tag || w.tag() == Some(n.tag().unwrap_or("<none>")))
                        })
                        .collect();
                    if names.is_empty() {
                        continue;
                    }
                    names
                }
            };
            out.push(summary);
        }
        Ok(out)
    }

    /// The images docker's `images --filter` keys select: `reference` (`repo` or
    /// `repo:tag`; only the names it selects are kept), `dangling` (`true`: untagged),
    /// `label` (`KEY` or `KEY=VALUE`, all must match), `before` and `since` (created before
    /// or after the image a name or ID names). Newest first.
    pub fn list_images_filtered(&self, filters: &[(String, String)]) -> Result<Vec<ImageSummary>> {
        let mut reference = None;
        let mut dangling = None;
        let mut labels = Vec::new();
        let mut relative = Vec::new();
        for (k, v) in filters {
            match k.as_str() {
                "reference" => reference = Some(v.as_str()),
                "dangling" => {
                    dangling = Some(match v.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(EngineError::InvalidParameter(format!(
                                "Invalid filter 'dangling={v}'"
                            )));
                        }
                    })
                }
                "label" => labels.push(v.as_str()),
                "before" | "since" => relative.push((k.as_str(), v.as_str())),
                _ => {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid filter '{k}'"
                    )));
                }
            }
        }
        let mut bounds = Vec::new();
        if !relative.is_empty() {
            let all = self.list_images(None)?;
            for (k, name) in relative {
                let id = name.trim_start_matches("sha256:");
                let created = all
                    .iter()
                    .find(|r| {
                        r.image
                            .id
                            .to_string()
                            .trim_start_matches("sha256:")
                            .starts_with(id)
                            || r.image.names.iter().any(|n| {
                                let f = n.familiar();
                                f == name || f == format!("{name}:latest")
                            })
                    })
                    .map(|r| r.created)
                    .ok_or_else(|| EngineError::NotFound(format!("No such image: {name}")))?;
                bounds.push((k == "before", created));
            }
        }
        Ok(self
            .list_images(reference)?
            .into_iter()
            .filter(|r| dangling.is_none_or(|d| d == r.names.is_empty()))
            .filter(|r| {
                bounds.iter().all(
                    |&(before, t)| {
                        if before { r.created < t } else { r.created > t }
                    },
                )
            })
            .filter(|r| {
                if labels.is_empty() {
                    return true;
                }
                let config = r.image.config_json();
                let have = config.pointer("/config/Labels");
                labels.iter().all(|l| {
                    let (k, v) = match l.split_once('=') {
                        Some((k, v)) => (k, Some(v)),
                        None => (*l, None),
                    };
                    match have.and_then(|h| h.get(k)) {
                        Some(x) => v.is_none_or(|v| x.as_str() == Some(v)),
                        None => false,
                    }
                })
            })
            .collect())
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
                        .and_then(|d| {
                            // A layer held only remotely: its uncompressed size.
                            store
                                .layer_content_size(d)
                                .ok()
                                .or_else(|| store.layer_size(d))
                        })
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
