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

/// A writer compressing into `out` with `kind` (zstd uses every core).
pub fn encoder<'a, W: Write + 'a + 'static>(
    kind: Compression,
    out: W,
) -> io::Result<Box<dyn Encoder + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(Plain(out)),
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::default(),
        )),
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, 3)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            if threads > 1 {
                e.multithread(threads)?;
            }
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
