//! The IDX format (LeCun's MNIST files): a big-endian header
//! `[0, 0, type=0x08 (u8), ndim]`, then `ndim` big-endian u32 sizes, then the
//! data, row-major. Files may be gzipped; the gzip magic `1f 8b` decides.

use super::DataError;
use crate::memory;
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Magic of an IDX file of u8 images: type 0x08, 3 dimensions (n, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of u8 labels: type 0x08, 1 dimension (n).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// An IDX array of u8 with its dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads and parses one IDX file (gzipped or raw): the header first, then
/// at most the data it promises and one byte more, so that a small gzip
/// holding gigabytes of zeros (or a huge sparse file) costs no more memory
/// than its header admits to. A gzip stream is recognised by its magic
/// `1f 8b`.
pub fn read(path: &Path, expected_magic: u32) -> Result<IdxArray, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let raw_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::new(file);
    let gzipped = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    if gzipped {
        read_from(path, GzDecoder::new(reader), expected_magic, None)
    } else if path.extension().is_some_and(|e| e == "gz") {
        Err(DataError::BadGzip {
            path: path.to_owned(),
            reason: "the file is named .gz but does not start with the gzip magic 1f 8b".into(),
        })
    } else {
        read_from(path, reader, expected_magic, Some(raw_len))
    }
}

/// Reads up to `want` bytes (fewer only at the end of the stream).
fn read_up_to(path: &Path, reader: &mut impl Read, want: usize) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    reader
        .take(want as u64)
        .read_to_end(&mut out)
        .map_err(|e| stream_error(path, e))?;
    Ok(out)
}

/// A read error of a file or of the gzip stream inside it.
fn stream_error(path: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => DataError::BadGzip {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => DataError::Io {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Parses an IDX stream, checking the magic number against
/// `expected_magic` before reading further, then that the data has the
/// length the header promises. `raw_len`, the file's size when it is not
/// compressed, lets a short or long file be told without reading it. Never
/// reads more than the header and the promised data plus one byte, and
/// refuses a promise larger than the host's available memory.
pub fn read_from(
    path: &Path,
    mut reader: impl Read,
    expected_magic: u32,
    raw_len: Option<u64>,
) -> Result<IdxArray, DataError> {
    let head = read_up_to(path, &mut reader, 4)?;
    let ndim = check_magic(path, &head, expected_magic)?;
    let header_len = 4 + 4 * ndim;
    let dims_bytes = read_up_to(path, &mut reader, 4 * ndim)?;
    if dims_bytes.len() < 4 * ndim {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected: header_len,
            found: 4 + dims_bytes.len(),
        });
    }
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::Invalid {
            path: path.to_owned(),
            reason: format!("dimensions {} overflow", join_dims(&dims)),
        })?;
    if let Some(len) = raw_len {
        let found = len.saturating_sub(header_len as u64);
        if found != expected as u64 {
            return Err(length_error(path, expected, found));
        }
    }
    memory::check_host(
        &[memory::Need::new(
            format!(
                "{}: a {} array, as its header promises,",
                path.display(),
                join_dims(&dims)
            ),
            Some(expected as u64),
        )],
        "",
    )
    .map_err(|e| DataError::Invalid {
        path: path.to_owned(),
        reason: e
            .to_string()
            .replacen(&format!("{}: ", path.display()), "", 1),
    })?;
    let data = read_up_to(path, &mut reader, expected.saturating_add(1))?;
    if data.len() != expected {
        return Err(length_error(path, expected, data.len() as u64));
    }
    Ok(IdxArray { dims, data })
}

/// The magic's check; the number of dimensions it gives.
fn check_magic(path: &Path, head: &[u8], expected_magic: u32) -> Result<usize, DataError> {
    let what = match expected_magic {
        IMAGES_MAGIC => "u8 images: n × rows × cols",
        LABELS_MAGIC => "u8 labels: n",
        _ => "u8 array",
    };
    let Ok(magic) = <[u8; 4]>::try_from(head) else {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected: 4,
            found: head.len(),
        });
    };
    let magic = u32::from_be_bytes(magic);
    if magic != expected_magic {
        return Err(DataError::BadMagic {
            path: path.to_owned(),
            found: magic,
            expected: expected_magic,
            what,
        });
    }
    Ok((magic & 0xff) as usize)
}

/// "60000×28×28".
fn join_dims(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
    parts.join("×")
}

/// Data shorter than promised (truncated), or longer: `found` counts the
/// data after the header (for a stream, one byte past the promise means
/// "more").
fn length_error(path: &Path, expected: usize, found: u64) -> DataError {
    if found < expected as u64 {
        DataError::Truncated {
            path: path.to_owned(),
            expected,
            found: found as usize,
        }
    } else {
        DataError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "more data than the header promises: it promises {expected} bytes after the header, and the file holds {}",
                if found == expected as u64 + 1 {
                    "more (reading stopped there)".to_string()
                } else {
                    format!("{found}")
                }
            ),
        }
    }
}

/// Parses IDX bytes already in memory (see [`read_from`]).
pub fn parse(path: &Path, bytes: &[u8], expected_magic: u32) -> Result<IdxArray, DataError> {
    read_from(path, bytes, expected_magic, Some(bytes.len() as u64))
}

/// Encodes an array as IDX bytes (used by tests and tools that write subsets).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_headers() {
        let p = Path::new("x.idx");
        let bytes = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let arr = parse(p, &bytes, IMAGES_MAGIC).unwrap();
        assert_eq!(arr.dims, vec![2, 2, 3]);
        assert_eq!(arr.data[11], 12);

        let err = parse(p, &bytes, LABELS_MAGIC).unwrap_err();
        assert!(err
            .to_string()
            .contains("wrong IDX magic number 0x00000803"));

        let err = parse(p, &bytes[..bytes.len() - 1], IMAGES_MAGIC).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");

        let err = parse(p, &bytes[..6], IMAGES_MAGIC).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
