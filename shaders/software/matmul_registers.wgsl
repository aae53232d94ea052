// software/matmul_registers.wgsl — version 3 of C = op(A) · op(B), for
// adapters that run on the CPU (lavapipe, llvmpipe). Compiled after
// matmul.wgsl, whose parameters, bindings and epilogue (store_c) it uses.
//
// Each invocation computes a 4×8 block of C from registers alone, with no
// branch inside its loop. On such adapters workgroup memory is ordinary
// memory and a barrier suspends every invocation, so staging tiles (version
// 2) costs more than it saves; at 512³ on lavapipe this runs about 2.5× the
// tiled kernel and 6× the naive one (benches/README.md).

// op(A)[row, kk] and op(B)[kk, col] without bounds checks: version 3 clamps
// its rows and columns instead.
fn a_at(row: u32, kk: u32, trans_a: bool) -> f32 {
    if trans_a {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

fn b_at(kk: u32, col: u32, trans_b: bool) -> f32 {
    if trans_b {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

// Stores one row of a version-3 block: columns col0..col0+8 from lo and hi.
fn store_block_row(row: u32, col0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if row >= p.m {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if col0 + j < p.n {
            store_c(row, col0 + j, lo[j]);
        }
        if col0 + 4u + j < p.n {
            store_c(row, col0 + 4u + j, hi[j]);
        }
    }
}

// Version 3: the 4×8 block of C at rows 4·id.y + (0..4), columns
// 8·id.x + (0..8), in eight vec4 accumulators (acc_r_lo holds columns 0..4
// of row r, acc_r_hi columns 4..8). Each k reads 4 values of op(A) and 8 of
// op(B) for 32 multiply-adds. Rows and columns past the edge are clamped
// onto the last one, so every load is in bounds without a branch; their
// results are computed and not stored.
fn matmul_registers(id: vec3<u32>, trans_a: bool, trans_b: bool) {
    let row0 = id.y * 4u;
    let col0 = id.x * 8u;
    if row0 >= p.m || col0 >= p.n {
        return;
    }
    let rows = min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u));
    let cols_lo = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    let cols_hi = min(vec4<u32>(col0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.n - 1u));
    var acc0_lo = vec4<f32>();
    var acc0_hi = vec4<f32>();
    var acc1_lo = vec4<f32>();
    var acc1_hi = vec4<f32>();
    var acc2_lo = vec4<f32>();
    var acc2_hi = vec4<f32>();
    var acc3_lo = vec4<f32>();
    var acc3_hi = vec4<f32>();
    for (var kk = 0u; kk < p.k; kk++) {
        let b_lo = vec4<f32>(
            b_at(kk, cols_lo.x, trans_b),
            b_at(kk, cols_lo.y, trans_b),
            b_at(kk, cols_lo.z, trans_b),
            b_at(kk, cols_lo.w, trans_b),
        );
        let b_hi = vec4<f32>(
            b_at(kk, cols_hi.x, trans_b),
            b_at(kk, cols_hi.y, trans_b),
            b_at(kk, cols_hi.z, trans_b),
            b_at(kk, cols_hi.w, trans_b),
        );
        let a0 = vec4<f32>(a_at(rows.x, kk, trans_a));
        let a1 = vec4<f32>(a_at(rows.y, kk, trans_a));
        let a2 = vec4<f32>(a_at(rows.z, kk, trans_a));
        let a3 = vec4<f32>(a_at(rows.w, kk, trans_a));
        acc0_lo = fma(a0, b_lo, acc0_lo);
        acc0_hi = fma(a0, b_hi, acc0_hi);
        acc1_lo = fma(a1, b_lo, acc1_lo);
        acc1_hi = fma(a1, b_hi, acc1_hi);
        acc2_lo = fma(a2, b_lo, acc2_lo);
        acc2_hi = fma(a2, b_hi, acc2_hi);
        acc3_lo = fma(a3, b_lo, acc3_lo);
        acc3_hi = fma(a3, b_hi, acc3_hi);
    }
    store_block_row(row0, col0, acc0_lo, acc0_hi);
    store_block_row(row0 + 1u, col0, acc1_lo, acc1_hi);
    store_block_row(row0 + 2u, col0, acc2_lo, acc2_hi);
    store_block_row(row0 + 3u, col0, acc3_lo, acc3_hi);
}

@compute @workgroup_size(8, 8)
fn matmul_reg_nn(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_registers(id, false, false);
}

@compute @workgroup_size(8, 8)
fn matmul_reg_tn(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_registers(id, true, false);
}

@compute @workgroup_size(8, 8)
fn matmul_reg_nt(@builtin(global_invocation_id) id: vec3<u32>) {
    matmul_registers(id, false, true);
}
