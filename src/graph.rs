//! Layers → a static graph: shape inference, activation fusion, the flat
//! parameter layout, and initialisation. Neither backend's business, and no wgpu here.

use crate::spec::{LayerSpec, ModelSpec};
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A hidden layer's non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// f(x) = x (the output layer, whose logits go to softmax).
    #[value(skip)]
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    /// The code the shaders switch on (common.wgsl).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Tanh => 2,
            Activation::Sigmoid => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// The spec token of a hidden-layer activation.
    pub fn from_name(name: &str) -> Result<Activation> {
        match name {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            _ => bail!("unknown activation {name:?}"),
        }
    }

    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }

    /// f'(x) written in terms of the output y = f(x).
    pub fn grad_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
        }
    }
}

/// Shape of one example's activations: channels × height × width (a dense
/// layer's output is features × 1 × 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.h == 1 && self.w == 1 && self.c > 1 {
            write!(f, "{}", self.c)
        } else {
            write!(f, "{}×{}×{}", self.c, self.h, self.w)
        }
    }
}

/// A parameter tensor inside the flat parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch-style name, e.g. `layers.0.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in f32 elements; a multiple of `PARAM_ALIGN`.
    pub offset: usize,
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Parameter offsets are multiples of 64 f32s (256 bytes), so that each
/// tensor can be bound on its own as a range of the flat buffer.
pub const PARAM_ALIGN: usize = 64;

/// A dense layer: y = act(x · Wᵀ + b), x (batch, inputs), W (outputs, inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
    /// Indices into `Graph::params`.
    pub weight: usize,
    pub bias: usize,
}

/// A 2-D convolution over NCHW activations:
/// y[n,o,i,j] = act(b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n, c, i·s + u − p, j·s + v − p]),
/// with x zero outside the image. W is (out_c, in_c, k, k).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub input: Shape,
    pub output: Shape,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub activation: Activation,
    pub weight: usize,
    pub bias: usize,
}

/// Max-pooling over size×size windows moved by stride (no padding):
/// y[n,c,i,j] = max_{u,v < size} x[n, c, i·s + u, j·s + v].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool {
    pub input: Shape,
    pub output: Shape,
    pub size: usize,
    pub stride: usize,
}

/// One step of the planned network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dense(Dense),
    Conv(Conv2d),
    MaxPool(MaxPool),
}

impl Node {
    /// Values per example this node produces.
    pub fn output_len(&self) -> usize {
        match self {
            Node::Dense(d) => d.outputs,
            Node::Conv(c) => c.output.len(),
            Node::MaxPool(p) => p.output.len(),
        }
    }

    /// Values per example this node reads.
    pub fn input_len(&self) -> usize {
        match self {
            Node::Dense(d) => d.inputs,
            Node::Conv(c) => c.input.len(),
            Node::MaxPool(p) => p.input.len(),
        }
    }

    /// The (weight, bias) parameter indices, if the node has any.
    pub fn params(&self) -> Option<(usize, usize)> {
        match self {
            Node::Dense(d) => Some((d.weight, d.bias)),
            Node::Conv(c) => Some((c.weight, c.bias)),
            Node::MaxPool(_) => None,
        }
    }
}

/// The planned network: nodes in order, ending in logits that softmax
/// cross-entropy turns into a loss.
#[derive(Debug, Clone)]
pub struct Graph {
    pub spec: ModelSpec,
    pub input: Shape,
    pub nodes: Vec<Node>,
    pub params: Vec<ParamInfo>,
    /// Length of the flat parameter buffer, padding included.
    pub param_len: usize,
}

impl Graph {
    /// Infers every shape from the input's and checks that the spec fits
    /// it and ends in `classes` outputs. Errors name the layer and shapes.
    pub fn new(spec: &ModelSpec, input: Shape, classes: usize) -> Result<Graph> {
        let mut params: Vec<ParamInfo> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut offset = 0;
        let mut push = |name: String, shape: Vec<usize>| {
            let info = ParamInfo {
                name,
                shape,
                offset,
            };
            offset += info.len().next_multiple_of(PARAM_ALIGN);
            params.push(info);
            params.len() - 1
        };
        let mut shape = input;
        for (i, layer) in spec.layers.iter().enumerate() {
            let at = || format!("layer {i} ({layer}) on input {shape}");
            match *layer {
                LayerSpec::Dense { outputs } => {
                    let inputs = shape.len();
                    let weight = push(format!("layers.{i}.weight"), vec![outputs, inputs]);
                    let bias = push(format!("layers.{i}.bias"), vec![outputs]);
                    nodes.push(Node::Dense(Dense {
                        inputs,
                        outputs,
                        activation: Activation::Identity,
                        weight,
                        bias,
                    }));
                    shape = Shape {
                        c: outputs,
                        h: 1,
                        w: 1,
                    };
                }
                LayerSpec::Conv {
                    channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    let (ph, pw) = (shape.h + 2 * padding, shape.w + 2 * padding);
                    if kernel > ph || kernel > pw {
                        bail!(
                            "{}: the {kernel}×{kernel} kernel is larger than the {ph}×{pw} padded feature map",
                            at()
                        );
                    }
                    let output = Shape {
                        c: channels,
                        h: (ph - kernel) / stride + 1,
                        w: (pw - kernel) / stride + 1,
                    };
                    let weight = push(
                        format!("layers.{i}.weight"),
                        vec![channels, shape.c, kernel, kernel],
                    );
                    let bias = push(format!("layers.{i}.bias"), vec![channels]);
                    nodes.push(Node::Conv(Conv2d {
                        input: shape,
                        output,
                        kernel,
                        stride,
                        padding,
                        activation: Activation::Identity,
                        weight,
                        bias,
                    }));
                    shape = output;
                }
                LayerSpec::MaxPool { size, stride } => {
                    if size > shape.h || size > shape.w {
                        bail!(
                            "{}: the {size}×{size} pool window is larger than the {}×{} feature map",
                            at(),
                            shape.h,
                            shape.w
                        );
                    }
                    let output = Shape {
                        c: shape.c,
                        h: (shape.h - size) / stride + 1,
                        w: (shape.w - size) / stride + 1,
                    };
                    nodes.push(Node::MaxPool(MaxPool {
                        input: shape,
                        output,
                        size,
                        stride,
                    }));
                    shape = output;
                }
                LayerSpec::Act(act) => {
                    // Activations are fused into the conv or dense layer before them.
                    let slot = match nodes.last_mut() {
                        Some(Node::Dense(d)) => &mut d.activation,
                        Some(Node::Conv(c)) => &mut c.activation,
                        _ => bail!(
                            "{}: an activation must directly follow a conv or dense layer",
                            at()
                        ),
                    };
                    if *slot != Activation::Identity {
                        bail!("{}: the layer before already has an activation", at());
                    }
                    *slot = act;
                }
            }
        }
        match nodes.last() {
            Some(Node::Dense(d)) if d.activation == Activation::Identity => {}
            Some(Node::Dense(_)) => bail!(
                "the model must end in a dense layer without activation (its outputs are the logits), not {}",
                spec.layers.last().map_or(String::new(), |l| l.to_string())
            ),
            _ => bail!("the model must end in a dense layer of {classes} outputs (the logits)"),
        }
        if shape.len() != classes {
            bail!(
                "the model ends in {} outputs but the data has {classes} classes; make the last layer dense{classes}",
                shape.len()
            );
        }
        Ok(Graph {
            spec: spec.clone(),
            input,
            nodes,
            params,
            param_len: offset,
        })
    }

    pub fn input_size(&self) -> usize {
        self.input.len()
    }

    pub fn classes(&self) -> usize {
        self.nodes.last().map_or(0, Node::output_len)
    }

    /// Number of trainable scalars (padding excluded).
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(ParamInfo::len).sum()
    }

    /// PyTorch's default initialisation for linear and conv layers: weight
    /// and bias uniform in ±1/√fan_in (fan_in = in_c·k·k for a conv). Drawn on
    /// the host from `seed`, so every backend starts from the same weights.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flat = vec![0.0f32; self.param_len];
        for node in &self.nodes {
            let Some((weight, bias)) = node.params() else {
                continue;
            };
            let fan_in: usize = self.params[weight].shape[1..].iter().product();
            let bound = 1.0 / (fan_in as f32).sqrt();
            for idx in [weight, bias] {
                for v in &mut flat[self.params[idx].range()] {
                    *v = rng.random_range(-bound..bound);
                }
            }
        }
        flat
    }
}

/// The epoch's order of training examples, a permutation drawn from `seed`
/// and the epoch number, the same on every backend.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<u32> {
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ 0x5eed_0000_0000 ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };

    fn graph(spec: &str) -> Result<Graph> {
        Graph::new(&ModelSpec::parse(spec)?, MNIST, 10)
    }

    #[test]
    fn mlp_params_are_aligned_and_named_like_pytorch() {
        let g = graph("mlp").unwrap();
        let names: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.2.weight",
                "layers.2.bias"
            ]
        );
        assert_eq!(g.params[0].shape, vec![128, 784]);
        assert!(g.params.iter().all(|p| p.offset % PARAM_ALIGN == 0));
        assert_eq!(g.num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
        assert!(matches!(&g.nodes[0], Node::Dense(d) if d.activation == Activation::Relu));
        assert!(matches!(&g.nodes[1], Node::Dense(d) if d.activation == Activation::Identity));
    }

    #[test]
    fn cnn_shapes_are_inferred() {
        let g = graph("cnn").unwrap();
        let outputs: Vec<usize> = g.nodes.iter().map(Node::output_len).collect();
        assert_eq!(
            outputs,
            [
                16 * 28 * 28,
                16 * 14 * 14,
                32 * 14 * 14,
                32 * 7 * 7,
                128,
                10
            ]
        );
        assert_eq!(g.params[0].shape, vec![16, 1, 3, 3]);
        assert_eq!(g.params[2].shape, vec![32, 16, 3, 3]);
        assert_eq!(g.params[4].name, "layers.6.weight");
        assert_eq!(g.params[4].shape, vec![128, 32 * 7 * 7]);
        let strided = graph("conv4k3s2,pool2s1,dense10").unwrap();
        assert_eq!(strided.nodes[0].output_len(), 4 * 13 * 13);
        assert_eq!(strided.nodes[1].output_len(), 4 * 12 * 12);
    }

    #[test]
    fn specs_that_do_not_fit_name_the_layer_and_shapes() {
        let err = |s: &str| format!("{:#}", graph(s).unwrap_err());
        assert!(
            err("conv8k5,pool2,conv8k5,pool2,conv8k5,dense10")
                .contains("layer 4 (conv8k5) on input 8×4×4: the 5×5 kernel is larger than the 4×4 padded feature map"),
            "{}",
            err("conv8k5,pool2,conv8k5,pool2,conv8k5,dense10")
        );
        assert!(err("pool2,pool2,pool2,pool2,pool2,dense10")
            .contains("layer 4 (pool2) on input 1×1×1: the 2×2 pool window"));
        assert!(
            err("dense128,relu,dense9").contains("ends in 9 outputs but the data has 10 classes")
        );
        assert!(err("conv8k3,relu,relu,dense10").contains("layer 2 (relu)"));
        assert!(err("pool2,relu,dense10").contains("must directly follow a conv or dense layer"));
        assert!(err("dense10,relu").contains("must end in a dense layer without activation"));
        assert!(err("conv10k28").contains("must end in a dense layer"));
    }

    #[test]
    fn epoch_order_is_a_permutation_that_changes_per_epoch() {
        let a = epoch_order(100, 7, 0);
        let b = epoch_order(100, 7, 1);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(100, 7, 0));
    }
}
