//! The model spec language: a network written as one compact string,
//! e.g. `conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,dense128,relu,dense10`.
//!
//! | token | layer |
//! | --- | --- |
//! | `dense<N>` | fully connected, N outputs (flattens what comes before) |
//! | `conv<C>k<K>[s<S>][p<P>]` | 2-D convolution, C output channels, K×K kernel, stride S (1), padding P (0) |
//! | `pool<K>[s<S>]` | max-pool over K×K windows, stride S (default K) |
//! | `relu`, `tanh`, `sigmoid` | an activation, fused into the conv or dense layer right before it where there is one |
//!
//! `mlp` and `cnn` name the default networks. A JSON file holds either the
//! string (`{"layers": "dense128,relu,dense10"}`) or a list of tokens
//! (`{"layers": ["dense128", "relu", "dense10"]}`).

use crate::graph::Activation;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One layer as the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

/// A whole network: its layers in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub layers: Vec<LayerSpec>,
}

/// The default MLP: 784-128-10 with ReLU.
pub const DEFAULT_MLP: &str = "dense128,relu,dense10";
/// The default CNN.
pub const DEFAULT_CNN: &str = "conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,dense128,relu,dense10";

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens: Vec<String> = self.layers.iter().map(|l| l.to_string()).collect();
        write!(f, "{}", tokens.join(","))
    }
}

impl ModelSpec {
    /// Parses a spec string, or `mlp` / `cnn`.
    pub fn parse(text: &str) -> Result<ModelSpec> {
        let text = match text.trim() {
            "mlp" => DEFAULT_MLP,
            "cnn" => DEFAULT_CNN,
            other => other,
        };
        let layers = text
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, token)| parse_token(token).with_context(|| format!("layer {i} ({token:?})")))
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelSpec { layers })
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
        ModelSpec { layers }
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

/// `prefix<number>` followed by optional `<letter><number>` suffixes.
fn parse_token(token: &str) -> Result<LayerSpec> {
    if let Ok(a) = Activation::from_name(token) {
        return Ok(LayerSpec::Act(a));
    }
    if token == "bn" {
        return Ok(LayerSpec::BatchNorm);
    }
    let split = token.find(|c: char| c.is_ascii_digit()).ok_or_else(|| {
        anyhow!("unknown layer; expected denseN, convCkK[sS][pP], poolK[sS], relu, tanh or sigmoid")
    })?;
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
        _ => bail!("unknown layer `{kind}`; expected dense, conv, pool, relu, tanh or sigmoid"),
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
}
