//! Convolution on the CPU: the reference for conv2d.wgsl and its variants.
//! Activations are NCHW: x[n, c, h, w] at ((n·C + c)·H + h)·W + w. Shapes
//! come from the node's `Conv2d`; `batch` is N.

use super::Conv2d;

/// The input coordinate read by output coordinate `o` through kernel tap
/// `u`: o·stride + u − padding, or None when that falls in the zero padding.
fn input_coord(o: usize, u: usize, stride: usize, padding: usize, size: usize) -> Option<usize> {
    (o * stride + u).checked_sub(padding).filter(|&i| i < size)
}

/// The output columns j (< out_size) whose tap v reads inside the input row
/// (0 ≤ j·stride + v − padding < in_size), and the first input column read.
/// Walking j over this range and the input from that column in steps of
/// `stride` visits exactly the pairs `input_coord` accepts, with no test
/// in the inner loop.
fn valid_columns(
    v: usize,
    stride: usize,
    padding: usize,
    in_size: usize,
    out_size: usize,
) -> (std::ops::Range<usize>, usize) {
    let first = padding.saturating_sub(v).div_ceil(stride);
    let end = (in_size + padding)
        .saturating_sub(v)
        .div_ceil(stride)
        .min(out_size);
    let start_col = (first * stride + v).saturating_sub(padding);
    (first..end.max(first), start_col)
}

/// y (N, out_c, oh, ow) = act(b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n, c, i·s+u−p, j·s+v−p]).
pub fn conv2d_forward(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], batch: usize, conv: &Conv2d) {
    let (inp, out, k) = (conv.input, conv.output, conv.kernel);
    for n in 0..batch {
        for o in 0..out.c {
            let y_plane = &mut y[(n * out.c + o) * out.h * out.w..][..out.h * out.w];
            y_plane.fill(b[o]);
            for c in 0..inp.c {
                let x_plane = &x[(n * inp.c + c) * inp.h * inp.w..][..inp.h * inp.w];
                for u in 0..k {
                    for v in 0..k {
                        let weight = w[((o * inp.c + c) * k + u) * k + v];
                        let (cols, col0) =
                            valid_columns(v, conv.stride, conv.padding, inp.w, out.w);
                        for i in 0..out.h {
                            let Some(ih) = input_coord(i, u, conv.stride, conv.padding, inp.h)
                            else {
                                continue;
                            };
                            let y_row = &mut y_plane[i * out.w..][cols.clone()];
                            let x_row = x_plane[ih * inp.w + col0..].iter().step_by(conv.stride);
                            for (y, &x) in y_row.iter_mut().zip(x_row) {
                                *y += weight * x;
                            }
                        }
                    }
                }
            }
            for v in y_plane.iter_mut() {
                *v = conv.activation.apply(*v);
            }
        }
    }
}

/// dx (N, in_c, ih, iw) = Σ over every (o,u,v,i,j) that read x[n,c,ih,iw] of
/// W[o,c,u,v] · dy[n,o,i,j] — the forward pass transposed.
pub fn conv2d_backward_input(dy: &[f32], w: &[f32], dx: &mut [f32], batch: usize, conv: &Conv2d) {
    let (inp, out, k) = (conv.input, conv.output, conv.kernel);
    dx[..batch * inp.len()].fill(0.0);
    for n in 0..batch {
        for o in 0..out.c {
            let dy_plane = &dy[(n * out.c + o) * out.h * out.w..][..out.h * out.w];
            for c in 0..inp.c {
                let dx_plane = &mut dx[(n * inp.c + c) * inp.h * inp.w..][..inp.h * inp.w];
                for u in 0..k {
                    for v in 0..k {
                        let weight = w[((o * inp.c + c) * k + u) * k + v];
                        let (cols, col0) =
                            valid_columns(v, conv.stride, conv.padding, inp.w, out.w);
                        for i in 0..out.h {
                            let Some(ih) = input_coord(i, u, conv.stride, conv.padding, inp.h)
                            else {
                                continue;
                            };
                            let dy_row = &dy_plane[i * out.w..][cols.clone()];
                            let dx_row = dx_plane[ih * inp.w + col0..]
                                .iter_mut()
                                .step_by(conv.stride);
                            for (dx, &dy) in dx_row.zip(dy_row) {
                                *dx += weight * dy;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// dW (out_c, in_c, k, k) = Σ_{n,i,j} dy[n,o,i,j] · x[n, c, i·s+u−p, j·s+v−p].
pub fn conv2d_backward_weight(dy: &[f32], x: &[f32], dw: &mut [f32], batch: usize, conv: &Conv2d) {
    let (inp, out, k) = (conv.input, conv.output, conv.kernel);
    dw[..out.c * inp.c * k * k].fill(0.0);
    for n in 0..batch {
        for o in 0..out.c {
            let dy_plane = &dy[(n * out.c + o) * out.h * out.w..][..out.h * out.w];
            for c in 0..inp.c {
                let x_plane = &x[(n * inp.c + c) * inp.h * inp.w..][..inp.h * inp.w];
                for u in 0..k {
                    for v in 0..k {
                        let mut sum = 0.0;
                        let (cols, col0) =
                            valid_columns(v, conv.stride, conv.padding, inp.w, out.w);
                        for i in 0..out.h {
                            let Some(ih) = input_coord(i, u, conv.stride, conv.padding, inp.h)
                            else {
                                continue;
                            };
                            let dy_row = &dy_plane[i * out.w..][cols.clone()];
                            let x_row = x_plane[ih * inp.w + col0..].iter().step_by(conv.stride);
                            sum += dy_row.iter().zip(x_row).map(|(dy, x)| dy * x).sum::<f32>();
                        }
                        dw[((o * inp.c + c) * k + u) * k + v] += sum;
                    }
                }
            }
        }
    }
}

/// db (out_c) = Σ_{n,i,j} dy[n,o,i,j].
pub fn conv2d_backward_bias(dy: &[f32], db: &mut [f32], batch: usize, conv: &Conv2d) {
    let out = conv.output;
    db[..out.c].fill(0.0);
    for n in 0..batch {
        for (o, acc) in db[..out.c].iter_mut().enumerate() {
            *acc += dy[(n * out.c + o) * out.h * out.w..][..out.h * out.w]
                .iter()
                .sum::<f32>();
        }
    }
}
