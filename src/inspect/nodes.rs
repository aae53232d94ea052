//! Which node an `inspect` flag means, where a layer's units are judged
//! alive, and what a batch-norm node holds.
//!
//! **Addresses.** A node is named by its tensors' prefix without
//! `layers.`: `3` is the top-level spec token 3 (PyTorch's
//! `model.layers[3]`), `3.body.0` the first token inside the residual
//! block at 3, `3.shortcut` that block's 1×1 projection; `layers.3.body.0`
//! is accepted too. For a block, `3` alone is the block's output (the sum
//! of its body and shortcut).
//!
//! **Dead units through bn.** In conv → bn → relu the conv itself has no
//! activation; whether one of its channels ever fires shows only after the
//! bn and its ReLU. [`fires_at`] follows a unit layer's output through the
//! per-channel nodes after it (bn, max-pool, dropout, a lone activation)
//! to the first ReLU.

use crate::graph::{Activation, Graph, Value};
use crate::ops::activation::ActivationOp;
use crate::ops::bn::BatchNorm;
use crate::ops::dropout::Dropout;
use crate::ops::pool::MaxPool;
use anyhow::{bail, Result};
use serde::Serialize;

/// How the addresses are written, for help texts and errors.
pub const ADDRESSING: &str = "a layer is its index in the model spec (0, 1, …); inside a residual \
block, add the path of the node's tensors: 3.body.0 is the first layer of the block at 3, \
3.shortcut its 1×1 projection, and 3 alone the block's output";

/// `node`'s address: its name without the `layers.` prefix.
pub fn address(graph: &Graph, node: usize) -> &str {
    let name = &graph.nodes[node].name;
    name.strip_prefix("layers.").unwrap_or(name)
}

/// Every node's address and label, for errors: `3.body.0 (conv32k3p1)`.
fn listing(graph: &Graph, nodes: impl Iterator<Item = usize>) -> String {
    nodes
        .map(|i| format!("{} ({})", address(graph, i), graph.nodes[i].op.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node at `text` (any node); `flag` names the flag in errors.
pub fn resolve_node(graph: &Graph, text: &str, flag: &str) -> Result<usize> {
    let text = text.trim();
    let name = if text.starts_with("layers.") {
        text.to_string()
    } else {
        format!("layers.{text}")
    };
    if let Some(i) = graph.nodes.iter().position(|n| n.name == name) {
        return Ok(i);
    }
    // A spec index that makes no node (`flatten`), or one that is not there.
    let top: Option<usize> = text
        .strip_prefix("layers.")
        .unwrap_or(text)
        .split('.')
        .next()
        .and_then(|s| s.parse().ok());
    let inside: Vec<usize> = match top {
        Some(t) => (0..graph.nodes.len())
            .filter(|&i| graph.nodes[i].spec_index == t)
            .collect(),
        None => Vec::new(),
    };
    if inside.is_empty() {
        bail!(
            "{flag} {text}: no such node in {}; {ADDRESSING}. The nodes: {}",
            graph.spec,
            listing(graph, 0..graph.nodes.len())
        );
    }
    bail!(
        "{flag} {text}: no such node; layer {} holds {}; {ADDRESSING}",
        top.unwrap_or_default(),
        listing(graph, inside.into_iter())
    )
}

/// The dense or conv layer at `text`, for `--unit`: as [`resolve_node`],
/// but a residual block's bare index is ambiguous (it holds several
/// layers with units) and the node must have units.
pub fn resolve_unit_layer(graph: &Graph, text: &str) -> Result<usize> {
    let node = resolve_node(graph, text, "--unit")?;
    let n = &graph.nodes[node];
    if n.op.units().is_some() {
        return Ok(node);
    }
    let with_units: Vec<usize> = (0..graph.nodes.len())
        .filter(|&i| {
            graph.nodes[i].spec_index == n.spec_index && graph.nodes[i].op.units().is_some()
        })
        .collect();
    if !text.contains('.') && !with_units.is_empty() {
        let what = if with_units.len() > 1 {
            "ambiguous: layer {} is a residual block with several layers that have units"
        } else {
            "layer {} is a residual block, whose layer with units is"
        };
        bail!(
            "--unit {text}: {}: {}; name one, e.g. --unit {}:UNIT ({ADDRESSING})",
            what.replace("{}", &n.spec_index.to_string()),
            listing(graph, with_units.iter().copied()),
            address(graph, with_units[0])
        );
    }
    bail!(
        "--unit {text}: {} is not a dense or conv layer; the layers with units: {} ({ADDRESSING})",
        n.label(),
        listing(
            graph,
            (0..graph.nodes.len()).filter(|&i| graph.nodes[i].op.units().is_some())
        )
    )
}

/// The node whose output says whether `node`'s units ever fire: `node`
/// itself when its own activation is ReLU, else the first ReLU reached
/// through nodes that keep its channels apart (bn, max-pool, dropout, a
/// lone activation) and read nothing else, each the only reader of the one
/// before. None when no ReLU follows that way (then no unit is dead).
pub fn fires_at(graph: &Graph, node: usize) -> Option<usize> {
    let mut at = node;
    loop {
        let op = &graph.nodes[at].op;
        let act = match op.as_any().downcast_ref::<ActivationOp>() {
            Some(a) => a.act,
            None => op.activation(),
        };
        match act {
            Activation::Relu => return Some(at),
            Activation::Identity => {}
            _ => return None,
        }
        let readers: Vec<usize> = (at + 1..graph.nodes.len())
            .filter(|&i| graph.nodes[i].inputs.contains(&Value::Node(at)))
            .collect();
        let [next] = readers[..] else { return None };
        let n = &graph.nodes[next];
        let any = n.op.as_any();
        let per_channel = any.is::<BatchNorm>()
            || any.is::<MaxPool>()
            || any.is::<Dropout>()
            || any.is::<ActivationOp>();
        if !per_channel || n.inputs.len() != 1 {
            return None;
        }
        at = next;
    }
}

/// A batch-norm node's parameters and running statistics, per channel.
#[derive(Debug, Clone, Serialize)]
pub struct BatchNormState {
    pub node: usize,
    /// The tensors' prefix, e.g. `layers.7.body.1`.
    pub name: String,
    pub label: String,
    /// Training batches whose statistics the running ones hold.
    pub num_batches_tracked: u64,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    /// γ and β.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl BatchNormState {
    /// What evaluation multiplies channel c by: γ/√(running_var + eps).
    pub fn scale(&self, eps: f32) -> Vec<f32> {
        self.weight
            .iter()
            .zip(&self.running_var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect()
    }
}

/// Every batch-norm node's state, read from a model's flat parameter and
/// buffer vectors by the tensors' names.
pub fn batch_norms(graph: &Graph, params: &[f32], buffers: &[f32]) -> Vec<BatchNormState> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op.as_any().is::<BatchNorm>())
        .map(|(node, n)| {
            let param = |suffix: &str| -> Vec<f32> {
                n.params
                    .iter()
                    .map(|&p| &graph.params[p])
                    .find(|info| info.name.ends_with(suffix))
                    .map_or_else(Vec::new, |info| params[info.range()].to_vec())
            };
            let buffer = |suffix: &str| -> Vec<f32> {
                n.buffers
                    .iter()
                    .map(|&b| &graph.buffers[b])
                    .find(|info| info.name.ends_with(suffix))
                    .map_or_else(Vec::new, |info| buffers[info.range()].to_vec())
            };
            BatchNormState {
                node,
                name: n.name.clone(),
                label: n.label(),
                num_batches_tracked: buffer(".num_batches_tracked")
                    .first()
                    .map_or(0, |&v| v as u64),
                running_mean: buffer(".running_mean"),
                running_var: buffer(".running_var"),
                weight: param(".weight"),
                bias: param(".bias"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;
    use crate::spec::ModelSpec;

    fn graph(spec: &str) -> Graph {
        Graph::new(
            &ModelSpec::parse(spec).unwrap(),
            Shape { c: 1, h: 8, w: 8 },
            3,
        )
        .unwrap()
    }

    const RES: &str = "conv4k3p1,bn,relu,res(conv4k3p1,bn,relu,conv4k3p1,bn),relu,res(conv6k3p1),pool2,flatten,dense3";

    #[test]
    fn addresses_name_nested_nodes() {
        let g = graph(RES);
        let name = |t: &str| g.nodes[resolve_node(&g, t, "--x").unwrap()].name.clone();
        assert_eq!(name("0"), "layers.0");
        assert_eq!(name("3.body.0"), "layers.3.body.0");
        assert_eq!(name("layers.3.body.3"), "layers.3.body.3");
        assert_eq!(name("3"), "layers.3");
        assert_eq!(name("5.shortcut"), "layers.5.shortcut");
        assert_eq!(
            address(&g, resolve_node(&g, " 5.body.0 ", "--x").unwrap()),
            "5.body.0"
        );
        let err = |t: &str| format!("{:#}", resolve_node(&g, t, "--pca-layer").unwrap_err());
        assert!(
            err("7").contains("--pca-layer 7: no such node in conv4k3p1"),
            "{}",
            err("7")
        );
        assert!(
            err("3.body.9").contains("layer 3 holds 3.body.0 (conv4k3p1)"),
            "{}",
            err("3.body.9")
        );
        assert!(err("3.body.9").contains("3.shortcut its 1×1 projection"));
        assert!(err("40").contains("no such node in conv4k3p1"));
        assert!(
            err("x").contains("The nodes: 0 (conv4k3p1), 1 (bn, relu)"),
            "{}",
            err("x")
        );
    }

    #[test]
    fn unit_addresses_refuse_ambiguity_and_nodes_without_units() {
        let g = graph(RES);
        let unit = |t: &str| resolve_unit_layer(&g, t).map(|i| g.nodes[i].name.clone());
        assert_eq!(unit("0").unwrap(), "layers.0");
        assert_eq!(unit("3.body.3").unwrap(), "layers.3.body.3");
        assert_eq!(unit("5.shortcut").unwrap(), "layers.5.shortcut");
        let err = |t: &str| format!("{:#}", unit(t).unwrap_err());
        assert!(
            err("3").contains("--unit 3: ambiguous: layer 3 is a residual block with several layers that have units: 3.body.0 (conv4k3p1), 3.body.3 (conv4k3p1); name one, e.g. --unit 3.body.0:UNIT"),
            "{}",
            err("3")
        );
        assert!(
            err("1").contains("--unit 1: layers.1 (bn, relu) is not a dense or conv layer"),
            "{}",
            err("1")
        );
        assert!(err("3.body.1").contains("is not a dense or conv layer"));
    }

    #[test]
    fn liveness_is_judged_after_bn_pool_and_relu() {
        let g = graph("conv4k3p1,bn,relu,conv4k3p1,pool2,bn,relu,conv4k3p1,relu,conv4k3p1,tanh,conv4k3p1,bn,dense3");
        let at = |t: &str| {
            fires_at(&g, resolve_node(&g, t, "--x").unwrap()).map(|i| g.nodes[i].name.clone())
        };
        assert_eq!(at("0").as_deref(), Some("layers.1"));
        assert_eq!(at("3").as_deref(), Some("layers.5"));
        assert_eq!(at("7").as_deref(), Some("layers.7"));
        assert_eq!(at("9"), None);
        assert_eq!(at("11"), None);
        // A value read twice (a block's input) is judged where it is.
        let g = graph(RES);
        let at = |t: &str| {
            fires_at(&g, resolve_node(&g, t, "--x").unwrap()).map(|i| g.nodes[i].name.clone())
        };
        assert_eq!(at("3.body.0").as_deref(), Some("layers.3.body.1"));
        assert_eq!(at("3.body.3"), None);
        assert_eq!(at("5.body.0"), None);
    }
}
