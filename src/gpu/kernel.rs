//! Pipelines and recorded launches. A `Kernel` is one WGSL entry point with
//! an explicit bind-group layout; a `Dispatch` is one launch of it with its
//! bind group and workgroup counts, built once when a graph is planned and
//! recorded into every step's command encoder.

use super::GpuContext;
use std::num::NonZeroU64;

/// What a binding slot holds, in binding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A parameter struct fixed at plan time.
    Uniform,
    /// The per-step `StepInfo`, bound with a dynamic offset (see `StepSlots`).
    Step,
    /// A storage buffer the kernel only reads.
    Read,
    /// A storage buffer the kernel writes.
    ReadWrite,
}

/// One compiled entry point and its bind-group layout.
pub struct Kernel {
    pub name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    slots: Vec<Slot>,
}

impl Kernel {
    pub fn new(
        ctx: &GpuContext,
        module: &wgpu::ShaderModule,
        name: &'static str,
        slots: &[Slot],
    ) -> Kernel {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match slot {
                    Slot::Uniform | Slot::Step => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: *slot == Slot::Step,
                        min_binding_size: None,
                    },
                    Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *slot == Slot::Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
        let pipeline_layout = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(name),
                compilation_options: Default::default(),
                cache: None,
            });
        Kernel {
            name,
            pipeline,
            layout,
            slots: slots.to_vec(),
        }
    }

    /// A launch of this kernel over `groups` workgroups with `bindings` in
    /// slot order.
    pub fn dispatch(&self, ctx: &GpuContext, bindings: &[Binding], groups: [u32; 3]) -> Dispatch {
        assert_eq!(
            bindings.len(),
            self.slots.len(),
            "{}: {} bindings for {} slots",
            self.name,
            bindings.len(),
            self.slots.len()
        );
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.resource(),
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        });
        Dispatch {
            name: self.name,
            pipeline: self.pipeline.clone(),
            bind_group,
            groups,
            per_step: self.slots.contains(&Slot::Step),
        }
    }
}

/// A buffer, or a range of one, to bind. Offsets and lengths count 4-byte
/// elements; a range's offset must be a multiple of 64 elements (256 bytes,
/// the storage offset alignment every adapter accepts).
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    buffer: &'a wgpu::Buffer,
    offset: usize,
    len: Option<usize>,
}

impl<'a> Binding<'a> {
    pub fn whole(buffer: &'a wgpu::Buffer) -> Binding<'a> {
        Binding {
            buffer,
            offset: 0,
            len: None,
        }
    }

    pub fn range(buffer: &'a wgpu::Buffer, offset: usize, len: usize) -> Binding<'a> {
        assert_eq!(offset % 64, 0, "binding offsets must be 256-byte aligned");
        Binding {
            buffer,
            offset,
            len: Some(len.max(1)),
        }
    }

    /// The per-step slot: one `StepInfo`, moved by the dynamic offset.
    pub fn step(buffer: &'a wgpu::Buffer) -> Binding<'a> {
        Binding {
            buffer,
            offset: 0,
            len: Some(STEP_INFO_BYTES as usize / 4),
        }
    }

    fn resource(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: (self.offset * 4) as u64,
            size: self.len.and_then(|l| NonZeroU64::new((l * 4) as u64)),
        })
    }
}

/// One recorded kernel launch.
#[derive(Clone)]
pub struct Dispatch {
    pub name: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    per_step: bool,
}

impl Dispatch {
    /// Records the launch; `step` selects the `StepInfo` slot for kernels that
    /// bind one.
    pub fn record(&self, pass: &mut wgpu::ComputePass, step: usize) {
        pass.set_pipeline(&self.pipeline);
        let offsets = [(step as u64 * STEP_SLOT_BYTES) as u32];
        let offsets: &[u32] = if self.per_step { &offsets } else { &[] };
        pass.set_bind_group(0, &self.bind_group, offsets);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Mirrors `StepInfo` in common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepInfo {
    pub batch_start: u32,
    pub batch_len: u32,
    pub step: u32,
    pub global_step: u32,
    pub lr: f32,
    pub _pad: [u32; 3],
}

const STEP_INFO_BYTES: u64 = std::mem::size_of::<StepInfo>() as u64;
/// Dynamic uniform offsets must be multiples of 256 bytes.
pub const STEP_SLOT_BYTES: u64 = 256;

/// A uniform buffer of `StepInfo`s, one 256-byte slot per step of an epoch.
pub struct StepSlots {
    pub buffer: wgpu::Buffer,
    pub capacity: usize,
}

impl StepSlots {
    pub fn new(ctx: &GpuContext, label: &str, capacity: usize) -> StepSlots {
        ctx.count_allocation(capacity.max(1) as u64 * STEP_SLOT_BYTES);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: capacity.max(1) as u64 * STEP_SLOT_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        StepSlots { buffer, capacity }
    }

    /// Writes the slots for an epoch of `total` examples in batches of
    /// `batch`, whose steps are numbered from `first_step` in the whole run
    /// and use the learning rates `lrs` (one per step; empty for evaluation).
    pub fn write_epoch(
        &self,
        ctx: &GpuContext,
        total: usize,
        batch: usize,
        first_step: usize,
        lrs: &[f32],
    ) {
        let steps = total.div_ceil(batch);
        assert!(steps <= self.capacity, "more steps than step slots");
        assert!(
            lrs.is_empty() || lrs.len() == steps,
            "one learning rate per step"
        );
        let words_per_slot = (STEP_SLOT_BYTES / 4) as usize;
        let mut words = vec![0u32; steps.max(1) * words_per_slot];
        for step in 0..steps {
            let start = step * batch;
            let info = StepInfo {
                batch_start: start as u32,
                batch_len: (total - start).min(batch) as u32,
                step: step as u32,
                global_step: (first_step + step) as u32,
                lr: lrs.get(step).copied().unwrap_or(0.0),
                _pad: [0; 3],
            };
            words[step * words_per_slot..][..8].copy_from_slice(bytemuck::cast_slice(&[info]));
        }
        ctx.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&words));
    }
}

/// Workgroup counts for `n` elements in 256-wide workgroups on a 2-D grid
/// (see `linear_index` in common.wgsl).
pub fn elementwise_groups(n: usize) -> [u32; 3] {
    const MAX_X: usize = 65535;
    let groups = n.div_ceil(256).max(1);
    if groups <= MAX_X {
        [groups as u32, 1, 1]
    } else {
        [MAX_X as u32, groups.div_ceil(MAX_X) as u32, 1]
    }
}
