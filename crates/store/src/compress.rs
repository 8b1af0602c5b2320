//! gzip and zstd as streams: decompression sniffed from the first bytes, compression on several
//! cores where the format allows (zstd).

use std::io::{self, BufRead, BufReader, Read, Write};

use rbuild_oci::Compression;

/// A reader that transparently decompresses gzip or zstd input, or passes plain input through.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(1 << 20, reader);
    let head = buf.fill_buf()?;
    let kind = Compression::sniff(head);
    Ok((kind, decoder(kind, buf)?))
}

/// A reader decompressing `kind` from `reader`.
pub fn decoder<'a>(kind: Compression, reader: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// A compressing writer that must be finished to flush its trailer.
pub trait Encoder: Write {
    /// Write the trailer and flush.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W: Write>(W);
impl<W: Write> Write for Plain<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write> Encoder for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Encoder for flate2::write::GzEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

impl<W: Write> Encoder for zstd::stream::write::Encoder<'static, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// gzip on several cores: the input is cut into chunks compressed in parallel as independent
/// gzip members and written in order. A multi-member gzip file is one valid gzip stream
/// (RFC 1952 §2.2) that every decoder used for layers (Go's, zlib's, flate2's `MultiGzDecoder`)
/// reads as the concatenation, as pigz relies on too.
pub struct ParallelGzip<W: Write> {
    out: W,
    chunk: Vec<u8>,
    chunk_size: usize,
    in_flight: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    max_in_flight: usize,
    members: usize,
}

impl<W: Write> ParallelGzip<W> {
    /// Compress into `out` with `threads` workers, `chunk_size` bytes per member.
    pub fn new(out: W, threads: usize, chunk_size: usize) -> Self {
        ParallelGzip {
            out,
            chunk: Vec::with_capacity(chunk_size),
            chunk_size,
            in_flight: Default::default(),
            max_in_flight: threads.max(1) * 2,
            members: 0,
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.chunk_size));
        self.members += 1;
        self.in_flight.push_back(std::thread::spawn(move || {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::default(),
            );
            e.write_all(&data)?;
            e.finish()
        }));
        while self.in_flight.len() > self.max_in_flight {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(h) = self.in_flight.pop_front() {
            let bytes = h
                .join()
                .map_err(|_| io::Error::other("gzip worker panicked"))??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.chunk_size - self.chunk.len();
        let n = room.min(buf.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() >= self.chunk_size {
            self.spawn()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Encoder for ParallelGzip<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.chunk.is_empty() || self.members == 0 {
            self.spawn()?;
        }
        while !self.in_flight.is_empty() {
            self.drain_one()?;
        }
        self.out.flush()
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A writer compressing into `out` with `kind` (gzip and zstd use every core).
pub fn encoder<'a, W: Write + 'a + 'static>(
    kind: Compression,
    out: W,
) -> io::Result<Box<dyn Encoder + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(Plain(out)),
        // Always the chunked encoders, whatever the core count, so a layer compresses to the
        // same bytes (and digest) on every machine.
        Compression::Gzip => Box::new(ParallelGzip::new(out, threads(), 4 << 20)),
        Compression::Zstd => {
            // zstd's multi-threaded mode gives identical output for any worker count >= 1.
            let mut e = zstd::stream::write::Encoder::new(out, 3)?;
            e.multithread(threads() as u32)?;
            Box::new(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_format() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut out = Vec::new();
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut e = encoder(kind, SharedVec(buf.clone())).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap();
            out.extend_from_slice(&buf.lock().unwrap());
            if kind != Compression::None {
                assert!(out.len() < data.len() / 2, "{kind:?} did not compress");
            }
            let (found, mut r) = decompress(&out[..]).unwrap();
            assert_eq!(found, kind);
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn parallel_gzip_members_decode_as_one_stream() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 977).to_le_bytes())
            .collect();
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut e: Box<dyn Encoder> =
            Box::new(ParallelGzip::new(SharedVec(buf.clone()), 3, 10_000));
        e.write_all(&data).unwrap();
        e.finish().unwrap();
        let out = buf.lock().unwrap().clone();
        let (kind, mut r) = decompress(&out[..]).unwrap();
        assert_eq!(kind, Compression::Gzip);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "members reassembled out of order");
        // Empty input still gives a valid (empty) gzip stream.
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let e: Box<dyn Encoder> = Box::new(ParallelGzip::new(SharedVec(buf.clone()), 2, 10));
        e.finish().unwrap();
        let out = buf.lock().unwrap().clone();
        let mut back = Vec::new();
        decompress(&out[..])
            .unwrap()
            .1
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty() && !out.is_empty());
    }

    #[test]
    fn compressed_bytes_do_not_depend_on_the_core_count() {
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|i| ((i % 251) ^ (i / 977)) as u8)
            .collect();
        let gz = |threads| {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut e: Box<dyn Encoder> =
                Box::new(ParallelGzip::new(SharedVec(buf.clone()), threads, 100_000));
            e.write_all(&data).unwrap();
            e.finish().unwrap();
            buf.lock().unwrap().clone()
        };
        assert_eq!(gz(1), gz(4));
        let zst = |workers| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.multithread(workers).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(zst(1), zst(3));
    }

    struct SharedVec(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for SharedVec {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
