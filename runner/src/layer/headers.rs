//! A check in front of the `tar` crate: the records it reads whole into memory (GNU long
//! names and long links, PAX extended headers) are refused above a bound before it reads them.
//!
//! Why hand-written: `tar` (0.4.46) reads such a record with `read_to_end`, whatever size its
//! header declares, and has no setting to bound it; a 1 GiB long name cost 10 GiB of memory
//! by the time kiln had turned it into a path. No maintained crate reads tar with such bounds
//! either. So this reader watches the stream the crate reads, finds every header where the
//! crate will find it, and fails the read that would hand the crate a header above its bound.
//!
//! It finds headers exactly where `tar` does because it decides with `tar`'s own header types
//! (sizes, entry types, GNU and ustar magic, sparse extension blocks) and follows the crate's
//! rules for what comes next: a header at each 512-byte block after the previous entry's data;
//! an all-zero block ends the archive; a PAX `size` record replaces the size of the entry it
//! describes; GNU sparse extension blocks sit between a sparse header and its data. Where the
//! crate would fail (a bad checksum, an unreadable size), this check stops looking and lets
//! the crate report it. It never holds more than one header block and one bounded PAX record.

use std::io::{self, Read};

use tar::{GnuExtSparseHeader, Header, PaxExtensions};

use crate::limits::{MAX_PAX_HEADER, MAX_TAR_LONG_NAME};

const BLOCK: usize = 512;

/// A header declares a record above its bound; returned (inside an `io::Error`) by the read
/// that reached that header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTooLarge {
    /// `a GNU long name`, `a GNU long link` or `a PAX extended header`.
    pub what: &'static str,
    /// The size its header declares.
    pub size: u64,
    /// The bound.
    pub limit: u64,
}

impl std::fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} bytes, more than the {} bytes kiln reads", self.what, self.size, self.limit)
    }
}

impl std::error::Error for RecordTooLarge {}

/// A reader that passes a tar stream through unchanged and fails on a record above its bound.
pub struct HeaderCheck<R> {
    inner: R,
    /// The header block being filled, and how much of it is.
    block: [u8; BLOCK],
    filled: usize,
    /// Bytes of entry data (and padding) to pass before the next block of interest.
    skip: u64,
    /// The PAX record being collected: its bytes so far, and how many are still to come.
    collecting: Option<(Vec<u8>, u64)>,
    /// The last PAX record, which describes the next entry.
    pax: Option<Vec<u8>>,
    /// After a GNU sparse header that is extended: the entry's data size, to skip once the
    /// extension blocks end.
    sparse_data: Option<u64>,
    /// The archive ended, or the crate will fail on what came: nothing more is checked.
    done: bool,
}

impl<R: Read> HeaderCheck<R> {
    /// Check the tar stream `inner`.
    pub fn new(inner: R) -> Self {
        HeaderCheck {
            inner,
            block: [0; BLOCK],
            filled: 0,
            skip: 0,
            collecting: None,
            pax: None,
            sparse_data: None,
            done: false,
        }
    }

    /// The stream, for reading what follows the archive.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follow `bytes`, the next ones of the stream.
    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), RecordTooLarge> {
        while !bytes.is_empty() && !self.done {
            if self.skip > 0 {
                let n = bytes.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                if let Some((record, left)) = &mut self.collecting {
                    let take = n.min(usize::try_from(*left).unwrap_or(usize::MAX));
                    record.extend_from_slice(&bytes[..take]);
                    *left -= take as u64;
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                if self.skip == 0 {
                    self.end_record();
                }
                continue;
            }
            let n = bytes.len().min(BLOCK - self.filled);
            self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == BLOCK {
                self.filled = 0;
                self.on_block()?;
            }
        }
        Ok(())
    }

    /// A PAX record's data and padding passed: it describes the next entry.
    fn end_record(&mut self) {
        if let Some((record, _)) = self.collecting.take() {
            self.pax = Some(record);
        }
    }

    /// A whole block arrived where a header (or a sparse extension block) is expected.
    fn on_block(&mut self) -> Result<(), RecordTooLarge> {
        if let Some(data) = self.sparse_data {
            let mut ext = GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&self.block);
            if !ext.is_extended() {
                self.sparse_data = None;
                self.skip = data;
            }
            return Ok(());
        }
        if self.block.iter().all(|&b| b == 0) {
            // The end of the archive: `tar` reads no further headers.
            self.done = true;
            return Ok(());
        }
        let header = Header::from_byte_slice(&self.block);
        let checksum_ok = header.cksum().is_ok_and(|cksum| {
            let sum: u32 =
                self.block[..148].iter().chain(&self.block[156..]).map(|&b| u32::from(b)).sum::<u32>() + 8 * 32;
            sum == cksum
        });
        let Ok(mut size) = header.entry_size() else {
            self.done = true;
            return Ok(());
        };
        if !checksum_ok {
            self.done = true;
            return Ok(());
        }
        let kind = header.entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if !extension && let Some(pax_size) = self.pax.as_deref().and_then(pax_size) {
            size = pax_size;
        }
        let Some(padded) = size.checked_next_multiple_of(BLOCK as u64) else {
            self.done = true;
            return Ok(());
        };
        // `tar` treats these records as such only in GNU or ustar headers; in others they
        // are ordinary entries.
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        if recognized && (kind.is_gnu_longname() || kind.is_gnu_longlink()) {
            if size > MAX_TAR_LONG_NAME {
                let what = if kind.is_gnu_longname() { "a GNU long name" } else { "a GNU long link" };
                return Err(RecordTooLarge { what, size, limit: MAX_TAR_LONG_NAME });
            }
            self.skip = padded;
            return Ok(());
        }
        if recognized && kind.is_pax_local_extensions() {
            if self.pax.is_some() {
                // Two PAX records for one entry: `tar` fails here.
                self.done = true;
                return Ok(());
            }
            if size > MAX_PAX_HEADER {
                return Err(RecordTooLarge { what: "a PAX extended header", size, limit: MAX_PAX_HEADER });
            }
            self.collecting = Some((Vec::with_capacity(size as usize), size));
            self.skip = padded;
            if padded == 0 {
                self.end_record();
            }
            return Ok(());
        }
        // An entry `tar` hands out: the PAX record it had is spent.
        self.pax = None;
        if kind.is_gnu_sparse() {
            match header.as_gnu() {
                Some(gnu) if gnu.is_extended() => {
                    self.sparse_data = Some(padded);
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    self.done = true;
                    return Ok(());
                }
            }
        }
        self.skip = padded;
        Ok(())
    }
}

/// The `size` record of PAX extensions, read as `tar` reads it: the first `size` key decides,
/// and a malformed record before it means none.
fn pax_size(record: &[u8]) -> Option<u64> {
    for extension in PaxExtensions::new(record) {
        let extension = extension.ok()?;
        if extension.key() != Ok("size") {
            continue;
        }
        return extension.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for HeaderCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.as_old_mut().name[..1].copy_from_slice(b"f");
        h.set_cksum();
        h
    }

    /// Read `bytes` through the check in small pieces; the error, if any.
    fn check(bytes: &[u8]) -> Option<RecordTooLarge> {
        let mut reader = HeaderCheck::new(bytes);
        let mut buf = [0u8; 97];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(e.into_inner().unwrap().downcast::<RecordTooLarge>().map(|b| *b).unwrap()),
            }
        }
    }

    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.resize(bytes.len().next_multiple_of(BLOCK), 0);
        bytes
    }

    #[test]
    fn records_above_their_bound_are_refused_at_their_header() {
        use tar::EntryType;
        let long = header(EntryType::GNULongName, MAX_TAR_LONG_NAME + 1);
        let err = check(long.as_bytes()).expect("refused");
        assert_eq!(err, RecordTooLarge { what: "a GNU long name", size: 4097, limit: 4096 });
        let link = header(EntryType::GNULongLink, 1 << 30);
        assert_eq!(check(link.as_bytes()).unwrap().what, "a GNU long link");
        let pax = header(EntryType::XHeader, MAX_PAX_HEADER + 1);
        assert_eq!(check(pax.as_bytes()).unwrap().what, "a PAX extended header");
        // At the bound, nothing is refused.
        let mut ok = header(EntryType::GNULongName, MAX_TAR_LONG_NAME).as_bytes().to_vec();
        ok.extend(vec![b'a'; MAX_TAR_LONG_NAME as usize]);
        ok.extend_from_slice(header(EntryType::Regular, 0).as_bytes());
        ok.extend([0; 1024]);
        assert_eq!(check(&ok), None);
    }

    #[test]
    fn headers_are_found_where_tar_finds_them() {
        use tar::EntryType;
        // A file whose data looks like a hostile header is data, not a header.
        let inner = header(EntryType::GNULongName, 1 << 30);
        let mut bytes = header(EntryType::Regular, BLOCK as u64).as_bytes().to_vec();
        bytes.extend_from_slice(inner.as_bytes());
        // A PAX size record makes the next entry's data one block long whatever its header
        // says: the hostile header after that block is found.
        let record = pax_record("size", "512");
        bytes.extend_from_slice(header(EntryType::XHeader, record.len() as u64).as_bytes());
        bytes.extend(padded(record));
        bytes.extend_from_slice(header(EntryType::Regular, 0).as_bytes());
        bytes.extend([b'x'; BLOCK]);
        assert_eq!(check(&bytes), None, "a PAX-sized entry's data is passed over");
        let mut hostile = bytes.clone();
        hostile.extend_from_slice(inner.as_bytes());
        assert_eq!(check(&hostile).unwrap().what, "a GNU long name");
        // After the end of the archive nothing is a header.
        let mut ended = bytes;
        ended.extend([0; BLOCK]);
        ended.extend_from_slice(inner.as_bytes());
        assert_eq!(check(&ended), None);
    }

    #[test]
    fn the_check_and_tar_agree_on_real_archives() {
        // Long names, long links, PAX records and sparse files, written by the tar crate:
        // the check passes them, and `tar` reads every entry.
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(300));
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        builder.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        builder.append_link(&mut h, "link", "t".repeat(200)).unwrap();
        let record = pax_record("SCHILY.xattr.user.attr", "value");
        builder.append(&header(tar::EntryType::XHeader, record.len() as u64), &record[..]).unwrap();
        let mut h = Header::new_ustar();
        h.set_size(5);
        h.set_mode(0o644);
        builder.append_data(&mut h, "pax", &b"hello"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        assert_eq!(check(&bytes), None);
        let mut archive = tar::Archive::new(HeaderCheck::new(&bytes[..]));
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, [long, "link".into(), "pax".into()]);
    }

    #[test]
    fn sparse_extension_blocks_come_before_the_data() {
        use tar::EntryType;
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o644);
        h.as_old_mut().name[..1].copy_from_slice(b"s");
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.isextended[0] = 1;
        gnu.set_real_size(4096);
        h.set_size(1024);
        h.set_cksum();
        let mut ext = GnuExtSparseHeader::new();
        ext.sparse[0].set_offset(3584);
        ext.sparse[0].set_length(512);
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(ext.as_bytes());
        // Data that looks like a header is passed over.
        bytes.extend_from_slice(header(EntryType::GNULongName, 1 << 30).as_bytes());
        bytes.extend([b'x'; BLOCK]);
        let mut archive = tar::Archive::new(HeaderCheck::new(&bytes[..]));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            assert_eq!(content.len(), 4096);
        }
        bytes.extend_from_slice(header(EntryType::GNULongName, 1 << 30).as_bytes());
        assert_eq!(check(&bytes).unwrap().what, "a GNU long name", "the header after the sparse data is found");
    }
}
