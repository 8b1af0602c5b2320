//! Multi-platform images in the store: an index named by a tag resolves to a platform's image,
//! a missing platform's error names those the index has, and rmi/prune/gc keep or drop the
//! images an index lists as their names and other indexes say.

mod common;

use std::collections::HashSet;

use common::make_image;
use rbuild_oci::{Platform, Reference};
use rbuild_store::{RemoveOutcome, Store, StoreError};

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

#[test]
fn an_index_tag_resolves_per_platform_and_goes_with_rmi() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Two images (their configs say amd64; the index's entries decide the platform).
    let a = make_image(&store, "a:1", &[&[("f", "amd")]]);
    let b = make_image(&store, "b:1", &[&[("f", "arm")]]);
    let name: Reference = "multi:1".parse().unwrap();
    let list = store
        .commit_index(
            &[(p("linux/amd64"), a.clone()), (p("linux/arm64"), b.clone())],
            std::slice::from_ref(&name),
        )
        .unwrap();
    // Drop their own names: only the index names them.
    store.untag_all(&a.manifest_digest).unwrap();
    store.untag_all(&b.manifest_digest).unwrap();
    assert_eq!(list.names, vec![name.clone()]);
    assert_eq!(list.entries().len(), 2);

    let host = Platform::host();
    if host.architecture == "amd64" {
        assert_eq!(
            store.resolve("multi:1").unwrap().manifest_digest,
            a.manifest_digest
        );
    }
    assert_eq!(
        store
            .resolve_platform("multi:1", &p("linux/arm64"))
            .unwrap()
            .manifest_digest,
        b.manifest_digest
    );
    match store.resolve_platform("multi:1", &p("linux/s390x")) {
        Err(StoreError::NoPlatform { available, .. }) => {
            assert_eq!(available, "linux/amd64, linux/arm64")
        }
        other => panic!("expected NoPlatform, got {other:?}"),
    }
    // The index by its digest and a prefix of it.
    let by_digest = store
        .resolve_index(&list.digest.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.digest, list.digest);
    assert!(
        store
            .resolve_index(&list.digest.hex()[..12])
            .unwrap()
            .is_some()
    );

    // prune keeps the unnamed images the named index lists.
    let pruned = store.prune(&HashSet::new()).unwrap();
    assert!(pruned.is_empty(), "{pruned:?}");
    assert!(store.image(&b.manifest_digest).is_ok());

    // rmi of the tag deletes the index and the images only it listed, then their blobs.
    match store.remove("multi:1", false).unwrap() {
        RemoveOutcome::Deleted { id, untagged } => {
            assert_eq!(id, list.digest);
            assert_eq!(untagged, vec![name]);
        }
        other => panic!("{other:?}"),
    }
    assert!(store.table().unwrap().indexes.is_empty());
    assert!(store.table().unwrap().images.is_empty());
    assert!(!store.blobs().contains(&list.digest));
    assert!(!store.blobs().contains(&b.manifest_digest));
}

#[test]
fn a_name_moved_to_an_index_leaves_the_image_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = make_image(&store, "app:1", &[&[("f", "x")]]);
    let list = store
        .commit_index(
            &[(p("linux/amd64"), a.clone())],
            &["app:1".parse().unwrap()],
        )
        .unwrap();
    let t = store.table().unwrap();
    assert!(t.images[&a.manifest_digest].names.is_empty());
    assert_eq!(t.indexes[&list.digest].names.len(), 1);
    // The image keeps no name, but the index lists it: not dangling.
    assert!(store.prune(&HashSet::new()).unwrap().is_empty());
    // Naming the image again moves the name off the index, which prune then drops.
    store.tag(&a, &"app:1".parse().unwrap()).unwrap();
    assert!(store.resolve_index("app:1").unwrap().is_none());
    store.prune(&HashSet::new()).unwrap();
    assert!(store.table().unwrap().indexes.is_empty());
    assert!(!store.blobs().contains(&list.digest));
    assert_eq!(
        store.resolve("app:1").unwrap().manifest_digest,
        a.manifest_digest
    );
}
