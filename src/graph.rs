//! Layers → a graph of nodes: shape inference, activation fusion, the flat
//! layouts of the parameters and the non-trainable buffers, initialisation,
//! and the order of a backward pass. No wgpu here, and no op's math: a node
//! holds its op behind the [`Op`] trait (`src/ops/`).
//!
//! Nodes take their inputs by [`Value`] (the graph's input or an earlier
//! node's output), so the graph need not be a chain; they are stored in
//! topological order, and a value read by several nodes gets the sum of
//! their gradients (see [`Graph::backward_steps`]).

use crate::memory;
use crate::ops::activation::ActivationOp;
use crate::ops::add::Add;
use crate::ops::bn::BatchNorm;
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::dropout::Dropout;
use crate::ops::gap::GlobalAvgPool;
use crate::ops::pool::MaxPool;
use crate::ops::{Init, Op, SavedDecl, TensorDecl};
use crate::spec::{LayerSpec, ModelSpec};
use anyhow::{anyhow, bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

pub use crate::ops::Activation;

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

    /// c·h·w, or None when it does not fit 64 bits (a shape read from a
    /// file or grown from a spec is checked with this before `len`).
    pub fn checked_len(&self) -> Option<usize> {
        self.c.checked_mul(self.h)?.checked_mul(self.w)
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

/// A parameter or buffer tensor inside its flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// PyTorch-style name, e.g. `layers.0.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in f32 elements; a multiple of `PARAM_ALIGN`.
    pub offset: usize,
    pub init: Init,
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

/// What a node reads: the graph's input batch or an earlier node's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Input,
    Node(usize),
}

/// One step of the planned network.
#[derive(Debug, Clone)]
pub struct Node {
    /// The prefix of its tensors' names: `layers.3` (PyTorch's
    /// `nn.Sequential` index of the spec token it came from); inside a
    /// residual block `layers.3.body.0` (the body's tokens), `layers.3.shortcut`
    /// (the 1×1 projection) and `layers.3` (the sum).
    pub name: String,
    /// Index of the top-level layer in the model spec it belongs to (every
    /// node of a residual block carries the block's).
    pub spec_index: usize,
    pub op: Arc<dyn Op>,
    pub inputs: Vec<Value>,
    /// Its parameters, as indices into `Graph::params`, in the op's order.
    pub params: Vec<usize>,
    /// Its non-trainable buffers, as indices into `Graph::buffers`.
    pub buffers: Vec<usize>,
    /// What its forward pass keeps for its backward pass.
    pub saved: Vec<SavedDecl>,
}

impl Node {
    /// Values per example this node produces.
    pub fn output_len(&self) -> usize {
        self.op.output().len()
    }

    /// `layers.0 (conv16k3p1, relu)`: how reports and errors name it.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.op.label())
    }
}

/// Where a node's gradient with respect to one of its inputs goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradTarget {
    /// Not wanted (the graph's input, unless asked for).
    Skip,
    /// The first gradient to reach that value: written over it.
    Write,
    /// A later one: added to what is there.
    Accumulate,
}

/// One node's part in a backward pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackwardStep {
    pub node: usize,
    /// One target per input, in the node's input order.
    pub grad_inputs: Vec<GradTarget>,
}

/// The planned network: nodes in topological order, the last one's output
/// the logits that softmax cross-entropy turns into a loss.
#[derive(Debug, Clone)]
pub struct Graph {
    pub spec: ModelSpec,
    pub input: Shape,
    pub nodes: Vec<Node>,
    pub params: Vec<ParamInfo>,
    /// Length of the flat parameter vector, padding included.
    pub param_len: usize,
    /// Non-trainable buffers (running statistics), laid out like `params`.
    pub buffers: Vec<ParamInfo>,
    pub buffer_len: usize,
    /// The run's seed, for ops that draw random numbers as they train
    /// (dropout's masks); set by whoever starts the run.
    pub seed: u64,
    /// Label smoothing ε of the training loss (0: plain cross-entropy);
    /// evaluation always reports the plain loss.
    pub label_smoothing: f32,
    /// Exempt one-dimensional parameters (biases, batch-norm scales and
    /// shifts) from weight decay.
    pub no_bias_decay: bool,
    /// The name of each class the logits score (empty: their indices, or
    /// the digits for 10 classes; see `class_names`).
    pub names: Vec<String>,
    /// How pixels become inputs (the training set's statistics, or / 255).
    pub normalization: crate::data::Normalization,
    /// The random crop and flip of training batches (off: `Augment::default()`).
    pub augment: crate::ops::gather::Augment,
}

/// Builds a graph node by node; `Graph::new` drives it from a spec, tests
/// may drive it directly to build graphs the spec cannot yet express.
pub struct GraphBuilder {
    input: Shape,
    nodes: Vec<Node>,
    params: Vec<ParamInfo>,
    param_len: usize,
    buffers: Vec<ParamInfo>,
    buffer_len: usize,
}

/// Places `decls` after the `len` values laid out so far; None when the
/// flat vector's length would not fit 64 bits (`sized` checked each tensor).
fn lay_out(
    decls: Vec<TensorDecl>,
    prefix: &str,
    infos: &mut Vec<ParamInfo>,
    len: &mut usize,
) -> Option<Vec<usize>> {
    decls
        .into_iter()
        .map(|decl| {
            let info = ParamInfo {
                name: format!("{prefix}.{}", decl.name),
                shape: decl.shape,
                offset: *len,
                init: decl.init,
            };
            let padded = info.len().checked_next_multiple_of(PARAM_ALIGN)?;
            *len = len.checked_add(padded)?;
            infos.push(info);
            Some(infos.len() - 1)
        })
        .collect()
}

/// `op` if its output, its parameters and its buffers can be counted, in
/// values and in f32 bytes, within 64 bits; else an error at `place`.
fn sized(op: Box<dyn Op>, place: &str) -> Result<Box<dyn Op>> {
    let output = op.output();
    if output
        .checked_len()
        .and_then(|n| memory::bytes_of(n as u64, 4))
        .is_none()
    {
        bail!(
            "{place}: its output of {}×{}×{} values per image does not fit 64 bits",
            output.c,
            output.h,
            output.w
        );
    }
    for decl in op.params().iter().chain(&op.buffers()) {
        if memory::product(&decl.shape)
            .and_then(|n| memory::bytes_of(n, 4))
            .is_none()
        {
            bail!(
                "{place}: its {} of shape {:?} needs more than 18 EB (its byte count does not fit 64 bits)",
                decl.name,
                decl.shape
            );
        }
    }
    Ok(op)
}

impl GraphBuilder {
    pub fn new(input: Shape) -> GraphBuilder {
        GraphBuilder {
            input,
            nodes: Vec::new(),
            params: Vec::new(),
            param_len: 0,
            buffers: Vec::new(),
            buffer_len: 0,
        }
    }

    /// The shape of a value built so far.
    pub fn shape(&self, value: Value) -> Shape {
        match value {
            Value::Input => self.input,
            Value::Node(i) => self.nodes[i].op.output(),
        }
    }

    /// The index the next node pushed will have.
    pub fn next_node(&self) -> usize {
        self.nodes.len()
    }

    /// Adds a node reading `inputs`, named `layers.<spec_index>`; returns
    /// its output.
    pub fn push(
        &mut self,
        spec_index: usize,
        op: Box<dyn Op>,
        inputs: Vec<Value>,
    ) -> Result<Value> {
        self.push_named(format!("layers.{spec_index}"), spec_index, op, inputs)
    }

    /// Adds a node named `name` (the prefix of its tensors' names, e.g.
    /// `layers.3.body.0` inside a residual block) that belongs to the
    /// top-level spec token `spec_index`; returns its output.
    pub fn push_named(
        &mut self,
        name: String,
        spec_index: usize,
        op: Box<dyn Op>,
        inputs: Vec<Value>,
    ) -> Result<Value> {
        for input in &inputs {
            if let Value::Node(i) = input {
                assert!(*i < self.nodes.len(), "nodes read only earlier nodes");
            }
        }
        let op = sized(op, &name)?;
        let too_many =
            || anyhow!("{name}: the model's tensors number more values than 64 bits count");
        let params = lay_out(op.params(), &name, &mut self.params, &mut self.param_len)
            .ok_or_else(too_many)?;
        let buffers = lay_out(op.buffers(), &name, &mut self.buffers, &mut self.buffer_len)
            .ok_or_else(too_many)?;
        self.nodes.push(Node {
            name,
            spec_index,
            saved: op.saved(),
            op: Arc::from(op),
            inputs,
            params,
            buffers,
        });
        Ok(Value::Node(self.nodes.len() - 1))
    }

    /// Fuses `act` into the node that produced `value` if it is the latest
    /// node and its op can take an activation; true if it did.
    pub fn fuse(&mut self, value: Value, act: Activation) -> bool {
        let Value::Node(i) = value else { return false };
        if i + 1 != self.nodes.len() {
            return false;
        }
        match self.nodes[i].op.fused_with(act) {
            Some(fused) => {
                self.nodes[i].op = Arc::from(fused);
                true
            }
            None => false,
        }
    }

    /// The graph whose output is the last node's, checked: it must end in
    /// a dense layer without activation whose outputs are the `classes`
    /// logits, and every node must lead to it.
    pub fn finish(self, spec: &ModelSpec, classes: usize) -> Result<Graph> {
        let Some(last) = self.nodes.last() else {
            bail!("the model has no layers");
        };
        match last.op.as_any().downcast_ref::<Dense>() {
            Some(d) if d.activation == Activation::Identity => {}
            Some(_) => bail!(
                "the model must end in a dense layer without activation (its outputs are the logits), not {}",
                last.op.label()
            ),
            None => {
                bail!("the model must end in a dense layer of {classes} outputs (the logits), not {}", last.label())
            }
        }
        if last.output_len() != classes {
            bail!(
                "the model ends in {} outputs but the data has {classes} classes; make the last layer dense{classes}",
                last.output_len()
            );
        }
        let graph = Graph {
            spec: spec.clone(),
            input: self.input,
            nodes: self.nodes,
            params: self.params,
            param_len: self.param_len,
            buffers: self.buffers,
            buffer_len: self.buffer_len,
            seed: 0,
            label_smoothing: 0.0,
            no_bias_decay: false,
            names: Vec::new(),
            normalization: Default::default(),
            augment: Default::default(),
        };
        let reaches = graph.ancestors(graph.nodes.len() - 1);
        if let Some(dead) = reaches.iter().position(|r| !r) {
            bail!(
                "{}: its output is never used on the way to the logits",
                graph.nodes[dead].label()
            );
        }
        Ok(graph)
    }
}

impl Graph {
    /// Infers every shape from the input's and checks that the spec fits
    /// it and ends in `classes` outputs. Errors name the layer and shapes.
    ///
    /// Each spec token is one node (the registration of ops: one line
    /// each), except an activation directly after a layer that can take it
    /// fused, which joins that layer, `flatten`, which only changes how the
    /// next token sees its input, and `res(...)`, which is its body's nodes,
    /// a shortcut projection where the body changes the shape, and their sum.
    pub fn new(spec: &ModelSpec, input: Shape, classes: usize) -> Result<Graph> {
        if input.checked_len().is_none() || input.is_empty() {
            bail!(
                "an input of {}×{}×{} values per image: its size must be above 0 and fit 64 bits",
                input.c,
                input.h,
                input.w
            );
        }
        let mut b = GraphBuilder::new(input);
        let top = Scope {
            prefix: "layers".into(),
            place: "layer".into(),
            spec_index: None,
        };
        add_layers(&mut b, &spec.layers, (Value::Input, input), &top)?;
        let graph = b.finish(spec, classes)?;
        memory::check_host(&graph.tensor_needs(), "to hold the model once")?;
        Ok(graph)
    }

    /// The bytes of each node's parameters and buffers (f32), one entry
    /// per node that has any: `layers.0 (dense128): its weights`.
    pub fn tensor_needs(&self) -> Vec<memory::Need> {
        self.nodes
            .iter()
            .filter(|n| !n.params.is_empty() || !n.buffers.is_empty())
            .map(|n| {
                let infos = n
                    .params
                    .iter()
                    .map(|&i| &self.params[i])
                    .chain(n.buffers.iter().map(|&i| &self.buffers[i]));
                let values = infos
                    .map(|info| memory::product(&info.shape))
                    .try_fold(0u64, |sum, n| sum.checked_add(n?));
                memory::Need::new(
                    format!("{}: its weights", n.label()),
                    values.and_then(|v| memory::bytes_of(v, 4)),
                )
            })
            .collect()
    }

    pub fn input_size(&self) -> usize {
        self.input.len()
    }

    pub fn classes(&self) -> usize {
        self.nodes.last().map_or(0, Node::output_len)
    }

    /// The name of each class: those the data gave, else "0".."9" for the
    /// digits' 10 classes and "class i" for other counts.
    pub fn class_names(&self) -> Vec<String> {
        if self.names.len() == self.classes() {
            self.names.clone()
        } else if self.classes() == 10 {
            (0..10).map(|d| d.to_string()).collect()
        } else {
            (0..self.classes()).map(|i| format!("class {i}")).collect()
        }
    }

    /// Number of trainable scalars (padding excluded).
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(ParamInfo::len).sum()
    }

    /// The length of a value per example.
    pub fn value_len(&self, value: Value) -> usize {
        match value {
            Value::Input => self.input.len(),
            Value::Node(i) => self.nodes[i].output_len(),
        }
    }

    /// Which nodes `node`'s output depends on (itself included).
    pub fn ancestors(&self, node: usize) -> Vec<bool> {
        let mut reaches = vec![false; self.nodes.len()];
        reaches[node] = true;
        for i in (0..=node).rev() {
            if reaches[i] {
                for input in &self.nodes[i].inputs {
                    if let Value::Node(j) = input {
                        reaches[*j] = true;
                    }
                }
            }
        }
        reaches
    }

    /// How many nodes read each node's output.
    pub fn consumers(&self) -> Vec<usize> {
        let mut count = vec![0; self.nodes.len()];
        for node in &self.nodes {
            for input in &node.inputs {
                if let Value::Node(j) = input {
                    count[*j] += 1;
                }
            }
        }
        count
    }

    /// The backward pass from node `from` (whose output gradient is the
    /// seed) down to the input, in reverse topological order: every node
    /// `from` depends on, with where each of its input gradients goes. The
    /// first gradient to reach a value is written, later ones are added
    /// (a value read twice gets the sum); the graph's input gets one only
    /// when `input_grad`. The CPU network and the GPU planner both follow
    /// this list.
    pub fn backward_steps(&self, from: usize, input_grad: bool) -> Vec<BackwardStep> {
        let reaches = self.ancestors(from);
        let mut reached = vec![false; self.nodes.len()];
        let mut input_reached = false;
        let mut steps = Vec::new();
        for i in (0..=from).rev().filter(|&i| reaches[i]) {
            let grad_inputs = self.nodes[i]
                .inputs
                .iter()
                .map(|input| {
                    let seen = match input {
                        Value::Input if !input_grad => return GradTarget::Skip,
                        Value::Input => &mut input_reached,
                        Value::Node(j) => &mut reached[*j],
                    };
                    if std::mem::replace(seen, true) {
                        GradTarget::Accumulate
                    } else {
                        GradTarget::Write
                    }
                })
                .collect();
            steps.push(BackwardStep {
                node: i,
                grad_inputs,
            });
        }
        steps
    }

    /// The flat parameter vector cut into runs of whole tensors (their
    /// padding included, so each run starts on a 64-float boundary and its
    /// length is a multiple of 4) that take weight decay or not: one run
    /// that does, unless `no_bias_decay` exempts the one-dimensional tensors.
    pub fn decay_groups(&self) -> Vec<(std::ops::Range<usize>, bool)> {
        let mut groups: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
        for (i, info) in self.params.iter().enumerate() {
            let end = self.params.get(i + 1).map_or(self.param_len, |p| p.offset);
            let decays = !(self.no_bias_decay && info.shape.len() == 1);
            match groups.last_mut() {
                Some((range, d)) if *d == decays => range.end = end,
                _ => groups.push((info.offset..end, decays)),
            }
        }
        groups
    }

    /// PyTorch's default initialisation, drawn on the host from `seed` in
    /// node order (each node's tensors in its declared order), so every
    /// backend starts from the same weights.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flat = vec![0.0f32; self.param_len];
        for info in &self.params {
            fill(&mut flat[info.range()], info.init, &mut rng);
        }
        flat
    }

    /// The non-trainable buffers' starting values (running mean 0, running
    /// variance 1, …).
    pub fn init_buffers(&self) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut flat = vec![0.0f32; self.buffer_len];
        for info in &self.buffers {
            fill(&mut flat[info.range()], info.init, &mut rng);
        }
        flat
    }
}

/// Where a token list sits: the model's top level or a residual block's body.
struct Scope {
    /// Its nodes are named `<prefix>.<index>`: `layers.2`, `layers.3.body.0`.
    prefix: String,
    /// How errors name its tokens: `layer 2`, `layer 3 (res(...)), body layer 0`.
    place: String,
    /// The top-level token its nodes belong to; None at the top level.
    spec_index: Option<usize>,
}

/// Adds the nodes of `layers` reading `from` (a value and the shape it is
/// seen with: `flatten` changes the shape, not the value) and returns what
/// the last token produces. An activation fuses only into a node of this
/// list: a block's input is also read by its shortcut, so the body's first
/// activation must not change it.
fn add_layers(
    b: &mut GraphBuilder,
    layers: &[LayerSpec],
    from: (Value, Shape),
    scope: &Scope,
) -> Result<(Value, Shape)> {
    let first_node = b.next_node();
    let (mut value, mut shape) = from;
    for (i, layer) in layers.iter().enumerate() {
        let at = || format!("{} {i} ({layer}) on input {shape}", scope.place);
        let name = format!("{}.{i}", scope.prefix);
        let spec_index = scope.spec_index.unwrap_or(i);
        let op: Box<dyn Op> = match *layer {
            LayerSpec::Dense { outputs } => Box::new(Dense {
                inputs: shape.len(),
                outputs,
                activation: Activation::Identity,
            }),
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => Box::new(
                Conv2d::new(shape, channels, kernel, stride, padding)
                    .map_err(|e| anyhow!("{}: {e}", at()))?,
            ),
            LayerSpec::MaxPool { size, stride } => {
                Box::new(MaxPool::new(shape, size, stride).map_err(|e| anyhow!("{}: {e}", at()))?)
            }
            LayerSpec::Act(act) => {
                let ours = matches!(value, Value::Node(n) if n >= first_node);
                if ours && b.fuse(value, act) {
                    continue;
                }
                Box::new(ActivationOp { shape, act })
            }
            LayerSpec::Dropout(rate) => Box::new(Dropout {
                shape,
                p: rate.get(),
                stream: b.next_node() as u32,
            }),
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool { input: shape }),
            LayerSpec::BatchNorm => Box::new(BatchNorm::new(shape)),
            LayerSpec::Flatten => {
                shape = Shape {
                    c: shape.len(),
                    h: 1,
                    w: 1,
                };
                continue;
            }
            LayerSpec::Residual(ref body) => {
                let place = format!("{} {i} ({layer})", scope.place);
                (value, shape) = residual(b, body, (value, shape), name, spec_index, &place)?;
                continue;
            }
        };
        let op = sized(op, &at())?;
        value = b.push_named(name, spec_index, op, vec![value])?;
        shape = b.shape(value);
    }
    Ok((value, shape))
}

/// The residual block `name` (`layers.3`), y = s(x) + f(x): the body f's
/// nodes (`layers.3.body.<j>`), the shortcut s — x itself when f keeps its
/// shape, else a 1×1 conv with f's output channels and f's stride
/// (`layers.3.shortcut`) — and their sum (`layers.3`).
fn residual(
    b: &mut GraphBuilder,
    body: &[LayerSpec],
    (x, input): (Value, Shape),
    name: String,
    spec_index: usize,
    place: &str,
) -> Result<(Value, Shape)> {
    let scope = Scope {
        prefix: format!("{name}.body"),
        place: format!("{place}, body layer"),
        spec_index: Some(spec_index),
    };
    let (f, output) = add_layers(b, body, (x, input), &scope)?;
    let shortcut = if output == input {
        x
    } else {
        let stride = body_stride(body);
        let projection = Conv2d::new(input, output.c, 1, stride, 0).map_err(|e| {
            anyhow!("{place} on input {input}: a 1×1 shortcut of stride {stride}: {e}")
        })?;
        if projection.output != output {
            bail!(
                "{place} on input {input}: its body gives {output}, which no 1×1 shortcut can match \
                 (with the body's stride {stride} it gives {})",
                projection.output
            );
        }
        b.push_named(
            format!("{name}.shortcut"),
            spec_index,
            Box::new(projection),
            vec![x],
        )?
    };
    let sum = b.push_named(
        name,
        spec_index,
        Box::new(Add { shape: output }),
        vec![shortcut, f],
    )?;
    Ok((sum, output))
}

/// How far apart in the input a body's neighbouring outputs are: the
/// product of its convs' and pools' strides.
fn body_stride(layers: &[LayerSpec]) -> usize {
    layers
        .iter()
        .map(|layer| match *layer {
            LayerSpec::Conv { stride, .. } | LayerSpec::MaxPool { stride, .. } => stride,
            LayerSpec::Residual(ref body) => body_stride(body),
            _ => 1,
        })
        .product()
}

fn fill(values: &mut [f32], init: Init, rng: &mut ChaCha8Rng) {
    match init {
        Init::Uniform(bound) => {
            for v in values {
                *v = rng.random_range(-bound..bound);
            }
        }
        Init::Zeros => values.fill(0.0),
        Init::Ones => values.fill(1.0),
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
        assert_eq!(g.nodes[0].op.activation(), Activation::Relu);
        assert_eq!(g.nodes[1].op.activation(), Activation::Identity);
        assert_eq!(g.nodes[1].inputs, [Value::Node(0)]);
        assert_eq!(g.nodes[1].label(), "layers.2 (dense10)");
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
        assert!(err("dense10,relu").contains("must end in a dense layer without activation"));
        assert!(err("conv10k28").contains("must end in a dense layer"));
    }

    #[test]
    fn activations_that_cannot_fuse_become_nodes() {
        let g = graph("conv4k3,relu,pool2,relu,dense10").unwrap();
        let labels: Vec<String> = g.nodes.iter().map(Node::label).collect();
        assert_eq!(
            labels,
            [
                "layers.0 (conv4k3, relu)",
                "layers.2 (pool2)",
                "layers.3 (relu)",
                "layers.4 (dense10)"
            ]
        );
        assert_eq!(g.params[2].name, "layers.4.weight");
    }

    fn names(g: &Graph) -> Vec<&str> {
        g.params.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn flatten_takes_an_index_and_no_node() {
        // PyTorch's nn.Sequential(conv, relu, pool, conv, relu, pool,
        // Flatten, Linear, ReLU, Linear) names the first Linear layers.7.
        let g = graph("conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,flatten,dense128,relu,dense10")
            .unwrap();
        assert_eq!(g.nodes.len(), 6);
        assert_eq!(g.params[4].name, "layers.7.weight");
        assert_eq!(g.params[4].shape, vec![128, 32 * 7 * 7]);
        assert_eq!(g.params[6].name, "layers.9.weight");
        // Without the token, the dense layers flatten anyway and keep the
        // names old files have.
        assert_eq!(graph("cnn").unwrap().params[4].name, "layers.6.weight");
        // A later node sees the flattened shape.
        let g = graph("conv2k3,flatten,relu,dropout0.5,dense10").unwrap();
        assert_eq!(g.nodes[0].op.activation(), Activation::Relu);
        assert_eq!(
            g.nodes[1].op.output(),
            Shape {
                c: 2 * 26 * 26,
                h: 1,
                w: 1
            }
        );
        assert!(format!("{:#}", graph("flatten,pool2,dense10").unwrap_err())
            .contains("layer 1 (pool2) on input 784: the 2×2 pool window is larger than the 1×1 feature map"));
    }

    #[test]
    fn residual_blocks_are_named_like_pytorch_modules() {
        let g = graph(
            "conv4k3p1,relu,res(conv4k3p1,relu,conv4k3p1),relu,\
             res(conv8k3s2p1,relu,dropout0.5,conv8k3p1),relu,gap,flatten,dense10",
        )
        .unwrap();
        let labels: Vec<String> = g.nodes.iter().map(Node::label).collect();
        assert_eq!(
            labels,
            [
                "layers.0 (conv4k3p1, relu)",
                "layers.2.body.0 (conv4k3p1, relu)",
                "layers.2.body.2 (conv4k3p1)",
                "layers.2 (add)",
                "layers.3 (relu)",
                "layers.4.body.0 (conv8k3s2p1, relu)",
                "layers.4.body.2 (dropout0.5)",
                "layers.4.body.3 (conv8k3p1)",
                "layers.4.shortcut (conv8k1s2)",
                "layers.4 (add)",
                "layers.5 (relu)",
                "layers.6 (gap)",
                "layers.8 (dense10)",
            ]
        );
        assert_eq!(
            names(&g),
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.2.body.0.weight",
                "layers.2.body.0.bias",
                "layers.2.body.2.weight",
                "layers.2.body.2.bias",
                "layers.4.body.0.weight",
                "layers.4.body.0.bias",
                "layers.4.body.3.weight",
                "layers.4.body.3.bias",
                "layers.4.shortcut.weight",
                "layers.4.shortcut.bias",
                "layers.8.weight",
                "layers.8.bias",
            ]
        );
        assert_eq!(g.params[10].shape, vec![8, 4, 1, 1]);
        let spec_indices: Vec<usize> = g.nodes.iter().map(|n| n.spec_index).collect();
        assert_eq!(spec_indices, [0, 2, 2, 2, 3, 4, 4, 4, 4, 4, 5, 6, 8]);
        // The identity block sums the block's input and its body; the
        // projected one the shortcut and its body.
        assert_eq!(g.nodes[3].inputs, [Value::Node(0), Value::Node(2)]);
        assert_eq!(g.nodes[8].inputs, [Value::Node(4)]);
        assert_eq!(g.nodes[9].inputs, [Value::Node(8), Value::Node(7)]);
        assert_eq!(g.nodes[9].op.output(), Shape { c: 8, h: 14, w: 14 });
        // Dropout draws from its node's own stream.
        let dropout = g.nodes[6].op.as_any().downcast_ref::<Dropout>().unwrap();
        assert_eq!((dropout.p, dropout.stream), (0.5, 6));
        // Channels alone changing need a 1×1 shortcut of stride 1.
        let g = graph("res(conv3k3p1),dense10").unwrap();
        assert_eq!(g.nodes[1].label(), "layers.0.shortcut (conv3k1)");
    }

    #[test]
    fn a_blocks_first_activation_does_not_change_its_input() {
        // relu(x) inside the block must not be fused into the conv before
        // it: the shortcut reads x itself.
        let g = graph("conv4k3p1,res(relu,conv4k3p1),relu,dense10").unwrap();
        assert_eq!(g.nodes[0].op.activation(), Activation::Identity);
        assert_eq!(g.nodes[1].label(), "layers.1.body.0 (relu)");
        assert_eq!(g.nodes[3].inputs, [Value::Node(0), Value::Node(2)]);
        // Nested blocks nest their names.
        let g = graph("res(res(conv1k3p1),relu),dense10").unwrap();
        let labels: Vec<String> = g.nodes.iter().map(Node::label).collect();
        assert_eq!(
            labels,
            [
                "layers.0.body.0.body.0 (conv1k3p1)",
                "layers.0.body.0 (add)",
                "layers.0.body.1 (relu)",
                "layers.0 (add)",
                "layers.1 (dense10)"
            ]
        );
    }

    #[test]
    fn blocks_that_do_not_fit_name_the_block_and_shapes() {
        let err = |s: &str| format!("{:#}", graph(s).unwrap_err());
        assert!(
            err("conv4k3p1,res(conv4k3),dense10").contains(
                "layer 1 (res(conv4k3)) on input 4×28×28: its body gives 4×26×26, which no 1×1 shortcut can match (with the body's stride 1 it gives 4×28×28)"
            ),
            "{}",
            err("conv4k3p1,res(conv4k3),dense10")
        );
        assert!(
            err("pool4,res(conv2k3p1,conv2k9),dense10").contains(
                "layer 1 (res(conv2k3p1,conv2k9)), body layer 1 (conv2k9) on input 2×7×7: the 9×9 kernel"
            ),
            "{}",
            err("pool4,res(conv2k3p1,conv2k9),dense10")
        );
        assert!(err("dense10,res(relu)").contains("must end in a dense layer"));
    }

    /// `--model cifar` on CIFAR's 3×32×32 images; it needs the `bn` token,
    /// so it runs once batch norm is in.
    #[test]
    fn the_cifar_preset_builds_once_bn_parses() {
        if ModelSpec::parse("bn").is_err() {
            eprintln!("skipped: the bn token does not parse yet");
            return;
        }
        let spec = ModelSpec::parse("cifar").unwrap();
        let g = Graph::new(&spec, Shape { c: 3, h: 32, w: 32 }, 10).unwrap();
        let conv_names: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| n.op.as_any().is::<Conv2d>())
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            conv_names,
            [
                "layers.0",
                "layers.3",
                "layers.7.body.0",
                "layers.7.body.3",
                "layers.8",
                "layers.12",
                "layers.16.body.0",
                "layers.16.body.3",
            ]
        );
        let shape_of = |name: &str| {
            g.nodes
                .iter()
                .rfind(|n| n.name == name)
                .map(|n| n.op.output())
                .unwrap()
        };
        assert_eq!(
            shape_of("layers.7"),
            Shape {
                c: 32,
                h: 16,
                w: 16
            }
        );
        assert_eq!(shape_of("layers.16"), Shape { c: 128, h: 4, w: 4 });
        assert_eq!(shape_of("layers.17"), Shape { c: 128, h: 1, w: 1 });
        let head = g
            .params
            .iter()
            .rfind(|p| p.name.ends_with("weight"))
            .unwrap();
        assert_eq!(
            (head.name.as_str(), &head.shape[..]),
            ("layers.19.weight", &[10, 128][..])
        );
        // Identity shortcuts only: the blocks keep their shapes.
        assert!(g.params.iter().all(|p| !p.name.contains("shortcut")));
    }

    /// x → dense8,relu (a) → dense8 (b) → a + b → dense10: a is read twice.
    fn residual_graph() -> Graph {
        use crate::ops::add::Add;
        let mut b = GraphBuilder::new(Shape { c: 1, h: 2, w: 3 });
        let dense = |inputs, outputs| Dense {
            inputs,
            outputs,
            activation: Activation::Identity,
        };
        let a = b
            .push(0, Box::new(dense(6, 8)), vec![Value::Input])
            .unwrap();
        assert!(b.fuse(a, Activation::Relu));
        let f = b.push(2, Box::new(dense(8, 8)), vec![a]).unwrap();
        let shape = b.shape(a);
        let sum = b.push(3, Box::new(Add { shape }), vec![a, f]).unwrap();
        b.push(4, Box::new(dense(8, 10)), vec![sum]).unwrap();
        let spec = ModelSpec::parse("dense10").unwrap();
        b.finish(&spec, 10).unwrap()
    }

    #[test]
    fn a_value_read_twice_gets_its_gradients_summed() {
        let g = residual_graph();
        assert_eq!(g.consumers(), [2, 1, 1, 0]);
        use GradTarget::*;
        let steps = g.backward_steps(3, false);
        let targets: Vec<(usize, Vec<GradTarget>)> =
            steps.into_iter().map(|s| (s.node, s.grad_inputs)).collect();
        assert_eq!(
            targets,
            [
                (3, vec![Write]),
                (2, vec![Write, Write]),
                (1, vec![Accumulate]),
                (0, vec![Skip]),
            ]
        );
        // From node 1, only nodes 1 and 0 are walked, and the input is wanted.
        let steps = g.backward_steps(1, true);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].grad_inputs, [Write]);
    }

    #[test]
    fn no_bias_decay_exempts_one_dimensional_tensors() {
        let mut g = graph("conv4k3,relu,pool2,dense10").unwrap();
        assert_eq!(g.decay_groups(), [(0..g.param_len, true)]);
        g.no_bias_decay = true;
        let groups = g.decay_groups();
        let flags: Vec<bool> = groups.iter().map(|(_, d)| *d).collect();
        assert_eq!(flags, [true, false, true, false]);
        assert_eq!(groups[0].0, 0..64);
        assert_eq!(groups.last().unwrap().0.end, g.param_len);
        for (range, _) in &groups {
            assert_eq!(range.start % PARAM_ALIGN, 0);
            assert_eq!(range.len() % 4, 0);
        }
    }

    #[test]
    fn a_node_whose_output_is_unused_is_refused() {
        let mut b = GraphBuilder::new(Shape { c: 1, h: 1, w: 4 });
        let dense = |outputs| Dense {
            inputs: 4,
            outputs,
            activation: Activation::Identity,
        };
        b.push(0, Box::new(dense(3)), vec![Value::Input]).unwrap();
        b.push(1, Box::new(dense(10)), vec![Value::Input]).unwrap();
        let spec = ModelSpec::parse("dense10").unwrap();
        let err = b.finish(&spec, 10).unwrap_err().to_string();
        assert!(
            err.contains("layers.0 (dense3): its output is never used"),
            "{err}"
        );
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
