//! Max-pooling on the CPU: the reference for pool.wgsl. Activations are
//! NCHW; shapes come from the node's `MaxPool`; `batch` is N.

use super::MaxPool;

/// y[n,c,i,j] = max of x over the window at (i·s, j·s); argmax holds the
/// winner's index within its input plane (ih·W + iw; the first on ties).
pub fn maxpool_forward(x: &[f32], y: &mut [f32], argmax: &mut [u32], batch: usize, pool: &MaxPool) {
    let (inp, out) = (pool.input, pool.output);
    for plane in 0..batch * inp.c {
        let x_plane = &x[plane * inp.h * inp.w..][..inp.h * inp.w];
        for i in 0..out.h {
            for j in 0..out.w {
                let mut best = (0usize, f32::NEG_INFINITY);
                for u in 0..pool.size {
                    for v in 0..pool.size {
                        let idx = (i * pool.stride + u) * inp.w + j * pool.stride + v;
                        if x_plane[idx] > best.1 || u + v == 0 {
                            best = (idx, x_plane[idx]);
                        }
                    }
                }
                let o = plane * out.h * out.w + i * out.w + j;
                y[o] = best.1;
                argmax[o] = best.0 as u32;
            }
        }
    }
}

/// dx[n,c,·] = Σ over the windows whose maximum x[n,c,·] was of their dy.
pub fn maxpool_backward(dy: &[f32], argmax: &[u32], dx: &mut [f32], batch: usize, pool: &MaxPool) {
    let (inp, out) = (pool.input, pool.output);
    dx[..batch * inp.len()].fill(0.0);
    for plane in 0..batch * inp.c {
        for o in 0..out.h * out.w {
            let idx = plane * out.h * out.w + o;
            dx[plane * inp.h * inp.w + argmax[idx] as usize] += dy[idx];
        }
    }
}
