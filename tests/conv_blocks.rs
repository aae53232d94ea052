//! Every conv2d kernel version on channel counts past its blocks.
//!
//! The faster conv versions work on blocks of channels, and a block that
//! is only partly filled is where a bound or a dispatch count goes wrong:
//!
//! | version, pass                        | channels per block          | pixels per block |
//! | ------------------------------------ | --------------------------- | ---------------- |
//! | ImplicitGemm forward                 | 4 output                    | 4 output         |
//! | ImplicitGemm backward to the input   | 4 input                     | 4 input          |
//! | ImplicitGemm backward to the weights | 16 output × 4 taps of a row | none (reduced)   |
//! | Subgroup forward                     | 32 output (8 lanes × 4)     | 32 output        |
//! | Subgroup backward to the input       | 16 input (8 lanes × 2)      | 32 input         |
//!
//! (Direct has no blocks; it is the version the others are held to.) The
//! cases below take input and output channel counts 1, 3, 17, 33 and 65,
//! which end one past a block of 4, 16, 32 and 64 (two blocks of 32, four
//! of 16), plus 27 and 45, whose last blocks are partly filled in the
//! second group of 8 lanes (27 = 16 + 8 + 3, 45 = 32 + 8 + 5), and 16 → 32,
//! the default CNN's second conv, where every block is full. Every case
//! runs every version the device has, for every pass, so each version and
//! pass sees each of these counts on both sides. Spatial sizes are odd or
//! not multiples of 4 or 32, so pixel blocks straddle image boundaries;
//! there are 1×1 outputs and a 1×1 image, strides 1 and 2, paddings 0, 1
//! and 2, kernels 1, 3 and 5 (5 taps: a full block of 4 and one more).
//!
//! Tolerances are those of tests/kernels.rs: a result that sums `terms`
//! products of values in [-1, 1] may differ from the CPU reference by
//! 1e-5·(terms + 1) absolute plus 1e-5 relative, with terms = in_c·k²
//! (forward), out_c·k² (to the input) or batch·out_h·out_w (to the weights
//! and the bias). The versions of a pass sum the same terms in the same
//! order (see conv2d.wgsl and conv2d_subgroup.wgsl), so they are also held
//! to agree with each other bit for bit.

mod common;

use common::conv;
use common::{assert_close, gpu, random_vec, rng};
use gpunet::gpu::{Binding, ConvPass, ConvVersion, Dispatch, GpuContext, Kernels};
use gpunet::graph::{Activation, Shape};
use gpunet::ops::conv2d::Conv2d;

/// One convolution to check: a batch of `input` images through a k×k
/// kernel with the given stride and padding, `out_c` output channels.
struct Case {
    batch: usize,
    input: Shape,
    out_c: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    activation: Activation,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    const fn new(
        batch: usize,
        (in_c, h, w): (usize, usize, usize),
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        activation: Activation,
    ) -> Case {
        Case {
            batch,
            input: Shape { c: in_c, h, w },
            out_c,
            kernel,
            stride,
            padding,
            activation,
        }
    }

    fn conv(&self) -> Conv2d {
        let out = |size: usize| (size + 2 * self.padding - self.kernel) / self.stride + 1;
        Conv2d {
            input: self.input,
            output: Shape {
                c: self.out_c,
                h: out(self.input.h),
                w: out(self.input.w),
            },
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            activation: self.activation,
        }
    }
}

use Activation::{Identity, Relu, Sigmoid, Tanh};

/// (batch, (in_c, h, w), out_c, kernel, stride, padding, activation).
const CASES: [Case; 12] = [
    // 1 → 65: every forward block of output channels, the last one holding
    // a single channel; 169-pixel images, so pixel blocks of 4 and of 32
    // straddle the two images, and the weight gradient's 256-wide
    // reduction runs past its first round with partly filled blocks.
    Case::new(2, (1, 13, 13), 65, 3, 1, 1, Relu),
    // 65 → 1 at stride 2 without padding (4×4 output): every block of input
    // channels for the backward pass to the input.
    Case::new(1, (65, 9, 9), 1, 3, 2, 0, Identity),
    // 3 → 17 with padding 2 larger than the kernel's reach (7×9 output,
    // larger than the 5×7 input); tanh fused.
    Case::new(3, (3, 5, 7), 17, 3, 1, 2, Tanh),
    // 17 → 3, 5×5 kernel at stride 2, padding 2: two blocks of taps for the
    // weight gradient, the second holding one tap.
    Case::new(2, (17, 7, 5), 3, 5, 2, 2, Identity),
    // 33 → 33, 5×5 kernel, padding 2 (5×7 output); sigmoid fused.
    Case::new(1, (33, 5, 7), 33, 5, 1, 2, Sigmoid),
    // 33 → 65 onto a 1×1 output: two pixels in a batch of 2.
    Case::new(2, (33, 3, 3), 65, 3, 1, 0, Relu),
    // 65 → 17 onto a 1×1 output, batch 3: one pixel block for all.
    Case::new(3, (65, 3, 3), 17, 3, 1, 0, Identity),
    // 65 → 65 with a 5×5 kernel: 105 625 weights, more workgroups than one
    // dispatch row holds (65 535) for the direct weight gradient, which
    // then runs a second row. (The slowest case on lavapipe: 131 070
    // workgroups of 256.)
    Case::new(1, (65, 5, 5), 65, 5, 2, 2, Relu),
    // 16 → 32, the default CNN's second conv on its 14×14 maps: full
    // blocks only, and 392 pixels for the weight gradient's 256-wide
    // reduction.
    Case::new(2, (16, 14, 14), 32, 3, 1, 1, Relu),
    // 27 → 45 with a 1×1 kernel at stride 2, padding 1: the border outputs
    // read only padding (y = act(b)). Last blocks partly filled past the
    // first 8 lanes.
    Case::new(1, (27, 7, 9), 45, 1, 2, 1, Tanh),
    // A 1×1 image through a 3×3 kernel with padding 1: only the centre tap
    // reads the image.
    Case::new(3, (1, 1, 1), 3, 3, 1, 1, Sigmoid),
    // 3 → 33 at stride 2, padding 1 on an 8×6 image: 4×3 output, and the
    // last input column is read by no window (dx = 0 there).
    Case::new(2, (3, 8, 6), 33, 3, 2, 1, Identity),
];

/// The case table above crosses every block boundary on both sides: for
/// each block size some count is past it and not a multiple of it.
#[test]
fn conv_block_cases_cross_every_block() {
    let channels = |side: fn(&Case) -> usize| CASES.iter().map(side).collect::<Vec<_>>();
    for (name, counts) in [
        ("input", channels(|c| c.input.c)),
        ("output", channels(|c| c.out_c)),
    ] {
        for block in [4, 8, 16, 32, 64] {
            assert!(
                counts.iter().any(|&n| n > block && n % block != 0),
                "no {name} channel count crosses a block of {block}: {counts:?}"
            );
        }
    }
    for padding in 0..=2 {
        assert!(CASES.iter().any(|c| c.padding == padding));
    }
    assert!(CASES.iter().any(|c| c.stride == 2));
}

/// Runs `launch` (one pass writing to the given binding) for every version
/// the device has for `pass`; checks each against the CPU's `want` within
/// `tol` and all of them against the first bit for bit.
fn check_versions(
    ctx: &GpuContext,
    pass: ConvPass,
    what: &str,
    want: &[f32],
    tol: f32,
    launch: impl Fn(ConvVersion, Binding) -> Dispatch,
) {
    let versions = ConvVersion::available(ctx, pass);
    let outputs: Vec<Vec<f32>> = versions
        .iter()
        .map(|&version| {
            let out = ctx.storage_zeroed("conv output", want.len());
            ctx.run(&[launch(version, Binding::whole(&out))]);
            let got = ctx.read::<f32>(&out, 0, want.len()).unwrap();
            assert_close(&format!("{version:?} {what}"), &got, want, tol, 1e-5);
            got
        })
        .collect();
    for (version, got) in versions.iter().zip(&outputs).skip(1) {
        let first = &outputs[0];
        if let Some(i) = (0..want.len()).find(|&i| got[i].to_bits() != first[i].to_bits()) {
            panic!(
                "{what}: {:?} and {version:?} differ at element {i}: {} vs {}",
                versions[0], first[i], got[i]
            );
        }
    }
}

/// Forward, backward to the input and to the weights with every version
/// the device has, and the bias gradient, against the CPU reference.
#[test]
fn conv2d_versions_on_channels_past_their_blocks() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    for pass in [
        ConvPass::Forward,
        ConvPass::BackwardInput,
        ConvPass::BackwardWeight,
    ] {
        eprintln!(
            "conv {pass:?} versions checked on {}: {:?}",
            ctx.describe(),
            ConvVersion::available(&ctx, pass)
        );
    }
    let mut rng = rng(33);
    for case in &CASES {
        let (batch, c) = (case.batch, case.conv());
        let what = format!(
            "batch {batch}, {}→{}, k{} s{} p{}, {:?}",
            c.input, c.output, c.kernel, c.stride, c.padding, c.activation
        );
        let k2 = c.kernel * c.kernel;
        let x = random_vec(&mut rng, batch * c.input.len(), 1.0);
        let w = random_vec(&mut rng, c.output.c * c.input.c * k2, 1.0);
        let b = random_vec(&mut rng, c.output.c, 1.0);
        let dy = random_vec(&mut rng, batch * c.output.len(), 1.0);
        let [xb, wb, bb, dyb] = [&x, &w, &b, &dy].map(|v| ctx.storage_init("conv input", v));
        let (x_, w_, b_, dy_) = (
            Binding::whole(&xb),
            Binding::whole(&wb),
            Binding::whole(&bb),
            Binding::whole(&dyb),
        );
        let tol = |terms: usize| 1e-5 * (terms as f32 + 1.0);
        let per_weight = batch * c.output.h * c.output.w;

        let mut y = vec![0.0; batch * c.output.len()];
        conv::conv2d_forward(&x, &w, &b, &mut y, batch, &c);
        check_versions(
            &ctx,
            ConvPass::Forward,
            &format!("{what}: y"),
            &y,
            tol(c.input.c * k2),
            |v, out| kernels.conv2d_forward_version(&ctx, v, &c, batch, x_, w_, b_, out),
        );

        let mut dx = vec![0.0; batch * c.input.len()];
        conv::conv2d_backward_input(&dy, &w, &mut dx, batch, &c);
        check_versions(
            &ctx,
            ConvPass::BackwardInput,
            &format!("{what}: dx"),
            &dx,
            tol(c.output.c * k2),
            |v, out| kernels.conv2d_backward_input_version(&ctx, v, &c, batch, dy_, w_, out),
        );

        let mut dw = vec![0.0; w.len()];
        conv::conv2d_backward_weight(&dy, &x, &mut dw, batch, &c);
        check_versions(
            &ctx,
            ConvPass::BackwardWeight,
            &format!("{what}: dW"),
            &dw,
            tol(per_weight),
            |v, out| kernels.conv2d_backward_weight_version(&ctx, v, &c, batch, dy_, x_, out),
        );

        let mut db = vec![0.0; c.output.c];
        conv::conv2d_backward_bias(&dy, &mut db, batch, &c);
        let dbb = ctx.storage_zeroed("db", db.len());
        ctx.run(&[kernels.conv2d_backward_bias(&ctx, &c, batch, dy_, Binding::whole(&dbb))]);
        let got = ctx.read::<f32>(&dbb, 0, db.len()).unwrap();
        assert_close(&format!("{what}: db"), &got, &db, tol(per_weight), 1e-5);
    }
}
