//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gpunet::gpu::GpuContext;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// The GPU to test on. Without an adapter the GPU tests are skipped, unless
/// GPUNET_REQUIRE_GPU=1 (as in CI), which makes that a failure.
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("GPUNET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("GPUNET_REQUIRE_GPU=1 but no GPU adapter: {e:#}");
            }
            eprintln!("skipping GPU test: {e:#}");
            None
        }
    }
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in [-scale, scale).
pub fn random_vec(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Fails with the first element where |got − want| > atol + rtol·|want|.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol && g.is_finite() == w.is_finite(),
            "{what}: element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// The MNIST shipped with the repository.
pub fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// The CPU references of the matrix and elementwise ops, under the one name
/// the tests call them by.
#[allow(unused_imports)]
pub mod ops {
    pub use gpunet::ops::activation::reference::*;
    pub use gpunet::ops::dense::reference::*;
    pub use gpunet::ops::gather::reference::*;
    pub use gpunet::ops::matmul::reference::*;
    pub use gpunet::ops::softmax_xent::reference::*;
}

/// The CPU references of convolution and pooling.
#[allow(unused_imports)]
pub mod conv {
    pub use gpunet::ops::conv2d::reference::*;
    pub use gpunet::ops::pool::reference::*;
}
