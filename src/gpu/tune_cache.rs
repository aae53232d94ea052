//! The tuning cache: what the tuner measured on an adapter (the fastest
//! kernel version per shape) and what its self-test found, so that only
//! the first run on a device pays for them. One JSON file per adapter in
//! the user's cache directory (`GPUNET_CACHE` overrides it), keyed by the
//! adapter, its driver's version and gpunet's version: an entry written
//! under another key is stale, a file that does not parse is corrupt, and
//! either is ignored and rewritten, never trusted. Files are written
//! atomically (`checkpoint::write_atomically`).

use super::{GpuContext, Refused};
use crate::selftest::Level;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the cache lives instead of the user's cache directory; an empty
/// value turns the cache off (nothing read, nothing written).
pub const CACHE_ENV: &str = "GPUNET_CACHE";

/// What makes a cached measurement valid: the same device, driver and
/// gpunet (whose kernels may change between versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub adapter: String,
    pub backend: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub driver_info: String,
    pub gpunet: String,
    /// A hash of every WGSL file built in: a development build whose
    /// kernels changed under the same version number does not trust what
    /// was measured or checked with the old ones.
    #[serde(default)]
    pub kernels: String,
}

/// Every shader file the binary carries.
const SHADER_SOURCES: &[&str] = &[
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/activation.wgsl"),
    include_str!("../../shaders/add.wgsl"),
    include_str!("../../shaders/bn.wgsl"),
    include_str!("../../shaders/conv2d.wgsl"),
    include_str!("../../shaders/dense.wgsl"),
    include_str!("../../shaders/dropout.wgsl"),
    include_str!("../../shaders/gap.wgsl"),
    include_str!("../../shaders/gather.wgsl"),
    include_str!("../../shaders/matmul.wgsl"),
    include_str!("../../shaders/optim.wgsl"),
    include_str!("../../shaders/pool.wgsl"),
    include_str!("../../shaders/softmax_xent.wgsl"),
    include_str!("../../shaders/software/conv2d_subgroup.wgsl"),
    include_str!("../../shaders/software/matmul_registers.wgsl"),
    include_str!("../../shaders/software/matmul_subgroup.wgsl"),
];

/// FNV-1a over the shader sources, as 16 hex digits.
fn kernels_hash() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for source in SHADER_SOURCES {
        for &byte in source.as_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

impl CacheKey {
    pub fn of(ctx: &GpuContext) -> CacheKey {
        let info = &ctx.info;
        CacheKey {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            gpunet: env!("CARGO_PKG_VERSION").to_string(),
            kernels: kernels_hash(),
        }
    }

    /// The file name: the adapter's name and API, letters and digits only.
    fn file_name(&self) -> String {
        let name: String = format!("{}-{}-{:x}", self.adapter, self.backend, self.device)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!("tuning-{name}.json")
    }
}

/// What the quick self-test found on this adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelftestRecord {
    pub level: Level,
    /// Versions that failed: never chosen on this adapter.
    pub refused: Refused,
    /// Kernels without another version that failed (training refuses to run).
    pub failed_without_fallback: Vec<String>,
    pub seconds: f64,
}

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheFile {
    pub key: CacheKey,
    pub selftest: Option<SelftestRecord>,
    /// Shape (`matmul NT 128x128x784`) → the version measured fastest.
    pub choices: BTreeMap<String, String>,
}

/// What became of the file when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// No cache (turned off, or no cache directory on this system).
    Off,
    /// No file yet for this adapter.
    New,
    /// A valid file.
    Loaded,
    /// A file that did not parse, or was written for another key: ignored,
    /// and replaced when the cache is saved. Says why.
    Replaced(String),
}

/// The cache as a run holds it.
#[derive(Debug)]
pub struct TuneCache {
    path: Option<PathBuf>,
    pub file: CacheFile,
    pub opened: Opened,
    dirty: bool,
}

/// The directory the cache files go in: `GPUNET_CACHE`, else the user's
/// cache directory's `gpunet/`; None when turned off or unknown.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => dirs::cache_dir().map(|d| d.join("gpunet")),
    }
}

impl TuneCache {
    /// A cache that lives only as long as the run (tests, benches).
    pub fn in_memory(ctx: &GpuContext) -> TuneCache {
        TuneCache::empty(CacheKey::of(ctx))
    }

    fn empty(key: CacheKey) -> TuneCache {
        TuneCache {
            path: None,
            file: CacheFile {
                key,
                selftest: None,
                choices: BTreeMap::new(),
            },
            opened: Opened::Off,
            dirty: false,
        }
    }

    /// The adapter's cache file in `cache_dir()`, if there is one.
    pub fn open(ctx: &GpuContext) -> TuneCache {
        TuneCache::open_at(cache_dir(), CacheKey::of(ctx))
    }

    /// The cache file for `key` in `dir` (None: no file, memory only).
    pub fn open_at(dir: Option<PathBuf>, key: CacheKey) -> TuneCache {
        let mut cache = TuneCache::empty(key);
        let Some(dir) = dir else {
            return cache;
        };
        let path = dir.join(cache.file.key.file_name());
        cache.opened = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Opened::New,
            Err(e) => Opened::Replaced(format!("unreadable: {e}")),
            Ok(bytes) => match serde_json::from_slice::<CacheFile>(&bytes) {
                Err(e) => Opened::Replaced(format!("corrupt: {e}")),
                Ok(file) if file.key != cache.file.key => {
                    Opened::Replaced(stale_reason(&file.key, &cache.file.key))
                }
                Ok(file) => {
                    cache.file = file;
                    Opened::Loaded
                }
            },
        };
        // A file we cannot trust is rewritten even if nothing new is learned.
        cache.dirty = matches!(cache.opened, Opened::Replaced(_));
        cache.path = Some(path);
        cache
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// The version recorded for `shape`, if any.
    pub fn choice(&self, shape: &str) -> Option<&str> {
        self.file.choices.get(shape).map(String::as_str)
    }

    pub fn record_choice(&mut self, shape: String, version: String) {
        if self.file.choices.get(&shape) != Some(&version) {
            self.file.choices.insert(shape, version);
            self.dirty = true;
        }
    }

    pub fn record_selftest(&mut self, record: SelftestRecord) {
        self.file.selftest = Some(record);
        self.dirty = true;
    }

    /// Forgets a choice that turned out unusable (a cached version that
    /// this build does not have, or that is now refused).
    pub fn forget(&mut self, shape: &str) {
        if self.file.choices.remove(shape).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the file atomically if anything changed. A cache that cannot
    /// be written only costs the next run the measurements again, so the
    /// error is returned for the caller to report, not to stop on.
    pub fn save(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create the tuning cache {}: {e}", dir.display())
            })?;
        }
        let text = serde_json::to_string_pretty(&self.file)?;
        crate::checkpoint::write_atomically(path, text.as_bytes())?;
        self.dirty = false;
        Ok(())
    }
}

/// Why a file written under `old` does not hold for `new`.
fn stale_reason(old: &CacheKey, new: &CacheKey) -> String {
    if old.gpunet != new.gpunet {
        format!(
            "stale: written by gpunet {}, this is {}",
            old.gpunet, new.gpunet
        )
    } else if old.driver != new.driver || old.driver_info != new.driver_info {
        format!(
            "stale: measured with driver {} {}, now {} {}",
            old.driver, old.driver_info, new.driver, new.driver_info
        )
    } else if old.kernels != new.kernels {
        "stale: written by a build with other kernels".into()
    } else {
        "stale: written for another adapter".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            adapter: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "Vulkan".into(),
            vendor: 0x10005,
            device: 0,
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6".into(),
            gpunet: "0.1.0".into(),
            kernels: kernels_hash(),
        }
    }

    #[test]
    fn file_names_are_plain() {
        let name = key().file_name();
        assert!(name.starts_with("tuning-llvmpipe--llvm-15-0-6--256-bits--vulkan-0"));
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)));
    }

    #[test]
    fn entries_survive_a_save_and_bad_files_are_replaced_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let at = || TuneCache::open_at(Some(dir.path().to_path_buf()), key());
        let mut cache = at();
        assert_eq!(cache.opened, Opened::New);
        cache.record_choice("matmul NT 128x128x784".into(), "Registers".into());
        cache.save().unwrap();
        let path = cache.path().unwrap().clone();

        let cache = at();
        assert_eq!(cache.opened, Opened::Loaded);
        assert_eq!(cache.choice("matmul NT 128x128x784"), Some("Registers"));

        // Corrupt: ignored, and rewritten on save even with nothing new.
        std::fs::write(&path, b"{\"key\": {\"adapter\": 3").unwrap();
        let mut cache = at();
        assert!(
            matches!(&cache.opened, Opened::Replaced(why) if why.starts_with("corrupt")),
            "{:?}",
            cache.opened
        );
        assert_eq!(cache.choice("matmul NT 128x128x784"), None);
        cache.save().unwrap();
        assert_eq!(at().opened, Opened::Loaded);

        // Stale: written by another gpunet; its choices are not used.
        let mut old = TuneCache::open_at(Some(dir.path().to_path_buf()), key());
        old.file.key.gpunet = "0.0.1".into();
        old.record_choice("conv2d Forward".into(), "Direct".into());
        old.dirty = true;
        old.save().unwrap();
        let mut cache = at();
        assert!(
            matches!(&cache.opened, Opened::Replaced(why) if why.contains("gpunet 0.0.1")),
            "{:?}",
            cache.opened
        );
        assert_eq!(cache.choice("conv2d Forward"), None);
        cache.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("\"gpunet\": \"{}\"", key().gpunet)),
            "{text}"
        );
        assert_eq!(at().opened, Opened::Loaded);
    }

    #[test]
    fn a_stale_key_says_what_changed() {
        let mut newer = key();
        newer.gpunet = "0.2.0".into();
        assert!(stale_reason(&key(), &newer).contains("gpunet 0.1.0"));
        let mut driver = key();
        driver.driver_info = "Mesa 24.0".into();
        assert!(stale_reason(&key(), &driver).contains("Mesa 24.0"));
    }
}
