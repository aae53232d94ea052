//! Training curves as a PNG: loss and accuracy against epoch, train and
//! test, side by side.
//!
//! Public API:
//! - [`CurvePoint`] `{ epoch, train_loss, train_acc, test_loss, test_acc }`:
//!   one logged moment of training. `epoch` may be fractional (per-step
//!   logging); accuracies are fractions in `[0, 1]`, as in `train.rs`'s
//!   reports, and are drawn as percentages.
//! - [`plot_curves`]`(path, &points, width, height)`: writes a
//!   `width`×`height` PNG with two panels — "Loss" (train and test) and
//!   "Accuracy (%)" (train and test) — axis labels, legends and a title. The
//!   file is written atomically (temporary file and rename). Errors on an
//!   empty series or a size outside [`MIN_SIZE`]..=[`MAX_SIDE`].
//!
//! Points whose value is not finite (a loss that went NaN) are left out of
//! that curve; test curves are drawn only where `test_loss` / `test_acc` are
//! `Some`, and not at all (nor in the legend) when none are.
//!
//! Everything here is pure Rust, so it builds without system libraries:
//! plotters draws into an RGB buffer, its text through `ab_glyph` with
//! DejaVu Sans embedded in the binary (`assets/fonts/`, licence beside it),
//! and `image` encodes the PNG.

use crate::checkpoint::write_atomically;
use anyhow::{anyhow, bail, Context};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// One logged moment of training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Epochs completed, e.g. 1.0 after the first or 0.25 a quarter in.
    pub epoch: f64,
    pub train_loss: f64,
    /// Fraction correct, in `[0, 1]`.
    pub train_acc: f64,
    pub test_loss: Option<f64>,
    /// Fraction correct, in `[0, 1]`.
    pub test_acc: Option<f64>,
}

/// The smallest image `plot_curves` draws, `(width, height)`: below it the
/// labels no longer fit.
pub const MIN_SIZE: (u32, u32) = (400, 250);
/// The largest side `plot_curves` draws.
pub const MAX_SIDE: u32 = 8192;

/// Curves with more points than this are drawn as plain lines.
const MAX_DOTTED_POINTS: usize = 60;

/// The font plotters draws every text with, registered under this name.
pub(crate) const FONT_FAMILY: &str = "sans-serif";
/// DejaVu Sans, embedded; `inspect` draws its text with it too.
pub(crate) static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Matplotlib's first two colours: blue for train, orange for test.
const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const TEST_COLOUR: RGBColor = RGBColor(255, 127, 14);

/// Draws the loss and accuracy curves of `points` into a PNG at `path`.
pub fn plot_curves(
    path: &Path,
    points: &[CurvePoint],
    width: u32,
    height: u32,
) -> anyhow::Result<()> {
    if points.is_empty() {
        bail!("cannot plot {}: no training points to plot", path.display());
    }
    if width < MIN_SIZE.0 || height < MIN_SIZE.1 || width > MAX_SIDE || height > MAX_SIDE {
        bail!(
            "cannot plot {}: {width}×{height} pixels is outside {}×{} ..= {MAX_SIDE}×{MAX_SIDE}",
            path.display(),
            MIN_SIZE.0,
            MIN_SIZE.1
        );
    }
    let rgb =
        render(points, width, height).with_context(|| format!("cannot plot {}", path.display()))?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, width, height, ExtendedColorType::Rgb8)
        .with_context(|| format!("cannot encode {} as PNG", path.display()))?;
    write_atomically(path, &png)
}

/// Registers the embedded font with plotters, once per process.
pub(crate) fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded font DejaVuSans.ttf cannot be read"))
    }
}

/// One curve: `(epoch, value)` pairs with finite values.
type Curve = Vec<(f64, f64)>;

fn curve(points: &[CurvePoint], value: impl Fn(&CurvePoint) -> Option<f64>) -> Curve {
    points
        .iter()
        .filter_map(|p| Some((p.epoch, value(p)?)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// The image as `width × height × 3` RGB bytes.
fn render(points: &[CurvePoint], width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let train_loss = curve(points, |p| Some(p.train_loss));
    let test_loss = curve(points, |p| p.test_loss);
    let train_acc = curve(points, |p| Some(100.0 * p.train_acc));
    let test_acc = curve(points, |p| p.test_acc.map(|a| 100.0 * a));

    let epochs = epoch_range(points);
    let loss_range = loss_range(&[&train_loss, &test_loss]);
    let acc_range = accuracy_range(&[&train_acc, &test_acc]);

    let scale = (height as f64 / 600.0).clamp(0.6, 3.0);
    // Even pixel sizes: plotters' ab_glyph path rounds each glyph's offset
    // by size / 2, which raises periods by half a pixel at odd sizes.
    let font = |size: f64| (FONT_FAMILY, even_px(size * scale));
    let mut buffer = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let epochs_done = |epoch: f64| match format_epoch(epoch) {
            one if one == "1" => "1 epoch".to_string(),
            n => format!("{n} epochs"),
        };
        // The latest test accuracy, which per-step logging may have left a
        // few points behind the last one.
        let latest_test = points
            .iter()
            .rev()
            .find_map(|p| Some((p.epoch, p.test_acc?)).filter(|(_, a)| a.is_finite()));
        let title = match latest_test {
            Some((epoch, acc)) => format!(
                "gpunet training: {:.2}% test accuracy after {}",
                100.0 * acc,
                epochs_done(epoch)
            ),
            None => format!(
                "gpunet training: {}",
                epochs_done(points[points.len() - 1].epoch)
            ),
        };
        let root = root.titled(&title, font(22.0))?;
        let (left, right) = root.split_horizontally(width / 2);
        let panel = Panel {
            epochs,
            font_scale: scale,
        };
        panel.draw(
            &left,
            "Loss",
            "cross-entropy loss",
            loss_range,
            &train_loss,
            &test_loss,
            SeriesLabelPosition::UpperRight,
        )?;
        panel.draw(
            &right,
            "Accuracy",
            "accuracy (%)",
            acc_range,
            &train_acc,
            &test_acc,
            SeriesLabelPosition::LowerRight,
        )?;
        root.present()?;
    }
    Ok(buffer)
}

/// What both panels share.
struct Panel {
    epochs: Range<f64>,
    font_scale: f64,
}

impl Panel {
    #[allow(clippy::too_many_arguments)]
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        y_desc: &str,
        y_range: Range<f64>,
        train: &Curve,
        test: &Curve,
        legend_at: SeriesLabelPosition,
    ) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let font = |size: f64| (FONT_FAMILY, even_px(size * self.font_scale));
        let px = |n: f64| (n * self.font_scale).round() as u32;
        let decimals = tick_decimals(&y_range);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, font(18.0))
            .margin(px(12.0))
            .x_label_area_size(px(42.0))
            .y_label_area_size(px(62.0))
            .build_cartesian_2d(self.epochs.clone(), y_range)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .x_labels(epoch_labels(&self.epochs))
            .y_labels(8)
            .x_label_formatter(&|x| format_epoch(*x))
            .y_label_formatter(&|y| format!("{y:.decimals$}"))
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()
            .map_err(plot_error)?;

        let stroke = px(2.0).max(2);
        // Dots mark the logged points while there are few enough to see.
        let dot = |series: &Curve| {
            if series.len() <= MAX_DOTTED_POINTS {
                px(3.0).max(2)
            } else {
                0
            }
        };
        for (name, series, colour) in [("train", train, TRAIN_COLOUR), ("test", test, TEST_COLOUR)]
        {
            if series.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    LineSeries::new(series.iter().copied(), colour.stroke_width(stroke))
                        .point_size(dot(series)),
                )
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(stroke))
                });
        }
        chart
            .configure_series_labels()
            .position(legend_at)
            .label_font(font(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("plotters: {e}")
}

/// The epochs spanned, from the whole epoch at or before the first point
/// to the whole epoch at or after the last (at least one epoch wide), so
/// that the axis has whole epochs to tick.
fn epoch_range(points: &[CurvePoint]) -> Range<f64> {
    let finite = points.iter().map(|p| p.epoch).filter(|e| e.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
        (lo.min(e), hi.max(e))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let (lo, hi) = ((lo + 1e-9).floor(), (hi - 1e-9).ceil());
    lo..hi.max(lo + 1.0)
}

/// How many epoch ticks to ask plotters for so that it puts them on whole
/// epochs only. Its steps are 1, 2 or 5 × 10^k, the finest whose count fits;
/// on a range of whole epochs `span` wide, asking for at most `span + 1`
/// rules out the half-epoch step (2·span + 1 ticks), and 10 keeps long runs
/// readable (every 2nd, 5th, 10th … epoch).
fn epoch_labels(range: &Range<f64>) -> usize {
    let span = (range.end - range.start).round().max(1.0) as usize;
    (span + 1).min(10)
}

/// From 0 to a little above the largest loss.
fn loss_range(curves: &[&Curve]) -> Range<f64> {
    let top = curves
        .iter()
        .flat_map(|c| c.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    0.0..if top > 0.0 { top * 1.08 } else { 1.0 }
}

/// Up to 100%, down to a little below the lowest accuracy.
fn accuracy_range(curves: &[&Curve]) -> Range<f64> {
    let low = curves
        .iter()
        .flat_map(|c| c.iter().map(|p| p.1))
        .fold(100.0, f64::min);
    let low = low.clamp(0.0, 100.0);
    let margin = 0.08 * (100.0 - low).max(1.0);
    (low - margin).max(0.0)..100.0
}

/// Epoch ticks and counts: "3", "2.5", "0.25".
fn format_epoch(epoch: f64) -> String {
    if (epoch - epoch.round()).abs() < 1e-9 {
        format!("{}", epoch.round())
    } else {
        let text = format!("{epoch:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Decimals that tell apart the ~8 ticks plotters puts on `range`.
fn tick_decimals(range: &Range<f64>) -> usize {
    let step = (range.end - range.start) / 8.0;
    if step >= 1.0 || step <= 0.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(4)
    }
}

/// The nearest even whole number of pixels (see the font closures).
fn even_px(size: f64) -> f64 {
    (size / 2.0).round() * 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A plausible run: 8 epochs, logged every quarter epoch, test each epoch.
    fn run() -> Vec<CurvePoint> {
        (1..=32)
            .map(|step| {
                let epoch = step as f64 / 4.0;
                let train_loss = 0.05 + 0.6 * (-epoch / 1.5).exp() + 0.01 * ((step * 7) % 5) as f64;
                let whole = step % 4 == 0;
                CurvePoint {
                    epoch,
                    train_loss,
                    train_acc: 1.0 - 0.9 * train_loss / 0.7,
                    test_loss: whole.then(|| 0.09 + 0.5 * (-epoch / 1.5).exp()),
                    test_acc: whole.then(|| 0.97 - 0.1 * (-epoch).exp()),
                }
            })
            .collect()
    }

    fn colours(path: &Path, width: u32, height: u32) -> HashSet<[u8; 3]> {
        let image = image::open(path)
            .expect("a PNG the image crate decodes")
            .to_rgb8();
        assert_eq!(image.dimensions(), (width, height));
        image.pixels().map(|p| p.0).collect()
    }

    #[test]
    fn writes_a_png_of_the_stated_size_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        plot_curves(&path, &run(), 1000, 450).unwrap();
        let seen = colours(&path, 1000, 450);
        assert!(seen.len() > 10, "only {} colours: blank?", seen.len());
        for colour in [TRAIN_COLOUR, TEST_COLOUR] {
            assert!(
                seen.contains(&[colour.0, colour.1, colour.2]),
                "{colour:?} curve missing"
            );
        }
        // Written atomically: nothing but the PNG is left.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn odd_series_still_plot() {
        let dir = tempfile::tempdir().unwrap();
        let single = [CurvePoint {
            epoch: 1.0,
            train_loss: 0.3,
            train_acc: 0.91,
            test_loss: None,
            test_acc: None,
        }];
        let mut with_nan = run();
        with_nan[5].train_loss = f64::NAN;
        with_nan[6].train_loss = f64::INFINITY;
        let perfect: Vec<CurvePoint> = (1..=3)
            .map(|e| CurvePoint {
                epoch: e as f64,
                train_loss: 0.0,
                train_acc: 1.0,
                test_loss: Some(0.0),
                test_acc: Some(1.0),
            })
            .collect();
        for (name, points, size) in [
            ("single.png", &single[..], (400, 250)),
            ("nan.png", &with_nan[..], (640, 300)),
            ("perfect.png", &perfect[..], (1600, 700)),
        ] {
            let path = dir.path().join(name);
            plot_curves(&path, points, size.0, size.1).unwrap();
            assert!(colours(&path, size.0, size.1).len() > 5, "{name}");
        }
    }

    #[test]
    fn empty_series_and_bad_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let err = plot_curves(&path, &[], 800, 400).unwrap_err().to_string();
        assert!(
            err.contains("curves.png") && err.contains("no training points"),
            "{err}"
        );
        let err = plot_curves(&path, &run(), 10, 10).unwrap_err().to_string();
        assert!(err.contains("curves.png") && err.contains("10×10"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn epoch_ticks_are_whole_epochs() {
        let at = |epochs: &[f64]| {
            let points: Vec<CurvePoint> = epochs
                .iter()
                .map(|&epoch| CurvePoint {
                    epoch,
                    train_loss: 1.0,
                    train_acc: 0.5,
                    test_loss: None,
                    test_acc: None,
                })
                .collect();
            let range = epoch_range(&points);
            let coord: plotters::coord::types::RangedCoordf64 = range.clone().into();
            coord.key_points(epoch_labels(&range))
        };
        // A run logged every fifth of an epoch for 2 epochs: 0, 1, 2 only.
        let fifths: Vec<f64> = (1..=10).map(|i| i as f64 / 5.0).collect();
        assert_eq!(at(&fifths), [0.0, 1.0, 2.0]);
        // Less than an epoch still gets both ends.
        assert_eq!(at(&[0.25, 0.5]), [0.0, 1.0]);
        assert_eq!(at(&[3.0]), [3.0, 4.0]);
        // Long runs: every 5th or 10th epoch, never more than 10 ticks.
        let long: Vec<f64> = (1..=37).map(f64::from).collect();
        assert_eq!(at(&long), [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]);
        let longer: Vec<f64> = (1..=300).map(f64::from).collect();
        assert!(at(&longer).len() <= 10);
        assert!(at(&longer).iter().all(|e| e.fract() == 0.0));
        // Every run length from a tenth of an epoch to 120 epochs, logged
        // every tenth of an epoch: whole epochs, 2 to 10 of them.
        for tenths in 1..=1200 {
            let points: Vec<f64> = (1..=tenths).map(|t| t as f64 / 10.0).collect();
            let ticks = at(&points);
            assert!(
                (2..=10).contains(&ticks.len()) && ticks.iter().all(|e| e.fract() == 0.0),
                "{} epochs: {ticks:?}",
                tenths as f64 / 10.0
            );
        }
    }

    #[test]
    fn tick_and_epoch_formats() {
        assert_eq!(format_epoch(3.0), "3");
        assert_eq!(format_epoch(2.5), "2.5");
        assert_eq!(format_epoch(0.25), "0.25");
        assert_eq!(format_epoch(2.0000000001), "2");
        assert_eq!(format_epoch(2.001), "2");
        assert_eq!(tick_decimals(&(0.0..0.75)), 2);
        assert_eq!(tick_decimals(&(96.8..100.0)), 1);
        assert_eq!(tick_decimals(&(40.0..100.0)), 0);
    }
}
