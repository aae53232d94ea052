//! Every CPU backward against central finite differences.
//!
//! The reference is f32, so differences use h = 1e-2 on inputs of order 1:
//! f32 round-off in a loss of order 1 is ~1e-7, i.e. ~1e-5 after dividing by
//! 2h, and the truncation error is O(h²)·f''' ≈ 1e-4; we allow
//! 2e-3 + 2e-2·|g|. ReLU inputs closer than 2h to its kink are moved away so
//! the difference never straddles it.

mod common;

use common::{random_vec, rng};
use gpunet::cpu::{mlp, ops};
use gpunet::graph::{Activation, Graph, ModelSpec};
use rand::Rng;

const H: f32 = 1e-2;

/// Compares `analytic` with the central difference of `loss` at `x`.
#[track_caller]
fn check_gradient(what: &str, x: &[f32], analytic: &[f32], loss: impl Fn(&[f32]) -> f32) {
    let mut probe = x.to_vec();
    for i in 0..x.len() {
        probe[i] = x[i] + H;
        let up = loss(&probe);
        probe[i] = x[i] - H;
        let down = loss(&probe);
        probe[i] = x[i];
        let numeric = (up - down) / (2.0 * H);
        let tol = 2e-3 + 2e-2 * numeric.abs();
        assert!(
            (numeric - analytic[i]).abs() <= tol,
            "{what}: d/dx[{i}]: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

/// Σ out ⊙ weights: a scalar whose gradient with respect to `out` is `weights`.
fn weighted_sum(out: &[f32], weights: &[f32]) -> f32 {
    out.iter().zip(weights).map(|(a, b)| a * b).sum()
}

#[test]
fn matmul_backward_is_the_derivative() {
    let mut rng = rng(10);
    let (m, k, n) = (5, 7, 3);
    let x = random_vec(&mut rng, m * k, 1.0);
    let w = random_vec(&mut rng, n * k, 1.0); // (n, k), as a dense layer stores it
    let dy = random_vec(&mut rng, m * n, 1.0);
    let forward = |x: &[f32], w: &[f32]| {
        let mut y = vec![0.0; m * n];
        ops::matmul_nt(x, w, &mut y, m, k, n);
        weighted_sum(&y, &dy)
    };
    // dW (n,k) = dyᵀ · x ; dx (m,k) = dy · W
    let mut dw = vec![0.0; n * k];
    ops::matmul_tn(&dy, &x, &mut dw, n, m, k);
    let mut dx = vec![0.0; m * k];
    ops::matmul_nn(&dy, &w, &mut dx, m, n, k);
    check_gradient("dW", &w, &dw, |w| forward(&x, w));
    check_gradient("dx", &x, &dx, |x| forward(x, &w));
}

#[test]
fn bias_and_activation_backward_are_the_derivative() {
    let mut rng = rng(11);
    let (rows, cols) = (4, 6);
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
    ] {
        let mut z = random_vec(&mut rng, rows * cols, 2.0);
        for v in &mut z {
            if act == Activation::Relu && v.abs() < 3.0 * H {
                *v += 6.0 * H;
            }
        }
        let bias = vec![0.0; cols];
        let dy = random_vec(&mut rng, rows * cols, 1.0);
        let loss = |z: &[f32], b: &[f32]| {
            let mut y = z.to_vec();
            ops::bias_activation(&mut y, b, act, cols);
            weighted_sum(&y, &dy)
        };
        let mut y = z.clone();
        ops::bias_activation(&mut y, &bias, act, cols);
        let mut dz = dy.clone();
        ops::activation_backward(act, &y, &mut dz);
        let mut db = vec![0.0; cols];
        ops::bias_grad(&dz, &mut db, cols);
        check_gradient(&format!("{act:?} dz"), &z, &dz, |z| loss(z, &bias));
        check_gradient(&format!("{act:?} db"), &bias, &db, |b| loss(&z, b));
    }
}

#[test]
fn softmax_xent_gradient_is_the_derivative_of_the_mean_loss() {
    let mut rng = rng(12);
    let (rows, cols) = (5, 4);
    let logits = random_vec(&mut rng, rows * cols, 3.0);
    let labels: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..cols as u32))
        .collect();
    let mut grad = vec![0.0; rows * cols];
    ops::softmax_xent(&logits, &labels, &mut grad, rows, cols);
    check_gradient("dlogits", &logits, &grad, |z| {
        let mut scratch = vec![0.0; rows * cols];
        ops::softmax_xent(z, &labels, &mut scratch, rows, cols).0 / rows as f32
    });
}

#[test]
fn softmax_xent_is_stable_for_large_logits() {
    let logits = [1000.0, 0.0, -1000.0];
    let mut grad = [0.0; 3];
    let (loss, correct) = ops::softmax_xent(&logits, &[1], &mut grad, 1, 3);
    assert!((loss - 1000.0).abs() < 1e-3, "loss {loss}");
    assert_eq!(correct, 0);
    assert!(grad.iter().all(|g| g.is_finite()));
}

#[test]
fn whole_mlp_gradient_is_the_derivative_of_its_loss() {
    for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
        let graph = Graph::new(&ModelSpec {
            layers: vec![6, 5, 4, 3],
            activation: act,
        });
        let params = graph.init_params(13);
        let mut rng = rng(14);
        let rows = 4;
        let x = random_vec(&mut rng, rows * 6, 1.0);
        let labels: Vec<u32> = (0..rows).map(|_| rng.random_range(0..3)).collect();
        let mut grads = vec![0.0; graph.param_len];
        mlp::loss_and_grads(&graph, &params, &x, &labels, &mut grads);
        let mean_loss = |p: &[f32]| {
            let mut scratch = vec![0.0; graph.param_len];
            mlp::loss_and_grads(&graph, p, &x, &labels, &mut scratch).0 / rows as f32
        };
        // ReLU kinks: a parameter whose ±h changes which units are active is
        // not differentiable there; skip the (rare) ones where the two
        // one-sided differences disagree.
        let mut probe = params.clone();
        for info in &graph.params {
            for i in info.range() {
                probe[i] = params[i] + H;
                let up = mean_loss(&probe);
                probe[i] = params[i] - H;
                let down = mean_loss(&probe);
                probe[i] = params[i];
                let mid = mean_loss(&probe);
                let (right, left) = ((up - mid) / H, (mid - down) / H);
                if act == Activation::Relu
                    && (right - left).abs() > 0.05 * (right.abs() + left.abs()) + 1e-2
                {
                    continue;
                }
                let numeric = (up - down) / (2.0 * H);
                let tol = 2e-3 + 2e-2 * numeric.abs();
                assert!(
                    (numeric - grads[i]).abs() <= tol,
                    "{act:?} {}[{}]: analytic {} vs numeric {numeric}",
                    info.name,
                    i - info.offset,
                    grads[i]
                );
            }
        }
    }
}
