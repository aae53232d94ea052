//! The model spec language: a network written as one compact string,
//! e.g. `conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,dense128,relu,dense10`.
//!
//! | token | layer |
//! | --- | --- |
//! | `dense<N>` | fully connected, N outputs (flattens what comes before) |
//! | `conv<C>k<K>[s<S>][p<P>]` | 2-D convolution, C output channels, K×K kernel, stride S (1), padding P (0) |
//! | `pool<K>[s<S>]` | max-pool over K×K windows, stride S (default K) |
//! | `relu`, `tanh`, `sigmoid` | an activation, fused into the conv or dense layer right before it where there is one |
//! | `dropout<p>` | inverted dropout: drops each value with probability p in [0, 1) in training, scales the rest by 1/(1−p); the identity in evaluation |
//! | `gap` | global average pooling: C×H×W → C×1×1 |
//! | `flatten` | C×H×W seen as C·H·W values; no node of its own (dense layers flatten anyway), it takes an index so that later ones match PyTorch's `nn.Sequential` |
//! | `res(<tokens>)` | a residual block y = s(x) + f(x): f is the token list inside, s the identity, or a 1×1 conv when f changes the shape; an activation after it is the next token: `res(conv16k3p1,relu,conv16k3p1),relu` |
//!
//! `mlp`, `cnn` and `cifar` name the preset networks. A JSON file holds either the
//! string (`{"layers": "dense128,relu,dense10"}`) or a list of tokens
//! (`{"layers": ["dense128", "relu", "dense10"]}`).

use crate::graph::Activation;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A dropout probability p in [0, 1), compared by its bits (the parser
/// refuses anything else, NaN included).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct DropRate(f32);

impl DropRate {
    pub fn new(p: f32) -> Result<DropRate> {
        if !(0.0..1.0).contains(&p) {
            bail!("the dropout probability must be at least 0 and below 1, not {p}");
        }
        Ok(DropRate(p))
    }

    pub fn get(self) -> f32 {
        self.0
    }
}

impl PartialEq for DropRate {
    fn eq(&self, other: &DropRate) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for DropRate {}

impl TryFrom<f32> for DropRate {
    type Error = anyhow::Error;
    fn try_from(p: f32) -> Result<DropRate> {
        DropRate::new(p)
    }
}

impl From<DropRate> for f32 {
    fn from(rate: DropRate) -> f32 {
        rate.0
    }
}

impl fmt::Display for DropRate {
    /// The shortest decimal that reads back as the same f32.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One layer as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerSpec {
    Dense {
        outputs: usize,
    },
    Conv {
        channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    MaxPool {
        size: usize,
        stride: usize,
    },
    /// Batch normalisation over the channels of what comes before.
    BatchNorm,
    Act(Activation),
    /// Inverted dropout (`dropout0.5`).
    Dropout(DropRate),
    /// Global average pooling (`gap`).
    GlobalAvgPool,
    /// `flatten`: a spec index, no node.
    Flatten,
    /// `res(...)`: y = shortcut(x) + body(x).
    Residual(Vec<LayerSpec>),
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerSpec::Dense { outputs } => write!(f, "dense{outputs}"),
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => {
                write!(f, "conv{channels}k{kernel}")?;
                if stride != 1 {
                    write!(f, "s{stride}")?;
                }
                if padding != 0 {
                    write!(f, "p{padding}")?;
                }
                Ok(())
            }
            LayerSpec::MaxPool { size, stride } => {
                write!(f, "pool{size}")?;
                if stride != size {
                    write!(f, "s{stride}")?;
                }
                Ok(())
            }
            LayerSpec::BatchNorm => write!(f, "bn"),
            LayerSpec::Act(a) => write!(f, "{}", a.name()),
            LayerSpec::Dropout(p) => write!(f, "dropout{p}"),
            LayerSpec::GlobalAvgPool => write!(f, "gap"),
            LayerSpec::Flatten => write!(f, "flatten"),
            LayerSpec::Residual(ref body) => write!(f, "res({})", join(body)),
        }
    }
}

/// A whole network: its layers in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub layers: Vec<LayerSpec>,
    /// The last dense layer takes the data's class count (`--model cifar`:
    /// the preset is written with `dense10`, CIFAR-10's head); see
    /// [`ModelSpec::for_classes`]. False for a spec the user wrote out.
    pub head_follows_data: bool,
}

/// The default MLP: 784-128-10 with ReLU.
pub const DEFAULT_MLP: &str = "dense128,relu,dense10";
/// The default CNN.
pub const DEFAULT_CNN: &str = "conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,dense128,relu,dense10";

/// `--model cifar`: a small residual network for 32×32 colour images, in
/// the style of the fast CIFAR-10 training work: David Page's ResNet-9
/// ("How to train your ResNet", myrtle.ai, 2018), which hlb-CIFAR10
/// (tysam-code) and airbench (Keller Jordan, "94% on CIFAR-10 in 3.29
/// seconds on a single GPU", 2024) carried on. As there: a conv-bn-relu
/// stem; blocks of conv → max-pool → bn → relu (airbench's order: pooling
/// before the norm), the first and the last followed by a residual block of
/// two conv-bn-relu whose sum takes no activation (ResNet-9's); then, as the
/// issue asks, global average pooling and a dense head. Widths 16-32-64-128,
/// a quarter of ResNet-9's 64-128-256-512, so that it trains on a CPU-backed
/// adapter too (about 24 M multiply-adds per 32×32 image).
pub const CIFAR: &str = "conv16k3p1,bn,relu,\
conv32k3p1,pool2,bn,relu,res(conv32k3p1,bn,relu,conv32k3p1,bn,relu),\
conv64k3p1,pool2,bn,relu,\
conv128k3p1,pool2,bn,relu,res(conv128k3p1,bn,relu,conv128k3p1,bn,relu),\
gap,flatten,dense10";

/// Tokens joined by commas, as the parser reads them.
fn join(layers: &[LayerSpec]) -> String {
    let tokens: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
    tokens.join(",")
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", join(&self.layers))
    }
}

impl ModelSpec {
    /// Parses a spec string, or `mlp` / `cnn` / `cifar`.
    pub fn parse(text: &str) -> Result<ModelSpec> {
        let name = text.trim();
        let text = match name {
            "mlp" => DEFAULT_MLP,
            "cnn" => DEFAULT_CNN,
            "cifar" => CIFAR,
            other => other,
        };
        Ok(ModelSpec {
            layers: parse_list(text, "layer")?,
            head_follows_data: name == "cifar",
        })
    }

    /// The spec as it is built on data with `classes` classes: a preset
    /// whose head follows the data gets a last dense layer of `classes`
    /// outputs (`cifar` on a 4-class set ends in `dense4`); any other spec
    /// comes back as it is, and the graph checks its head against the data.
    pub fn for_classes(&self, classes: usize) -> ModelSpec {
        let mut spec = self.clone();
        if spec.head_follows_data {
            if let Some(LayerSpec::Dense { outputs }) = spec.layers.last_mut() {
                *outputs = classes;
            }
            spec.head_follows_data = false;
        }
        spec
    }

    /// An MLP from layer widths (input first) and the hidden activation.
    pub fn mlp(widths: &[usize], activation: Activation) -> ModelSpec {
        let mut layers = Vec::new();
        for (i, &w) in widths.iter().enumerate().skip(1) {
            layers.push(LayerSpec::Dense { outputs: w });
            if i + 1 < widths.len() {
                layers.push(LayerSpec::Act(activation));
            }
        }
        ModelSpec {
            layers,
            head_follows_data: false,
        }
    }

    /// Reads a JSON model file (see the module's documentation).
    pub fn from_json(text: &str) -> Result<ModelSpec> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Layers {
            Joined(String),
            Tokens(Vec<String>),
        }
        #[derive(Deserialize)]
        struct File {
            layers: Layers,
        }
        let file: File = serde_json::from_str(text).map_err(|e| {
            anyhow!("expected {{\"layers\": \"conv16k3p1,relu,...\"}} or a list of tokens: {e}")
        })?;
        match file.layers {
            Layers::Joined(s) => ModelSpec::parse(&s),
            Layers::Tokens(tokens) => ModelSpec::parse(&tokens.join(",")),
        }
    }
}

/// A comma-separated token list; errors name the token by its place
/// (`what` is "layer" at the top, "body layer" inside a block).
fn parse_list(text: &str, what: &str) -> Result<Vec<LayerSpec>> {
    split_tokens(text)
        .into_iter()
        .enumerate()
        .map(|(i, token)| parse_token(token).with_context(|| format!("{what} {i} ({token:?})")))
        .collect()
}

/// Splits at the commas outside parentheses, trimming each token. An
/// unbalanced parenthesis stays in its token, whose parser names it.
fn split_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                tokens.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    tokens.push(text[start..].trim());
    tokens
}

/// `res(<tokens>)`: a block name, its token list in parentheses, nothing after.
fn parse_block(token: &str) -> Result<LayerSpec> {
    let open = match (token.find('('), token.find(')')) {
        (Some(open), Some(close)) if close < open => bail!("`)` without a matching `(`"),
        (None, Some(_)) => bail!("`)` without a matching `(`"),
        (Some(open), _) => open,
        (None, None) => unreachable!("a block has a parenthesis"),
    };
    let mut depth = 0;
    let close = token[open..]
        .char_indices()
        .find_map(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(open + i)
        })
        .ok_or_else(|| anyhow!("`(` is never closed"))?;
    let after = token[close + 1..].trim();
    if !after.is_empty() {
        bail!("unexpected `{after}` after the `)` that closes the block");
    }
    match token[..open].trim() {
        "res" => {}
        "" => bail!("a block is written res(...), with its name before the `(`"),
        other => bail!("unknown block `{other}`; expected res(...)"),
    }
    let inner = &token[open + 1..close];
    if inner.trim().is_empty() {
        bail!("res() needs at least one layer inside, e.g. res(conv16k3p1,relu,conv16k3p1)");
    }
    let body = parse_list(inner, "body layer")?;
    if body.contains(&LayerSpec::Flatten) {
        bail!("flatten cannot go inside res(...): the sum needs the body's output in its shape");
    }
    Ok(LayerSpec::Residual(body))
}

/// `dropout<p>`: p a decimal number in [0, 1).
fn parse_dropout(rate: &str) -> Result<LayerSpec> {
    if rate.is_empty() {
        bail!("missing the probability: dropout<p> with p in [0, 1), e.g. dropout0.5");
    }
    let p: f32 = rate
        .parse()
        .map_err(|_| anyhow!("`{rate}` is not a probability; expected e.g. dropout0.5"))?;
    Ok(LayerSpec::Dropout(DropRate::new(p)?))
}

const KNOWN: &str =
    "denseN, convCkK[sS][pP], poolK[sS], bn, relu, tanh, sigmoid, dropoutP, gap, flatten or res(...)";

/// A block, a word, or `prefix<number>` followed by optional
/// `<letter><number>` suffixes.
fn parse_token(token: &str) -> Result<LayerSpec> {
    if token.is_empty() {
        bail!("an empty layer; expected {KNOWN}");
    }
    if token.contains(['(', ')']) {
        return parse_block(token);
    }
    if let Ok(a) = Activation::from_name(token) {
        return Ok(LayerSpec::Act(a));
    }
    match token {
        "bn" => return Ok(LayerSpec::BatchNorm),
        "gap" => return Ok(LayerSpec::GlobalAvgPool),
        "flatten" => return Ok(LayerSpec::Flatten),
        _ => {}
    }
    if let Some(rate) = token.strip_prefix("dropout") {
        return parse_dropout(rate);
    }
    let split = token
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| anyhow!("unknown layer; expected {KNOWN}"))?;
    let (kind, rest) = token.split_at(split);
    let fields = numbered_fields(rest)?;
    let get = |letter: char, default: Option<usize>| -> Result<usize> {
        fields
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|&(_, v)| v)
            .or(default)
            .ok_or_else(|| anyhow!("missing `{letter}<number>`"))
    };
    let allow = |letters: &str| -> Result<()> {
        match fields.iter().find(|(l, _)| !letters.contains(*l)) {
            Some((l, _)) => bail!("`{l}` does not belong in a {kind} layer"),
            None => Ok(()),
        }
    };
    let positive = |what: &str, v: usize| -> Result<usize> {
        if v == 0 {
            bail!("{what} must be at least 1");
        }
        Ok(v)
    };
    match kind {
        "dense" | "fc" => {
            allow("#")?;
            Ok(LayerSpec::Dense {
                outputs: positive("the width", get('#', None)?)?,
            })
        }
        "conv" => {
            allow("#ksp")?;
            Ok(LayerSpec::Conv {
                channels: positive("the channel count", get('#', None)?)?,
                kernel: positive("the kernel size", get('k', None)?)?,
                stride: positive("the stride", get('s', Some(1))?)?,
                padding: get('p', Some(0))?,
            })
        }
        "pool" | "maxpool" => {
            allow("#s")?;
            let size = positive("the pool size", get('#', None)?)?;
            Ok(LayerSpec::MaxPool {
                size,
                stride: positive("the stride", get('s', Some(size))?)?,
            })
        }
        _ => bail!("unknown layer `{kind}`; expected {KNOWN}"),
    }
}

/// "16k3s2p1" → [('#',16), ('k',3), ('s',2), ('p',1)]: the leading number
/// is keyed '#'.
fn numbered_fields(text: &str) -> Result<Vec<(char, usize)>> {
    let mut fields = Vec::new();
    let mut letter = '#';
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.is_empty() {
            bail!("expected a number after `{letter}`");
        }
        let value = digits
            .parse()
            .map_err(|_| anyhow!("{digits} is too large"))?;
        if fields.iter().any(|(l, _)| *l == letter) {
            bail!("`{letter}` given twice");
        }
        fields.push((letter, value));
        digits.clear();
        letter = c;
        if c != ' ' && !c.is_ascii_lowercase() {
            bail!("unexpected `{c}`");
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_default_cnn() {
        let spec = ModelSpec::parse("cnn").unwrap();
        assert_eq!(spec.to_string(), DEFAULT_CNN);
        assert_eq!(
            spec.layers[0],
            LayerSpec::Conv {
                channels: 16,
                kernel: 3,
                stride: 1,
                padding: 1
            }
        );
        assert_eq!(spec.layers[2], LayerSpec::MaxPool { size: 2, stride: 2 });
        let odd = ModelSpec::parse("conv5k3s2p2, pool3s2, fc10").unwrap();
        assert_eq!(odd.to_string(), "conv5k3s2p2,pool3s2,dense10");
    }

    #[test]
    fn mlp_widths_become_dense_layers() {
        let spec = ModelSpec::mlp(&[784, 256, 128, 10], Activation::Tanh);
        assert_eq!(spec.to_string(), "dense256,tanh,dense128,tanh,dense10");
        assert_eq!(ModelSpec::parse("mlp").unwrap().to_string(), DEFAULT_MLP);
    }

    #[test]
    fn json_files_hold_a_string_or_tokens() {
        let a = ModelSpec::from_json(r#"{"layers": "conv8k5,relu,pool2,dense10"}"#).unwrap();
        let b =
            ModelSpec::from_json(r#"{"layers": ["conv8k5", "relu", "pool2", "dense10"]}"#).unwrap();
        assert_eq!(a, b);
        assert!(ModelSpec::from_json(r#"{"model": 1}"#).is_err());
    }

    #[test]
    fn bad_tokens_name_the_layer_and_the_problem() {
        let err = |s: &str| format!("{:#}", ModelSpec::parse(s).unwrap_err());
        assert!(
            err("conv16,relu").contains("layer 0 (\"conv16\"): missing `k<number>`"),
            "{}",
            err("conv16,relu")
        );
        assert!(err("dense10,softmax").contains("layer 1 (\"softmax\")"));
        assert!(err("dense0").contains("the width must be at least 1"));
        assert!(err("pool2p1").contains("`p` does not belong in a pool layer"));
        assert!(err("conv8k3k5").contains("`k` given twice"));
        assert!(err("conv8kx").contains("expected a number after `k`"));
        assert!(err("lstm64").contains("unknown layer `lstm`"));
    }

    #[test]
    fn new_tokens_print_as_they_parse() {
        for text in [
            "dropout0.5,dense10",
            "conv8k3p1,relu,dropout0.25,pool2,gap,flatten,dense10",
            "dropout0,dense10",
            "res(conv8k3p1,relu,conv8k3p1),relu,dense10",
            "res(conv8k3s2p1,relu,conv16k3p1,dropout0.1),res(res(conv16k3p1),tanh),gap,dense10",
            "flatten,res(dense6,relu),dense10",
        ] {
            let spec = ModelSpec::parse(text).unwrap();
            assert_eq!(spec.to_string(), text);
            assert_eq!(ModelSpec::parse(&spec.to_string()).unwrap(), spec);
        }
        // Spaces and other spellings come back in the canonical form.
        let spec = ModelSpec::parse(" res( conv8k3p1 , relu ) , relu , dropout.5, fc10").unwrap();
        assert_eq!(
            spec.to_string(),
            "res(conv8k3p1,relu),relu,dropout0.5,dense10"
        );
        assert_eq!(
            spec.layers[0],
            LayerSpec::Residual(vec![
                LayerSpec::Conv {
                    channels: 8,
                    kernel: 3,
                    stride: 1,
                    padding: 1
                },
                LayerSpec::Act(Activation::Relu)
            ])
        );
        // A JSON list of tokens may hold a block as one token.
        let json =
            ModelSpec::from_json(r#"{"layers": ["res(conv8k3p1,relu)", "relu", "dense10"]}"#);
        assert_eq!(
            json.unwrap(),
            ModelSpec::parse("res(conv8k3p1,relu),relu,dense10").unwrap()
        );
    }

    #[test]
    fn dropout_rates_are_checked() {
        let err = |s: &str| format!("{:#}", ModelSpec::parse(s).unwrap_err());
        assert_eq!(
            ModelSpec::parse("dropout0.3").unwrap().layers[0],
            LayerSpec::Dropout(DropRate::new(0.3).unwrap())
        );
        assert!(
            err("dense8,dropout1").contains(
                "layer 1 (\"dropout1\"): the dropout probability must be at least 0 and below 1, not 1"
            ),
            "{}",
            err("dense8,dropout1")
        );
        assert!(err("dropout1.5").contains("below 1, not 1.5"));
        assert!(err("dropout-0.1").contains("at least 0"));
        assert!(err("dropoutnan").contains("not NaN"));
        assert!(err("dropout").contains("missing the probability: dropout<p>"));
        assert!(err("dropout0.5x").contains("`0.5x` is not a probability"));
        assert!(err("dropout50%").contains("`50%` is not a probability"));
    }

    #[test]
    fn bad_blocks_name_the_token_and_the_problem() {
        let err = |s: &str| format!("{:#}", ModelSpec::parse(s).unwrap_err());
        let cases = [
            ("res(conv8k3p1,relu", "layer 0 (\"res(conv8k3p1,relu\"): `(` is never closed"),
            ("dense8,res(conv8k3p1))", "layer 1 (\"res(conv8k3p1))\"): unexpected `)` after the `)` that closes the block"),
            ("conv8k3p1),relu", "layer 0 (\"conv8k3p1)\"): `)` without a matching `(`"),
            ("res)conv8k3(", "`)` without a matching `(`"),
            ("res(conv8k3p1)relu", "unexpected `relu` after the `)`"),
            ("res(),relu", "layer 0 (\"res()\"): res() needs at least one layer inside"),
            ("res( ),relu", "res() needs at least one layer inside"),
            ("block(conv8k3p1)", "unknown block `block`; expected res(...)"),
            ("(conv8k3p1)", "with its name before the `(`"),
            ("res(conv8k3p1,conv16)", "layer 0 (\"res(conv8k3p1,conv16)\"): body layer 1 (\"conv16\"): missing `k<number>`"),
            ("res(conv8k3p1,,relu)", "body layer 1 (\"\"): an empty layer"),
            ("res(res(relu,lstm4))", "body layer 0 (\"res(relu,lstm4)\"): body layer 1 (\"lstm4\"): unknown layer `lstm`"),
            ("res(conv8k3p1,flatten)", "flatten cannot go inside res(...)"),
            ("dense8,,dense10", "layer 1 (\"\"): an empty layer"),
        ];
        for (text, message) in cases {
            assert!(err(text).contains(message), "{text}: {}", err(text));
        }
    }

    /// The preset's graph is tested in graph.rs; here, that it is the
    /// documented string and prints back as itself once `bn` parses.
    #[test]
    fn the_cifar_preset_round_trips_once_bn_parses() {
        if ModelSpec::parse("bn").is_err() {
            eprintln!("skipped: the bn token does not parse yet");
            return;
        }
        let spec = ModelSpec::parse("cifar").unwrap();
        assert_eq!(spec.to_string(), CIFAR);
        assert_eq!(spec.layers.len(), 20);
    }

    /// `cifar`'s head takes the data's class count; a written-out spec
    /// keeps its own (the graph then refuses a mismatch).
    #[test]
    fn the_cifar_head_follows_the_class_count() {
        let cifar = ModelSpec::parse(" cifar ").unwrap();
        let four = cifar.for_classes(4);
        assert_eq!(four.layers.last(), Some(&LayerSpec::Dense { outputs: 4 }));
        assert_eq!(four.layers[..19], cifar.layers[..19]);
        assert!(four.to_string().ends_with(",gap,flatten,dense4"));
        // Once fitted it is an ordinary spec: saved, reloaded and compared
        // on --resume as written.
        assert_eq!(ModelSpec::parse(&four.to_string()).unwrap(), four);
        assert_eq!(four.for_classes(7), four);
        assert_eq!(cifar.for_classes(10), ModelSpec::parse(CIFAR).unwrap());
        for written in [CIFAR, "cnn", "mlp", "dense128,relu,dense10"] {
            let spec = ModelSpec::parse(written).unwrap();
            assert_eq!(spec.for_classes(4), spec, "{written}");
        }
    }
}
