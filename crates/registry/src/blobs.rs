//! Where transfers read and write blobs: the small traits a store, an OCI layout or a test
//! implements. The registry client verifies digests and sizes itself while streaming; a sink
//! additionally commits atomically (temp file + rename) so a failed transfer leaves nothing.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use rbuild_oci::Digest;

/// A destination for fetched blobs (manifests, configs, layers), keyed by digest.
pub trait BlobSink: Send + Sync {
    /// Whether the blob is already present (then it is not fetched again).
    fn contains(&self, digest: &Digest) -> bool;

    /// Start writing the blob `digest`. Dropping the writer without [`BlobWriter::commit`]
    /// must discard everything written.
    fn begin(&self, digest: &Digest) -> io::Result<Box<dyn BlobWriter>>;

    /// Whether this sink's writers hash what they are given and refuse, on
    /// [`BlobWriter::commit`], content that does not match the digest passed to
    /// [`BlobSink::begin`]. The registry client then leaves the hashing to them instead of
    /// hashing every byte twice. Default: `false` (the client verifies).
    fn verifies_digests(&self) -> bool {
        false
    }

    /// Store a small blob that is already in memory (manifests, configs).
    fn put(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        let mut w = self.begin(digest)?;
        w.write(data)?;
        w.commit()
    }
}

/// A blob being written; the registry calls [`BlobWriter::commit`] only after the content
/// verified against its digest and size.
pub trait BlobWriter: Send {
    /// Append bytes.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Make the blob visible under its digest (atomically; the sink may verify again).
    fn commit(self: Box<Self>) -> io::Result<()>;
}

/// A source of blobs to push, keyed by digest.
pub trait BlobSource: Send + Sync {
    /// Open the blob, positioned `offset` bytes in (for resuming an upload).
    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Box<dyn Read + Send>>;

    /// The whole blob in memory (for manifests and configs).
    fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(digest, 0)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Blobs in memory: a sink and a source, for tests and small tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryBlobs {
    blobs: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
}

impl MemoryBlobs {
    /// An empty set.
    pub fn new() -> MemoryBlobs {
        MemoryBlobs::default()
    }

    /// Add a blob, returning its sha256 digest.
    pub fn insert(&self, data: Vec<u8>) -> Digest {
        let digest = Digest::sha256_of(&data);
        lock(&self.blobs).insert(digest.clone(), data);
        digest
    }

    /// A copy of a blob, if present.
    pub fn get(&self, digest: &Digest) -> Option<Vec<u8>> {
        lock(&self.blobs).get(digest).cloned()
    }

    /// How many blobs are held.
    pub fn len(&self) -> usize {
        lock(&self.blobs).len()
    }

    /// Whether no blob is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock(
    m: &Mutex<HashMap<Digest, Vec<u8>>>,
) -> std::sync::MutexGuard<'_, HashMap<Digest, Vec<u8>>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BlobSink for MemoryBlobs {
    fn contains(&self, digest: &Digest) -> bool {
        lock(&self.blobs).contains_key(digest)
    }

    fn begin(&self, digest: &Digest) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(MemoryWriter {
            target: Arc::clone(&self.blobs),
            digest: digest.clone(),
            data: Vec::new(),
        }))
    }
}

impl BlobSource for MemoryBlobs {
    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let data = self.get(digest).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} not present"),
            )
        })?;
        let mut cursor = io::Cursor::new(data);
        cursor.set_position(offset);
        Ok(Box::new(cursor))
    }
}

struct MemoryWriter {
    target: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
    digest: Digest,
    data: Vec<u8>,
}

impl BlobWriter for MemoryWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn commit(self: Box<Self>) -> io::Result<()> {
        let this = *self;
        lock(&this.target).insert(this.digest, this.data);
        Ok(())
    }
}
