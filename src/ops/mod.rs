//! One op, one place: each folder under `src/ops/` holds an op's shape rule,
//! its CPU reference (forward and backward, in `reference.rs`) and its GPU
//! launchers with their parameter structs (`launch.rs`), beside
//! `shaders/<op>.wgsl`.
//!
//! The graph, the CPU network, the GPU planner, the training loop and
//! `inspect` know a layer only through the [`Op`] trait: what it produces,
//! what it declares (parameters, non-trainable buffers, tensors saved for
//! backward), and how it runs forward and backward on each device.
//!
//! Ops that are not layers live here too, with the same layout: the loss
//! (`softmax_xent`), the optimisers (`optim`), the batch gather (`gather`)
//! and the matmul kernels the dense layer is built on (`matmul`).

pub mod activation;
pub mod add;
pub mod bn;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod gap;
pub mod gather;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod softmax_xent;

use crate::gpu::{Binding, Dispatch, GpuContext, Kernels};
use crate::graph::Shape;
pub use activation::Activation;
use std::any::Any;
use std::fmt::Debug;

/// Whether a forward pass is part of training (batch statistics, dropout
/// masks) or of evaluation, inference and `inspect` (running statistics,
/// no dropout). Every node's forward is told which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// How a declared tensor starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in ±bound, drawn from the run's seed (PyTorch's default for
    /// linear and conv layers uses bound = 1/√fan_in).
    Uniform(f32),
    Zeros,
    Ones,
}

/// A parameter or non-trainable buffer a node declares, named as PyTorch
/// names it within the layer (`weight`, `bias`, `running_mean`).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDecl {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// The element type of a tensor saved for the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    U32,
}

/// A tensor that a node's forward pass keeps for its backward pass, beside
/// its inputs and its output (which every node may read): e.g. max-pool's
/// winners, or batch norm's per-channel statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDecl {
    pub name: &'static str,
    /// Elements per example when `per_example`, else in all.
    pub len: usize,
    pub per_example: bool,
    pub dtype: Dtype,
}

impl SavedDecl {
    /// Elements for a batch of `rows`.
    pub fn elements(&self, rows: usize) -> usize {
        if self.per_example {
            rows * self.len
        } else {
            self.len
        }
    }
}

/// A saved tensor on the CPU.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

impl Saved {
    /// Zeros for `rows` examples of `decl`.
    pub fn zeros(decl: &SavedDecl, rows: usize) -> Saved {
        match decl.dtype {
            Dtype::F32 => Saved::F32(vec![0.0; decl.elements(rows)]),
            Dtype::U32 => Saved::U32(vec![0; decl.elements(rows)]),
        }
    }

    pub fn f32s(&self) -> &[f32] {
        match self {
            Saved::F32(v) => v,
            Saved::U32(_) => panic!("saved tensor holds u32s, read as f32s"),
        }
    }

    pub fn u32s(&self) -> &[u32] {
        match self {
            Saved::U32(v) => v,
            Saved::F32(_) => panic!("saved tensor holds f32s, read as u32s"),
        }
    }

    pub fn f32s_mut(&mut self) -> &mut [f32] {
        match self {
            Saved::F32(v) => v,
            Saved::U32(_) => panic!("saved tensor holds u32s, written as f32s"),
        }
    }

    pub fn u32s_mut(&mut self) -> &mut [u32] {
        match self {
            Saved::U32(v) => v,
            Saved::F32(_) => panic!("saved tensor holds f32s, written as u32s"),
        }
    }
}

/// A node's forward pass on the CPU over `rows` examples. Slices are in the
/// order the op declares them; `output` is (rows × output length). `step`
/// (the training step's number in the whole run) and `seed` (the run's)
/// let an op draw the same random numbers as its GPU version.
pub struct CpuForward<'a> {
    pub mode: Mode,
    pub rows: usize,
    pub step: u64,
    pub seed: u64,
    pub inputs: Vec<&'a [f32]>,
    pub params: Vec<&'a [f32]>,
    pub buffers: Vec<&'a mut [f32]>,
    pub output: &'a mut [f32],
    pub saved: &'a mut [Saved],
}

/// A node's backward pass on the CPU. `grad_output` is ∂L/∂output (an op
/// may overwrite it, e.g. with ∂L/∂pre-activation); when `skip_activation`
/// it is already with respect to the pre-activation, so a fused
/// activation's derivative must not be applied. Every `grad_params` slice
/// and every present `grad_inputs` slice is overwritten (not accumulated):
/// the caller sums the gradients of a value used twice.
pub struct CpuBackward<'a> {
    pub rows: usize,
    pub inputs: Vec<&'a [f32]>,
    pub output: &'a [f32],
    pub saved: &'a [Saved],
    pub params: Vec<&'a [f32]>,
    pub grad_output: &'a mut [f32],
    pub skip_activation: bool,
    pub grad_params: Vec<&'a mut [f32]>,
    pub grad_inputs: Vec<Option<&'a mut [f32]>>,
}

/// A node's forward pass recorded on the GPU for a batch of `batch` rows.
/// In training, `steps` is the split's step-slot buffer (bind it with
/// `Binding::step`: the step's number in the run is its `global_step`);
/// `seed` is the run's.
pub struct GpuForward<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub mode: Mode,
    pub batch: usize,
    pub steps: Option<&'a wgpu::Buffer>,
    pub seed: u64,
    pub inputs: Vec<Binding<'a>>,
    pub params: Vec<Binding<'a>>,
    pub buffers: Vec<Binding<'a>>,
    pub output: Binding<'a>,
    pub saved: Vec<Binding<'a>>,
}

/// A node's backward pass recorded on the GPU; the same contract as
/// [`CpuBackward`] (`grad_output` may be overwritten in place).
pub struct GpuBackward<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub batch: usize,
    pub inputs: Vec<Binding<'a>>,
    pub output: Binding<'a>,
    pub saved: Vec<Binding<'a>>,
    pub params: Vec<Binding<'a>>,
    pub grad_output: Binding<'a>,
    pub skip_activation: bool,
    pub grad_params: Vec<Binding<'a>>,
    pub grad_inputs: Vec<Option<Binding<'a>>>,
}

/// What a layer is, to everything above the ops: the graph builds nodes of
/// it, the CPU network and the GPU planner run it, `inspect` studies it.
pub trait Op: Debug + Send + Sync + Any {
    /// The spec token it was built from, with a fused activation after a
    /// comma: `conv16k3p1, relu`.
    fn label(&self) -> String;
    /// Values per example it produces, as channels × height × width.
    fn output(&self) -> Shape;
    /// Trainable parameters, in the order the flat parameter buffer holds them.
    fn params(&self) -> Vec<TensorDecl> {
        Vec::new()
    }
    /// Non-trainable buffers (running statistics), saved with the model.
    fn buffers(&self) -> Vec<TensorDecl> {
        Vec::new()
    }
    /// Tensors its forward pass keeps for its backward pass.
    fn saved(&self) -> Vec<SavedDecl> {
        Vec::new()
    }
    /// The activation fused into its output (identity if none).
    fn activation(&self) -> Activation {
        Activation::Identity
    }
    /// This op with `act` fused into its output, where it can fuse one.
    fn fused_with(&self, _act: Activation) -> Option<Box<dyn Op>> {
        None
    }
    /// Units `inspect` studies: a dense layer's outputs, a conv layer's
    /// channels. None for ops whose outputs are not units of their own.
    fn units(&self) -> Option<usize> {
        None
    }
    /// For `inspect`'s and the bench's op-specific views (`downcast_ref`).
    fn as_any(&self) -> &dyn Any;

    fn forward_cpu(&self, f: CpuForward);
    fn backward_cpu(&self, b: CpuBackward);
    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch>;
    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch>;
}

/// Disjoint mutable views of `whole`, one per range (ranges must not
/// overlap; they may come in any order).
pub fn split_ranges_mut<'a>(
    whole: &'a mut [f32],
    ranges: &[std::ops::Range<usize>],
) -> Vec<&'a mut [f32]> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut slots: Vec<Option<&'a mut [f32]>> = (0..ranges.len()).map(|_| None).collect();
    let mut rest = whole;
    let mut consumed = 0;
    for i in order {
        let r = &ranges[i];
        assert!(r.start >= consumed, "overlapping ranges");
        let (_, tail) = rest.split_at_mut(r.start - consumed);
        let (piece, tail) = tail.split_at_mut(r.len());
        slots[i] = Some(piece);
        rest = tail;
        consumed = r.end;
    }
    slots.into_iter().map(|s| s.expect("every range")).collect()
}
