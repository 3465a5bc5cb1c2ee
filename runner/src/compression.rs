//! Compressed streams, recognised by their first bytes rather than by a name or a media
//! type (both of which lie): gzip (every member of a multi-member stream, as Go's
//! `gzip.Reader` reads it, and so Docker and containerd), zstd, and for ADD's archives
//! also bzip2 and xz.
//!
//! This module only wraps readers; it never decides what the bytes are for.

use std::io::{self, Read};

/// Which compressions a stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A layer blob: gzip or zstd (OCI's `tar+gzip` and `tar+zstd`), or none.
    Layer,
    /// An archive ADD unpacks: gzip, bzip2, xz or zstd, or none, as Docker's ADD takes them.
    Archive,
}

/// `reader` decompressed if its first bytes are one of `family`'s compressions, else as it
/// is (the bytes read to tell are given back either way).
///
/// # Errors
/// Reading the first bytes fails, or a zstd frame header is malformed.
pub fn decompress<'a>(mut reader: impl Read + 'a, family: Family) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        let n = reader.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let whole = io::Cursor::new(head[..got].to_vec()).chain(reader);
    Ok(match (&head[..got], family) {
        ([0x1f, 0x8b, ..], _) => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        ([0x28, 0xb5, 0x2f, 0xfd, ..], _) => {
            Box::new(ruzstd::decoding::StreamingDecoder::new(whole).map_err(io::Error::other)?)
        }
        ([b'B', b'Z', b'h', ..], Family::Archive) => Box::new(bzip2::read::BzDecoder::new(whole)),
        ([0xfd, b'7', b'z', b'X', b'Z', 0], Family::Archive) => Box::new(liblzma::read::XzDecoder::new(whole)),
        _ => Box::new(whole),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn gzip_is_read_to_its_last_member_and_plain_bytes_pass_through() {
        let member = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, text).unwrap();
            e.finish().unwrap()
        };
        let two = [member(b"hello, "), member(b"world")].concat();
        assert_eq!(read_all(decompress(&two[..], Family::Layer).unwrap()), b"hello, world");
        assert_eq!(read_all(decompress(&b"plain"[..], Family::Layer).unwrap()), b"plain");
        assert_eq!(read_all(decompress(&b"ab"[..], Family::Archive).unwrap()), b"ab");
    }

    #[test]
    fn bzip2_is_an_archive_compression_and_not_a_layer_one() {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut e, b"inside").unwrap();
        let bz = e.finish().unwrap();
        assert_eq!(read_all(decompress(&bz[..], Family::Archive).unwrap()), b"inside");
        assert_eq!(read_all(decompress(&bz[..], Family::Layer).unwrap()), bz);
    }
}
