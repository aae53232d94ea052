//! Checkpoints: a trained model's tensors and a few strings about it, kept
//! in one [safetensors](https://github.com/huggingface/safetensors) file.
//!
//! ```text
//! file = u64 LE header length n │ n bytes of JSON header │ tensor data
//! header = { "__metadata__": { "gpunet.format": "1", <your keys>… },
//!            "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, … }
//! tensor data = each tensor's values, little-endian, row-major, one after
//!               another in the order they were given to `save`: f32s, or
//!               i64s for a tensor marked `I64` (counters such as batch
//!               norm's `num_batches_tracked`, which PyTorch keeps as int64)
//! ```
//!
//! Any safetensors reader (PyTorch's `safetensors.torch.load_file`, numpy's
//! `safetensors.numpy`) opens the files `save` writes; `load` opens only
//! files that `save` wrote (it wants [`FORMAT_KEY`] in the metadata and F32
//! or I64 tensors), and says what is wrong with any other file, naming it.
//!
//! Public API:
//! - [`NamedTensor`] `{ name, shape, data: Vec<f32>, dtype }`, e.g.
//!   `layers.0.weight` with shape `[out, in]` (the names and layouts of
//!   `graph.rs`); `dtype` is how the file stores it ([`Stored`]).
//! - [`Checkpoint`] `{ tensors, metadata: BTreeMap<String, String> }` and
//!   [`Checkpoint::tensor`] to find a tensor by name.
//! - [`save`]`(path, &ckpt)`: written atomically (see [`write_atomically`]),
//!   so an interrupted run leaves the old file or the new one, never half of
//!   one; always sets `gpunet.format = "1"` (overriding any value given).
//! - [`load`]`(path)`: the tensors in file order (the order given to `save`),
//!   bit for bit; the metadata including `gpunet.format`.
//! - [`write_atomically`]`(path, bytes)`: the temp-file-and-rename write that
//!   `save` uses, for other outputs (plots) that must never be half-written;
//!   a device or pipe (`/dev/null`) is written in place, never replaced.

use anyhow::{anyhow, bail, Context};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metadata key that marks a file as a gpunet checkpoint; its value is
/// the format version, [`FORMAT_VERSION`].
pub const FORMAT_KEY: &str = "gpunet.format";

/// The checkpoint format this build writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// The safetensors header length field: a little-endian u64.
const HEADER_LEN_BYTES: usize = 8;

/// How a tensor's values are stored in the file; in memory they are f32s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stored {
    #[default]
    F32,
    /// Whole numbers as little-endian i64s (PyTorch's dtype for counters);
    /// exact for the whole numbers an f32 holds exactly (up to 2^24).
    I64,
}

/// One tensor: `data` holds `shape.iter().product()` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub dtype: Stored,
}

impl NamedTensor {
    /// Number of values the shape calls for (1 for a scalar, shape `[]`).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A model's tensors, in order, and string metadata about it (layers,
/// activation, epochs trained, …: whatever the caller wants to keep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: Vec<NamedTensor>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// The tensor called `name`, if there is one.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes `ckpt` to `path` as a safetensors file, atomically.
///
/// Fails, writing nothing, when two tensors share a name or a tensor's data
/// does not hold as many values as its shape calls for.
pub fn save(path: &Path, ckpt: &Checkpoint) -> anyhow::Result<()> {
    let bytes =
        encode(ckpt).with_context(|| format!("cannot save checkpoint {}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Reads the checkpoint at `path`. Every error names the file and says what
/// is wrong with it.
pub fn load(path: &Path) -> anyhow::Result<Checkpoint> {
    let bytes =
        fs::read(path).map_err(|e| anyhow!("cannot read checkpoint {}: {e}", path.display()))?;
    decode(&bytes, true).map_err(|e| anyhow!("{} {e}", path.display()))
}

/// Reads any safetensors file of F32 (and I64) tensors, with gpunet's
/// metadata or without (a weights-only file as PyTorch's
/// `safetensors.torch.save_file` writes one); a gpunet format other than
/// [`FORMAT_VERSION`] is still refused.
pub fn load_any(path: &Path) -> anyhow::Result<Checkpoint> {
    let bytes =
        fs::read(path).map_err(|e| anyhow!("cannot read checkpoint {}: {e}", path.display()))?;
    decode(&bytes, false).map_err(|e| anyhow!("{} {e}", path.display()))
}

/// The whole file `save` writes, in memory (checkpoints of the networks
/// gpunet trains are a few MB).
fn encode(ckpt: &Checkpoint) -> anyhow::Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut infos = Vec::with_capacity(ckpt.tensors.len());
    let mut offset = 0usize;
    for tensor in &ckpt.tensors {
        if !seen.insert(tensor.name.as_str()) {
            bail!("two tensors are named `{}`", tensor.name);
        }
        if tensor.data.len() != tensor.numel() {
            bail!(
                "tensor `{}` has shape {:?} ({} values) but holds {} values",
                tensor.name,
                tensor.shape,
                tensor.numel(),
                tensor.data.len()
            );
        }
        let (dtype, bytes) = match tensor.dtype {
            Stored::F32 => (Dtype::F32, 4),
            Stored::I64 => (Dtype::I64, 8),
        };
        if tensor.dtype == Stored::I64 {
            if let Some(v) = tensor.data.iter().find(|v| v.fract() != 0.0) {
                bail!(
                    "tensor `{}` is stored as I64 but holds {v}, not a whole number",
                    tensor.name
                );
            }
        }
        let end = offset + bytes * tensor.data.len();
        infos.push((
            tensor.name.clone(),
            TensorInfo {
                dtype,
                shape: tensor.shape.clone(),
                data_offsets: (offset, end),
            },
        ));
        offset = end;
    }

    let mut metadata: HashMap<String, String> = ckpt.metadata.clone().into_iter().collect();
    metadata.insert(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string());
    // The crate's own header type, so the header is exactly what its reader
    // expects; it lists the tensors in offset order, i.e. the given order.
    let header =
        Metadata::new(Some(metadata), infos).map_err(|e| anyhow!("bad tensor layout: {e}"))?;
    let mut header_json = serde_json::to_vec(&header)?;
    // Pad with spaces so the tensor data starts 8-byte aligned, as the
    // safetensors crate itself does.
    header_json.resize(header_json.len().next_multiple_of(HEADER_LEN_BYTES), b' ');

    let mut bytes = Vec::with_capacity(HEADER_LEN_BYTES + header_json.len() + offset);
    bytes.extend_from_slice(&(header_json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header_json);
    for tensor in &ckpt.tensors {
        for &value in &tensor.data {
            match tensor.dtype {
                Stored::F32 => bytes.extend_from_slice(&value.to_le_bytes()),
                Stored::I64 => bytes.extend_from_slice(&(value as i64).to_le_bytes()),
            }
        }
    }
    Ok(bytes)
}

/// Parses a whole file. Errors do not name it: each reads on from the
/// file's name ("… is not a gpunet checkpoint"), which the caller puts first.
fn decode(bytes: &[u8], require_format: bool) -> anyhow::Result<Checkpoint> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{}", describe_header_error(bytes, e)))?;
    // read_metadata succeeded inside deserialize, so it succeeds again; it
    // gives the header, whose offset order is the order tensors were saved in.
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("is a corrupt safetensors file: {e}"))?;

    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    match metadata.get(FORMAT_KEY) {
        None if require_format => {
            bail!("is not a gpunet checkpoint (no {FORMAT_KEY} in its metadata)")
        }
        None => {}
        Some(version) if version != FORMAT_VERSION => bail!(
            "is a gpunet checkpoint of format {version:?}, but this build of gpunet reads only format {FORMAT_VERSION:?}"
        ),
        Some(_) => {}
    }

    let mut tensors = Vec::with_capacity(file.len());
    for name in header.offset_keys() {
        let view = file
            .tensor(&name)
            .map_err(|e| anyhow!("is a corrupt safetensors file: {e}"))?;
        let (data, dtype) = match view.dtype() {
            Dtype::F32 => (
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
                Stored::F32,
            ),
            Dtype::I64 => (
                view.data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                Stored::I64,
            ),
            other => bail!(
                "holds tensor `{name}` as {other:?}, but gpunet reads only F32 tensors (and I64 counters); \
                 in PyTorch, save the model after `model.float()`"
            ),
        };
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            data,
            dtype,
        });
    }
    Ok(Checkpoint { tensors, metadata })
}

/// Says in words why the safetensors crate refused `bytes`.
fn describe_header_error(bytes: &[u8], error: SafeTensorError) -> String {
    let declared_header_len = bytes
        .get(..HEADER_LEN_BYTES)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match error {
        SafeTensorError::HeaderTooSmall => format!(
            "is not a safetensors file: {} bytes long, too short to hold even the 8-byte header length",
            bytes.len()
        ),
        SafeTensorError::HeaderTooLarge => format!(
            "is not a safetensors file: its first 8 bytes give a header length of {} bytes, over the 100 MB a safetensors header may have",
            declared_header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "is not a safetensors file, or is truncated: its first 8 bytes give a {}-byte header but the file holds only {} bytes",
            declared_header_len.unwrap_or(0),
            bytes.len()
        ),
        SafeTensorError::InvalidHeader(e) => {
            format!("is not a safetensors file: the header is not UTF-8 text ({e})")
        }
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("is not a safetensors file: the header is not a valid safetensors JSON header ({e})")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            let header_len = declared_header_len.unwrap_or(0) as usize;
            let data_held = bytes.len().saturating_sub(HEADER_LEN_BYTES + header_len);
            let data_declared = std::str::from_utf8(&bytes[HEADER_LEN_BYTES..HEADER_LEN_BYTES + header_len])
                .ok()
                .and_then(|h| serde_json::from_str::<Metadata>(h).ok())
                .map(|m| m.data_len());
            match data_declared {
                Some(declared) if data_held < declared => format!(
                    "is truncated: the header describes {declared} bytes of tensor data but the file holds {data_held}"
                ),
                Some(declared) => format!(
                    "is corrupt: the header describes {declared} bytes of tensor data but the file holds {data_held} (extra bytes at the end)"
                ),
                None => format!("is a corrupt safetensors file: {error}"),
            }
        }
        other => format!("is a corrupt safetensors file: {other}"),
    }
}

/// Writes `bytes` to `path` so that `path` holds either its old contents or
/// all of `bytes`, never part of them, even if the process dies midway: the
/// bytes go to `.<file name>.tmp-<pid>` in the same directory, are synced to
/// disk, and the temporary file is renamed over `path` (and the directory
/// synced, on Unix). On any error the temporary file is removed; stale ones
/// that killed runs left beside `path` are removed first (see
/// [`remove_stale_temps`]).
///
/// Only a regular file (or a new name) is replaced this way. A symbolic
/// link is followed, so the link stays and its target gets the new bytes. A
/// character device or a pipe (`/dev/null`, `/dev/stdout`) is written in
/// place, never renamed over; a directory, block device or socket is refused.
/// Every write error names `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            bail!("cannot write {}: it is a directory", path.display())
        }
        Ok(meta) if !meta.is_file() => {
            if let Some(kind) = unwritable_kind(&meta) {
                bail!(
                    "cannot write {}: it is {kind}, not a regular file",
                    path.display()
                );
            }
            return write_in_place(path, bytes);
        }
        _ => {}
    }
    let target = resolve_link(path);
    remove_stale_temps(&target);
    let temp_path = temp_path_for(&target)?;
    let write_temp = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write_temp() {
        let _ = fs::remove_file(&temp_path);
        bail!(
            "cannot write {} (via {}): {e}",
            path.display(),
            temp_path.display()
        );
    }
    if let Err(e) = fs::rename(&temp_path, &target) {
        let _ = fs::remove_file(&temp_path);
        bail!(
            "cannot write {} (renaming {} over it): {e}",
            path.display(),
            temp_path.display()
        );
    }
    // Make the rename itself durable. Directories cannot be opened this way
    // on every platform, and the file is already complete, so this is best effort.
    #[cfg(unix)]
    if let Some(Ok(dir)) = temp_path.parent().map(File::open) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` into an existing device or pipe, as `cat > path` would.
fn write_in_place(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(bytes)?;
        file.flush()
    };
    write().map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// What a non-regular file is when gpunet must not write to it: a block
/// device (a disk) or a socket. None for character devices and pipes, which
/// are written in place.
pub(crate) fn unwritable_kind(meta: &fs::Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_block_device() {
            return Some("a block device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    None
}

/// The file a write to `path` should replace: the target of a symbolic link
/// that points at an existing file, else `path` itself.
pub(crate) fn resolve_link(path: &Path) -> PathBuf {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match is_link {
        true => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        false => path.to_path_buf(),
    }
}

/// `dir/.name.tmp-<pid>` for `dir/name` (`./.name.tmp-<pid>` for a bare name).
pub(crate) fn temp_path_for(path: &Path) -> anyhow::Result<PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("cannot write {}: not a file name", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    Ok(directory_of(path).join(temp_name))
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// How long a temporary file must have been left alone before it counts as
/// stale, even when its process is gone: a margin for a process that runs
/// in another PID namespace on a shared directory.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files `.<name>.tmp-<pid>` beside `path` (`name`
/// its file name) that a killed gpunet left: regular files of exactly that
/// name whose process no longer runs and that have not changed for a minute.
/// Only where a process can be looked up (Linux's `/proc`); elsewhere they
/// stay. Best effort: nothing here is an error.
pub fn remove_stale_temps(path: &Path) {
    let (Some(name), Ok(entries)) = (
        path.file_name().and_then(|n| n.to_str()),
        fs::read_dir(directory_of(path)),
    ) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let Some(pid) = entry_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            .then(|| pid.parse::<u32>().ok())
            .flatten()
        else {
            continue;
        };
        let stale = entry.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= STALE_AFTER)
        });
        if stale && pid != std::process::id() && process_is_gone(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// True only when `pid` certainly names no running process.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    cfg!(target_os = "linux") && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        // Deliberately not in name order, with values whose bits are easy to lose.
        let specials = vec![
            f32::from_bits(0x7fc0_0001), // quiet NaN with a payload
            f32::from_bits(0xffa0_0000), // signalling-pattern NaN, sign set
            -0.0,
            0.0,
            f32::from_bits(1),           // smallest subnormal
            f32::from_bits(0x807f_ffff), // largest negative subnormal
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN_POSITIVE,
            1.0 / 3.0,
            -123.456,
        ];
        let weight: Vec<f32> = (0..3 * 4).map(|i| (i as f32 - 5.5) * 0.125).collect();
        Checkpoint {
            tensors: vec![
                NamedTensor {
                    name: "layers.2.weight".into(),
                    shape: vec![3, 4],
                    data: weight,
                    dtype: Stored::F32,
                },
                NamedTensor {
                    name: "layers.10.bias".into(),
                    shape: vec![12],
                    data: specials,
                    dtype: Stored::F32,
                },
                NamedTensor {
                    name: "scalar".into(),
                    shape: vec![],
                    data: vec![7.5],
                    dtype: Stored::F32,
                },
                NamedTensor {
                    name: "empty".into(),
                    shape: vec![0, 5],
                    data: vec![],
                    dtype: Stored::F32,
                },
                NamedTensor {
                    name: "layers.1.num_batches_tracked".into(),
                    shape: vec![],
                    data: vec![16_777_216.0],
                    dtype: Stored::I64,
                },
            ],
            metadata: BTreeMap::from([
                ("layers".to_string(), "784,128,10".to_string()),
                ("activation".to_string(), "relu".to_string()),
                (
                    "note".to_string(),
                    "ünïcode \"quoted\" \n newline".to_string(),
                ),
            ]),
        }
    }

    fn bits(t: &NamedTensor) -> Vec<u32> {
        t.data.iter().map(|v| v.to_bits()).collect()
    }

    fn error_text(result: anyhow::Result<Checkpoint>) -> String {
        format!("{:#}", result.expect_err("expected an error"))
    }

    #[test]
    fn round_trip_is_bit_exact_and_keeps_order_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let ckpt = sample();
        save(&path, &ckpt).unwrap();
        let loaded = load(&path).unwrap();

        let names: Vec<&str> = loaded.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.2.weight",
                "layers.10.bias",
                "scalar",
                "empty",
                "layers.1.num_batches_tracked"
            ]
        );
        for (saved, read) in ckpt.tensors.iter().zip(&loaded.tensors) {
            assert_eq!(saved.shape, read.shape, "{}", saved.name);
            assert_eq!(saved.dtype, read.dtype, "{}", saved.name);
            assert_eq!(bits(saved), bits(read), "{}", saved.name);
        }
        let mut expected_metadata = ckpt.metadata.clone();
        expected_metadata.insert(FORMAT_KEY.into(), FORMAT_VERSION.into());
        assert_eq!(loaded.metadata, expected_metadata);
        assert_eq!(
            bits(loaded.tensor("layers.10.bias").unwrap()),
            bits(&ckpt.tensors[1])
        );
        assert!(loaded.tensor("nope").is_none());
    }

    #[test]
    fn saved_file_is_plain_safetensors() {
        // What another reader sees: the safetensors crate on its own.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save(&path, &sample()).unwrap();
        let bytes = fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0, "tensor data must start 8-byte aligned");
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let view = file.tensor("layers.2.weight").unwrap();
        assert_eq!(view.dtype(), Dtype::F32);
        assert_eq!(view.shape(), [3, 4]);
        assert_eq!(&view.data()[..4], (-5.5f32 * 0.125).to_le_bytes());
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap()[FORMAT_KEY], "1");
        // A counter is an int64 scalar, as PyTorch keeps num_batches_tracked.
        let view = file.tensor("layers.1.num_batches_tracked").unwrap();
        assert_eq!(view.dtype(), Dtype::I64);
        assert_eq!(view.shape(), [0usize; 0]);
        assert_eq!(view.data(), (1i64 << 24).to_le_bytes());
    }

    #[test]
    fn an_int64_tensor_must_hold_whole_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut ckpt = sample();
        ckpt.tensors[4].data = vec![2.5];
        let err = format!("{:#}", save(&path, &ckpt).unwrap_err());
        assert!(
            err.contains("`layers.1.num_batches_tracked` is stored as I64 but holds 2.5"),
            "{err}"
        );
    }

    #[test]
    fn save_replaces_old_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        fs::write(&path, b"old contents").unwrap();
        let mut ckpt = sample();
        save(&path, &ckpt).unwrap();
        ckpt.tensors.truncate(1);
        save(&path, &ckpt).unwrap();
        assert_eq!(load(&path).unwrap().tensors.len(), 1);
        let entries: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, ["model.safetensors"]);
    }

    #[test]
    fn temp_file_sits_beside_the_target() {
        let pid = std::process::id();
        assert_eq!(
            temp_path_for(Path::new("m.safetensors")).unwrap(),
            PathBuf::from(format!("./.m.safetensors.tmp-{pid}"))
        );
        assert_eq!(
            temp_path_for(Path::new("runs/a/m.safetensors")).unwrap(),
            PathBuf::from(format!("runs/a/.m.safetensors.tmp-{pid}"))
        );
        assert!(temp_path_for(Path::new("/")).is_err());
    }

    #[test]
    fn failed_save_names_the_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("model.safetensors");
        let err = format!("{:#}", save(&path, &sample()).unwrap_err());
        assert!(err.contains("model.safetensors"), "{err}");

        let path = dir.path().join("model.safetensors");
        let mut bad = sample();
        bad.tensors[0].data.pop();
        let err = format!("{:#}", save(&path, &bad).unwrap_err());
        assert!(
            err.contains("model.safetensors") && err.contains("layers.2.weight"),
            "{err}"
        );
        let mut dup = sample();
        dup.tensors[1].name = "layers.2.weight".into();
        let err = format!("{:#}", save(&path, &dup).unwrap_err());
        assert!(
            err.contains("two tensors are named `layers.2.weight`"),
            "{err}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_in_place_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        if !null.exists() {
            return;
        }
        save(null, &sample()).unwrap();
        assert!(fs::metadata(null).unwrap().file_type().is_char_device());
        let full = Path::new("/dev/full");
        if full.exists() {
            let err = format!("{:#}", save(full, &sample()).unwrap_err());
            assert!(err.contains("cannot write /dev/full"), "{err}");
            assert!(fs::metadata(full).unwrap().file_type().is_char_device());
        }
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", save(dir.path(), &sample()).unwrap_err());
        assert!(err.contains("is a directory"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_keeps_pointing_at_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.safetensors");
        let link = dir.path().join("link.safetensors");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        save(&link, &sample()).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(load(&real).unwrap().tensors.len(), sample().tensors.len());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stale_temp_files_of_dead_runs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let old = std::time::SystemTime::now() - 2 * STALE_AFTER;
        let make = |name: String, modified: std::time::SystemTime| {
            let p = dir.path().join(name);
            File::create(&p).unwrap().set_modified(modified).unwrap();
            p
        };
        let stale = make(format!(".m.safetensors.tmp-{dead}"), old);
        // Kept: a fresh file of a dead run (it may be another machine's),
        // a live process's file (pid 1), names that are not ours.
        let fresh = make(
            format!(".n.safetensors.tmp-{dead}"),
            std::time::SystemTime::now(),
        );
        let kept = [
            make(".m.safetensors.tmp-1".into(), old),
            make(format!(".other.tmp-{dead}"), old),
            make(format!(".m.safetensors.tmp-{dead}x"), old),
            make(format!("m.safetensors.tmp-{dead}"), old),
        ];
        save(&dir.path().join("m.safetensors"), &sample()).unwrap();
        save(&dir.path().join("n.safetensors"), &sample()).unwrap();
        assert!(!stale.exists());
        for path in kept.iter().chain([&fresh]) {
            assert!(path.exists(), "{}", path.display());
        }
    }

    #[test]
    fn format_key_is_always_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut ckpt = sample();
        ckpt.metadata.insert(FORMAT_KEY.into(), "999".into());
        save(&path, &ckpt).unwrap();
        assert_eq!(load(&path).unwrap().metadata[FORMAT_KEY], FORMAT_VERSION);
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.safetensors");
        let err = error_text(load(&path));
        assert!(
            err.contains("absent.safetensors") && err.contains("cannot read checkpoint"),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_short_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            (
                "text.safetensors",
                b"hello, this is not a checkpoint at all",
                "not a safetensors file",
            ),
            ("tiny.safetensors", b"abc", "too short"),
            ("empty.safetensors", b"", "too short"),
            // A plausible length, then not JSON.
            (
                "json.safetensors",
                b"\x08\x00\x00\x00\x00\x00\x00\x00{{{{{{{{",
                "not a valid safetensors JSON header",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            let err = error_text(load(&path));
            assert!(
                err.contains(name) && err.contains(expected),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn truncated_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save(&path, &sample()).unwrap();
        let bytes = fs::read(&path).unwrap();

        let cut = dir.path().join("cut-data.safetensors");
        fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let err = error_text(load(&cut));
        assert!(
            err.contains("cut-data.safetensors") && err.contains("truncated"),
            "{err}"
        );

        let cut = dir.path().join("cut-header.safetensors");
        fs::write(&cut, &bytes[..40]).unwrap();
        let err = error_text(load(&cut));
        assert!(
            err.contains("cut-header.safetensors") && err.contains("truncated"),
            "{err}"
        );

        let long = dir.path().join("long.safetensors");
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0; 4]);
        fs::write(&long, &extra).unwrap();
        let err = error_text(load(&long));
        assert!(
            err.contains("long.safetensors") && err.contains("extra bytes"),
            "{err}"
        );
    }

    #[test]
    fn foreign_safetensors_file_is_not_a_gpunet_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.safetensors");
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        let err = error_text(load(&path));
        assert!(
            err.contains(
                "foreign.safetensors is not a gpunet checkpoint (no gpunet.format in its metadata)"
            ),
            "{err}"
        );
    }

    #[test]
    fn non_f32_tensor_and_unknown_format_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = [0u8; 4 * 8];
        let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![4], &data).unwrap();

        let path = dir.path().join("f64.safetensors");
        let meta = HashMap::from([(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string())]);
        safetensors::serialize_to_file([("w", view.clone())], Some(meta), &path).unwrap();
        let err = error_text(load(&path));
        assert!(
            err.contains("f64.safetensors holds tensor `w` as F64"),
            "{err}"
        );

        let path = dir.path().join("future.safetensors");
        let meta = HashMap::from([(FORMAT_KEY.to_string(), "2".to_string())]);
        safetensors::serialize_to_file([("w", view)], Some(meta), &path).unwrap();
        let err = error_text(load(&path));
        assert!(
            err.contains("future.safetensors") && err.contains("format \"2\""),
            "{err}"
        );
    }
}
