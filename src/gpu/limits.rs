//! The device limits a plan meets: per kernel, the invocations of one
//! workgroup and the workgroup memory it declares; per plan, the size of
//! each storage buffer bound whole. A kernel version that does not fit is
//! never chosen; a plan that nothing fits is refused with the limit named,
//! the adapter's value and what the plan needs.

use super::GpuContext;
use anyhow::{bail, Result};

/// What one kernel asks of a workgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkgroupNeeds {
    /// Invocations per workgroup (the product of `@workgroup_size`).
    pub invocations: u32,
    /// Bytes of `var<workgroup>` memory its entry points use.
    pub storage_bytes: u32,
}

/// Every kernel without versions: 256 invocations at most; the conv weight
/// gradient's 16 channels × 256 invocations of vec4 partial sums, 16 KiB,
/// is the most workgroup memory one takes.
pub const FIXED_KERNELS: WorkgroupNeeds = WorkgroupNeeds {
    invocations: 256,
    storage_bytes: 16 * 1024,
};

/// Which limit `needs` exceeds on a device with `limits`, named as wgpu
/// and WebGPU name it, or None when it fits.
pub fn exceeded(limits: &wgpu::Limits, needs: WorkgroupNeeds) -> Option<String> {
    if needs.invocations > limits.max_compute_invocations_per_workgroup {
        return Some(format!(
            "max_compute_invocations_per_workgroup is {}, the kernel needs {}",
            limits.max_compute_invocations_per_workgroup, needs.invocations
        ));
    }
    if needs.storage_bytes > limits.max_compute_workgroup_storage_size {
        return Some(format!(
            "max_compute_workgroup_storage_size is {} bytes, the kernel needs {}",
            limits.max_compute_workgroup_storage_size, needs.storage_bytes
        ));
    }
    None
}

/// Whether a kernel with `needs` runs on this device.
pub fn fits(ctx: &GpuContext, needs: WorkgroupNeeds) -> bool {
    exceeded(&ctx.device.limits(), needs).is_none()
}

/// Fails, naming the limit, when a storage buffer of `bytes` (what `what`
/// holds) cannot be created or bound whole on this device.
pub fn check_buffer(limits: &wgpu::Limits, what: &str, bytes: u64) -> Result<()> {
    let binding = limits.max_storage_buffer_binding_size;
    if bytes > binding {
        bail!(
            "{what} takes {bytes} bytes, more than this adapter's \
             max_storage_buffer_binding_size ({binding} bytes); use a smaller --batch \
             or model, or --device cpu"
        );
    }
    if bytes > limits.max_buffer_size {
        bail!(
            "{what} takes {bytes} bytes, more than this adapter's max_buffer_size ({} bytes)",
            limits.max_buffer_size
        );
    }
    Ok(())
}

/// Fails, naming the limit, when the kernels without versions do not fit.
pub fn check_fixed_kernels(limits: &wgpu::Limits) -> Result<()> {
    if let Some(limit) = exceeded(limits, FIXED_KERNELS) {
        bail!("this adapter cannot run gpunet's kernels: {limit}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exceeded_limit_is_named() {
        let mut limits = wgpu::Limits::default();
        assert_eq!(exceeded(&limits, FIXED_KERNELS), None);
        limits.max_compute_invocations_per_workgroup = 128;
        let why = exceeded(&limits, FIXED_KERNELS).unwrap();
        assert!(
            why.contains("max_compute_invocations_per_workgroup is 128"),
            "{why}"
        );
        limits.max_compute_invocations_per_workgroup = 256;
        limits.max_compute_workgroup_storage_size = 8192;
        let why = exceeded(&limits, FIXED_KERNELS).unwrap();
        assert!(
            why.contains("max_compute_workgroup_storage_size is 8192"),
            "{why}"
        );
        assert!(check_fixed_kernels(&limits).is_err());
    }

    #[test]
    fn a_buffer_past_the_binding_size_is_refused_by_name() {
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: 1000,
            ..Default::default()
        };
        assert!(check_buffer(&limits, "layer 0's output", 1000).is_ok());
        let e = check_buffer(&limits, "layer 0's output", 1004).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("max_storage_buffer_binding_size (1000 bytes)"),
            "{text}"
        );
        assert!(text.contains("layer 0's output takes 1004 bytes"), "{text}");
    }
}
