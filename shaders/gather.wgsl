// gather.wgsl — builds a training batch from the dataset resident on the GPU.
//
//   images:  one chunk of the split's u8 pixels (images first_image ..
//            end_image), packed four to a u32 (little-endian); image i's
//            pixel j at byte (i − first_image)·input_size + j. A split larger
//            than one storage binding lives in several chunks, each gathered
//            by its own dispatch of the same step: a dispatch writes only
//            the rows whose image is in its chunk.
//   labels:  (n) u32;   order: the epoch's permutation of 0..n
//   batch_x: (rows, C, H, W) f32;  batch_labels: (rows) u32
//
//   batch_x[r, c, y, x] = (pixel / 255 − mean[c]) · inv_std[c]
//
// with pixel = image order[step.batch_start + r] at (c, y, x) — or, when
// augmenting, at the crop-and-flip source of (y, x) (black where that falls
// in the padding):
//   xs = (flip ? W−1−x : x) + dx − crop,   ys = y + dy − crop
// where (dx, dy, flip) = Philox4x32-10 with counter (image, step.global_step,
// AUGMENT_STREAM, 0) and key (seed_lo, seed_hi): words 0 and 1 mod 2·crop+1,
// word 2's low bit (and flip enabled). `ops::gather::reference` computes the
// same, bit for bit. Rows ≥ step.batch_len are zero padding, written by the
// dispatch of the chunk that starts at image 0.
//
// gather takes one pixel per invocation. gather4 takes four, one packed
// word, when input_size and H·W are multiples of 4 (every image starts on a
// word, no word straddles two channels) and nothing is augmented: a quarter
// of the loads and stores, which is most of its time on lavapipe. Both
// compute the same values.

const AUGMENT_STREAM: u32 = 0xA060000u;

struct GatherParams {
    input_size: u32,
    rows: u32,
    width: u32,
    height: u32,
    plane: u32,
    first_image: u32,
    end_image: u32,
    crop: u32,
    flip: u32,
    seed_lo: u32,
    seed_hi: u32,
    pad0: u32,
    mean: vec4<f32>,
    inv_std: vec4<f32>,
}

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> p: GatherParams;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read_write> batch_x: array<f32>;
@group(0) @binding(6) var<storage, read_write> batch_labels: array<u32>;

// Byte `pixel` of image `image` (counted in this chunk).
fn pixel_byte(image: u32, pixel: u32) -> u32 {
    let byte_index = image * p.input_size + pixel;
    return (images[byte_index / 4u] >> ((byte_index % 4u) * 8u)) & 0xffu;
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= p.rows * p.input_size {
        return;
    }
    let r = i / p.input_size;
    let pixel = i % p.input_size;
    if r >= step.batch_len {
        if p.first_image == 0u {
            batch_x[i] = 0.0;
            if pixel == 0u {
                batch_labels[r] = 0u;
            }
        }
        return;
    }
    let image = order[step.batch_start + r];
    if image < p.first_image || image >= p.end_image {
        return;
    }
    let channel = pixel / p.plane;
    var byte = 0u;
    if p.crop == 0u && p.flip == 0u {
        byte = pixel_byte(image - p.first_image, pixel);
    } else {
        let bits = philox4x32_10(
            vec4<u32>(image, step.global_step, AUGMENT_STREAM, 0u),
            vec2<u32>(p.seed_lo, p.seed_hi),
        );
        let span = 2u * p.crop + 1u;
        let flip = p.flip != 0u && (bits.z & 1u) == 1u;
        let y = (pixel % p.plane) / p.width;
        var x = pixel % p.width;
        if flip {
            x = p.width - 1u - x;
        }
        // Shifted by the padding: xs + crop, ys + crop (never negative).
        let xs = x + bits.x % span;
        let ys = y + bits.y % span;
        if xs >= p.crop && ys >= p.crop && xs - p.crop < p.width && ys - p.crop < p.height {
            let source = channel * p.plane + (ys - p.crop) * p.width + (xs - p.crop);
            byte = pixel_byte(image - p.first_image, source);
        }
    }
    batch_x[i] = (f32(byte) / 255.0 - p.mean[channel]) * p.inv_std[channel];
    if pixel == 0u {
        batch_labels[r] = labels[image];
    }
}

@group(0) @binding(5) var<storage, read_write> batch_x4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn gather4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    let words = p.input_size / 4u;
    if i >= p.rows * words {
        return;
    }
    let r = i / words;
    let word = i % words;
    if r >= step.batch_len {
        if p.first_image == 0u {
            batch_x4[i] = vec4<f32>();
            if word == 0u {
                batch_labels[r] = 0u;
            }
        }
        return;
    }
    let image = order[step.batch_start + r];
    if image < p.first_image || image >= p.end_image {
        return;
    }
    let channel = word * 4u / p.plane;
    let packed = images[(image - p.first_image) * words + word];
    batch_x4[i] = (vec4<f32>(unpack4xU8(packed)) / 255.0 - p.mean[channel]) * p.inv_std[channel];
    if word == 0u {
        batch_labels[r] = labels[image];
    }
}
