//! The IDX format (LeCun's MNIST files): a big-endian header
//! `[0, 0, type=0x08 (u8), ndim]`, then `ndim` big-endian u32 sizes, then the
//! data, row-major. Files may be gzipped; the gzip magic `1f 8b` decides.

use super::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
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

/// Reads the whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::BadGzip {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(out)
    } else if path.extension().is_some_and(|e| e == "gz") {
        Err(DataError::BadGzip {
            path: path.to_owned(),
            reason: "the file is named .gz but does not start with the gzip magic 1f 8b".into(),
        })
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes, checking the magic number against `expected_magic`
/// and the data length against the header.
pub fn parse(path: &Path, bytes: &[u8], expected_magic: u32) -> Result<IdxArray, DataError> {
    let what = match expected_magic {
        IMAGES_MAGIC => "u8 images: n × rows × cols",
        LABELS_MAGIC => "u8 labels: n",
        _ => "u8 array",
    };
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected: 4,
            found: bytes.len(),
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(DataError::BadMagic {
            path: path.to_owned(),
            found: magic,
            expected: expected_magic,
            what,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::Invalid {
            path: path.to_owned(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let found = bytes.len() - header_len;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "{} bytes of trailing data after the {expected} the header promises",
                found - expected
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}

/// Reads and parses one IDX file (gzipped or raw).
pub fn read(path: &Path, expected_magic: u32) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gzipped(path)?;
    parse(path, &bytes, expected_magic)
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
