// gather.wgsl — builds a training batch from the dataset resident on the GPU.
//
//   images:  the whole split's u8 pixels, packed four to a u32 (little-endian),
//            image i's pixel j at byte i·input_size + j
//   labels:  (n) u32;   order: the epoch's permutation of 0..n
//   batch_x: (rows, input_size) f32 = pixel / 255;  batch_labels: (rows) u32
//
// Row r takes image order[step.batch_start + r]; rows ≥ step.batch_len are
// zero padding.
//
// gather takes one pixel per invocation. gather4 takes four, one packed
// word, when input_size is a multiple of 4 (so every image starts on a
// word): a quarter of the loads and stores, which is most of its time on
// lavapipe. Both compute the same values.

struct GatherParams {
    input_size: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> p: GatherParams;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read_write> batch_x: array<f32>;
@group(0) @binding(6) var<storage, read_write> batch_labels: array<u32>;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= p.rows * p.input_size {
        return;
    }
    let r = i / p.input_size;
    let pixel = i % p.input_size;
    if r >= step.batch_len {
        batch_x[i] = 0.0;
        if pixel == 0u {
            batch_labels[r] = 0u;
        }
        return;
    }
    let image = order[step.batch_start + r];
    let byte_index = image * p.input_size + pixel;
    let byte = (images[byte_index / 4u] >> ((byte_index % 4u) * 8u)) & 0xffu;
    batch_x[i] = f32(byte) / 255.0;
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
        batch_x4[i] = vec4<f32>();
        if word == 0u {
            batch_labels[r] = 0u;
        }
        return;
    }
    let image = order[step.batch_start + r];
    let packed = images[image * words + word];
    batch_x4[i] = vec4<f32>(unpack4xU8(packed)) / 255.0;
    if word == 0u {
        batch_labels[r] = labels[image];
    }
}
