//! Colour maps: numbers to sRGB colours.
//!
//! - [`diverging`]`(v, s)`: signed values (weights, gradients) on a
//!   blue–white–red scale centred at zero, clipped at `±s`. ColorBrewer's
//!   RdBu, reversed so that negative is blue and positive red: lightness falls
//!   steadily from the near-white centre towards both ends, so a bigger `|v|`
//!   always looks stronger, and the two signs differ in hue, which also reads
//!   for the common red–green colour-blindnesses.
//! - [`grayscale`]`(v)`: intensities in `[0, 1]` (MNIST pixels), 0 black,
//!   1 white.
//! - [`blues`]`(f)`: a fraction in `[0, 1]` on ColorBrewer's Blues,
//!   white to dark blue (the confusion matrix's diagonal).
//! - [`reds`]`(f)`: the same for the confusion matrix's mistakes, white to
//!   dark red (ColorBrewer's Reds).
//! - [`class_colour`]`(c)`: ten distinct colours for the ten digits
//!   (matplotlib's "tab10"); classes past 9 reuse them.
//!
//! Every map sends NaN to [`INVALID`] (magenta, which none of them uses
//! otherwise), so a broken value shows instead of passing for a real one.

/// The colour of a NaN: magenta, which no map here produces otherwise.
pub const INVALID: [u8; 3] = [255, 0, 255];

/// ColorBrewer RdBu (11 classes) from −1 (dark blue) through the
/// near-white centre to +1 (dark red), at evenly spaced stops.
const RD_BU: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// ColorBrewer Blues (9 classes), from 0 (white) to 1 (dark blue).
const BLUES: [[u8; 3]; 9] = [
    [247, 251, 255],
    [222, 235, 247],
    [198, 219, 239],
    [158, 202, 225],
    [107, 174, 214],
    [66, 146, 198],
    [33, 113, 181],
    [8, 81, 156],
    [8, 48, 107],
];

/// ColorBrewer Reds (9 classes), from 0 (white) to 1 (dark red).
const REDS: [[u8; 3]; 9] = [
    [255, 245, 240],
    [254, 224, 210],
    [252, 187, 161],
    [252, 146, 114],
    [251, 106, 74],
    [239, 59, 44],
    [203, 24, 29],
    [165, 15, 21],
    [103, 0, 13],
];

/// matplotlib's "tab10": ten colours that are easy to tell apart.
const TAB10: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// `v` on a blue (negative) – near-white (0) – red (positive) scale that
/// saturates at `±scale`.
///
/// Infinite values take the colour of their end; a `scale` that is not a
/// positive finite number puts every non-zero value at its end (0 stays
/// white); NaN gives [`INVALID`].
pub fn diverging(v: f32, scale: f32) -> [u8; 3] {
    if v.is_nan() {
        return INVALID;
    }
    let t = if scale.is_finite() && scale > 0.0 {
        (v / scale).clamp(-1.0, 1.0)
    } else if v == 0.0 {
        0.0
    } else {
        v.signum()
    };
    // t in [-1, 1] → position in [0, 1] along the stops.
    interpolate(&RD_BU, 0.5 * (t + 1.0))
}

/// An intensity in `[0, 1]` as a gray, 0 black and 1 white; values outside
/// are clipped, NaN gives [`INVALID`].
pub fn grayscale(v: f32) -> [u8; 3] {
    if v.is_nan() {
        return INVALID;
    }
    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [g, g, g]
}

/// A fraction in `[0, 1]` from white (0) to dark blue (1); clipped, NaN
/// gives [`INVALID`].
pub fn blues(fraction: f32) -> [u8; 3] {
    if fraction.is_nan() {
        return INVALID;
    }
    interpolate(&BLUES, fraction.clamp(0.0, 1.0))
}

/// A fraction in `[0, 1]` from white (0) to dark red (1); clipped, NaN gives
/// [`INVALID`].
pub fn reds(fraction: f32) -> [u8; 3] {
    if fraction.is_nan() {
        return INVALID;
    }
    interpolate(&REDS, fraction.clamp(0.0, 1.0))
}

/// The colour of class `class` (digit 0–9); classes from 10 on reuse the
/// ten colours in turn.
pub fn class_colour(class: u8) -> [u8; 3] {
    TAB10[class as usize % TAB10.len()]
}

/// The relative luminance (0 black … 1 white) of an sRGB colour, as WCAG
/// defines it; used to pick black or white text over a colour.
pub fn luminance(colour: [u8; 3]) -> f32 {
    let linear = |c: u8| {
        let c = c as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(colour[0]) + 0.7152 * linear(colour[1]) + 0.0722 * linear(colour[2])
}

/// Linear interpolation along evenly spaced `stops` at `position` in
/// `[0, 1]`.
fn interpolate(stops: &[[u8; 3]], position: f32) -> [u8; 3] {
    let last = (stops.len() - 1) as f32;
    let x = position.clamp(0.0, 1.0) * last;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let frac = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |k: usize| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * frac).round() as u8;
    [mix(0), mix(1), mix(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Luminance along `v` from 0 to `end` in small steps.
    fn luminances(map: impl Fn(f32) -> [u8; 3], end: f32) -> Vec<f32> {
        (0..=200)
            .map(|i| luminance(map(end * i as f32 / 200.0)))
            .collect()
    }

    fn non_increasing(values: &[f32]) -> bool {
        values.windows(2).all(|w| w[1] <= w[0] + 1e-6)
    }

    #[test]
    fn diverging_is_white_at_zero_and_darkens_monotonically_each_way() {
        let centre = diverging(0.0, 1.0);
        assert!(centre.iter().all(|&c| c >= 240), "{centre:?}");
        for end in [1.0, -1.0] {
            let lum = luminances(|v| diverging(v, 1.0), end);
            assert!(non_increasing(&lum), "not monotone towards {end}: {lum:?}");
            assert!(lum[0] - lum[200] > 0.8, "too little contrast towards {end}");
        }
        let [r, _, b] = diverging(0.5, 1.0);
        assert!(r > b, "positive should be red");
        let [r, _, b] = diverging(-0.5, 1.0);
        assert!(b > r, "negative should be blue");
    }

    #[test]
    fn diverging_clips_and_handles_odd_inputs() {
        assert_eq!(diverging(5.0, 1.0), diverging(1.0, 1.0));
        assert_eq!(diverging(-5.0, 1.0), diverging(-1.0, 1.0));
        assert_eq!(diverging(f32::INFINITY, 1.0), diverging(1.0, 1.0));
        assert_eq!(diverging(0.3, 0.0), diverging(1.0, 1.0));
        assert_eq!(diverging(-0.3, f32::NAN), diverging(-1.0, 1.0));
        assert_eq!(diverging(0.0, 0.0), diverging(0.0, 1.0));
        assert_eq!(diverging(f32::NAN, 1.0), INVALID);
        // Symmetric in scale: the same t gives the same colour.
        assert_eq!(diverging(0.02, 0.04), diverging(0.5, 1.0));
    }

    #[test]
    fn grayscale_blues_and_reds() {
        assert_eq!(grayscale(0.0), [0, 0, 0]);
        assert_eq!(grayscale(1.0), [255, 255, 255]);
        assert_eq!(grayscale(2.0), [255, 255, 255]);
        assert_eq!(grayscale(-1.0), [0, 0, 0]);
        assert_eq!(grayscale(0.5), [128, 128, 128]);
        assert_eq!(grayscale(f32::NAN), INVALID);
        for map in [blues, reds] {
            let lum = luminances(map, 1.0);
            assert!(non_increasing(&lum));
            assert!(lum[0] > 0.9 && lum[200] < 0.1);
        }
    }

    #[test]
    fn class_colours_are_distinct() {
        let colours: std::collections::HashSet<_> = (0..10).map(class_colour).collect();
        assert_eq!(colours.len(), 10);
        assert_eq!(class_colour(13), class_colour(3));
    }
}
