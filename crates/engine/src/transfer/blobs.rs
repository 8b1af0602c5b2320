//! The local store as a registry blob sink and source: fetched blobs go through the store's
//! verified temp-file + fsync + rename writer; pushed blobs are read from its blob files.

use std::io::{self, Read, Seek, SeekFrom};

use rbuild_oci::Digest;
use rbuild_registry::{BlobSink, BlobSource, BlobWriter};
use rbuild_store::Store;

/// A [`Store`] seen through the registry's blob traits.
#[derive(Debug, Clone)]
pub struct StoreBlobs(
    /// The store.
    pub Store,
);

fn io_error(e: rbuild_store::StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

impl BlobSink for StoreBlobs {
    fn contains(&self, digest: &Digest) -> bool {
        self.0.has_blob(digest)
    }

    fn verifies_digests(&self) -> bool {
        // The store's writer hashes everything and refuses a mismatch at commit.
        true
    }

    fn begin(&self, digest: &Digest) -> io::Result<Box<dyn BlobWriter>> {
        let writer = self
            .0
            .blobs()
            .writer(digest.algorithm())
            .map_err(io_error)?;
        Ok(Box::new(StoreWriter {
            writer,
            digest: digest.clone(),
        }))
    }
}

struct StoreWriter {
    writer: rbuild_store::BlobWriter,
    digest: Digest,
}

impl BlobWriter for StoreWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.writer, data)
    }

    fn commit(self: Box<Self>) -> io::Result<()> {
        let what = format!("blob {}", self.digest);
        self.writer
            .commit(Some(&self.digest), &what)
            .map(|_| ())
            .map_err(io_error)
    }
}

impl BlobSource for StoreBlobs {
    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        if !self.0.blobs().contains(digest) {
            // A layer kept as its snapshot: its tar is made again, so skip to `offset`. Not
            // hashed here: the registry checks the digest of what it receives.
            let mut r = self.0.blob_reader_for_push(digest).map_err(io_error)?;
            io::copy(&mut (&mut r).take(offset), &mut io::sink())?;
            return Ok(r);
        }
        let mut f = self.0.blobs().open(digest).map_err(io_error)?;
        if offset > 0 {
            f.seek(SeekFrom::Start(offset))?;
        }
        Ok(Box::new(f))
    }
}
