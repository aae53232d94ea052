//! Layers → a static graph: shapes, the flat parameter layout, and
//! initialisation. Neither backend's business, and no wgpu here.

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

/// What the user asked for: layer widths from input to classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub layers: Vec<usize>,
    pub activation: Activation,
}

impl ModelSpec {
    /// Checks the spec against the data: the first width must be the
    /// input size, the last the number of classes.
    pub fn validate(&self, input_size: usize, classes: usize) -> Result<()> {
        if self.layers.len() < 2 {
            bail!(
                "--layers needs at least an input and an output width, e.g. {input_size},{classes}; got {:?}",
                self.layers
            );
        }
        if let Some(i) = self.layers.iter().position(|&w| w == 0) {
            bail!("--layers: layer {i} has width 0");
        }
        if self.layers[0] != input_size {
            bail!(
                "--layers must start at the data's input size {input_size} (its images are {input_size} pixels), not {}",
                self.layers[0]
            );
        }
        let last = *self.layers.last().unwrap_or(&0);
        if last != classes {
            bail!("--layers must end at the number of classes {classes}, not {last}");
        }
        Ok(())
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
    /// Index into `Graph::params`.
    pub weight: usize,
    pub bias: usize,
}

/// The planned network: dense layers in order, ending in logits that
/// softmax cross-entropy turns into a loss.
#[derive(Debug, Clone)]
pub struct Graph {
    pub spec: ModelSpec,
    pub layers: Vec<Dense>,
    pub params: Vec<ParamInfo>,
    /// Length of the flat parameter buffer, padding included.
    pub param_len: usize,
}

impl Graph {
    pub fn new(spec: &ModelSpec) -> Graph {
        let mut params = Vec::new();
        let mut layers = Vec::new();
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
        let n_layers = spec.layers.len() - 1;
        for (i, pair) in spec.layers.windows(2).enumerate() {
            let (inputs, outputs) = (pair[0], pair[1]);
            let weight = push(format!("layers.{i}.weight"), vec![outputs, inputs]);
            let bias = push(format!("layers.{i}.bias"), vec![outputs]);
            let activation = if i + 1 == n_layers {
                Activation::Identity
            } else {
                spec.activation
            };
            layers.push(Dense {
                inputs,
                outputs,
                activation,
                weight,
                bias,
            });
        }
        Graph {
            spec: spec.clone(),
            layers,
            params,
            param_len: offset,
        }
    }

    pub fn input_size(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Number of trainable scalars (padding excluded).
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(ParamInfo::len).sum()
    }

    /// PyTorch's default initialisation for linear layers: weight and bias
    /// uniform in ±1/√fan_in. Drawn on the host from `seed`, so every
    /// backend starts from the same weights.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flat = vec![0.0f32; self.param_len];
        for layer in &self.layers {
            let bound = 1.0 / (layer.inputs as f32).sqrt();
            for idx in [layer.weight, layer.bias] {
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

    #[test]
    fn params_are_aligned_and_named_like_pytorch() {
        let g = Graph::new(&ModelSpec {
            layers: vec![784, 128, 10],
            activation: Activation::Relu,
        });
        let names: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.1.weight",
                "layers.1.bias"
            ]
        );
        assert_eq!(g.params[0].shape, vec![128, 784]);
        assert!(g.params.iter().all(|p| p.offset % PARAM_ALIGN == 0));
        assert_eq!(g.num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
        assert_eq!(g.layers[0].activation, Activation::Relu);
        assert_eq!(g.layers[1].activation, Activation::Identity);
    }

    #[test]
    fn spec_validation_names_the_problem() {
        let spec = |layers: Vec<usize>| ModelSpec {
            layers,
            activation: Activation::Relu,
        };
        assert!(spec(vec![784, 10]).validate(784, 10).is_ok());
        let e = spec(vec![100, 10]).validate(784, 10).unwrap_err();
        assert!(e
            .to_string()
            .contains("must start at the data's input size 784"));
        let e = spec(vec![784, 32, 9]).validate(784, 10).unwrap_err();
        assert!(e
            .to_string()
            .contains("must end at the number of classes 10"));
        let e = spec(vec![784, 0, 10]).validate(784, 10).unwrap_err();
        assert!(e.to_string().contains("width 0"));
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
