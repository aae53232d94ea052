//! `gpunet export --format onnx`: the network as an ONNX graph (opset 13,
//! IR version 7) for Netron, onnxruntime and other ONNX tools. One ONNX node
//! per PyTorch module of [`TorchNet`] (a residual block: its body's nodes,
//! the shortcut's `Conv` if any, and an `Add`), in evaluation mode: batch
//! norm with its running statistics, dropout the identity. The input
//! `input` is N×C×H×W f32 with a free batch dimension `N`, the normalised
//! batch (`gpunet.normalisation` among the metadata); the output `logits`
//! is N×classes. Initialisers carry the PyTorch names (`0.weight`).
//!
//! The protobuf messages are `onnx-protobuf`'s, generated from ONNX's
//! `onnx.proto`; this module only fills them in.

use super::{Entry, Module, TorchNet};
use crate::graph::Activation;
use crate::model_file::{self, SavedModel};
use crate::ops::conv2d::Conv2d;
use anyhow::{anyhow, Result};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::collections::HashMap;
use std::path::Path;

/// The ONNX operator set the graph is written in: Gemm, Conv, MaxPool,
/// BatchNormalization, Dropout, GlobalAveragePool, Flatten, Add, Relu,
/// Tanh, Sigmoid all exist there with the semantics used here.
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
pub const IR_VERSION: i64 = 7;
/// The name of the batch dimension of the input and output.
pub const BATCH: &str = "N";

/// Writes the ONNX file at `out`, atomically.
pub fn save(model: &SavedModel, net: &TorchNet, out: &Path) -> Result<()> {
    let bytes = model_proto(model, net)
        .write_to_bytes()
        .map_err(|e| anyhow!("cannot encode the ONNX model for {}: {e}", out.display()))?;
    crate::checkpoint::write_atomically(out, &bytes)
}

/// The whole ONNX model.
pub fn model_proto(model: &SavedModel, net: &TorchNet) -> ModelProto {
    let graph = &model.graph;
    let mut values: HashMap<&str, (&[usize], &[f32])> = HashMap::new();
    for (infos, flat) in [
        (&graph.params, &model.params),
        (&graph.buffers, &model.buffers),
    ] {
        for info in infos.iter() {
            let torch = net
                .torch_name(&info.name)
                .expect("TorchNet names every tensor of its graph");
            values.insert(torch, (&info.shape, &flat[info.range()]));
        }
    }
    let mut b = Builder {
        values,
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    let last = b.entries(&net.modules, "input".into());
    // The last node's output is the graph's: call it `logits`.
    if let Some(node) = b
        .nodes
        .iter_mut()
        .rev()
        .find(|n| n.output == [last.clone()])
    {
        node.output = vec!["logits".into()];
    }
    let input = graph.input;
    let mut g = GraphProto {
        name: format!("gpunet {}", graph.spec),
        node: b.nodes,
        initializer: b.initializers,
        ..Default::default()
    };
    g.input.push(value_info(
        "input",
        &[
            Dim::Batch,
            Dim::Fixed(input.c),
            Dim::Fixed(input.h),
            Dim::Fixed(input.w),
        ],
    ));
    g.output.push(value_info(
        "logits",
        &[Dim::Batch, Dim::Fixed(graph.classes())],
    ));
    let mut m = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "gpunet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "gpunet model {} on {} inputs ({}), {} classes",
            graph.spec,
            input,
            graph.normalization,
            graph.classes()
        ),
        graph: Some(g).into(),
        ..Default::default()
    };
    m.opset_import.push(OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
        ..Default::default()
    });
    for (key, value) in model_file::description(graph) {
        m.metadata_props.push(StringStringEntryProto {
            key,
            value,
            ..Default::default()
        });
    }
    m
}

struct Builder<'m> {
    /// PyTorch tensor name → (shape, values).
    values: HashMap<&'m str, (&'m [usize], &'m [f32])>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam(BATCH.into()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: Some(TensorShapeProto {
            dim,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: value,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: value,
        ..Default::default()
    }
}

fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::FLOAT as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

impl Builder<'_> {
    /// Adds the initialiser `name` (a PyTorch tensor name) and returns it.
    fn weight(&mut self, name: String) -> String {
        let (shape, values) = self.values[name.as_str()];
        self.initializers.push(f32_tensor(&name, shape, values));
        name
    }

    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        output: String,
        attributes: Vec<AttributeProto>,
        doc: Option<&str>,
    ) -> String {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: output.clone(),
            input: inputs,
            output: vec![output.clone()],
            attribute: attributes,
            doc_string: doc.unwrap_or_default().into(),
            ..Default::default()
        });
        output
    }

    fn conv(&mut self, x: String, path: &str, conv: &Conv2d, doc: Option<&str>) -> String {
        let inputs = vec![
            x,
            self.weight(format!("{path}.weight")),
            self.weight(format!("{path}.bias")),
        ];
        let (k, s, p) = (conv.kernel, conv.stride, conv.padding);
        let attributes = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[s, s]),
            ints("pads", &[p, p, p, p]),
        ];
        self.node("Conv", inputs, path.into(), attributes, doc)
    }

    /// The nodes of `entries` reading `x`; returns the last one's output.
    fn entries(&mut self, entries: &[Entry], mut x: String) -> String {
        for entry in entries {
            let path = entry.path.as_str();
            let doc = entry.source.as_deref();
            x = match &entry.module {
                Module::Flatten => {
                    self.node("Flatten", vec![x], path.into(), vec![int("axis", 1)], doc)
                }
                Module::Linear { .. } => {
                    let inputs = vec![
                        x,
                        self.weight(format!("{path}.weight")),
                        self.weight(format!("{path}.bias")),
                    ];
                    // Gemm: y = x·Wᵀ + b, W [outputs, inputs] as PyTorch keeps it.
                    self.node("Gemm", inputs, path.into(), vec![int("transB", 1)], doc)
                }
                Module::Conv2d(conv) => self.conv(x, path, conv, doc),
                Module::MaxPool2d { size, stride } => self.node(
                    "MaxPool",
                    vec![x],
                    path.into(),
                    vec![
                        ints("kernel_shape", &[*size, *size]),
                        ints("strides", &[*stride, *stride]),
                    ],
                    doc,
                ),
                Module::BatchNorm { eps, .. } => {
                    let inputs = vec![
                        x,
                        self.weight(format!("{path}.weight")),
                        self.weight(format!("{path}.bias")),
                        self.weight(format!("{path}.running_mean")),
                        self.weight(format!("{path}.running_var")),
                    ];
                    self.node(
                        "BatchNormalization",
                        inputs,
                        path.into(),
                        vec![float("epsilon", *eps)],
                        doc,
                    )
                }
                Module::Activation(act) => {
                    let op = match act {
                        Activation::Relu => "Relu",
                        Activation::Tanh => "Tanh",
                        Activation::Sigmoid => "Sigmoid",
                        Activation::Identity => "Identity",
                    };
                    self.node(op, vec![x], path.into(), vec![], doc)
                }
                Module::Dropout(p) => {
                    // Without training_mode, Dropout is the identity; the
                    // ratio is kept so that Netron shows it.
                    let ratio = format!("{path}.ratio");
                    self.initializers.push(f32_tensor(&ratio, &[], &[*p]));
                    self.node("Dropout", vec![x, ratio], path.into(), vec![], doc)
                }
                Module::GlobalAvgPool => {
                    self.node("GlobalAveragePool", vec![x], path.into(), vec![], doc)
                }
                Module::Residual { body, shortcut } => {
                    let f = self.entries(body, x.clone());
                    let s = match shortcut {
                        Some(conv) => self.conv(x, &format!("{path}.shortcut"), conv, doc),
                        None => x,
                    };
                    self.node("Add", vec![s, f], path.into(), vec![], doc)
                }
            };
        }
        x
    }
}
