//! One launcher per kernel: a typed parameter struct (mirrored at the top of
//! its WGSL file) becomes a uniform, and the launch a `Dispatch`.

use super::kernel::{elementwise_groups, Binding, Dispatch};
use super::shaders::Kernels;
use super::GpuContext;
use crate::backend::Optimizer;
use crate::graph::{Activation, Conv2d, MaxPool, Shape};

/// Which operands of C = op(A)·op(B) are transposed (see matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulForm {
    /// C = A·B
    NN,
    /// C = Aᵀ·B
    TN,
    /// C = A·Bᵀ
    NT,
}

/// Which matmul kernel a launch uses (see matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulVersion {
    /// Version 1: one invocation per output, the reference.
    Naive,
    /// Version 2: 64×64 workgroup tiles, 4×4 outputs per invocation.
    Tiled,
    /// Version 3: 4×8 outputs per invocation from registers alone.
    Registers,
    /// Version 4: 32×4 outputs per lane, a subgroup of 8 lanes sharing its
    /// loads of A (matmul_subgroup.wgsl). Needs subgroups of exactly 8, and
    /// runs shapes whose vec4 loads it cannot make as version 3.
    Subgroup,
}

impl MatmulVersion {
    /// Every version, in the order the bench and the tests list them.
    pub const ALL: [MatmulVersion; 4] = [
        MatmulVersion::Naive,
        MatmulVersion::Tiled,
        MatmulVersion::Registers,
        MatmulVersion::Subgroup,
    ];

    /// Whether this device can run the version: version 4 is written for
    /// subgroups of 8 lanes (one workgroup is one subgroup).
    pub fn is_available(self, ctx: &GpuContext) -> bool {
        match self {
            MatmulVersion::Subgroup => ctx.fixed_subgroup_size() == Some(8),
            _ => true,
        }
    }

    /// The versions this device can run.
    pub fn available(ctx: &GpuContext) -> Vec<MatmulVersion> {
        MatmulVersion::ALL
            .into_iter()
            .filter(|v| v.is_available(ctx))
            .collect()
    }

    /// Whether version 4's vec4 loads fit the shape: they run along n for
    /// A·B and Aᵀ·B and along k for A·Bᵀ, which must be multiples of 4.
    fn subgroup_fits(form: MatmulForm, shape: MatmulShape) -> bool {
        match form {
            MatmulForm::NN | MatmulForm::TN => shape.n.is_multiple_of(4),
            MatmulForm::NT => shape.k.is_multiple_of(4),
        }
    }

    /// The faster version on this adapter: workgroup tiles on hardware GPUs;
    /// on adapters that run on the CPU, shared subgroup loads where there
    /// are subgroups of 8, else registers alone (see the shaders' headers).
    pub fn for_adapter(ctx: &GpuContext) -> MatmulVersion {
        if ctx.is_hardware() {
            MatmulVersion::Tiled
        } else if MatmulVersion::Subgroup.is_available(ctx) {
            MatmulVersion::Subgroup
        } else {
            MatmulVersion::Registers
        }
    }
}

/// How a conv2d forward is computed (see conv2d.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvVersion {
    /// One invocation per output value, walking its receptive field.
    Direct,
    /// The pass as a GEMM over im2col(x) without materialising it: blocks of
    /// 4 channels × 4 pixels per invocation (16 channels × 4 taps for dW).
    ImplicitGemm,
    /// The implicit GEMM shaped like matmul version 4: a subgroup of 8 lanes
    /// shares its weight loads (conv2d_subgroup.wgsl). Forward and backward
    /// to input only, on devices with subgroups of exactly 8.
    Subgroup,
}

impl ConvVersion {
    /// Every version, in the order the bench and the tests list them.
    pub const ALL: [ConvVersion; 3] = [
        ConvVersion::Direct,
        ConvVersion::ImplicitGemm,
        ConvVersion::Subgroup,
    ];

    /// Whether this device can run the version for `pass`.
    pub fn is_available(self, ctx: &GpuContext, pass: ConvPass) -> bool {
        match self {
            ConvVersion::Subgroup => {
                pass != ConvPass::BackwardWeight && MatmulVersion::Subgroup.is_available(ctx)
            }
            _ => true,
        }
    }

    /// The versions this device can run for `pass`.
    pub fn available(ctx: &GpuContext, pass: ConvPass) -> Vec<ConvVersion> {
        ConvVersion::ALL
            .into_iter()
            .filter(|v| v.is_available(ctx, pass))
            .collect()
    }
}

/// The conv2d passes that have several versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

/// Workgroups of an implicit-GEMM conv kernel writing `batch` maps of
/// shape `out`: 4 pixels × 4 channels per invocation, 64 invocations per
/// group. None when the pixels need more groups than one dispatch allows
/// (the direct kernel then runs instead).
fn gemm_groups(batch: usize, out: Shape) -> Option<[u32; 3]> {
    let pixel_groups = (batch * out.h * out.w).div_ceil(4 * 64);
    (pixel_groups <= 65535).then(|| [pixel_groups as u32, out.c.div_ceil(4) as u32, 1])
}

/// Workgroups of a subgroup conv kernel writing `batch` maps of shape
/// `out`: 32 pixels × `channels` channels per group of 8 lanes. None when
/// the pixels need more groups than one dispatch allows.
fn subgroup_groups(batch: usize, out: Shape, channels: usize) -> Option<[u32; 3]> {
    let pixel_groups = (batch * out.h * out.w).div_ceil(32);
    (pixel_groups <= 65535).then(|| [pixel_groups as u32, out.c.div_ceil(channels) as u32, 1])
}

/// C is (m, n); the shared dimension is k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    epilogue: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActivationParams {
    len: u32,
    act: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowsCols {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    len: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: u32,
    _pad: [u32; 2],
}

/// Mirrors `ConvParams` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    act: u32,
    _pad: u32,
}

impl ConvParams {
    fn new(conv: &Conv2d, batch: usize) -> ConvParams {
        ConvParams {
            batch: batch as u32,
            in_c: conv.input.c as u32,
            in_h: conv.input.h as u32,
            in_w: conv.input.w as u32,
            out_c: conv.output.c as u32,
            out_h: conv.output.h as u32,
            out_w: conv.output.w as u32,
            kernel: conv.kernel as u32,
            stride: conv.stride as u32,
            padding: conv.padding as u32,
            act: conv.activation.code(),
            _pad: 0,
        }
    }
}

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    size: u32,
    stride: u32,
}

/// Mirrors `GatherParams` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    input_size: u32,
    rows: u32,
    _pad: [u32; 2],
}

/// Size of the device-side `Metrics` struct of softmax_xent.wgsl, in u32s.
pub const METRICS_WORDS: usize = 4;

impl Kernels {
    /// c = act(op(a)·op(b) + bias), with the engine's kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        ctx: &GpuContext,
        form: MatmulForm,
        shape: MatmulShape,
        a: Binding,
        b: Binding,
        bias: Option<Binding>,
        act: Activation,
        c: Binding,
    ) -> Dispatch {
        let version = self.matmul_default;
        self.matmul_version(ctx, version, form, shape, a, b, bias, act, c)
    }

    /// c = act(op(a)·op(b) + bias), with the kernel `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_version(
        &self,
        ctx: &GpuContext,
        version: MatmulVersion,
        form: MatmulForm,
        shape: MatmulShape,
        a: Binding,
        b: Binding,
        bias: Option<Binding>,
        act: Activation,
        c: Binding,
    ) -> Dispatch {
        let params = MatmulParams {
            m: shape.m as u32,
            n: shape.n as u32,
            k: shape.k as u32,
            epilogue: u32::from(bias.is_some()) | (act.code() << 8),
        };
        let uniform = ctx.uniform("matmul params", &params);
        let version = match version {
            MatmulVersion::Subgroup if !MatmulVersion::subgroup_fits(form, shape) => {
                MatmulVersion::Registers
            }
            version => version,
        };
        // Each kernel's block of C per workgroup: (rows, columns).
        let (kernel, tile) = match (version, form) {
            (MatmulVersion::Naive, MatmulForm::NN) => (&self.matmul_naive_nn, (16, 16)),
            (MatmulVersion::Naive, MatmulForm::TN) => (&self.matmul_naive_tn, (16, 16)),
            (MatmulVersion::Naive, MatmulForm::NT) => (&self.matmul_naive_nt, (16, 16)),
            (MatmulVersion::Tiled, MatmulForm::NN) => (&self.matmul_nn, (64, 64)),
            (MatmulVersion::Tiled, MatmulForm::TN) => (&self.matmul_tn, (64, 64)),
            (MatmulVersion::Tiled, MatmulForm::NT) => (&self.matmul_nt, (64, 64)),
            (MatmulVersion::Registers, MatmulForm::NN) => (&self.matmul_reg_nn, (32, 64)),
            (MatmulVersion::Registers, MatmulForm::TN) => (&self.matmul_reg_tn, (32, 64)),
            (MatmulVersion::Registers, MatmulForm::NT) => (&self.matmul_reg_nt, (32, 64)),
            (MatmulVersion::Subgroup, form) => {
                let sub = self
                    .matmul_sub
                    .as_ref()
                    .expect("matmul version 4 needs subgroups of 8 lanes, which this device lacks");
                let kernel = match form {
                    MatmulForm::NN => &sub.nn,
                    MatmulForm::TN => &sub.tn,
                    MatmulForm::NT => &sub.nt,
                };
                (kernel, (32, 32))
            }
        };
        let bias = bias.unwrap_or(Binding::whole(&self.placeholder));
        let groups = [
            shape.n.div_ceil(tile.1).max(1) as u32,
            shape.m.div_ceil(tile.0).max(1) as u32,
            1,
        ];
        kernel.dispatch(ctx, &[Binding::whole(&uniform), a, b, bias, c], groups)
    }

    /// dy ← dy ⊙ f'(y) over `len` elements.
    pub fn activation_backward(
        &self,
        ctx: &GpuContext,
        act: Activation,
        len: usize,
        y: Binding,
        dy: Binding,
    ) -> Dispatch {
        let params = ActivationParams {
            len: len as u32,
            act: act.code(),
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("activation params", &params);
        self.activation_backward.dispatch(
            ctx,
            &[Binding::whole(&uniform), y, dy],
            elementwise_groups(len),
        )
    }

    /// db[n] = Σ_r dz[r, n]; dz is (rows, cols).
    pub fn bias_grad(
        &self,
        ctx: &GpuContext,
        rows: usize,
        cols: usize,
        dz: Binding,
        db: Binding,
    ) -> Dispatch {
        let params = RowsCols {
            rows: rows as u32,
            cols: cols as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("bias grad params", &params);
        self.bias_grad.dispatch(
            ctx,
            &[Binding::whole(&uniform), dz, db],
            [cols.div_ceil(64).max(1) as u32, 1, 1],
        )
    }

    /// Loss, correct count and logit gradient of a (rows, cols) batch.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_xent(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        rows: usize,
        cols: usize,
        logits: Binding,
        labels: Binding,
        grad: Binding,
        metrics: Binding,
    ) -> Dispatch {
        let params = RowsCols {
            rows: rows as u32,
            cols: cols as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("xent params", &params);
        self.softmax_xent.dispatch(
            ctx,
            &[
                Binding::step(steps),
                Binding::whole(&uniform),
                logits,
                labels,
                grad,
                metrics,
            ],
            [1, 1, 1],
        )
    }

    /// One optimiser update of `len` parameters (a multiple of 4, as the
    /// parameter layout guarantees); the learning rate and step
    /// number come from the step slot. `state` is the velocity (SGD) or the
    /// first and second moments (Adam).
    #[allow(clippy::too_many_arguments)]
    pub fn optimizer_update(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        optimizer: &Optimizer,
        len: usize,
        params: Binding,
        grads: Binding,
        state: &[Binding],
    ) -> Dispatch {
        // optim.wgsl updates four parameters per invocation.
        assert!(
            len.is_multiple_of(4),
            "optimizer_update: {len} parameters, not a multiple of 4"
        );
        let groups = elementwise_groups(len / 4);
        match (optimizer, state) {
            (
                Optimizer::Sgd {
                    momentum,
                    weight_decay,
                },
                [velocity],
            ) => {
                let uniform = ctx.uniform(
                    "sgd params",
                    &SgdParams {
                        len: len as u32,
                        momentum: *momentum,
                        weight_decay: *weight_decay,
                        _pad: 0,
                    },
                );
                self.sgd_momentum.dispatch(
                    ctx,
                    &[
                        Binding::step(steps),
                        Binding::whole(&uniform),
                        params,
                        grads,
                        *velocity,
                    ],
                    groups,
                )
            }
            (Optimizer::Adam(cfg), [m, v]) => {
                let uniform = ctx.uniform(
                    "adam params",
                    &AdamParams {
                        len: len as u32,
                        beta1: cfg.beta1,
                        beta2: cfg.beta2,
                        eps: cfg.eps,
                        weight_decay: cfg.weight_decay,
                        decoupled: u32::from(cfg.decoupled),
                        _pad: [0; 2],
                    },
                );
                self.adam.dispatch(
                    ctx,
                    &[
                        Binding::step(steps),
                        Binding::whole(&uniform),
                        params,
                        grads,
                        *m,
                        *v,
                    ],
                    groups,
                )
            }
            _ => panic!("optimizer_update: wrong number of state vectors"),
        }
    }

    /// y = act(conv(x, W) + b) over a batch, with whichever version runs
    /// this shape faster on this adapter, measured now on these buffers
    /// (see tune.rs; the versions agree bit for bit).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        x: Binding,
        w: Binding,
        b: Binding,
        y: Binding,
    ) -> Dispatch {
        super::tune::fastest_conv(ctx, ConvPass::Forward, |version| {
            self.conv2d_forward_version(ctx, version, conv, batch, x, w, b, y)
        })
    }

    /// y = act(conv(x, W) + b) over a batch, computed by `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        x: Binding,
        w: Binding,
        b: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let bindings = [Binding::whole(&uniform), x, w, b, y];
        let gemm = gemm_groups(batch, conv.output);
        let sub = subgroup_groups(batch, conv.output, 32);
        match (version, gemm, sub, &self.conv2d_sub) {
            (ConvVersion::ImplicitGemm, Some(groups), _, _) => {
                self.conv2d_forward_gemm.dispatch(ctx, &bindings, groups)
            }
            (ConvVersion::Subgroup, _, Some(groups), Some(sub)) => {
                sub.forward.dispatch(ctx, &bindings, groups)
            }
            _ => self.conv2d_forward.dispatch(
                ctx,
                &bindings,
                elementwise_groups(batch * conv.output.len()),
            ),
        }
    }

    /// dx from dy (already through the activation's derivative) and W.
    /// The faster version on this shape, measured as for `conv2d_forward`.
    pub fn conv2d_backward_input(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        w: Binding,
        dx: Binding,
    ) -> Dispatch {
        super::tune::fastest_conv(ctx, ConvPass::BackwardInput, |version| {
            self.conv2d_backward_input_version(ctx, version, conv, batch, dy, w, dx)
        })
    }

    /// dx from dy (already through the activation's derivative) and W,
    /// computed by `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_input_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        w: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let bindings = [Binding::whole(&uniform), dy, w, dx];
        let gemm = gemm_groups(batch, conv.input);
        let sub = subgroup_groups(batch, conv.input, 16);
        match (version, gemm, sub, &self.conv2d_sub) {
            (ConvVersion::ImplicitGemm, Some(groups), _, _) => self
                .conv2d_backward_input_gemm
                .dispatch(ctx, &bindings, groups),
            (ConvVersion::Subgroup, _, Some(groups), Some(sub)) => {
                sub.backward_input.dispatch(ctx, &bindings, groups)
            }
            _ => self.conv2d_backward_input.dispatch(
                ctx,
                &bindings,
                elementwise_groups(batch * conv.input.len()),
            ),
        }
    }

    /// dW from dy and x, with the faster version on this shape, measured as
    /// for `conv2d_forward`.
    pub fn conv2d_backward_weight(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        x: Binding,
        dw: Binding,
    ) -> Dispatch {
        super::tune::fastest_conv(ctx, ConvPass::BackwardWeight, |version| {
            self.conv2d_backward_weight_version(ctx, version, conv, batch, dy, x, dw)
        })
    }

    /// dW from dy and x, computed by `version`: one workgroup per weight
    /// (direct) or per 16 output channels × 4 taps of a kernel row
    /// (implicit GEMM).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_weight_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        x: Binding,
        dw: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let taps = conv.input.c * conv.kernel * conv.kernel;
        let (kernel, groups) = match version {
            // There is no subgroup version of this pass (see conv2d_subgroup.wgsl).
            ConvVersion::Direct | ConvVersion::Subgroup => {
                (&self.conv2d_backward_weight, conv.output.c * taps)
            }
            ConvVersion::ImplicitGemm => (
                &self.conv2d_backward_weight_gemm,
                conv.output.c.div_ceil(16) * conv.input.c * conv.kernel * conv.kernel.div_ceil(4),
            ),
        };
        let x_groups = groups.min(65535);
        kernel.dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, x, dw],
            [x_groups as u32, groups.div_ceil(x_groups) as u32, 1],
        )
    }

    /// db from dy: one workgroup per output channel.
    pub fn conv2d_backward_bias(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        db: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        self.conv2d_backward_bias.dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, db],
            [conv.output.c as u32, 1, 1],
        )
    }

    fn pool_params(pool: &MaxPool, batch: usize) -> PoolParams {
        PoolParams {
            batch: batch as u32,
            channels: pool.input.c as u32,
            in_h: pool.input.h as u32,
            in_w: pool.input.w as u32,
            out_h: pool.output.h as u32,
            out_w: pool.output.w as u32,
            size: pool.size as u32,
            stride: pool.stride as u32,
        }
    }

    /// y and argmax of max-pooling x.
    pub fn maxpool_forward(
        &self,
        ctx: &GpuContext,
        pool: &MaxPool,
        batch: usize,
        x: Binding,
        y: Binding,
        argmax: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("pool params", &Self::pool_params(pool, batch));
        self.maxpool_forward.dispatch(
            ctx,
            &[Binding::whole(&uniform), x, y, argmax],
            elementwise_groups(batch * pool.output.len()),
        )
    }

    /// dx from dy through the recorded winners.
    pub fn maxpool_backward(
        &self,
        ctx: &GpuContext,
        pool: &MaxPool,
        batch: usize,
        dy: Binding,
        argmax: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("pool params", &Self::pool_params(pool, batch));
        self.maxpool_backward.dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, argmax, dx],
            elementwise_groups(batch * pool.input.len()),
        )
    }

    /// Gathers a batch of `rows` images of `input_size` pixels by the order.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        input_size: usize,
        rows: usize,
        images: Binding,
        labels: Binding,
        order: Binding,
        batch_x: Binding,
        batch_labels: Binding,
    ) -> Dispatch {
        let params = GatherParams {
            input_size: input_size as u32,
            rows: rows as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("gather params", &params);
        // Whole packed words per invocation where every image starts on one.
        let (kernel, per_invocation) = if input_size.is_multiple_of(4) {
            (&self.gather4, 4)
        } else {
            (&self.gather, 1)
        };
        kernel.dispatch(
            ctx,
            &[
                Binding::step(steps),
                Binding::whole(&uniform),
                images,
                labels,
                order,
                batch_x,
                batch_labels,
            ],
            elementwise_groups(rows * input_size / per_invocation),
        )
    }
}
