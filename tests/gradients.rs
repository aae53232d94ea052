//! Every CPU backward against central finite differences.
//!
//! The reference is f32, so differences use h = 1e-2 on inputs of order 1:
//! f32 round-off in a loss of order 1 is ~1e-7, i.e. ~1e-5 after dividing by
//! 2h, and the truncation error is O(h²)·f''' ≈ 1e-4; we allow
//! 2e-3 + 2e-2·|g|. ReLU inputs closer than 2h to its kink are moved away so
//! the difference never straddles it.

mod common;

use common::{conv, ops};
use common::{random_vec, rng};
use gpunet::cpu::network;
use gpunet::graph::{Activation, Graph, GraphBuilder, Shape, Value};
use gpunet::ops::activation::ActivationOp;
use gpunet::ops::add::Add;
use gpunet::ops::conv2d::Conv2d;
use gpunet::ops::dense::Dense;
use gpunet::ops::pool::MaxPool;
use gpunet::ops::{Mode, Saved};
use gpunet::spec::ModelSpec;
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

/// Label smoothing: the loss is −Σ_c q_c·log p_c with q = (1 − ε)·onehot +
/// ε/C (PyTorch's definition, computed here the long way), and the
/// gradient is its derivative.
#[test]
fn smoothed_softmax_xent_is_the_cross_entropy_against_smoothed_labels() {
    let mut rng = rng(16);
    let (rows, cols, eps) = (4, 5, 0.1f32);
    let logits = random_vec(&mut rng, rows * cols, 3.0);
    let labels: Vec<u32> = (0..rows)
        .map(|_| rng.random_range(0..cols as u32))
        .collect();
    let mut grad = vec![0.0; rows * cols];
    let (loss, _) = ops::softmax_xent_smoothed(&logits, &labels, &mut grad, rows, cols, eps);
    let mut want = 0.0f64;
    for r in 0..rows {
        let z: Vec<f64> = logits[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        for (c, zc) in z.iter().enumerate() {
            let q = f64::from(eps) / cols as f64
                + if c == labels[r] as usize {
                    1.0 - f64::from(eps)
                } else {
                    0.0
                };
            want -= q * (zc - lse);
        }
    }
    assert!(
        (f64::from(loss) - want).abs() < 1e-4,
        "loss {loss} vs {want}"
    );
    check_gradient("dlogits, smoothed", &logits, &grad, |z| {
        let mut scratch = vec![0.0; rows * cols];
        ops::softmax_xent_smoothed(z, &labels, &mut scratch, rows, cols, eps).0 / rows as f32
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
fn conv2d_backward_is_the_derivative() {
    let mut rng = rng(15);
    for &(in_c, out_c, h, w, kernel, stride, padding, act) in &[
        (1, 2, 5, 5, 3, 1, 1, Activation::Identity),
        (3, 2, 6, 5, 3, 2, 0, Activation::Tanh),
        (2, 3, 5, 6, 5, 2, 2, Activation::Sigmoid),
    ] {
        let c = Conv2d {
            input: Shape { c: in_c, h, w },
            output: Shape {
                c: out_c,
                h: (h + 2 * padding - kernel) / stride + 1,
                w: (w + 2 * padding - kernel) / stride + 1,
            },
            kernel,
            stride,
            padding,
            activation: act,
        };
        let batch = 2;
        let x = random_vec(&mut rng, batch * c.input.len(), 1.0);
        let wts = random_vec(&mut rng, out_c * in_c * kernel * kernel, 0.5);
        let b = random_vec(&mut rng, out_c, 0.5);
        let dy = random_vec(&mut rng, batch * c.output.len(), 1.0);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; batch * c.output.len()];
            conv::conv2d_forward(x, w, b, &mut y, batch, &c);
            weighted_sum(&y, &dy)
        };
        let mut y = vec![0.0; batch * c.output.len()];
        conv::conv2d_forward(&x, &wts, &b, &mut y, batch, &c);
        let mut dz = dy.clone();
        ops::activation_backward(act, &y, &mut dz);
        let mut dx = vec![0.0; x.len()];
        conv::conv2d_backward_input(&dz, &wts, &mut dx, batch, &c);
        let mut dw = vec![0.0; wts.len()];
        conv::conv2d_backward_weight(&dz, &x, &mut dw, batch, &c);
        let mut db = vec![0.0; out_c];
        conv::conv2d_backward_bias(&dz, &mut db, batch, &c);
        let what = format!("conv k{kernel} s{stride} p{padding} {act:?}");
        check_gradient(&format!("{what} dx"), &x, &dx, |x| loss(x, &wts, &b));
        check_gradient(&format!("{what} dW"), &wts, &dw, |w| loss(&x, w, &b));
        check_gradient(&format!("{what} db"), &b, &db, |b| loss(&x, &wts, b));
    }
}

#[test]
fn maxpool_backward_is_the_derivative() {
    let mut rng = rng(16);
    for &(h, w, size, stride) in &[(4, 4, 2, 2), (7, 6, 3, 2), (5, 5, 2, 1)] {
        let pool = MaxPool {
            input: Shape { c: 2, h, w },
            output: Shape {
                c: 2,
                h: (h - size) / stride + 1,
                w: (w - size) / stride + 1,
            },
            size,
            stride,
        };
        // Distinct values spaced wider than 2h, so ±h never changes a winner.
        let n = 2 * pool.input.len();
        let mut x: Vec<f32> = (0..n).map(|i| i as f32 * 0.05).collect();
        for i in (1..n).rev() {
            x.swap(i, rng.random_range(0..=i));
        }
        let dy = random_vec(&mut rng, 2 * pool.output.len(), 1.0);
        let loss = |x: &[f32]| {
            let mut y = vec![0.0; dy.len()];
            let mut argmax = vec![0; dy.len()];
            conv::maxpool_forward(x, &mut y, &mut argmax, 2, &pool);
            weighted_sum(&y, &dy)
        };
        let mut y = vec![0.0; dy.len()];
        let mut argmax = vec![0; dy.len()];
        conv::maxpool_forward(&x, &mut y, &mut argmax, 2, &pool);
        let mut dx = vec![0.0; n];
        conv::maxpool_backward(&dy, &argmax, &mut dx, 2, &pool);
        check_gradient(&format!("pool{size}s{stride}"), &x, &dx, loss);
    }
}

/// Which units are active: every ReLU output's sign and every max-pool's
/// winners. Where a ±h probe changes this pattern the loss has a kink
/// between the probes and central differences do not apply.
fn active_pattern(graph: &Graph, fwd: &network::Forward) -> Vec<u32> {
    let mut pattern = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        // A max-pool's winners, and any other saved indices.
        for saved in &fwd.saved[i] {
            if let Saved::U32(winners) = saved {
                pattern.extend_from_slice(winners);
            }
        }
        if node.op.activation() == Activation::Relu || node.op.label() == "relu" {
            pattern.extend(fwd.outputs[i].iter().map(|&y| u32::from(y > 0.0)));
        }
    }
    pattern
}

/// The gradient of the whole network's mean loss, every parameter and the
/// input, against central differences, skipping the coordinates whose probes
/// straddle a ReLU or max-pool kink (see `active_pattern`).
fn check_network(spec: &str, input: Shape, seed: u64) {
    let graph = Graph::new(&ModelSpec::parse(spec).unwrap(), input, 3).unwrap();
    check_graph(spec, &graph, seed);
}

/// `check_network` for any graph of 3 classes.
fn check_graph(spec: &str, graph: &Graph, seed: u64) {
    let input = graph.input;
    let params = graph.init_params(seed);
    let mut rng = rng(seed);
    let rows = 3;
    let x = random_vec(&mut rng, rows * input.len(), 1.0);
    let labels: Vec<u32> = (0..rows).map(|_| rng.random_range(0..3)).collect();
    let mut grads = vec![0.0; graph.param_len];
    let (_, _, fwd) = network::loss_and_grads(graph, &params, &mut [], &x, &labels, &mut grads, 0);
    let mut delta = vec![0.0; rows * 3];
    ops::softmax_xent(fwd.logits(), &labels, &mut delta, rows, 3);
    let mut scratch = vec![0.0; graph.param_len];
    let dx = network::backward(graph, &params, &x, &fwd, delta, &mut scratch, true).unwrap();
    assert_eq!(
        scratch, grads,
        "backward with and without the input gradient agree"
    );

    // (mean loss, active pattern) at perturbed parameters or input.
    let probe = |p: &[f32], x: &[f32]| {
        let mut scratch = vec![0.0; graph.param_len];
        let (loss, _, fwd) =
            network::loss_and_grads(graph, p, &mut [], x, &labels, &mut scratch, 0);
        (loss / rows as f32, active_pattern(graph, &fwd))
    };
    let mut checked = 0;
    let mut total = 0;
    let mut check = |what: String, analytic: f32, f: &dyn Fn(f32) -> (f32, Vec<u32>)| {
        total += 1;
        let ((up, up_pattern), (down, down_pattern)) = (f(H), f(-H));
        if up_pattern != down_pattern {
            return;
        }
        checked += 1;
        let numeric = (up - down) / (2.0 * H);
        let tol = 2e-3 + 2e-2 * numeric.abs();
        assert!(
            (numeric - analytic).abs() <= tol,
            "{spec}: {what}: analytic {analytic} vs numeric {numeric}"
        );
    };
    for info in &graph.params {
        for i in info.range() {
            check(
                format!("{}[{}]", info.name, i - info.offset),
                grads[i],
                &|d| {
                    let mut p = params.clone();
                    p[i] += d;
                    probe(&p, &x)
                },
            );
        }
    }
    for i in 0..x.len() {
        check(format!("x[{i}]"), dx[i], &|d| {
            let mut xs = x.clone();
            xs[i] += d;
            probe(&params, &xs)
        });
    }
    // With h = 1e-2 about one ReLU-network coordinate in ten straddles a kink.
    assert!(
        checked * 4 >= total * 3,
        "{spec}: only {checked} of {total} coordinates were away from kinks"
    );
}

#[test]
fn whole_mlp_gradient_is_the_derivative_of_its_loss() {
    let input = Shape { c: 6, h: 1, w: 1 };
    check_network("dense5,relu,dense4,relu,dense3", input, 13);
    check_network("dense5,tanh,dense4,sigmoid,dense3", input, 14);
}

#[test]
fn whole_cnn_gradient_is_the_derivative_of_its_loss() {
    let input = Shape { c: 2, h: 8, w: 7 };
    check_network(
        "conv3k3p1,relu,pool2,conv4k3s2p1,tanh,dense5,relu,dense3",
        input,
        17,
    );
    check_network("conv2k5p2,sigmoid,pool3s2,dense3", input, 18);
}

/// A graph that is not a chain: x → dense (a), relu; a → dense (f), tanh;
/// a + f → relu → dense. `a` is read twice, so its gradient — and through
/// it every earlier one — is the sum over both paths.
#[test]
fn a_value_read_twice_gets_the_sum_of_its_gradients() {
    let input = Shape { c: 6, h: 1, w: 1 };
    let mut b = GraphBuilder::new(input);
    let dense = |inputs, outputs| Dense {
        inputs,
        outputs,
        activation: Activation::Identity,
    };
    let a = b
        .push(0, Box::new(dense(6, 5)), vec![Value::Input])
        .unwrap();
    assert!(b.fuse(a, Activation::Relu));
    let f = b.push(2, Box::new(dense(5, 5)), vec![a]).unwrap();
    assert!(b.fuse(f, Activation::Tanh));
    let shape = b.shape(a);
    let sum = b.push(4, Box::new(Add { shape }), vec![a, f]).unwrap();
    let act = ActivationOp {
        shape,
        act: Activation::Relu,
    };
    let y = b.push(5, Box::new(act), vec![sum]).unwrap();
    b.push(6, Box::new(dense(5, 3)), vec![y]).unwrap();
    let graph = b.finish(&ModelSpec::parse("dense3").unwrap(), 3).unwrap();
    check_graph("residual", &graph, 19);
    // The input read twice as well: add(x, x) doubles its gradient.
    let mut b = GraphBuilder::new(input);
    let twice = b
        .push(0, Box::new(Add { shape: input }), vec![Value::Input; 2])
        .unwrap();
    let h = b.push(1, Box::new(dense(6, 4)), vec![twice]).unwrap();
    assert!(b.fuse(h, Activation::Sigmoid));
    b.push(2, Box::new(dense(4, 3)), vec![h]).unwrap();
    let graph = b.finish(&ModelSpec::parse("dense3").unwrap(), 3).unwrap();
    check_graph("x + x", &graph, 20);
}

/// Residual blocks written in the spec language: the identity shortcut, a
/// 1×1 projection where the body changes channels and stride, a nested
/// block, and dropout (in training mode, its mask fixed for the step) inside
/// and after a block, then global average pooling. The block's input is read
/// by its body and by its shortcut (or the sum), so its gradient — and every
/// earlier one, the input's included — is the sum over both paths.
#[test]
fn residual_block_gradients_are_the_derivative_of_the_loss() {
    let input = Shape { c: 2, h: 6, w: 5 };
    check_network(
        "conv3k3p1,tanh,res(conv3k3p1,relu,conv3k3p1),relu,dense3",
        input,
        23,
    );
    check_network(
        "res(conv4k3s2p1,tanh,dropout0.5,conv4k3p1),sigmoid,res(res(conv4k3p1,tanh)),gap,flatten,dense3",
        input,
        24,
    );
    check_network(
        "conv3k3,res(relu,conv3k3p1,dropout0.3),dense6,dropout0.5,res(dense6,tanh),dense3",
        input,
        25,
    );
}

/// The gradient of one unit's pre-activation with respect to the input (what
/// activation maximisation climbs), against central differences.
#[test]
fn input_gradient_of_a_unit_is_the_derivative() {
    let input = Shape { c: 1, h: 6, w: 6 };
    let graph = Graph::new(
        &ModelSpec::parse("conv2k3,tanh,dense5,sigmoid,dense3").unwrap(),
        input,
        3,
    )
    .unwrap();
    let params = graph.init_params(21);
    let mut rng = rng(22);
    let x = random_vec(&mut rng, input.len(), 1.0);
    for (node, unit) in [(0, 7), (1, 2), (2, 1)] {
        let len = graph.nodes[node].output_len();
        let mut seed = vec![0.0; len];
        seed[unit] = 1.0;
        let fwd = network::forward(&graph, &params, &mut [], &x, 1, Mode::Eval, 0);
        let mut grads = vec![0.0; graph.param_len];
        let dx = network::backward_from(
            &graph, &params, &x, &fwd, node, true, seed, &mut grads, true,
        )
        .unwrap();
        // The pre-activation: invert the node's activation at that unit.
        let pre = |x: &[f32]| {
            let y =
                network::forward(&graph, &params, &mut [], x, 1, Mode::Eval, 0).outputs[node][unit];
            match node {
                0 => y.atanh(),
                1 => (y / (1.0 - y)).ln(),
                _ => y,
            }
        };
        check_gradient(&format!("node {node} unit {unit}"), &x, &dx, pre);
    }
}
