//! One launcher per kernel: a typed parameter struct (mirrored at the top of
//! its WGSL file) becomes a uniform, and the launch a `Dispatch`.

use super::kernel::{elementwise_groups, Binding, Dispatch};
use super::shaders::Kernels;
use super::GpuContext;
use crate::graph::Activation;

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

/// Mirrors `SgdParams` in optim.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdParams {
    pub len: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
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
    /// c = act(op(a)·op(b) + bias).
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
        let params = MatmulParams {
            m: shape.m as u32,
            n: shape.n as u32,
            k: shape.k as u32,
            epilogue: u32::from(bias.is_some()) | (act.code() << 8),
        };
        let uniform = ctx.uniform("matmul params", &params);
        let kernel = match form {
            MatmulForm::NN => &self.matmul_nn,
            MatmulForm::TN => &self.matmul_tn,
            MatmulForm::NT => &self.matmul_nt,
        };
        let bias = bias.unwrap_or(Binding::whole(&self.placeholder));
        let groups = [
            shape.n.div_ceil(64).max(1) as u32,
            shape.m.div_ceil(64).max(1) as u32,
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

    /// One SGD-with-momentum update of `len` parameters. The returned uniform
    /// holds the hyper-parameters; rewrite it to change them.
    pub fn sgd_momentum(
        &self,
        ctx: &GpuContext,
        hyper: SgdParams,
        params: Binding,
        grads: Binding,
        velocity: Binding,
    ) -> (Dispatch, wgpu::Buffer) {
        let uniform = ctx.uniform("sgd params", &hyper);
        let dispatch = self.sgd_momentum.dispatch(
            ctx,
            &[Binding::whole(&uniform), params, grads, velocity],
            elementwise_groups(hyper.len as usize),
        );
        (dispatch, uniform)
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
        self.gather.dispatch(
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
            elementwise_groups(rows * input_size),
        )
    }
}
