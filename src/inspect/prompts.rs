//! Neuron write-ups: prompts that ask a language model to interpret every
//! hidden unit, then each layer, then the network (`inspect --prompts`),
//! and, with `--llm-url`, the asking itself.
//!
//! Under `<out>/prompts/`:
//! - `units/L-k.md` and `units/L-k.png` for every live unit `k` of layer
//!   `L` (numbered as in the spec): a background block (architecture,
//!   widths, dataset, activation, training and test accuracy and loss), the
//!   unit's position, its mean and standard deviation per class over the
//!   inspected test images, its activation-maximisation image, and the
//!   task. Dead units get no prompt.
//! - `layers/L.md`: the background and every unit's answer (dead units
//!   listed as dead), asking for a summary of the layer.
//! - `network.md`: the background, each layer's summary and each output's
//!   10 strongest incoming weights, asking how the network decides.
//!
//! The layer and network prompts hold the answers they build on; where one
//! is missing they say which prompt's answer belongs there, so a reader
//! can paste them into a chat assistant by hand. With a language model the
//! prompts are asked in that order (units, then layers, then the network);
//! each answer is saved to `writeups.json` as it arrives (see
//! [`super::writeups`]) and a rerun asks only for what is missing.

use super::analysis::{self, AscentSettings, UnitStats};
use super::html::{self, Section, Table};
use super::render::{self, GridOptions, Tile};
use super::writeups::{self, unit_key, Writeups};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::graph::{Activation, Value};
use crate::llm::{ChatClient, LlmConfig};
use crate::model_file::SavedModel;
use crate::ops::dense::Dense;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many incoming weights of each output the network prompt lists.
pub const OUTPUT_WEIGHTS: usize = 10;

/// `--prompts`, and the model to ask when `--llm-url` is given.
#[derive(Debug, Clone, Default)]
pub struct PromptsConfig {
    pub llm: Option<LlmConfig>,
}

/// What inspect already measured, for the prompts to quote.
pub struct Evidence<'a> {
    pub model_path: &'a Path,
    /// The test data's directory (its name names the dataset).
    pub data: &'a Path,
    pub model: &'a SavedModel,
    pub test: &'a Dataset,
    /// The test images' logits (examples × classes).
    pub logits: &'a [f32],
    pub stats: &'a [UnitStats],
    pub ascent: &'a AscentSettings,
}

/// The report's section on the write-ups, and the error that stopped the
/// asking, if one did (returned after the report is written, so the report
/// shows the answers that did arrive).
pub struct Outcome {
    pub section: Section,
    pub error: Option<anyhow::Error>,
}

/// One hidden unit's prompt.
struct UnitPrompt {
    layer: usize,
    unit: usize,
    text: String,
    png: PathBuf,
}

/// Writes the prompts, asks the language model if one is configured, and
/// writes `writeups.html`.
pub fn run(
    cfg: &PromptsConfig,
    ev: &Evidence,
    backend: &mut dyn Backend,
    out: &Path,
    log: &mut dyn Write,
) -> Result<Outcome> {
    let dir = out.join("prompts");
    for sub in ["units", "layers"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    let background = background(ev);
    let graph = &ev.model.graph;
    let (w, h) = (graph.input.w, graph.input.h);
    let mut units = Vec::new();
    for s in ev.stats {
        let live: Vec<usize> = (0..s.layer.units).filter(|u| !s.dead.contains(u)).collect();
        writeln!(
            log,
            "inspect: write-up prompts for the {} live units of {} (activation maximisation, {} steps)",
            live.len(),
            s.layer.label,
            ev.ascent.steps
        )?;
        // The backend runs at most 256 images at once.
        for chunk in live.chunks(256) {
            for m in analysis::maximise(backend, graph, s.layer.node, chunk, ev.ascent)? {
                let layer = s.layer.spec_index;
                let name = format!("{layer}-{}", m.unit);
                let png = dir.join("units").join(format!("{name}.png"));
                render::image_grid(
                    &png,
                    &[Tile::new(w, h, m.image[..w * h].to_vec())?],
                    &[format!(
                        "unit {}:{}\nact {:.2}",
                        layer, m.unit, m.activation
                    )],
                    &GridOptions {
                        zoom: 6,
                        ..Default::default()
                    },
                )?;
                let text = unit_prompt(&background, ev, s, m.unit, m.activation, &name);
                write_text(&dir.join("units").join(format!("{name}.md")), &text)?;
                units.push(UnitPrompt {
                    layer,
                    unit: m.unit,
                    text,
                    png,
                });
            }
        }
    }

    let store = out.join(writeups::FILE);
    let mut answers = Writeups::load(&store)?;
    let client = cfg.llm.as_ref().map(ChatClient::new).transpose()?;
    let mut error = None;
    if let Some(client) = &client {
        error = ask_units(client, &units, &mut answers, &store, log).err();
    }
    for s in ev.stats {
        let layer = s.layer.spec_index;
        let text = layer_prompt(&background, ev, s, &answers);
        write_text(&dir.join("layers").join(format!("{layer}.md")), &text)?;
        let ready =
            (0..s.layer.units).all(|u| s.dead.contains(&u) || answers.unit(layer, u).is_some());
        if let (Some(client), None, true, None) = (&client, &error, ready, answers.layer(layer)) {
            writeln!(
                log,
                "inspect: asking {} about {}",
                client.endpoint(),
                s.layer.label
            )?;
            match client.ask(&text, None, log) {
                Ok(answer) => {
                    answers.layers.insert(layer.to_string(), answer);
                    answers.save(&store)?;
                }
                Err(e) => error = Some(e.context(format!("the prompt of {}", s.layer.label))),
            }
        }
    }
    let text = network_prompt(&background, ev, &answers);
    write_text(&dir.join("network.md"), &text)?;
    let ready = ev
        .stats
        .iter()
        .all(|s| answers.layer(s.layer.spec_index).is_some());
    if let (Some(client), None, true, None) = (&client, &error, ready, &answers.network) {
        writeln!(
            log,
            "inspect: asking {} about the whole network",
            client.endpoint()
        )?;
        match client.ask(&text, None, log) {
            Ok(answer) => {
                answers.network = Some(answer);
                answers.save(&store)?;
            }
            Err(e) => error = Some(e.context("the network prompt")),
        }
    }
    write_page(out, ev, &answers)?;
    Ok(Outcome {
        section: section(ev, &units, &answers, client.is_some()),
        error,
    })
}

/// Asks every unit prompt without an answer, saving each answer at once.
fn ask_units(
    client: &ChatClient,
    units: &[UnitPrompt],
    answers: &mut Writeups,
    store: &Path,
    log: &mut dyn Write,
) -> Result<()> {
    let missing: Vec<&UnitPrompt> = units
        .iter()
        .filter(|p| answers.unit(p.layer, p.unit).is_none())
        .collect();
    if missing.len() < units.len() {
        writeln!(
            log,
            "inspect: {} of {} unit prompts already answered in {}",
            units.len() - missing.len(),
            units.len(),
            store.display()
        )?;
    }
    for (i, p) in missing.iter().enumerate() {
        writeln!(
            log,
            "inspect: asking {} about unit {}:{} ({} of {})",
            client.endpoint(),
            p.layer,
            p.unit,
            i + 1,
            missing.len()
        )?;
        let png = std::fs::read(&p.png).with_context(|| format!("reading {}", p.png.display()))?;
        let answer = client
            .ask(&p.text, Some(&png), log)
            .with_context(|| format!("the prompt of unit {}:{}", p.layer, p.unit))?;
        answers.units.insert(unit_key(p.layer, p.unit), answer);
        answers.save(store)?;
    }
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::checkpoint::write_atomically(path, text.as_bytes())
}

/// Mean cross-entropy of `logits` (examples × classes) against `labels`.
fn mean_loss(logits: &[f32], labels: &[u8], classes: usize) -> f64 {
    let total: f64 = logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&z| f64::from(z - max).exp()).sum();
            sum.ln() - f64::from(row[label as usize] - max)
        })
        .sum();
    total / labels.len().max(1) as f64
}

/// The test images' accuracy and mean loss, as inspect measured them.
fn measured(ev: &Evidence) -> (f64, f64) {
    let classes = ev.model.graph.classes();
    let correct = ev
        .logits
        .chunks(classes)
        .zip(&ev.test.labels)
        .filter(|(row, &label)| {
            crate::ops::softmax_xent::reference::argmax(row).0 == label as usize
        })
        .count();
    (
        correct as f64 / ev.test.len().max(1) as f64,
        mean_loss(ev.logits, &ev.test.labels, classes),
    )
}

fn dataset_name(data: &Path) -> String {
    data.file_name().map_or_else(
        || data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What every prompt begins with: the network, the data and how well it does.
fn background(ev: &Evidence) -> String {
    let graph = &ev.model.graph;
    let mut text = String::from("## Background\n\n");
    let layers: Vec<String> = analysis::layers(graph)
        .iter()
        .map(|l| {
            let role = if l.node + 1 == graph.nodes.len() {
                "the output"
            } else {
                "hidden"
            };
            format!(
                "layer {} `{}`: {} units, {role}",
                l.spec_index, l.label, l.units
            )
        })
        .collect();
    let _ = writeln!(
        text,
        "- Network: an image classifier `{}` on {} inputs, {} parameters, trained with gpunet. Its layers with units: {}.",
        graph.spec,
        graph.input,
        graph.num_parameters(),
        layers.join("; ")
    );
    let _ = writeln!(
        text,
        "- Dataset: {} ({} classes: {}); the input pixels are scaled to [0, 1], 0 black, 1 white.",
        dataset_name(ev.data),
        graph.classes(),
        graph.class_names().join(", ")
    );
    match (&ev.model.settings, ev.model.history.last()) {
        (Some(s), Some(last)) => {
            let _ = writeln!(
                text,
                "- Training: {} epochs with {}, learning rate {}, batch {}. After the last epoch: train accuracy {:.2}% (loss {:.4}), test accuracy {:.2}% (loss {:.4}).",
                ev.model.progress.epochs_done,
                s.optimizer,
                s.lr,
                s.batch,
                100.0 * last.train_acc,
                last.train_loss,
                100.0 * last.test_acc,
                last.test_loss
            );
        }
        (Some(s), None) => {
            let _ = writeln!(
                text,
                "- Training: {} epochs with {}, learning rate {}, batch {}; no per-epoch figures were saved.",
                ev.model.progress.epochs_done, s.optimizer, s.lr, s.batch
            );
        }
        _ => text
            .push_str("- Training: no training settings or history were saved with this model.\n"),
    }
    let (accuracy, loss) = measured(ev);
    let _ = writeln!(
        text,
        "- Measured for these prompts on {} test images: accuracy {:.2}%, mean cross-entropy loss {:.4}.",
        ev.test.len(),
        100.0 * accuracy,
        loss
    );
    text
}

/// What a unit's activation is, in words.
fn activation_words(s: &UnitStats, graph_is_conv: bool) -> String {
    let act = match s.layer.activation {
        Activation::Identity => "with no activation function".to_string(),
        a => format!("after its {}", a.name()),
    };
    if graph_is_conv {
        format!("the channel's output {act}, averaged over all positions of the image")
    } else {
        format!("the unit's output {act}")
    }
}

fn is_conv(ev: &Evidence, s: &UnitStats) -> bool {
    ev.model.graph.nodes[s.layer.node].output_len() != s.layer.units
}

fn unit_prompt(
    background: &str,
    ev: &Evidence,
    s: &UnitStats,
    unit: usize,
    peak: f32,
    name: &str,
) -> String {
    let layer = s.layer.spec_index;
    let names = ev.model.graph.class_names();
    let mut count = vec![0usize; names.len()];
    for &l in &ev.test.labels {
        count[l as usize] += 1;
    }
    let conv = is_conv(ev, s);
    let mut text = format!("# Unit {layer}:{unit} of an image classifier\n\n{background}\n");
    let _ = writeln!(
        text,
        "## The unit\n\n{} {unit} of layer {layer} (`{}`), one of its {} {}; activation function {}.\n",
        if conv { "Channel" } else { "Unit" },
        s.layer.label,
        s.layer.units,
        if conv { "channels" } else { "units" },
        s.layer.activation.name()
    );
    let _ = writeln!(
        text,
        "Its activation ({}) over the {} test images, per true class:\n",
        activation_words(s, conv),
        ev.test.len()
    );
    text.push_str("| class | images | mean | standard deviation |\n| --- | ---: | ---: | ---: |\n");
    for (c, name) in names.iter().enumerate() {
        let _ = writeln!(
            text,
            "| {name} | {} | {:.3} | {:.3} |",
            count[c], s.mean[c][unit], s.std[c][unit]
        );
    }
    let _ = writeln!(
        text,
        "\nOver all classes: mean {:.3}, largest value on any test image {:.3}.\n",
        s.overall_mean[unit], s.max[unit]
    );
    let _ = writeln!(
        text,
        "## Its activation-maximisation image (attached)\n\n![the input that maximises unit {layer}:{unit}]({name}.png)\n\n\
         The {}×{} input found by {} steps of gradient ascent from a dim gray image, through the network's own backward pass, to make this activation large (it reaches {peak:.2}); an L2 penalty, blur and jitter keep it smooth, and pixels stay in [0, 1]. Bright pixels are where ink excites the unit.\n",
        ev.model.graph.input.h,
        ev.model.graph.input.w,
        ev.ascent.steps
    );
    text.push_str(
        "## Task\n\nGive an interpretation of this unit precise enough to predict which images activate it: \
         which classes, and which strokes or parts of the image, drive it up, and which leave it low. \
         Use both the statistics and the image, say how sure you are, and answer in one paragraph of at most 120 words.\n",
    );
    text
}

fn layer_prompt(background: &str, ev: &Evidence, s: &UnitStats, answers: &Writeups) -> String {
    let layer = s.layer.spec_index;
    let mut text = format!(
        "# Layer {layer} (`{}`) of an image classifier\n\n{background}\n## Its units\n\n\
         Each of the layer's {} units was interpreted from its activation per class and its activation-maximisation image:\n\n",
        s.layer.label, s.layer.units
    );
    for u in 0..s.layer.units {
        let _ = write!(text, "### Unit {layer}:{u}\n\n");
        if s.dead.contains(&u) {
            let _ = writeln!(
                text,
                "Dead: its output is zero on every one of the {} test images, so it passes no signal and was not interpreted.\n",
                ev.test.len()
            );
        } else {
            match answers.unit(layer, u) {
                Some(answer) => {
                    let _ = writeln!(text, "{answer}\n");
                }
                None => {
                    let _ = writeln!(
                        text,
                        "(not answered yet: paste here the answer to prompts/units/{layer}-{u}.md)\n"
                    );
                }
            }
        }
    }
    text.push_str(
        "## Task\n\nSummarise what this layer computes as a whole: group its units by the role they play, \
         say which classes it covers well and which poorly, and what its dead units (if any) cost. \
         At most 250 words.\n",
    );
    text
}

/// Names of the inputs to the output layer: `L:u` when they are the units
/// of the last studied hidden layer; `c@(y,x)` (channel, row, column) when
/// they are a flattened C×H×W tensor; else their positions.
fn output_input_names(ev: &Evidence) -> (Vec<String>, String) {
    let graph = &ev.model.graph;
    let Some(last) = graph.nodes.last() else {
        return (Vec::new(), String::new());
    };
    let inputs = last
        .op
        .as_any()
        .downcast_ref::<Dense>()
        .map_or(0, |d| d.inputs);
    if let Some(s) = ev.stats.last().filter(|s| s.layer.units == inputs) {
        return (
            (0..inputs)
                .map(|u| unit_key(s.layer.spec_index, u))
                .collect(),
            format!(
                "units of layer {} (`{}`)",
                s.layer.spec_index, s.layer.label
            ),
        );
    }
    let source = match last.inputs.first() {
        Some(Value::Node(j)) => Some((
            format!("output of `{}`", graph.nodes[*j].label()),
            graph.nodes[*j].op.output(),
        )),
        Some(Value::Input) => Some(("input image".to_string(), graph.input)),
        None => None,
    };
    match source {
        Some((what, shape)) if shape.c * shape.h * shape.w == inputs && shape.h * shape.w > 1 => (
            (0..inputs)
                .map(|i| {
                    let (c, p) = (i / (shape.h * shape.w), i % (shape.h * shape.w));
                    format!("{c}@({},{})", p / shape.w, p % shape.w)
                })
                .collect(),
            format!("flattened {shape} {what}, each named channel@(row,column)"),
        ),
        _ => (
            (0..inputs).map(|i| format!("input {i}")).collect(),
            "positions of the output layer's input vector".into(),
        ),
    }
}

fn network_prompt(background: &str, ev: &Evidence, answers: &Writeups) -> String {
    let mut text =
        format!("# The whole image classifier\n\n{background}\n## Its hidden layers\n\n");
    for s in ev.stats {
        let layer = s.layer.spec_index;
        let _ = write!(text, "### Layer {layer} (`{}`)\n\n", s.layer.label);
        match answers.layer(layer) {
            Some(answer) => {
                let _ = writeln!(text, "{answer}\n");
            }
            None => {
                let _ = writeln!(
                    text,
                    "(not answered yet: paste here the answer to prompts/layers/{layer}.md)\n"
                );
            }
        }
    }
    let top = analysis::top_output_weights(&ev.model.graph, &ev.model.params, OUTPUT_WEIGHTS);
    if !top.is_empty() {
        let (names, what) = output_input_names(ev);
        let _ = writeln!(
            text,
            "## What each output listens to\n\nThe {OUTPUT_WEIGHTS} incoming weights of largest magnitude of each output, from the {what}: a positive weight is evidence for the class, a negative one against.\n"
        );
        text.push_str("| class | strongest inputs (weight) |\n| --- | --- |\n");
        let classes = ev.model.graph.class_names();
        for (c, row) in top.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .map(|(i, w)| format!("{} ({w:+.3})", names[*i]))
                .collect();
            let _ = writeln!(text, "| {} | {} |", classes[c], cells.join(", "));
        }
        text.push('\n');
    }
    text.push_str(
        "## Task\n\nExplain how this network reaches its decisions, from the layers' summaries and the output weights: \
         what it looks for in each class, which classes it can confuse and why. At most 300 words.\n",
    );
    text
}

/// The report's section: where the prompts are, and the answers.
fn section(ev: &Evidence, units: &[UnitPrompt], answers: &Writeups, asked: bool) -> Section {
    let dead: usize = ev.stats.iter().map(|s| s.dead.len()).sum();
    let mut paragraphs = vec![format!(
        "prompts/ holds a prompt per live hidden unit ({} of them, each with its activation-maximisation image; {dead} dead units get none), one per layer and one for the network, as Markdown ready to paste into a chat assistant. The answers are kept in writeups.json; writeups.html shows each beside its unit.",
        units.len()
    )];
    if answers.is_empty() {
        paragraphs.push(if asked {
            "No answers arrived.".into()
        } else {
            "No answers yet: paste the prompts into a chat assistant, or rerun with --llm-url URL --llm-model NAME to ask an OpenAI-compatible server.".into()
        });
    }
    if let Some(network) = &answers.network {
        paragraphs.push(format!(
            "The network, as the language model summarises it: {network}"
        ));
    }
    let mut tables = Vec::new();
    let layer_rows: Vec<Vec<String>> = ev
        .stats
        .iter()
        .filter_map(|s| {
            let answer = answers.layer(s.layer.spec_index)?;
            Some(vec![s.layer.label.clone(), answer.to_string()])
        })
        .collect();
    if !layer_rows.is_empty() {
        tables.push(Table {
            header: vec!["layer".into(), "summary".into()],
            rows: layer_rows,
        });
    }
    let unit_rows: Vec<Vec<String>> = units
        .iter()
        .filter_map(|p| {
            let answer = answers.unit(p.layer, p.unit)?;
            Some(vec![unit_key(p.layer, p.unit), answer.to_string()])
        })
        .collect();
    if !unit_rows.is_empty() {
        tables.push(Table {
            header: vec!["unit".into(), "write-up".into()],
            rows: unit_rows,
        });
    }
    Section {
        title: "Neuron write-ups".into(),
        paragraphs,
        tables,
        ..Default::default()
    }
}

const PAGE_STYLE: &str = "body { font-family: system-ui, sans-serif; color: #222; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h2 { border-bottom: 1px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; }
td { border: 1px solid #ddd; padding: 0.5em; vertical-align: top; }
.answer { white-space: pre-wrap; }
.missing { color: #888; }
img { width: 168px; }
";

/// `writeups.html`: every answer beside its unit's image and statistics.
fn write_page(out: &Path, ev: &Evidence, answers: &Writeups) -> Result<()> {
    let esc = html::escape;
    let names = ev.model.graph.class_names();
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Neuron write-ups</title>\n<style>\n{PAGE_STYLE}</style>\n</head>\n<body>\n<h1>Neuron write-ups of {}</h1>\n<p><a href=\"index.html\">The report</a> · answers from <a href=\"writeups.json\">writeups.json</a> · prompts in <a href=\"prompts/network.md\">prompts/</a></p>\n",
        esc(&ev.model_path.file_name().map_or("the model".into(), |f| f.to_string_lossy().into_owned()))
    );
    let answer_html = |answer: Option<&str>, prompt: &str| match answer {
        Some(a) => format!("<div class=\"answer\">{}</div>", esc(a)),
        None => format!(
            "<div class=\"missing\">Not answered yet (prompt: <a href=\"{p}\">{p}</a>).</div>",
            p = esc(prompt)
        ),
    };
    page.push_str("<h2>The network</h2>\n");
    page.push_str(&answer_html(
        answers.network.as_deref(),
        "prompts/network.md",
    ));
    for s in ev.stats {
        let layer = s.layer.spec_index;
        let _ = writeln!(page, "<h2>Layer {layer}: {}</h2>", esc(&s.layer.label));
        page.push_str(&answer_html(
            answers.layer(layer),
            &format!("prompts/layers/{layer}.md"),
        ));
        page.push_str("\n<table>\n");
        for u in 0..s.layer.units {
            let _ = write!(page, "<tr><td><b>{}</b>", unit_key(layer, u));
            if s.dead.contains(&u) {
                page.push_str("</td><td></td><td>Dead: zero on every test image.</td></tr>\n");
                continue;
            }
            // The three classes the unit fires for most.
            let mut by_mean: Vec<usize> = (0..names.len()).collect();
            by_mean.sort_by(|&a, &b| s.mean[b][u].total_cmp(&s.mean[a][u]));
            let top: Vec<String> = by_mean
                .iter()
                .take(3)
                .map(|&c| format!("{} {:.2}±{:.2}", names[c], s.mean[c][u], s.std[c][u]))
                .collect();
            let _ = writeln!(
                page,
                "<br>{}</td><td><img src=\"prompts/units/{layer}-{u}.png\" alt=\"input maximising unit {layer}:{u}\"></td><td>{}</td></tr>",
                esc(&top.join(", ")),
                answer_html(answers.unit(layer, u), &format!("prompts/units/{layer}-{u}.md"))
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body>\n</html>\n");
    crate::checkpoint::write_atomically(&out.join("writeups.html"), page.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_loss_is_the_cross_entropy() {
        // Two classes, logits (0, ln 3): p = (1/4, 3/4).
        let logits = [0.0, 3f32.ln(), 0.0, 3f32.ln()];
        let loss = mean_loss(&logits, &[1, 0], 2);
        let want = (-(0.75f64).ln() - (0.25f64).ln()) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }
}
