//! `gpunet export --format torch`: the weights under the `nn.Sequential`'s
//! `state_dict()` names, in a safetensors file with no optimiser state, and
//! the Python that builds that `nn.Sequential`.

use super::{Entry, Module, TorchNet};
use crate::checkpoint::{self, Checkpoint, NamedTensor, Stored};
use crate::graph::Activation;
use crate::model_file::{self, SavedModel};
use anyhow::Result;
use std::fmt::Write;
use std::path::Path;

/// The metadata key that says the tensors carry PyTorch's names (value
/// [`TORCH_NAMES`]); files without it carry gpunet's (`layers.N...`).
pub const NAMES_KEY: &str = "gpunet.tensor_names";
pub const TORCH_NAMES: &str = "pytorch-sequential";

/// The weights-only checkpoint: every parameter and buffer under its
/// PyTorch name, and gpunet's metadata about the model (spec, input shape,
/// classes, normalisation) so that gpunet's `eval`, `predict` and `inspect`
/// read it too.
pub fn weights(model: &SavedModel, net: &TorchNet) -> Checkpoint {
    let graph = &model.graph;
    let mut tensors = Vec::new();
    for (infos, values) in [
        (&graph.params, &model.params),
        (&graph.buffers, &model.buffers),
    ] {
        for info in infos.iter() {
            let name = net
                .torch_name(&info.name)
                .expect("TorchNet names every tensor of its graph");
            tensors.push(NamedTensor {
                name: name.to_string(),
                shape: info.shape.clone(),
                data: values[info.range()].to_vec(),
                dtype: model_file::buffer_dtype(&info.name),
            });
        }
    }
    debug_assert!(tensors
        .iter()
        .all(|t| t.dtype == Stored::F32 || t.name.ends_with("num_batches_tracked")));
    let mut metadata = model_file::description(graph);
    metadata.insert(NAMES_KEY.into(), TORCH_NAMES.into());
    Checkpoint { tensors, metadata }
}

/// Writes the safetensors file at `out` and the Python beside it.
pub fn save(model: &SavedModel, net: &TorchNet, out: &Path, python: &Path) -> Result<()> {
    let stem = out
        .file_name()
        .map_or("model.safetensors".into(), |n| n.to_string_lossy());
    checkpoint::save(out, &weights(model, net))?;
    checkpoint::write_atomically(python, python_source(model, net, &stem).as_bytes())
}

/// A Python file whose `build()` returns the network as an `nn.Sequential`.
pub fn python_source(model: &SavedModel, net: &TorchNet, weights_file: &str) -> String {
    let graph = &model.graph;
    let input = graph.input;
    let mut py = String::new();
    let _ = write!(
        py,
        r#""""The gpunet model `{spec}` as a PyTorch nn.Sequential.

Written by `gpunet export --format torch`. Its input is the normalised batch,
N×{c}×{h}×{w} float32 ({norm}), and its output the {classes} logits (no softmax):
the numbers gpunet's own network takes and gives.

    import torch
    from safetensors.torch import load_file
    model = build()
    model.load_state_dict(load_file("{weights_file}"), strict=True)
    model.eval()  # batch norm uses its running statistics, dropout is off
    logits = model(torch.rand(1, {c}, {h}, {w}))
"""
import torch
from torch import nn

CLASSES = {names}
INPUT_SHAPE = ({c}, {h}, {w})  # channels, height, width


class Residual(nn.Module):
    """gpunet's res(...): y = shortcut(x) + body(x)."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.shortcut(x) + self.body(x)


def build():
    return nn.Sequential(
"#,
        spec = graph.spec,
        c = input.c,
        h = input.h,
        w = input.w,
        norm = graph.normalization,
        classes = graph.classes(),
        // A JSON list of strings is a Python list literal.
        names = serde_json::to_string(&graph.class_names()).expect("strings serialise"),
    );
    sequential_body(&mut py, &net.modules, 2);
    py.push_str("    )\n");
    py
}

/// One line (or block) per module, each with its PyTorch name and the gpunet
/// token it stands for.
fn sequential_body(py: &mut String, entries: &[Entry], depth: usize) {
    let indent = "    ".repeat(depth);
    for entry in entries {
        let comment = match &entry.source {
            Some(source) => format!("# {}: gpunet {source}", entry.path),
            None => format!(
                "# {}: gpunet's dense layers flatten their input",
                entry.path
            ),
        };
        match &entry.module {
            Module::Residual { body, shortcut } => {
                let _ = writeln!(py, "{indent}Residual(  {comment}");
                let _ = writeln!(py, "{indent}    body=nn.Sequential(");
                sequential_body(py, body, depth + 2);
                let _ = writeln!(py, "{indent}    ),");
                let shortcut = shortcut.map_or("nn.Identity()".to_string(), |conv| {
                    module_text(&Module::Conv2d(conv))
                });
                let _ = writeln!(py, "{indent}    shortcut={shortcut},");
                let _ = writeln!(py, "{indent}),");
            }
            module => {
                let _ = writeln!(py, "{indent}{},  {comment}", module_text(module));
            }
        }
    }
}

fn module_text(module: &Module) -> String {
    match module {
        Module::Flatten => "nn.Flatten()".into(),
        Module::Linear { inputs, outputs } => format!("nn.Linear({inputs}, {outputs})"),
        Module::Conv2d(c) => format!(
            "nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={})",
            c.input.c, c.output.c, c.kernel, c.stride, c.padding
        ),
        Module::MaxPool2d { size, stride } => {
            format!("nn.MaxPool2d(kernel_size={size}, stride={stride})")
        }
        Module::BatchNorm {
            channels,
            eps,
            flat,
        } => {
            let dims = if *flat { 1 } else { 2 };
            format!("nn.BatchNorm{dims}d({channels}, eps={eps:e}, momentum=0.1)")
        }
        Module::Activation(a) => match a {
            Activation::Relu => "nn.ReLU()".into(),
            Activation::Tanh => "nn.Tanh()".into(),
            Activation::Sigmoid => "nn.Sigmoid()".into(),
            Activation::Identity => "nn.Identity()".into(),
        },
        Module::Dropout(p) => format!("nn.Dropout(p={p})"),
        Module::GlobalAvgPool => "nn.AdaptiveAvgPool2d(1)".into(),
        Module::Residual { .. } => unreachable!("written by sequential_body"),
    }
}
