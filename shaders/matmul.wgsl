// matmul.wgsl — C = op(A) · op(B), with an optional bias + activation epilogue.
//
//   matmul_nn:  C (M,N) = A · B      A is (M,K) row-major, B is (K,N)
//   matmul_tn:  C (M,N) = Aᵀ · B     A is stored (K,M),    B is (K,N)
//   matmul_nt:  C (M,N) = A · Bᵀ     A is (M,K),           B is stored (N,K)
//
// Epilogue (all three forms): C[m,n] = act(acc[m,n] + bias[n]) where the bias
// is added when `epilogue & 1` and act = epilogue >> 8 (codes in common.wgsl).
//
// A dense layer with weight W (out,in) uses all three without materialising a
// transpose:  forward  y = act(x · Wᵀ + b)         → matmul_nt
//             backward dW = dzᵀ · x  (out,in)       → matmul_tn
//                      dx = dz · W   (batch,in)     → matmul_nn
//
// Versions, as in llm.c's dev kernels. This file holds the hardware path
// and the reference; the variants written for software adapters live in
// shaders/software/ and are compiled after this file, whose bindings and
// helpers they use:
//   version 1, matmul_naive_*: one invocation per element of C, a plain dot
//     product read straight from memory. It is the obvious kernel, kept as
//     the reference the others are tested against and the baseline that
//     the bench compares them with.
//   version 2, matmul_*: the tiled kernel the engine uses on hardware GPUs,
//     described below.
//   version 3, matmul_reg_* (software/matmul_registers.wgsl): the engine's
//     kernel on adapters that run on the CPU (lavapipe, llvmpipe) without
//     subgroups of 8 lanes.
//   version 4, matmul_sub_* (software/matmul_subgroup.wgsl): the engine's
//     kernel on CPU adapters with subgroups of 8 lanes; a subgroup shares
//     its loads of A through subgroupBroadcast.
//
// Tiling: a 16×16 workgroup computes a 64×64 block of C; each invocation
// keeps a 4×4 block of accumulators in registers (rows lid.y + 16i, columns
// lid.x + 16j, so neighbouring invocations touch neighbouring columns). The
// K dimension is walked in slices of 16 staged through workgroup memory.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    epilogue: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> a_tile: array<f32, 1024>; // [TILE_K][TILE_M]
var<workgroup> b_tile: array<f32, 1024>; // [TILE_K][TILE_N]

// op(A)[row, kk], zero outside the matrix.
fn load_a(row: u32, kk: u32, trans_a: bool) -> f32 {
    if row >= p.m || kk >= p.k {
        return 0.0;
    }
    if trans_a {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

// op(B)[kk, col], zero outside the matrix.
fn load_b(kk: u32, col: u32, trans_b: bool) -> f32 {
    if col >= p.n || kk >= p.k {
        return 0.0;
    }
    if trans_b {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

fn matmul_tiled(group: vec3<u32>, lid: vec3<u32>, trans_a: bool, trans_b: bool) {
    let tid = lid.y * 16u + lid.x;
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        // Each invocation stages 4 of the 1024 elements of each tile. The
        // element order follows the operand's memory order so that
        // neighbouring invocations read neighbouring addresses.
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * THREADS;
            if trans_a {
                let kk = e / TILE_M;
                let mm = e % TILE_M;
                a_tile[kk * TILE_M + mm] = load_a(row0 + mm, k0 + kk, true);
            } else {
                let mm = e / TILE_K;
                let kk = e % TILE_K;
                a_tile[kk * TILE_M + mm] = load_a(row0 + mm, k0 + kk, false);
            }
            if trans_b {
                let nn = e / TILE_K;
                let kk = e % TILE_K;
                b_tile[kk * TILE_N + nn] = load_b(k0 + kk, col0 + nn, true);
            } else {
                let kk = e / TILE_N;
                let nn = e % TILE_N;
                b_tile[kk * TILE_N + nn] = load_b(k0 + kk, col0 + nn, false);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var a_reg: array<f32, 4>;
            var b_reg: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a_reg[i] = a_tile[kk * TILE_M + lid.y + 16u * i];
                b_reg[i] = b_tile[kk * TILE_N + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a_reg[i], b_reg[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if row < p.m && col < p.n {
                store_c(row, col, acc[i * 4u + j]);
            }
        }
    }
}

// The epilogue: C[row, col] = act(acc + bias[col]).
fn store_c(row: u32, col: u32, acc: f32) {
    var v = acc;
    if (p.epilogue & 1u) != 0u {
        v += bias[col];
    }
    c[row * p.n + col] = activate(v, p.epilogue >> 8u);
}

// Version 1: C[row, col] = Σ_k op(A)[row, k] · op(B)[k, col], one invocation each.
fn matmul_naive(id: vec3<u32>, trans_a: bool, trans_b: bool) {
    let row = id.y;
    let col = id.x;
    if row >= p.m || col >= p.n {
        return;
    }
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc = fma(load_a(row, kk, trans_a), load_b(kk, col, trans_b), acc);
    }
    store_c(row, col, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_naive_nn(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_naive(id, false, false);
}

@compute @workgroup_size(16, 16)
fn matmul_naive_tn(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_naive(id, true, false);
}

@compute @workgroup_size(16, 16)
fn matmul_naive_nt(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_naive(id, false, true);
}

@compute @workgroup_size(16, 16)
fn matmul_nn(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    matmul_tiled(group, lid, false, false);
}

@compute @workgroup_size(16, 16)
fn matmul_tn(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    matmul_tiled(group, lid, true, false);
}

@compute @workgroup_size(16, 16)
fn matmul_nt(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    matmul_tiled(group, lid, false, true);
}
