//! Any picture of a digit → the 28×28 input an MNIST-trained network
//! expects: white ink on black, scaled and centred as MNIST's authors did.
//!
//! Public API:
//! - [`load_digit`]`(path) -> Vec<f32>`: decode a PNG, JPEG, GIF or BMP file
//!   and [`preprocess`] it; every error names the file.
//! - [`preprocess`]`(&DynamicImage) -> Vec<f32>`: [`SIDE`]×[`SIDE`] = 784
//!   values in `[0, 1]`, row-major, 0 = background, 1 = full ink (the
//!   scaling of `gather.wgsl`: an MNIST byte / 255).
//!
//! The steps, after LeCun, Cortes and Burges' description of MNIST ("the
//! images were size normalized to fit in a 20x20 pixel box while preserving
//! their aspect ratio … centered in a 28x28 image by computing the center of
//! mass of the pixels"):
//!
//! 1. grayscale, from any colour type and size; transparent pixels are laid
//!    over white when the visible ink is dark and over black when it is light;
//! 2. the background level is the median of a thin ring of border pixels;
//!    when it is bright (> 0.5) the image is dark ink on light paper and is
//!    inverted. Each pixel's ink is how far it differs from the background,
//!    scaled so the strongest ink is 1; ink below [`INK_THRESHOLD`] (paper
//!    texture, JPEG noise) becomes 0. An image whose pixels all lie within
//!    [`MIN_CONTRAST`] of the background has no ink and is refused;
//! 3. crop to the bounding box of the ink;
//! 4. resize so the longer side is [`BOX`] = 20 pixels, keeping the aspect
//!    ratio, with a Catmull-Rom filter, which `image` widens when shrinking
//!    so that it averages (anti-aliases) rather than skips pixels (Triangle,
//!    Lanczos3 and plain area averaging were measured too: within 0.005 of
//!    each other on the tests' photo-vs-original correlations);
//! 5. paste into a 28×28 field, shifted by the rounded offset that puts the
//!    intensity-weighted centre of mass at (14, 14) in pixel-index
//!    coordinates (x right, y down), clipping what falls outside. (MNIST's
//!    own digits have their mean centre of mass there: (14.01, 13.99) over
//!    the first 1000 test images.) Being a whole-pixel shift, a digit whose
//!    centre sits near a half pixel may land one pixel either way.
//!
//! Not handled: several digits in one picture, a lighting gradient or
//! shadow stronger than the ink, a frame or ruled lines touching the digit
//! (they count as ink).

use crate::graph::Graph;
use anyhow::{anyhow, bail};
use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, ImageBuffer, ImageDecoder, ImageReader, Limits, Luma};
use std::path::Path;

/// Side of the output field, in pixels.
pub const SIDE: usize = 28;
/// The digit is scaled to fit in a `BOX`×`BOX` square inside the field.
pub const BOX: u32 = 20;
/// Where the centre of mass is placed, in pixel-index coordinates.
pub const CENTRE: f64 = 14.0;
/// Ink below this fraction of the strongest ink is set to 0.
pub const INK_THRESHOLD: f32 = 0.1;
/// An image whose pixels all differ from the background by less than this
/// (on a 0..1 scale) is blank.
pub const MIN_CONTRAST: f32 = 0.1;

/// The most pixels a picture may have (50 million: a 48-megapixel phone
/// photo passes). Preprocessing holds a few f32 copies of the picture, so
/// this bounds `predict`'s memory near 1 GB; the decoder itself gets the
/// `image` crate's allocation limit too.
pub const MAX_PIXELS: u64 = 50_000_000;

/// True for models of MNIST-like data (one 28×28 channel), whose inputs
/// `predict` prepares digit-style; others get `resize_and_normalise`.
pub fn is_digit_model(graph: &Graph) -> bool {
    let input = graph.input;
    (input.c, input.h, input.w) == (1, SIDE, SIDE)
}

/// The model's inputs for the picture at `path`: digit-style centring for
/// MNIST-like models, a plain resize for the others, then the model's
/// normalisation (`data::Normalization`).
pub fn load_for_model(path: &Path, graph: &Graph) -> anyhow::Result<Vec<f32>> {
    let input = graph.input;
    let plane = input.h * input.w;
    if is_digit_model(graph) {
        let unit = load_digit(path)?;
        return Ok(graph.normalization.from_unit(&unit, 1, plane));
    }
    let image = decode_file(path)?;
    let pixels = resize_to(&image, input.c, input.h, input.w);
    Ok(graph.normalization.apply(&pixels, input.c, plane))
}

/// `image` resized (stretched) to `height`×`width` as u8 planes: grey for
/// one channel, else red, green, blue.
pub fn resize_to(image: &DynamicImage, channels: usize, height: usize, width: usize) -> Vec<u8> {
    let resized = image.resize_exact(width as u32, height as u32, FilterType::Triangle);
    if channels == 1 {
        return resized.to_luma8().into_raw();
    }
    let rgb = resized.to_rgb8();
    (0..channels.min(3))
        .flat_map(|c| rgb.as_raw().iter().skip(c).step_by(3).copied())
        .collect()
}

/// Decodes an image file, refusing an empty file and more than
/// `MAX_PIXELS` pixels; every error names the file.
fn decode_file(path: &Path) -> anyhow::Result<DynamicImage> {
    decode_capped(path, MAX_PIXELS)
}

/// Reads the image at `path` and turns it into 784 MNIST-style values.
pub fn load_digit(path: &Path) -> anyhow::Result<Vec<f32>> {
    load_digit_capped(path, MAX_PIXELS)
}

/// [`load_digit`] with a cap of `max_pixels`: the picture's size is read
/// from its header and checked before anything is decoded, so a small file
/// that promises a huge picture costs nothing.
pub fn load_digit_capped(path: &Path, max_pixels: u64) -> anyhow::Result<Vec<f32>> {
    let image = decode_capped(path, max_pixels)?;
    preprocess(&image).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Decodes the picture at `path`, its size read from the header and
/// checked against `max_pixels` before anything is decoded; every error
/// names the file.
fn decode_capped(path: &Path, max_pixels: u64) -> anyhow::Result<DynamicImage> {
    let name = path.display();
    let read_error = |e: std::io::Error| anyhow!("cannot read image {name}: {e}");
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size == 0 {
        bail!("{name}: the file is empty, not an image");
    }
    let undecodable = |e: image::ImageError| {
        anyhow!(
            "{name}: cannot decode it as an image (gpunet reads PNG, JPEG, GIF and BMP): {}",
            in_words(&e)
        )
    };
    let reader = ImageReader::open(path)
        .map_err(read_error)?
        .with_guessed_format()
        .map_err(read_error)?;
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        bail!(
            "{name}: the picture is {width}×{height} = {pixels} pixels, more than the {max_pixels} \
             gpunet decodes; scale it down first (a digit needs only a few hundred pixels a side)"
        );
    }
    // The decoder's own allocation limit, in case a format's header
    // understates what decoding takes: the decoded picture at 8 bytes a
    // pixel (16-bit RGBA), with room for the decoder's buffers.
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    decoder.set_limits(limits).map_err(undecodable)?;
    DynamicImage::from_decoder(decoder).map_err(undecodable)
}

/// The decoder's error, unless it quotes Rust debug text (the PNG decoder
/// prints a bad chunk as `ChunkType { type: …, critical: … }`): then what
/// kind of data was malformed.
fn in_words(e: &image::ImageError) -> String {
    let text = e.to_string();
    if !text.contains('{') {
        return text;
    }
    match e {
        image::ImageError::Decoding(d) => format!("its {} data is malformed", d.format_hint()),
        _ => "its data is malformed".into(),
    }
}

/// Turns a picture of one digit into [`SIDE`]×[`SIDE`] values in `[0, 1]`,
/// row-major, white digit on black, size-normalised and centred like MNIST.
pub fn preprocess(image: &DynamicImage) -> anyhow::Result<Vec<f32>> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        bail!("the image is empty ({width}×{height} pixels)");
    }
    let gray = grayscale(image)?;
    let ink = ink_map(&gray)?;
    let digit = crop_to_ink(&ink);
    let scaled = fit_in_box(&digit);
    Ok(centre_by_mass(&scaled))
}

type GrayF32 = ImageBuffer<Luma<f32>, Vec<f32>>;

/// Luminance in `[0, 1]`, alpha flattened onto the background that
/// contrasts with the visible pixels.
fn grayscale(image: &DynamicImage) -> anyhow::Result<GrayF32> {
    if !image.color().has_alpha() {
        return Ok(image.to_luma32f());
    }
    let with_alpha = image.to_luma_alpha32f();
    let (weight, weighted_luma) = with_alpha.pixels().fold((0.0f64, 0.0f64), |(w, l), p| {
        (w + p[1] as f64, l + (p[0] * p[1]) as f64)
    });
    if weight == 0.0 {
        bail!("no ink: the image is fully transparent");
    }
    let backdrop = if weighted_luma / weight < 0.5 {
        1.0
    } else {
        0.0
    };
    Ok(GrayF32::from_fn(image.width(), image.height(), |x, y| {
        let p = with_alpha.get_pixel(x, y);
        let (luma, alpha) = (p[0].clamp(0.0, 1.0), p[1].clamp(0.0, 1.0));
        Luma([alpha * luma + (1.0 - alpha) * backdrop])
    }))
}

/// Ink strength in `[0, 1]`: 0 = background, 1 = the strongest ink.
fn ink_map(gray: &GrayF32) -> anyhow::Result<GrayF32> {
    let background = border_median(gray);
    let dark_on_light = background > 0.5;
    let mut ink = GrayF32::from_fn(gray.width(), gray.height(), |x, y| {
        let v = gray.get_pixel(x, y)[0].clamp(0.0, 1.0);
        Luma([if dark_on_light {
            background - v
        } else {
            v - background
        }
        .max(0.0)])
    });
    let strongest = ink.pixels().map(|p| p[0]).fold(0.0f32, f32::max);
    if strongest < MIN_CONTRAST {
        bail!(
            "no ink: no pixel differs from the {} background ({background:.2}) by {MIN_CONTRAST} or more; is the image blank?",
            if dark_on_light { "light" } else { "dark" }
        );
    }
    for p in ink.pixels_mut() {
        let v = p[0] / strongest;
        p[0] = if v < INK_THRESHOLD { 0.0 } else { v };
    }
    Ok(ink)
}

/// Median of the pixels in a ring along the edges, about 3% of the shorter
/// side thick (at least 1 pixel): the paper or screen around the digit.
fn border_median(gray: &GrayF32) -> f32 {
    let (w, h) = gray.dimensions();
    let ring = (w.min(h) / 32).max(1);
    let mut border: Vec<f32> = gray
        .enumerate_pixels()
        .filter(|(x, y, _)| {
            *x < ring || *y < ring || *x >= w.saturating_sub(ring) || *y >= h.saturating_sub(ring)
        })
        .map(|(_, _, p)| p[0].clamp(0.0, 1.0))
        .collect();
    let middle = border.len() / 2;
    *border.select_nth_unstable_by(middle, f32::total_cmp).1
}

/// The bounding box of the non-zero ink. `ink_map` guarantees some.
fn crop_to_ink(ink: &GrayF32) -> GrayF32 {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in ink.enumerate_pixels() {
        if p[0] > 0.0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    imageops::crop_imm(ink, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image()
}

/// Scaled so the longer side is `BOX`, aspect ratio kept, with a
/// Catmull-Rom filter (sharp, and widened by `image` when shrinking so it
/// anti-aliases; its small overshoots are clamped to `[0, 1]`).
fn fit_in_box(digit: &GrayF32) -> GrayF32 {
    let (w, h) = digit.dimensions();
    let scale = BOX as f64 / w.max(h) as f64;
    let new_w = ((w as f64 * scale).round() as u32).clamp(1, BOX);
    let new_h = ((h as f64 * scale).round() as u32).clamp(1, BOX);
    imageops::resize(digit, new_w, new_h, FilterType::CatmullRom)
}

/// Intensity-weighted centre of mass `(x, y)` in pixel-index coordinates.
fn centre_of_mass(pixels: &[f32], width: usize) -> (f64, f64) {
    let (mut total, mut sum_x, mut sum_y) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in pixels.iter().enumerate() {
        let v = v as f64;
        total += v;
        sum_x += v * (i % width) as f64;
        sum_y += v * (i / width) as f64;
    }
    if total == 0.0 {
        return (CENTRE, CENTRE);
    }
    (sum_x / total, sum_y / total)
}

/// `digit` pasted into a `SIDE`×`SIDE` field with its centre of mass at
/// (`CENTRE`, `CENTRE`), to the nearest pixel; what falls outside is lost.
fn centre_by_mass(digit: &GrayF32) -> Vec<f32> {
    let (w, h) = (digit.width() as usize, digit.height() as usize);
    let (cx, cy) = centre_of_mass(digit.as_raw(), w);
    let shift_x = (CENTRE - cx).round() as i64;
    let shift_y = (CENTRE - cy).round() as i64;
    let mut field = vec![0.0f32; SIDE * SIDE];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as i64 + shift_x, y as i64 + shift_y);
            if (0..SIDE as i64).contains(&fx) && (0..SIDE as i64).contains(&fy) {
                field[fy as usize * SIDE + fx as usize] =
                    digit.get_pixel(x as u32, y as u32)[0].clamp(0.0, 1.0);
            }
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_mnist, Dataset, Split};
    use image::{GrayImage, Rgb, RgbImage, Rgba, RgbaImage};
    use std::sync::OnceLock;

    fn mnist_test() -> &'static Dataset {
        static DATA: OnceLock<Dataset> = OnceLock::new();
        DATA.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
            load_mnist(&dir, Split::Test).expect("bundled MNIST test set")
        })
    }

    /// MNIST test image `i` as a 28×28 grayscale image (white on black).
    fn mnist_image(i: usize) -> GrayImage {
        GrayImage::from_raw(28, 28, mnist_test().image(i).to_vec()).unwrap()
    }

    /// The digit as a person might hand it in: enlarged `factor`×, dark ink
    /// on white, placed at `(left, top)` on a larger white canvas.
    fn as_photo(digit: &GrayImage, factor: u32, canvas: (u32, u32), at: (i64, i64)) -> GrayImage {
        let big = imageops::resize(digit, 28 * factor, 28 * factor, FilterType::CatmullRom);
        let mut canvas = GrayImage::from_pixel(canvas.0, canvas.1, Luma([255]));
        let inverted = GrayImage::from_fn(big.width(), big.height(), |x, y| {
            Luma([255 - big.get_pixel(x, y)[0]])
        });
        imageops::overlay(&mut canvas, &inverted, at.0, at.1);
        canvas
    }

    fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .sum::<f64>()
            / a.len() as f64
    }

    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (
            a.iter().sum::<f32>() as f64 / n,
            b.iter().sum::<f32>() as f64 / n,
        );
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (dx, dy) = (x as f64 - ma, y as f64 - mb);
            sab += dx * dy;
            saa += dx * dx;
            sbb += dy * dy;
        }
        sab / (saa * sbb).sqrt()
    }

    /// Length 784, values in [0, 1], centre of mass within 1 pixel of (14, 14).
    fn assert_mnist_like(field: &[f32], what: &str) {
        assert_eq!(field.len(), SIDE * SIDE, "{what}");
        assert!(
            field.iter().all(|v| (0.0..=1.0).contains(v)),
            "{what}: value outside [0, 1]"
        );
        assert!(field.iter().any(|&v| v > 0.5), "{what}: no strong ink");
        let (cx, cy) = centre_of_mass(field, SIDE);
        assert!(
            (cx - CENTRE).abs() <= 1.0 && (cy - CENTRE).abs() <= 1.0,
            "{what}: centre of mass ({cx:.2}, {cy:.2})"
        );
    }

    /// `field` moved by `(dx, dy)` pixels, zero-filled.
    fn shifted(field: &[f32], dx: i64, dy: i64) -> Vec<f32> {
        let side = SIDE as i64;
        let mut out = vec![0.0; SIDE * SIDE];
        for y in 0..side {
            for x in 0..side {
                let (from_x, from_y) = (x - dx, y - dy);
                if (0..side).contains(&from_x) && (0..side).contains(&from_y) {
                    out[(y * side + x) as usize] = field[(from_y * side + from_x) as usize];
                }
            }
        }
        out
    }

    /// The best correlation and mean |difference| over shifts of `b` by up to
    /// one pixel each way: centring shifts by a whole number of pixels, so
    /// two renderings of a digit whose centre of mass sits near a half pixel
    /// may legitimately land one pixel apart.
    fn aligned_comparison(a: &[f32], b: &[f32]) -> (f64, f64) {
        let (mut best_corr, mut best_diff) = (-1.0f64, f64::INFINITY);
        for dx in -1..=1 {
            for dy in -1..=1 {
                let moved = shifted(b, dx, dy);
                best_corr = best_corr.max(correlation(a, &moved));
                best_diff = best_diff.min(mean_abs_diff(a, &moved));
            }
        }
        (best_corr, best_diff)
    }

    /// Test (a). Each of the first 100 MNIST test digits, enlarged 4× to
    /// 112×112 (Catmull-Rom), inverted to dark ink on white and pasted off
    /// centre on a 200×150 white canvas, must preprocess to nearly what the
    /// original 28×28 digit does.
    ///
    /// Measured (digits 0..100; in brackets over 0..1000):
    /// - per digit, best alignment within ±1 px: correlation ≥ 0.885 (0.859),
    ///   mean |difference| ≤ 0.048 (0.065). The rest of the difference is
    ///   sub-pixel: the enlarged digit's ink box starts at a different phase,
    ///   so a 1-pixel stroke may come out as two half-strength ones.
    /// - per digit, as is: correlation down to 0.66 (test image 5, a "1"
    ///   whose centre of mass rounds one pixel the other way), so a per-digit
    ///   bound on it would test rounding luck rather than preprocessing;
    /// - averaged over the 100 digits, as is: mean |difference| 0.025,
    ///   correlation 0.955.
    #[test]
    fn enlarged_inverted_off_centre_digit_matches_the_original() {
        const MIN_ALIGNED_CORRELATION: f64 = 0.83;
        const MAX_ALIGNED_MEAN_ABS_DIFF: f64 = 0.07;
        const MAX_AVERAGE_MEAN_ABS_DIFF: f64 = 0.035;
        const MIN_AVERAGE_CORRELATION: f64 = 0.93;
        let n = 100;
        let (mut sum_diff, mut sum_corr) = (0.0, 0.0);
        let (mut worst_aligned_corr, mut worst_aligned_diff) = (1.0f64, 0.0f64);
        for i in 0..n {
            let digit = mnist_image(i);
            let reference = preprocess(&DynamicImage::ImageLuma8(digit.clone())).unwrap();
            let at = (13 + (i as i64 % 5) * 15, 5 + (i as i64 % 3) * 12);
            let photo = as_photo(&digit, 4, (200, 150), at);
            let got = preprocess(&DynamicImage::ImageLuma8(photo)).unwrap();
            assert_mnist_like(&got, &format!("photo of test image {i}"));

            let (aligned_corr, aligned_diff) = aligned_comparison(&got, &reference);
            assert!(
                aligned_corr > MIN_ALIGNED_CORRELATION && aligned_diff < MAX_ALIGNED_MEAN_ABS_DIFF,
                "test image {i}: aligned correlation {aligned_corr:.4}, mean |diff| {aligned_diff:.4}"
            );
            worst_aligned_corr = worst_aligned_corr.min(aligned_corr);
            worst_aligned_diff = worst_aligned_diff.max(aligned_diff);
            sum_diff += mean_abs_diff(&got, &reference);
            sum_corr += correlation(&got, &reference);
        }
        let (mean_diff, mean_corr) = (sum_diff / n as f64, sum_corr / n as f64);
        println!(
            "photo vs original, {n} digits: aligned worst correlation {worst_aligned_corr:.4}, \
             worst mean |diff| {worst_aligned_diff:.4}; as is, average mean |diff| {mean_diff:.4}, \
             average correlation {mean_corr:.4}"
        );
        assert!(
            mean_diff < MAX_AVERAGE_MEAN_ABS_DIFF,
            "average mean |diff| {mean_diff:.4}"
        );
        assert!(
            mean_corr > MIN_AVERAGE_CORRELATION,
            "average correlation {mean_corr:.4}"
        );
    }

    /// MNIST digits are already what `preprocess` makes, so it must give
    /// them back nearly unchanged (up to the one-pixel rounding of the
    /// centring). Measured over digits 0..1000: aligned correlation ≥ 0.998,
    /// mean |difference| ≤ 0.0034 (faint edge pixels below INK_THRESHOLD go).
    #[test]
    fn mnist_digits_come_back_nearly_unchanged() {
        for i in 0..100 {
            let digit = mnist_image(i);
            let raw: Vec<f32> = digit.as_raw().iter().map(|&b| b as f32 / 255.0).collect();
            let got = preprocess(&DynamicImage::ImageLuma8(digit)).unwrap();
            assert_mnist_like(&got, &format!("test image {i}"));
            let (corr, diff) = aligned_comparison(&got, &raw);
            assert!(
                corr > 0.99 && diff < 0.01,
                "test image {i}: correlation {corr:.4}, mean |diff| {diff:.4}"
            );
        }
    }

    #[test]
    fn colour_and_transparent_images_work() {
        let digit = mnist_image(0);
        let reference = preprocess(&DynamicImage::ImageLuma8(digit.clone())).unwrap();
        let big = imageops::resize(&digit, 84, 84, FilterType::CatmullRom);

        // Dark blue ink on pale yellow paper.
        let (paper, ink) = ([250.0, 240.0, 200.0], [20.0, 30.0, 120.0]);
        let rgb = RgbImage::from_fn(130, 100, |x, y| {
            let t = if (20..104).contains(&x) && (8..92).contains(&y) {
                big.get_pixel(x - 20, y - 8)[0] as f32 / 255.0
            } else {
                0.0
            };
            Rgb(std::array::from_fn(|c| {
                (paper[c] * (1.0 - t) + ink[c] * t).round() as u8
            }))
        });
        let got = preprocess(&DynamicImage::ImageRgb8(rgb)).unwrap();
        assert_mnist_like(&got, "RGB");
        let (corr, _) = aligned_comparison(&got, &reference);
        assert!(corr > 0.9, "RGB: aligned correlation {corr:.4}");

        // Black strokes on a transparent background (what drawing apps save),
        // and white strokes on one.
        for stroke in [0u8, 255] {
            let rgba = RgbaImage::from_fn(84, 84, |x, y| {
                Rgba([stroke, stroke, stroke, big.get_pixel(x, y)[0]])
            });
            let got = preprocess(&DynamicImage::ImageRgba8(rgba)).unwrap();
            assert_mnist_like(&got, &format!("RGBA strokes {stroke}"));
            let (corr, _) = aligned_comparison(&got, &reference);
            assert!(
                corr > 0.9,
                "strokes {stroke}: aligned correlation {corr:.4}"
            );
        }
    }

    #[test]
    fn png_file_gives_the_same_as_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seven.png");
        let photo = as_photo(&mnist_image(0), 4, (200, 150), (40, 20));
        photo.save(&path).unwrap();
        let from_file = load_digit(&path).unwrap();
        assert_eq!(
            from_file,
            preprocess(&DynamicImage::ImageLuma8(photo)).unwrap()
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 3] = [
            ("empty.png", b"", "the file is empty"),
            (
                "notes.png",
                b"these are not pixels",
                "cannot decode it as an image",
            ),
            (
                "cut.png",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                "cannot decode it as an image",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = format!("{:#}", load_digit(&path).unwrap_err());
            assert!(
                err.contains(name) && err.contains(expected),
                "{name}: {err}"
            );
        }
        let err = format!(
            "{:#}",
            load_digit(&dir.path().join("absent.png")).unwrap_err()
        );
        assert!(
            err.contains("absent.png") && err.contains("cannot read image"),
            "{err}"
        );
    }

    #[test]
    fn blank_images_have_no_ink() {
        let blanks = [
            (
                "white",
                DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([255]))),
            ),
            (
                "black",
                DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([0]))),
            ),
            // Faint noise well under MIN_CONTRAST.
            (
                "noisy grey",
                DynamicImage::ImageLuma8(GrayImage::from_fn(50, 40, |x, y| {
                    Luma([128 + ((x * 7 + y * 13) % 9) as u8])
                })),
            ),
            (
                "transparent",
                DynamicImage::ImageRgba8(RgbaImage::from_pixel(30, 30, Rgba([0, 0, 0, 0]))),
            ),
            (
                "1×1",
                DynamicImage::ImageLuma8(GrayImage::from_pixel(1, 1, Luma([255]))),
            ),
        ];
        for (what, image) in blanks {
            let err = preprocess(&image).unwrap_err().to_string();
            assert!(err.starts_with("no ink"), "{what}: {err}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blank.png");
        GrayImage::from_pixel(64, 64, Luma([240]))
            .save(&path)
            .unwrap();
        let err = format!("{:#}", load_digit(&path).unwrap_err());
        assert!(err.contains("blank.png: no ink"), "{err}");
    }

    #[test]
    fn odd_shapes_stay_in_range_and_centred() {
        let mut shapes: Vec<(&str, GrayImage)> = vec![
            (
                "dot",
                GrayImage::from_fn(9, 9, |x, y| Luma([if (x, y) == (2, 3) { 255 } else { 0 }])),
            ),
            (
                "wide bar",
                GrayImage::from_fn(300, 40, |_, y| {
                    Luma([if (18..22).contains(&y) { 0 } else { 255 }])
                }),
            ),
            (
                "tall bar",
                GrayImage::from_fn(40, 300, |x, _| {
                    Luma([if (5..9).contains(&x) { 255 } else { 0 }])
                }),
            ),
            // A hook whose mass sits at one end of its box: the shift clips.
            (
                "hook",
                GrayImage::from_fn(100, 100, |x, y| {
                    Luma([if x < 10 || (y > 90 && x < 30) { 0 } else { 255 }])
                }),
            ),
        ];
        shapes.push((
            "digit touching the edge",
            imageops::crop_imm(&mnist_image(3), 8, 0, 20, 28).to_image(),
        ));
        for (what, image) in shapes {
            let got = preprocess(&DynamicImage::ImageLuma8(image)).unwrap();
            assert_mnist_like(&got, what);
        }
    }
}
