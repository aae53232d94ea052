//! The wgpu instance, adapter, device and queue, and the few buffer helpers
//! every launcher uses.

use anyhow::{anyhow, bail, Context as _, Result};
use wgpu::util::DeviceExt;

/// Set to a substring of an adapter's name to pick that adapter.
pub const ADAPTER_ENV: &str = "GPUNET_ADAPTER";

/// Set to `vulkan`, `metal`, `dx12` or `gl` to look for adapters of that
/// API only (e.g. `GPUNET_BACKEND=gl` runs the kernels through OpenGL ES,
/// on Mesa's llvmpipe where there is no GPU).
pub const BACKEND_ENV: &str = "GPUNET_BACKEND";

/// The APIs `GPUNET_BACKEND` names, or None when it is unset; an error
/// naming the variable for a value it cannot be.
pub fn backend_override() -> Result<Option<wgpu::Backends>> {
    let Ok(name) = std::env::var(BACKEND_ENV) else {
        return Ok(None);
    };
    Ok(Some(match name.to_lowercase().as_str() {
        "vulkan" => wgpu::Backends::VULKAN,
        "metal" => wgpu::Backends::METAL,
        "dx12" => wgpu::Backends::DX12,
        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
        "" => return Ok(None),
        other => bail!("{BACKEND_ENV}={other:?}: expected vulkan, metal, dx12 or gl"),
    }))
}

/// The adapters of `GPUNET_BACKEND`'s API, or else of the native APIs,
/// or else of GL.
fn all_adapters() -> Vec<wgpu::Adapter> {
    if let Ok(Some(backends)) = backend_override() {
        return adapters_of(backends);
    }
    // GL is the fallback: starting it when a native API has an adapter only
    // adds start-up time and EGL noise on stderr.
    let adapters = adapters_of(wgpu::Backends::PRIMARY);
    if adapters.is_empty() {
        return adapters_of(wgpu::Backends::SECONDARY);
    }
    adapters
}

/// Everything that talks to the GPU goes through one of these.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The largest buffer one binding of a dataset's pixels may be: the
    /// device's storage-binding and buffer limits, rounded down to whole
    /// words. A resident split larger than this is kept in several buffers.
    /// Tests lower it to exercise that split on small data.
    pub max_data_buffer_bytes: u64,
    /// Bytes in the buffers made through the helpers below (and the step
    /// slots): what gpunet keeps on the device.
    allocated: std::sync::atomic::AtomicU64,
}

/// What was found when looking for adapters.
pub struct AdapterChoice {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
}

impl AdapterChoice {
    /// True for a hardware GPU (discrete, integrated or virtualised), false
    /// for a software rasteriser such as lavapipe or llvmpipe.
    pub fn is_hardware(&self) -> bool {
        is_hardware(&self.info)
    }
}

pub fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    !matches!(info.device_type, wgpu::DeviceType::Cpu)
}

/// Ranks adapters: hardware before software, discrete before integrated,
/// native APIs before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

fn adapters_of(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    static RUNTIME_DIR: std::sync::Once = std::sync::Once::new();
    RUNTIME_DIR.call_once(ensure_runtime_dir);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Points `XDG_RUNTIME_DIR` at a private directory when it is unset or not
/// an absolute path to a directory, before the first wgpu instance: the
/// Vulkan stack's Wayland client otherwise prints "error: XDG_RUNTIME_DIR is
/// invalid or not set" on every start, which reads as gpunet's own error.
/// The directory is `<temp dir>/gpunet-runtime-<uid>`, mode 0700, reused
/// while it is ours and private; if it cannot be made so, nothing changes.
#[cfg(target_os = "linux")]
fn ensure_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    const VAR: &str = "XDG_RUNTIME_DIR";
    let usable = std::env::var_os(VAR)
        .map(std::path::PathBuf::from)
        .is_some_and(|dir| dir.is_absolute() && dir.is_dir());
    if usable {
        return;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("gpunet-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a real directory of ours that no one else can enter.
    let private = std::fs::symlink_metadata(&dir).is_ok_and(|m| {
        m.file_type().is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0
    });
    if private && dir.is_absolute() {
        // Called once, before wgpu starts any thread of its own.
        std::env::set_var(VAR, &dir);
    }
}

#[cfg(not(target_os = "linux"))]
fn ensure_runtime_dir() {}

/// All adapters wgpu can see, best first. `GPUNET_ADAPTER=name` keeps only
/// adapters whose name contains `name` (case-insensitive).
pub fn list_adapters() -> Vec<AdapterChoice> {
    let adapters = all_adapters();
    let wanted = std::env::var(ADAPTER_ENV).ok().map(|s| s.to_lowercase());
    let mut choices: Vec<AdapterChoice> = adapters
        .into_iter()
        .map(|adapter| {
            let info = adapter.get_info();
            AdapterChoice { adapter, info }
        })
        .filter(|c| match &wanted {
            Some(w) => c.info.name.to_lowercase().contains(w),
            None => true,
        })
        .collect();
    choices.sort_by_key(|c| rank(&c.info));
    choices
}

/// The best adapter, if any.
pub fn best_adapter() -> Option<AdapterChoice> {
    list_adapters().into_iter().next()
}

impl AdapterChoice {
    /// The best adapter, or an error saying why there is none (see
    /// [`AdapterChoice::none_found`]).
    pub fn best() -> Result<AdapterChoice> {
        best_adapter().ok_or_else(|| anyhow!(AdapterChoice::none_found()))
    }

    /// Why `list_adapters` found nothing: `GPUNET_ADAPTER` matched none of
    /// the adapters there are (named), or there are none, and how to get one.
    pub fn none_found() -> String {
        if let Err(e) = backend_override() {
            return e.to_string();
        }
        if let Ok(Some(_)) = backend_override() {
            let name = std::env::var(BACKEND_ENV).unwrap_or_default();
            if all_adapters().is_empty() {
                return format!(
                    "{BACKEND_ENV}={name:?}: no adapter of that API. Unset it to use any API"
                );
            }
        }
        AdapterChoice::filter_mismatch().unwrap_or_else(|| NO_ADAPTER_HELP.into())
    }

    /// When `GPUNET_ADAPTER` is set, matches no adapter and there are
    /// adapters: a message that says so and lists them.
    pub fn filter_mismatch() -> Option<String> {
        let wanted = std::env::var(ADAPTER_ENV).ok()?;
        let all = all_adapters();
        if all.is_empty() {
            return None;
        }
        let names: Vec<String> = all.iter().map(|a| describe(&a.get_info())).collect();
        Some(format!(
            "{ADAPTER_ENV}={wanted:?} matched none of the GPU adapters: {}. \
             Set it to part of one of these names, or unset it",
            names.join("; ")
        ))
    }
}

/// One line describing an adapter: name, backend, kind.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "software rasteriser on the CPU",
        wgpu::DeviceType::Other => "unknown kind",
    };
    format!("{} ({:?}, {kind})", info.name, info.backend)
}

/// The message for "no adapter at all".
pub const NO_ADAPTER_HELP: &str = "no GPU adapter found. Install your GPU's driver \
(Vulkan, Metal, DX12 or OpenGL), or on Linux without a GPU install Mesa's software \
Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`), or train with \
`--device cpu`.";

impl GpuContext {
    /// Opens the best adapter (see `list_adapters`).
    pub fn new() -> Result<GpuContext> {
        let choice = AdapterChoice::best()?;
        GpuContext::from_adapter(choice)
    }

    pub fn from_adapter(choice: AdapterChoice) -> Result<GpuContext> {
        // Ask for the adapter's own limits, not wgpu's defaults: a resident
        // dataset is bound in chunks of up to the storage-binding size, and
        // the larger limits of real GPUs mean fewer chunks.
        let limits = choice.adapter.limits();
        let max_data_buffer_bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            & !3;
        // Timestamp queries, where offered, let `gpunet bench` time kernels
        // on the GPU itself; subgroup operations, where offered, let a matmul
        // share loaded operands across a SIMD group. Nothing needs either.
        let features = choice.adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
        let (device, queue) =
            pollster::block_on(choice.adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("gpunet"),
                required_features: features,
                required_limits: limits,
                ..Default::default()
            }))
            .with_context(|| format!("opening {}", describe(&choice.info)))?;
        Ok(GpuContext {
            device,
            queue,
            info: choice.info,
            max_data_buffer_bytes,
            allocated: Default::default(),
        })
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    pub fn is_hardware(&self) -> bool {
        is_hardware(&self.info)
    }

    /// The subgroup size when the device has subgroup operations and every
    /// subgroup has the same size, which kernels written for one size need.
    pub fn fixed_subgroup_size(&self) -> Option<u32> {
        let fixed = self.info.subgroup_min_size == self.info.subgroup_max_size;
        (self.device.features().contains(wgpu::Features::SUBGROUP) && fixed)
            .then_some(self.info.subgroup_min_size)
    }

    /// Bytes held in the buffers gpunet has made on this device.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `bytes` more in `allocated_bytes`.
    pub fn count_allocation(&self, bytes: u64) {
        self.allocated
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A storage buffer holding `data`, readable back with `read`.
    pub fn storage_init<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        // wgpu refuses zero-sized bindings; keep at least one element.
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let padded;
        let contents = if bytes.len() < 4 {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.count_allocation(contents.len() as u64);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A zero-filled storage buffer of `len` 4-byte elements.
    pub fn storage_zeroed(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.count_allocation((len.max(1) * 4) as u64);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding one parameter struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.count_allocation(std::mem::size_of::<T>() as u64);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Copies `len` 4-byte elements starting at element `offset` of `buffer`
    /// back to the host. Waits for all submitted work.
    pub fn read<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<Vec<T>> {
        assert_eq!(std::mem::size_of::<T>(), 4, "read() copies 4-byte elements");
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer, (offset * 4) as u64, &staging, 0, size);
        self.queue.submit([encoder.finish()]);

        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            sender.send(result).ok();
        });
        self.wait()?;
        pollster::block_on(receiver.receive())
            .ok_or_else(|| anyhow!("readback channel closed"))?
            .map_err(|e| anyhow!("mapping the readback buffer failed: {e}"))?;
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| anyhow!("reading the mapped buffer: {e:?}"))?;
            bytemuck::cast_slice::<u8, T>(&view).to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Blocks until the GPU has finished everything submitted so far.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("waiting for the GPU: {e}"))?;
        Ok(())
    }

    /// Blocks until the given submission has finished.
    pub fn wait_for(&self, submission: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| anyhow!("waiting for the GPU: {e}"))?;
        Ok(())
    }

    /// Fails if a validation error was raised since `guard` was pushed.
    pub fn check(&self, guard: wgpu::ErrorScopeGuard) -> Result<()> {
        if let Some(e) = pollster::block_on(guard.pop()) {
            bail!("GPU validation error: {e}");
        }
        Ok(())
    }
}
