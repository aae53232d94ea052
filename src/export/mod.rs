//! `gpunet export`: a trained model for other tools. The network is first
//! translated into PyTorch's terms ([`TorchNet`]: the modules of an
//! `nn.Sequential`, one per spec token, with an `nn.Flatten` wherever a
//! dense layer reads an N×C×H×W value); both formats are written from it:
//!
//! - [`torch`]: a weights-only safetensors file whose names are that
//!   `nn.Sequential`'s `state_dict()` names (`0.weight`, `7.running_mean`,
//!   `3.body.0.weight`), and a small Python file whose `build()` returns the
//!   `nn.Sequential`, so that `load_state_dict(…, strict=True)` takes it;
//! - [`onnx`]: an ONNX graph (opset 13) of the same modules, its
//!   initialisers named like the torch tensors.
//!
//! Both networks take what gpunet's own network takes: the *normalised*
//! batch, N×C×H×W f32 (`gpunet.normalisation` in the file; today
//! x = pixel / 255), and give the logits, N×classes (no softmax).

pub mod onnx;
pub mod torch;

use crate::graph::{Activation, Graph};
use crate::ops::bn::BatchNorm;
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::pool::MaxPool;
use crate::spec::LayerSpec;
use anyhow::{anyhow, bail, Result};

/// One PyTorch module of the exported network.
#[derive(Debug, Clone, PartialEq)]
pub enum Module {
    /// `nn.Flatten()`: N×C×H×W → N×(C·H·W), in C, H, W order (the order of
    /// gpunet's dense weights' columns).
    Flatten,
    /// `nn.Linear(inputs, outputs)`: weight [outputs, inputs], bias [outputs].
    Linear {
        inputs: usize,
        outputs: usize,
    },
    /// `nn.Conv2d`: weight [out_c, in_c, k, k], bias [out_c].
    Conv2d(Conv2d),
    /// `nn.MaxPool2d(kernel_size, stride)`, no padding, rounding down.
    MaxPool2d {
        size: usize,
        stride: usize,
    },
    /// `nn.BatchNorm1d(channels)` on N×C (`flat`) or `nn.BatchNorm2d` on
    /// N×C×H×W; eps 1e-5, momentum 0.1, as gpunet's.
    BatchNorm {
        channels: usize,
        eps: f32,
        flat: bool,
    },
    Activation(Activation),
    /// `nn.Dropout(p)`: the identity in evaluation.
    Dropout(f32),
    /// `nn.AdaptiveAvgPool2d(1)`: gpunet's `gap`, N×C×H×W → N×C×1×1.
    GlobalAvgPool,
    /// gpunet's `res(...)`: y = shortcut(x) + body(x), the shortcut a 1×1
    /// conv (`Some`) or `nn.Identity()`.
    Residual {
        body: Vec<Entry>,
        shortcut: Option<Conv2d>,
    },
}

/// A module and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub module: Module,
    /// Its PyTorch name: `7`, `3.body.0` (the prefix of its tensors' names).
    pub path: String,
    /// The gpunet token it stands for, as `layers.7 (dense128)`; None for
    /// an inserted `nn.Flatten`.
    pub source: Option<String>,
}

/// The gpunet network as PyTorch modules, and how its tensors are renamed.
#[derive(Debug, Clone)]
pub struct TorchNet {
    pub modules: Vec<Entry>,
    /// (gpunet name, PyTorch name, shape) of every parameter and buffer, in
    /// the graph's order (parameters first).
    pub tensors: Vec<TensorName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorName {
    pub gpunet: String,
    pub torch: String,
    pub shape: Vec<usize>,
}

/// Walks the spec's tokens with the graph's shapes.
struct Walk<'g> {
    graph: &'g Graph,
    /// gpunet node name → PyTorch module name, for the tensors.
    renames: Vec<(String, String)>,
}

impl TorchNet {
    /// The PyTorch modules that compute what `graph` computes. Errors name
    /// the token PyTorch's modules cannot take as gpunet does (a conv,
    /// pool or gap after the values were flattened).
    pub fn new(graph: &Graph) -> Result<TorchNet> {
        let mut walk = Walk {
            graph,
            renames: Vec::new(),
        };
        let mut modules = Vec::new();
        let mut flat = false;
        walk.layers(&graph.spec.layers, "layers", "", &mut modules, &mut flat)?;
        let mut tensors = Vec::new();
        for infos in [(&graph.params), (&graph.buffers)] {
            for info in infos.iter() {
                tensors.push(TensorName {
                    gpunet: info.name.clone(),
                    torch: walk.rename(&info.name)?,
                    shape: info.shape.clone(),
                });
            }
        }
        Ok(TorchNet { modules, tensors })
    }

    /// The PyTorch name of gpunet's tensor `name`.
    pub fn torch_name(&self, gpunet: &str) -> Option<&str> {
        self.tensors
            .iter()
            .find(|t| t.gpunet == gpunet)
            .map(|t| t.torch.as_str())
    }
}

impl Walk<'_> {
    fn node<T: 'static + Copy>(&self, name: &str) -> Result<T> {
        self.graph
            .nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| n.op.as_any().downcast_ref::<T>().copied())
            .ok_or_else(|| anyhow!("the graph has no node {name} of the expected kind"))
    }

    /// `layers.3.body.0.weight` → `3.body.0.weight`, by the longest node
    /// name that prefixes it.
    fn rename(&self, name: &str) -> Result<String> {
        self.renames
            .iter()
            .filter(|(g, _)| {
                name.strip_prefix(g.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            })
            .max_by_key(|(g, _)| g.len())
            .map(|(g, t)| format!("{t}{}", &name[g.len()..]))
            .ok_or_else(|| anyhow!("no PyTorch module holds gpunet's tensor {name}"))
    }

    /// Appends the modules of `layers` (gpunet names `<prefix>.<i>`) to
    /// `out`, PyTorch names `<path_prefix><position>`; `flat` says whether
    /// the value is N×features (true) or N×C×H×W.
    fn layers(
        &mut self,
        layers: &[LayerSpec],
        prefix: &str,
        path_prefix: &str,
        out: &mut Vec<Entry>,
        flat: &mut bool,
    ) -> Result<()> {
        for (i, layer) in layers.iter().enumerate() {
            let name = format!("{prefix}.{i}");
            let source = Some(format!("{name} ({layer})"));
            let four_d = |what: &str| -> Result<()> {
                if *flat {
                    bail!(
                        "cannot export {name} ({layer}): it follows a dense or flatten layer, and PyTorch's {what} needs N×C×H×W values"
                    );
                }
                Ok(())
            };
            let module = match layer {
                LayerSpec::Dense { .. } => {
                    if !*flat {
                        out.push(Entry {
                            module: Module::Flatten,
                            path: format!("{path_prefix}{}", out.len()),
                            source: None,
                        });
                        *flat = true;
                    }
                    let d: Dense = self.node(&name)?;
                    Module::Linear {
                        inputs: d.inputs,
                        outputs: d.outputs,
                    }
                }
                LayerSpec::Conv { .. } => {
                    four_d("nn.Conv2d")?;
                    Module::Conv2d(self.node::<Conv2d>(&name)?)
                }
                LayerSpec::MaxPool { size, stride } => {
                    four_d("nn.MaxPool2d")?;
                    let _: MaxPool = self.node(&name)?;
                    Module::MaxPool2d {
                        size: *size,
                        stride: *stride,
                    }
                }
                LayerSpec::BatchNorm => {
                    let bn: BatchNorm = self.node(&name)?;
                    Module::BatchNorm {
                        channels: bn.shape.c,
                        eps: bn.eps,
                        flat: *flat,
                    }
                }
                LayerSpec::Act(act) => Module::Activation(*act),
                LayerSpec::Dropout(p) => Module::Dropout(p.get()),
                LayerSpec::GlobalAvgPool => {
                    four_d("nn.AdaptiveAvgPool2d")?;
                    Module::GlobalAvgPool
                }
                LayerSpec::Flatten => {
                    *flat = true;
                    Module::Flatten
                }
                LayerSpec::Residual(body) => {
                    let path = format!("{path_prefix}{}", out.len());
                    let mut inner = Vec::new();
                    let mut body_flat = *flat;
                    self.layers(
                        body,
                        &format!("{name}.body"),
                        &format!("{path}.body."),
                        &mut inner,
                        &mut body_flat,
                    )?;
                    if body_flat != *flat {
                        bail!(
                            "cannot export {name} ({layer}): its body flattens its values, and the sum needs the same shape on both sides"
                        );
                    }
                    let shortcut_name = format!("{name}.shortcut");
                    let shortcut = self.node::<Conv2d>(&shortcut_name).ok();
                    if shortcut.is_some() {
                        four_d("1×1 shortcut nn.Conv2d")?;
                        self.renames
                            .push((shortcut_name, format!("{path}.shortcut")));
                    }
                    Module::Residual {
                        body: inner,
                        shortcut,
                    }
                }
            };
            let path = format!("{path_prefix}{}", out.len());
            if matches!(
                module,
                Module::Linear { .. } | Module::Conv2d(_) | Module::BatchNorm { .. }
            ) {
                self.renames.push((name, path.clone()));
            }
            out.push(Entry {
                module,
                path,
                source,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;
    use crate::spec::ModelSpec;

    fn net(spec: &str, input: Shape) -> TorchNet {
        let graph = Graph::new(&ModelSpec::parse(spec).unwrap(), input, 10).unwrap();
        TorchNet::new(&graph).unwrap()
    }

    const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };

    #[test]
    fn a_flatten_goes_before_the_first_dense_layer() {
        let n = net("cnn", MNIST);
        let paths: Vec<(&str, &str)> = n
            .tensors
            .iter()
            .map(|t| (t.gpunet.as_str(), t.torch.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("layers.0.weight", "0.weight"),
                ("layers.0.bias", "0.bias"),
                ("layers.3.weight", "3.weight"),
                ("layers.3.bias", "3.bias"),
                ("layers.6.weight", "7.weight"),
                ("layers.6.bias", "7.bias"),
                ("layers.8.weight", "9.weight"),
                ("layers.8.bias", "9.bias"),
            ]
        );
        assert_eq!(n.modules[6].module, Module::Flatten);
        assert_eq!(n.modules[6].source, None);
        // An MLP reads N×1×28×28 too: a flatten first.
        let n = net("mlp", MNIST);
        assert_eq!(n.modules[0].module, Module::Flatten);
        assert_eq!(n.torch_name("layers.2.bias"), Some("3.bias"));
        // With the spec's own flatten token nothing moves.
        let n = net(
            "conv4k3,relu,pool2,flatten,dense16,relu,dropout0.5,bn,dense10",
            MNIST,
        );
        assert_eq!(n.modules.len(), 9);
        assert_eq!(n.torch_name("layers.4.weight"), Some("4.weight"));
        assert_eq!(
            n.modules[7].module,
            Module::BatchNorm {
                channels: 16,
                eps: 1e-5,
                flat: true
            }
        );
        assert_eq!(
            n.torch_name("layers.7.num_batches_tracked"),
            Some("7.num_batches_tracked")
        );
    }

    #[test]
    fn residual_blocks_keep_their_nested_names() {
        let n = net(
            "conv4k3p1,bn,relu,res(conv8k3s2p1,bn,relu,conv8k3p1),relu,gap,dense10",
            MNIST,
        );
        let names: Vec<&str> = n.tensors.iter().map(|t| t.torch.as_str()).collect();
        assert!(names.contains(&"3.body.0.weight"), "{names:?}");
        assert!(names.contains(&"3.body.1.running_var"), "{names:?}");
        assert!(names.contains(&"3.shortcut.weight"), "{names:?}");
        // gap stays 4-D, so a flatten goes before the head.
        assert_eq!(n.modules[5].module, Module::GlobalAvgPool);
        assert_eq!(n.modules[6].module, Module::Flatten);
        assert_eq!(n.torch_name("layers.6.weight"), Some("7.weight"));
        // Every gpunet tensor has exactly one PyTorch name.
        let mut torch: Vec<&str> = names.clone();
        torch.sort();
        torch.dedup();
        assert_eq!(torch.len(), n.tensors.len());
    }

    #[test]
    fn what_pytorch_cannot_take_is_named() {
        // A block of dense layers on flat values is fine: N×16 + N×16.
        let n = net("flatten,dense16,res(dense16,relu),dense10", MNIST);
        assert_eq!(
            n.torch_name("layers.2.body.0.weight"),
            Some("2.body.0.weight")
        );
        // Its shortcut would be a conv, which flat values cannot take.
        let graph = Graph::new(
            &ModelSpec::parse("flatten,dense16,res(dense8),dense10").unwrap(),
            MNIST,
            10,
        );
        if let Ok(graph) = graph {
            let err = TorchNet::new(&graph).unwrap_err().to_string();
            assert!(
                err.contains("cannot export layers.2 (res(dense8))"),
                "{err}"
            );
        }
        let graph = Graph::new(
            &ModelSpec::parse("conv2k3,flatten,conv2k1,dense10").unwrap(),
            MNIST,
            10,
        )
        .unwrap();
        let err = TorchNet::new(&graph).unwrap_err().to_string();
        assert!(
            err.contains("cannot export layers.2 (conv2k1): it follows a dense or flatten layer"),
            "{err}"
        );
    }
}
