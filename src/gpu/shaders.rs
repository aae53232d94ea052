//! Every WGSL file, compiled once per device, and every entry point's
//! pipeline. Launchers for each kernel family live beside this file.

use super::kernel::{Kernel, Slot};
use super::launch::{ConvPass, ConvVersion, MatmulVersion};
use super::GpuContext;

const COMMON: &str = include_str!("../../shaders/common.wgsl");

const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const CONV2D: &str = include_str!("../../shaders/conv2d.wgsl");

/// Source of each shader file, with common.wgsl prepended.
pub fn source(file: &str) -> String {
    let body = match file {
        "matmul" => MATMUL,
        // Version 4 builds on matmul.wgsl's bindings and helpers, in a module
        // of its own because only devices with subgroups can compile it.
        "matmul_subgroup" => {
            let subgroup = include_str!("../../shaders/matmul_subgroup.wgsl");
            return format!("{COMMON}\n{MATMUL}\n{subgroup}");
        }
        "elementwise" => include_str!("../../shaders/elementwise.wgsl"),
        "softmax_xent" => include_str!("../../shaders/softmax_xent.wgsl"),
        "optim" => include_str!("../../shaders/optim.wgsl"),
        "gather" => include_str!("../../shaders/gather.wgsl"),
        "conv2d" => CONV2D,
        // Built on conv2d.wgsl, as matmul_subgroup.wgsl is on matmul.wgsl.
        "conv2d_subgroup" => {
            let subgroup = include_str!("../../shaders/conv2d_subgroup.wgsl");
            return format!("{COMMON}\n{CONV2D}\n{subgroup}");
        }
        "pool" => include_str!("../../shaders/pool.wgsl"),
        other => panic!("no shader file named {other}"),
    };
    format!("{COMMON}\n{body}")
}

fn module(ctx: &GpuContext, file: &str) -> wgpu::ShaderModule {
    ctx.device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(file),
            source: wgpu::ShaderSource::Wgsl(source(file).into()),
        })
}

/// Matmul version 4's entry points (matmul_subgroup.wgsl).
pub struct MatmulSubgroupKernels {
    pub nn: Kernel,
    pub tn: Kernel,
    pub nt: Kernel,
}

/// conv2d's subgroup entry points (conv2d_subgroup.wgsl).
pub struct ConvSubgroupKernels {
    pub forward: Kernel,
    pub backward_input: Kernel,
}

/// All pipelines of the engine.
pub struct Kernels {
    pub matmul_nn: Kernel,
    pub matmul_tn: Kernel,
    pub matmul_nt: Kernel,
    pub matmul_naive_nn: Kernel,
    pub matmul_naive_tn: Kernel,
    pub matmul_naive_nt: Kernel,
    pub matmul_reg_nn: Kernel,
    pub matmul_reg_tn: Kernel,
    pub matmul_reg_nt: Kernel,
    /// Version 4, present where `MatmulVersion::Subgroup.is_available`.
    pub matmul_sub: Option<MatmulSubgroupKernels>,
    /// The matmul version `Kernels::matmul` launches on this adapter.
    pub matmul_default: MatmulVersion,
    pub activation_backward: Kernel,
    pub bias_grad: Kernel,
    pub softmax_xent: Kernel,
    pub sgd_momentum: Kernel,
    pub adam: Kernel,
    pub gather: Kernel,
    pub gather4: Kernel,
    pub conv2d_forward: Kernel,
    pub conv2d_forward_gemm: Kernel,
    pub conv2d_backward_input: Kernel,
    pub conv2d_backward_input_gemm: Kernel,
    /// Present where `ConvVersion::Subgroup` is available.
    pub conv2d_sub: Option<ConvSubgroupKernels>,
    pub conv2d_backward_weight: Kernel,
    pub conv2d_backward_weight_gemm: Kernel,
    pub conv2d_backward_bias: Kernel,
    pub maxpool_forward: Kernel,
    pub maxpool_backward: Kernel,
    /// Bound where a kernel's optional input is absent (e.g. no bias).
    pub(super) placeholder: wgpu::Buffer,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Kernels {
        use Slot::*;
        let matmul = module(ctx, "matmul");
        let matmul_slots = [Uniform, Read, Read, Read, ReadWrite];
        let elementwise = module(ctx, "elementwise");
        let xent = module(ctx, "softmax_xent");
        let optim = module(ctx, "optim");
        let gather = module(ctx, "gather");
        let conv = module(ctx, "conv2d");
        let pool = module(ctx, "pool");
        Kernels {
            matmul_nn: Kernel::new(ctx, &matmul, "matmul_nn", &matmul_slots),
            matmul_tn: Kernel::new(ctx, &matmul, "matmul_tn", &matmul_slots),
            matmul_nt: Kernel::new(ctx, &matmul, "matmul_nt", &matmul_slots),
            matmul_naive_nn: Kernel::new(ctx, &matmul, "matmul_naive_nn", &matmul_slots),
            matmul_naive_tn: Kernel::new(ctx, &matmul, "matmul_naive_tn", &matmul_slots),
            matmul_naive_nt: Kernel::new(ctx, &matmul, "matmul_naive_nt", &matmul_slots),
            matmul_reg_nn: Kernel::new(ctx, &matmul, "matmul_reg_nn", &matmul_slots),
            matmul_reg_tn: Kernel::new(ctx, &matmul, "matmul_reg_tn", &matmul_slots),
            matmul_reg_nt: Kernel::new(ctx, &matmul, "matmul_reg_nt", &matmul_slots),
            matmul_sub: MatmulVersion::Subgroup.is_available(ctx).then(|| {
                let module = module(ctx, "matmul_subgroup");
                MatmulSubgroupKernels {
                    nn: Kernel::new(ctx, &module, "matmul_sub_nn", &matmul_slots),
                    tn: Kernel::new(ctx, &module, "matmul_sub_tn", &matmul_slots),
                    nt: Kernel::new(ctx, &module, "matmul_sub_nt", &matmul_slots),
                }
            }),
            matmul_default: MatmulVersion::for_adapter(ctx),
            activation_backward: Kernel::new(
                ctx,
                &elementwise,
                "activation_backward",
                &[Uniform, Read, ReadWrite],
            ),
            bias_grad: Kernel::new(ctx, &elementwise, "bias_grad", &[Uniform, Read, ReadWrite]),
            softmax_xent: Kernel::new(
                ctx,
                &xent,
                "softmax_xent",
                &[Step, Uniform, Read, Read, ReadWrite, ReadWrite],
            ),
            sgd_momentum: Kernel::new(
                ctx,
                &optim,
                "sgd_momentum",
                &[Step, Uniform, ReadWrite, Read, ReadWrite],
            ),
            adam: Kernel::new(
                ctx,
                &optim,
                "adam",
                &[Step, Uniform, ReadWrite, Read, ReadWrite, ReadWrite],
            ),
            conv2d_forward: Kernel::new(
                ctx,
                &conv,
                "conv2d_forward",
                &[Uniform, Read, Read, Read, ReadWrite],
            ),
            conv2d_forward_gemm: Kernel::new(
                ctx,
                &conv,
                "conv2d_forward_gemm",
                &[Uniform, Read, Read, Read, ReadWrite],
            ),
            conv2d_backward_input: Kernel::new(
                ctx,
                &conv,
                "conv2d_backward_input",
                &[Uniform, Read, Read, ReadWrite],
            ),
            conv2d_backward_input_gemm: Kernel::new(
                ctx,
                &conv,
                "conv2d_backward_input_gemm",
                &[Uniform, Read, Read, ReadWrite],
            ),
            conv2d_sub: ConvVersion::Subgroup
                .is_available(ctx, ConvPass::Forward)
                .then(|| {
                    let module = module(ctx, "conv2d_subgroup");
                    ConvSubgroupKernels {
                        forward: Kernel::new(
                            ctx,
                            &module,
                            "conv2d_forward_sub",
                            &[Uniform, Read, Read, Read, ReadWrite],
                        ),
                        backward_input: Kernel::new(
                            ctx,
                            &module,
                            "conv2d_backward_input_sub",
                            &[Uniform, Read, Read, ReadWrite],
                        ),
                    }
                }),
            conv2d_backward_weight: Kernel::new(
                ctx,
                &conv,
                "conv2d_backward_weight",
                &[Uniform, Read, Read, ReadWrite],
            ),
            conv2d_backward_weight_gemm: Kernel::new(
                ctx,
                &conv,
                "conv2d_backward_weight_gemm",
                &[Uniform, Read, Read, ReadWrite],
            ),
            conv2d_backward_bias: Kernel::new(
                ctx,
                &conv,
                "conv2d_backward_bias",
                &[Uniform, Read, ReadWrite],
            ),
            maxpool_forward: Kernel::new(
                ctx,
                &pool,
                "maxpool_forward",
                &[Uniform, Read, ReadWrite, ReadWrite],
            ),
            maxpool_backward: Kernel::new(
                ctx,
                &pool,
                "maxpool_backward",
                &[Uniform, Read, Read, ReadWrite],
            ),
            gather: Kernel::new(
                ctx,
                &gather,
                "gather",
                &[Step, Uniform, Read, Read, Read, ReadWrite, ReadWrite],
            ),
            gather4: Kernel::new(
                ctx,
                &gather,
                "gather4",
                &[Step, Uniform, Read, Read, Read, ReadWrite, ReadWrite],
            ),
            placeholder: ctx.storage_zeroed("placeholder", 64),
        }
    }
}
