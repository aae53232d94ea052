//! One page per unit (`<out>/units/<layer>-<unit>.html`): its template,
//! the input that maximises it, a bar chart of its mean ± std per class,
//! its strongest connections in and out, and its write-up when there is
//! one. Also the connections themselves, read from the weights.

use super::analysis::LayerInfo;
use super::html::{self, Figure, Link, Section, Table};
use super::render::{self, GridOptions, Tile};
use super::writeups::{layer_key, Writeups};
use crate::graph::{Graph, Value};
use anyhow::{Context, Result};
use std::path::Path;

/// The folder of the unit pages inside the report's directory.
pub const DIR: &str = "units";

/// A unit's strongest connections to or from another layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Connections {
    /// The other layer's node.
    pub node: usize,
    /// (the other layer's unit, strength), strongest first.
    pub strongest: Vec<(usize, f32)>,
    /// True: each strength is the weight itself. False: the layers meet
    /// through several weights per pair (a conv kernel, or every position
    /// of a channel), and each strength is their L2 norm.
    pub signed: bool,
}

/// The node with units that feeds `node`, through nodes that only move
/// values (pool, flatten, dropout: no parameters, one input), if any.
fn source(graph: &Graph, node: usize) -> Option<usize> {
    let mut current = node;
    loop {
        let [Value::Node(p)] = graph.nodes[current].inputs[..] else {
            return None;
        };
        let n = &graph.nodes[p];
        if n.op.units().is_some() {
            return Some(p);
        }
        if !n.params.is_empty() {
            return None;
        }
        current = p;
    }
}

/// The node with units that `node` feeds, through nodes that only move
/// values, if exactly one does.
fn consumer(graph: &Graph, node: usize) -> Option<usize> {
    let mut current = node;
    loop {
        let readers: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| graph.nodes[i].inputs.contains(&Value::Node(current)))
            .collect();
        let [next] = readers[..] else {
            return None;
        };
        let n = &graph.nodes[next];
        if n.inputs.len() != 1 {
            return None;
        }
        if n.op.units().is_some() {
            return Some(next);
        }
        if !n.params.is_empty() {
            return None;
        }
        current = next;
    }
}

/// `node`'s weights as (units, per unit) with `per unit = in_units ×
/// positions`: the positions each pair of units meets at.
fn weights<'a>(
    graph: &Graph,
    params: &'a [f32],
    node: usize,
    in_units: usize,
) -> Option<(&'a [f32], usize, usize)> {
    let n = &graph.nodes[node];
    let units = n.op.units()?;
    let w = &params[graph.params[*n.params.first()?].range()];
    let per_unit = w.len() / units;
    (per_unit.is_multiple_of(in_units) && per_unit > 0).then_some((
        w,
        per_unit,
        per_unit / in_units,
    ))
}

fn strength(slice: &[f32]) -> f32 {
    if slice.len() == 1 {
        slice[0]
    } else {
        slice.iter().map(|v| v * v).sum::<f32>().sqrt()
    }
}

fn strongest(mut ranked: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    ranked.truncate(k);
    ranked
}

/// The `k` strongest connections into `unit` of `node` from the layer
/// with units before it (none for a first layer, which reads the image).
pub fn incoming(
    graph: &Graph,
    params: &[f32],
    node: usize,
    unit: usize,
    k: usize,
) -> Option<Connections> {
    let from = source(graph, node)?;
    let in_units = graph.nodes[from].op.units()?;
    let (w, per_unit, positions) = weights(graph, params, node, in_units)?;
    let row = &w[unit * per_unit..(unit + 1) * per_unit];
    let ranked = (0..in_units)
        .map(|i| (i, strength(&row[i * positions..(i + 1) * positions])))
        .collect();
    Some(Connections {
        node: from,
        strongest: strongest(ranked, k),
        signed: positions == 1,
    })
}

/// The `k` strongest connections from `unit` of `node` into the layer with
/// units after it (none for the output layer).
pub fn outgoing(
    graph: &Graph,
    params: &[f32],
    node: usize,
    unit: usize,
    k: usize,
) -> Option<Connections> {
    let to = consumer(graph, node)?;
    let in_units = graph.nodes[node].op.units()?;
    let (w, per_unit, positions) = weights(graph, params, to, in_units)?;
    let out_units = graph.nodes[to].op.units()?;
    let ranked = (0..out_units)
        .map(|o| {
            let start = o * per_unit + unit * positions;
            (o, strength(&w[start..start + positions]))
        })
        .collect();
    Some(Connections {
        node: to,
        strongest: strongest(ranked, k),
        signed: positions == 1,
    })
}

/// The page of a unit, relative to the report's directory.
pub fn page_path(layer: &LayerInfo, graph: &Graph, unit: usize) -> String {
    format!(
        "{DIR}/{}-{unit}.html",
        layer_key(&graph.nodes[layer.node].name)
    )
}

/// What a unit page shows; `None` parts are left out (with a sentence
/// saying why where a reader would look for them).
pub struct UnitPage<'a> {
    pub graph: &'a Graph,
    pub layer: &'a LayerInfo,
    pub unit: usize,
    pub class_names: &'a [String],
    /// mean[class], std[class] of the unit's activation over the test set.
    pub per_class: Option<(Vec<f32>, Vec<f32>)>,
    /// The unit's template, and what it is (a sentence).
    pub template: Option<(Tile, String)>,
    /// The strongest contributors' templates with their captions.
    pub contributors: Vec<(Tile, String)>,
    /// The input found by activation maximisation (for display) and the
    /// activation it reaches.
    pub maximised: Option<(Tile, f32)>,
    pub incoming: Option<Connections>,
    pub outgoing: Option<Connections>,
    pub writeups: &'a Writeups,
    pub is_output: bool,
}

impl UnitPage<'_> {
    fn name(&self) -> String {
        if self.is_output {
            format!("output {} (\"{}\")", self.unit, self.class_names[self.unit])
        } else {
            format!("unit {}", self.unit)
        }
    }

    /// Writes the page and its pictures under `out/units/`.
    pub fn write(&self, out: &Path) -> Result<()> {
        let dir = out.join(DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!(
            "{}-{}",
            layer_key(&self.graph.nodes[self.layer.node].name),
            self.unit
        );
        let mut sections = Vec::new();
        let mut head = Section {
            title: format!("{} of {}", self.name(), self.layer.label),
            links: vec![Link {
                href: "../index.html".into(),
                text: "back to the report".into(),
            }],
            ..Default::default()
        };
        if let Some(text) = self
            .writeups
            .unit_of(&self.graph.nodes[self.layer.node].name, self.unit)
        {
            head.paragraphs.push(format!("Write-up: {text}"));
        }
        sections.push(head);

        let mut pictures = Section {
            title: "What it responds to".into(),
            ..Default::default()
        };
        if let Some((tile, about)) = &self.template {
            let file = format!("{stem}-template.png");
            let mut tiles = vec![tile.clone()];
            let mut captions = vec![self.name()];
            for (t, c) in &self.contributors {
                tiles.push(t.clone());
                captions.push(c.clone());
            }
            // Contributors' templates are on their own scale (first-layer
            // weights, not products), so each grid has one kind only.
            render::weight_grid(
                &dir.join(&file),
                &tiles[..1],
                &captions[..1],
                &GridOptions {
                    zoom: zoom_for(tile),
                    legend_label: "weight".into(),
                    ..Default::default()
                },
            )?;
            pictures.paragraphs.push(about.clone());
            pictures.images.push(Figure {
                file: file.clone(),
                alt: format!("the template of {}", self.name()),
                caption: String::new(),
            });
            if tiles.len() > 1 {
                let file = format!("{stem}-contributors.png");
                render::weight_grid(
                    &dir.join(&file),
                    &tiles[1..],
                    &captions[1..],
                    &GridOptions {
                        title: "its strongest contributors' templates".into(),
                        zoom: zoom_for(tile),
                        legend_label: "weight".into(),
                        ..Default::default()
                    },
                )?;
                pictures.images.push(Figure {
                    file,
                    alt: "the first-layer templates of the strongest contributors".into(),
                    caption:
                        "Under each: the unit of the layer before and its weight into this one."
                            .into(),
                });
            }
        }
        if self.template.is_none() {
            pictures.paragraphs.push(
                "No input template: this unit reads the maps of the layer before, through activations, not the image itself. Its strongest connections are below.".into(),
            );
        }
        if self.maximised.is_none() {
            pictures.paragraphs.push(
                "No maximisation image: inspect climbs only the first units of each hidden layer; rerun it with a larger --ascent-units to include this one.".into(),
            );
        }
        if let Some((tile, activation)) = &self.maximised {
            let file = format!("{stem}-maximised.png");
            render::image_grid(
                &dir.join(&file),
                std::slice::from_ref(tile),
                &[format!("act {activation:.2}")],
                &GridOptions {
                    zoom: zoom_for(tile).max(4),
                    ..Default::default()
                },
            )?;
            pictures.images.push(Figure {
                file,
                alt: format!("the input that maximises {}", self.name()),
                caption: format!(
                    "The input found by gradient ascent on the image: {} reaches {activation:.2} on it.",
                    self.name()
                ),
            });
        }
        if let Some((mean, std)) = &self.per_class {
            let file = format!("{stem}-classes.png");
            render::bar_chart(
                &dir.join(&file),
                &format!("{} per class", self.name()),
                if self.is_output {
                    "mean logit ± standard deviation over the test set"
                } else {
                    "mean activation ± standard deviation over the test set"
                },
                self.class_names,
                mean,
                std,
            )?;
            pictures.images.push(Figure {
                file,
                alt: format!("mean and standard deviation of {} per class", self.name()),
                caption: "Bars: the mean over the test images of each class; whiskers: one standard deviation each way.".into(),
            });
        }
        sections.push(pictures);

        let mut wiring = Section {
            title: "Strongest connections".into(),
            ..Default::default()
        };
        for (direction, conns) in [("in, from", &self.incoming), ("out, to", &self.outgoing)] {
            let Some(c) = conns else { continue };
            let other = &self.graph.nodes[c.node];
            let is_last = c.node + 1 == self.graph.nodes.len();
            wiring.tables.push(Table {
                header: vec![
                    format!("{direction} {}", other.label()),
                    if c.signed {
                        "weight".into()
                    } else {
                        "L2 norm of the weights".into()
                    },
                ],
                rows: c
                    .strongest
                    .iter()
                    .map(|&(u, w)| {
                        let name = if is_last {
                            format!("output {u} (\"{}\")", self.class_names[u])
                        } else {
                            format!("unit {u}")
                        };
                        let strength = if c.signed {
                            format!("{w:+.3}")
                        } else {
                            format!("{w:.3}")
                        };
                        vec![name, strength]
                    })
                    .collect(),
            });
            wiring
                .links
                .extend(c.strongest.iter().filter_map(|&(u, _)| {
                    let layer = LayerInfo {
                        node: c.node,
                        spec_index: other.spec_index,
                        label: other.label(),
                        units: other.op.units()?,
                        activation: other.op.activation(),
                    };
                    Some(Link {
                        href: page_path(&layer, self.graph, u)
                            .trim_start_matches(&format!("{DIR}/"))
                            .to_string(),
                        text: if is_last {
                            format!("page of {}", self.class_names[u])
                        } else {
                            format!("page of {} unit {u}", other.name)
                        },
                    })
                }));
        }
        if self.incoming.is_none() {
            wiring.paragraphs.push(
                "It reads the image directly: its incoming weights are the template above.".into(),
            );
        }
        if wiring.tables.is_empty() && self.outgoing.is_none() {
            wiring
                .paragraphs
                .push("It is an output: its value is the class's logit.".into());
        }
        sections.push(wiring);

        html::write_page(
            &dir,
            &format!("{stem}.html"),
            &html::Report {
                title: format!("{} of {}", self.name(), self.layer.label),
                sections,
            },
        )
        .with_context(|| {
            format!(
                "writing the page of {} of {}",
                self.name(),
                self.layer.label
            )
        })?;
        Ok(())
    }
}

/// A zoom that draws a tile about 112 pixels wide.
pub fn zoom_for(tile: &Tile) -> u32 {
    (112 / tile.width.max(1)).clamp(1, 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;
    use crate::spec::ModelSpec;

    #[test]
    fn connections_follow_the_weights_through_pool_and_flatten() {
        let input = Shape { c: 1, h: 4, w: 4 };
        let spec = ModelSpec::parse("conv2k3p1,relu,pool2,dense3,relu,dense2").unwrap();
        let graph = Graph::new(&spec, input, 2).unwrap();
        let params: Vec<f32> = (0..graph.param_len).map(|i| (i % 7) as f32 - 3.0).collect();
        // The dense3 layer (after pool and flatten) reads 2 channels × 2×2.
        let dense = (0..graph.nodes.len())
            .find(|&n| graph.nodes[n].op.units() == Some(3))
            .unwrap();
        let w = &params[graph.params[graph.nodes[dense].params[0]].range()];
        let inc = incoming(&graph, &params, dense, 1, 2).unwrap();
        assert_eq!(inc.node, 0);
        assert!(!inc.signed);
        let norm = |c: usize| (0..4).map(|p| w[8 + c * 4 + p].powi(2)).sum::<f32>().sqrt();
        let expected = strongest(vec![(0, norm(0)), (1, norm(1))], 2);
        assert_eq!(inc.strongest, expected);
        // Out of conv channel 1 into dense3's units.
        let out = outgoing(&graph, &params, 0, 1, 3).unwrap();
        assert_eq!(out.node, dense);
        let norm_out = |o: usize| (0..4).map(|p| w[o * 8 + 4 + p].powi(2)).sum::<f32>().sqrt();
        let expected = strongest((0..3).map(|o| (o, norm_out(o))).collect(), 3);
        assert_eq!(out.strongest, expected);
        // dense3 → dense2: single signed weights.
        let last = graph.nodes.len() - 1;
        let w2 = &params[graph.params[graph.nodes[last].params[0]].range()];
        let inc = incoming(&graph, &params, last, 1, 3).unwrap();
        assert!(inc.signed);
        assert_eq!(
            inc.strongest,
            strongest((0..3).map(|j| (j, w2[3 + j])).collect(), 3)
        );
        assert!(outgoing(&graph, &params, last, 0, 3).is_none());
        assert!(incoming(&graph, &params, 0, 0, 3).is_none());
    }
}
