//! `gpunet inspect`: what a trained network learned, as numbers, pictures
//! and one HTML page. One file per job:
//!
//! - [`analysis`]: the numbers, computed through the `Backend` trait so
//!   they run on either device: per-class statistics of every unit, dead
//!   units, first-layer templates, the strongest output weights, inputs
//!   that maximise a unit (gradient ascent through the backward pass), the
//!   most confident mistakes and the confusion matrix, a layer's
//!   activations; dead units judged after the bn a layer's output goes
//!   through, and per-class statistics of any node.
//! - [`nodes`]: which node an address means (`0`, `3.body.0`; `--unit`,
//!   `--pca-layer`, `--node`), where a layer's units are judged alive, and
//!   each bn node's running statistics and parameters.
//! - [`pca`]: principal components of those activations, to draw in 2-D.
//! - [`render`]: the pictures, one module per drawer (`grid.rs`,
//!   `confusion.rs`, `scatter.rs`), with [`colormap`] for their colours and
//!   `text.rs` (private) for their text.
//! - [`html`]: the page that shows them.
//! - [`units`]: a page per unit (template, maximisation image, per-class
//!   bar chart, strongest connections, write-up) and the connections.
//! - [`writeups`]: the language-model pipeline's `writeups.json`, and the
//!   keys it uses.
//! - [`progress`]: a bar per analysis on stderr, and their timings.
//! - [`report`]: the command itself ([`report::run`], called by the CLI):
//!   loads the model and the test set, runs the analyses, draws the
//!   pictures and writes `index.html` (and `report.json` with `--json`).
//! - [`prompts`] and [`writeups`]: `--prompts` / `--llm-url`, a language
//!   model's interpretation of every hidden unit, layer and the network,
//!   asked through [`crate::llm`] and kept in `writeups.json`.
//!
//! `pca`, `render`, `colormap` and `html` are pure functions, numbers in
//! and files out; they know nothing of networks. The rest of this comment
//! is their API.
//!
//! # Pictures — [`render`]
//!
//! All write atomically (temporary file, then rename), return the
//! `(width, height)` written, and fail with a message naming the file and
//! the problem (no tiles, tiles of different sizes, captions that do not
//! match the tiles, a picture over [`render::MAX_SIDE`] a side, …).
//!
//! - [`render::Tile`]` { width, height, values }`: a row-major grid of
//!   numbers (`values[y * width + x]`); [`render::Tile::new`] checks the
//!   length.
//! - [`render::GridOptions`]` { title, columns, zoom, gap, scale,
//!   legend_label, frame_delay_ms }`, with a `Default` (no title, automatic
//!   columns, 4× zoom, 8 px gap, scale = max |v|, 500 ms per frame).
//! - [`render::weight_grid`]`(path, &tiles, &captions, &opts)`: signed
//!   tiles on one blue–white–red scale `±s` (by default the largest `|v|`),
//!   each enlarged `zoom`× with nearest-neighbour sampling, a caption under
//!   each (`captions` empty or one per tile, `'\n'` for more lines), a title
//!   and a colour bar labelled `−s`, `0`, `+s`. PNG.
//! - [`render::templates_gif`]`(path, &[(label, tiles)], &captions, &opts)`:
//!   one weight grid per snapshot ("step 400" under the title), one scale
//!   (max over all frames), one size and one palette for all frames, looping
//!   forever, the last frame held 4× as long. GIF.
//! - [`render::image_grid`]`(path, &tiles, &captions, &opts)`: grayscale
//!   tiles in `[0, 1]` (0 black, 1 white) with captions, e.g.
//!   `"class 3: act 12.4"` or `"4 → 9 (97%)"`. PNG.
//! - [`render::confusion_heatmap`]`(path, &confusion, &names)`:
//!   `confusion[true][predicted]` counts as a heat map with the counts
//!   written in, diagonal blue by the share of the row right, mistakes red by
//!   their share of the row (darkest = the largest confusion), per-class
//!   accuracy on the right, overall accuracy in the title. PNG.
//! - [`render::scatter`]`(path, &points, &classes, &names, title, x_label,
//!   y_label)`: 2-D points coloured by class (ten colours) with a legend;
//!   960 × 720. PNG.
//!
//! # Colours — [`colormap`]
//!
//! [`colormap::diverging`]`(v, s)` (blue < 0, near-white 0, red > 0,
//! clipped at `±s`), [`colormap::grayscale`]`(v)`, plus the white-to-blue,
//! white-to-red and class colours the pictures use. NaN shows as magenta.
//!
//! # PCA — [`pca`]
//!
//! [`pca::fit`]`(&data, rows, dims, k) -> Pca { mean, components,
//! explained_variance_ratio }` (components sorted by variance, unit length,
//! largest coordinate positive) and [`pca::Pca::project`]`(&data, rows)` →
//! `rows × k` values. E.g. the PCA picture of a hidden layer:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use gpunet::inspect::{pca, render};
//! # let (activations, labels, rows, width) = (vec![0.0f32; 0], vec![0u8; 0], 0, 0);
//! let fitted = pca::fit(&activations, rows, width, 2)?;
//! let xy = fitted.project(&activations, rows);
//! let points: Vec<(f32, f32)> = xy.chunks_exact(2).map(|p| (p[0], p[1])).collect();
//! let [r1, r2] = [0, 1].map(|i| 100.0 * fitted.explained_variance_ratio[i]);
//! render::scatter(
//!     std::path::Path::new("out/pca.png"),
//!     &points,
//!     &labels,
//!     &[], // class names (empty: their indices)
//!     "Hidden layer 1, first two principal components",
//!     &format!("PC 1 ({r1:.1}% of variance)"),
//!     &format!("PC 2 ({r2:.1}% of variance)"),
//! )?;
//! # Ok(())
//! # }
//! ```
//!
//! # Report — [`html`]
//!
//! [`html::Report`]` { title, sections }`, [`html::Section`]` { title,
//! paragraphs, links, images, tables }`, [`html::Figure`]` { file, alt, caption }`
//! (`file` relative to the report's directory), [`html::Table`]` { header,
//! rows }`; [`html::write`]`(dir, &report)` writes `dir/index.html`: plain
//! HTML and inline CSS, everything escaped, and an error instead of a page
//! when a figure's file is missing.

pub mod analysis;
pub mod colormap;
pub mod html;
pub mod nodes;
pub mod pca;
pub mod progress;
pub mod prompts;
pub mod render;
pub mod report;
mod text;
pub mod units;
pub mod writeups;
