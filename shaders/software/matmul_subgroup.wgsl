// software/matmul_subgroup.wgsl — version 4 of C = op(A) · op(B), for adapters that
// run on the CPU and have subgroups of 8 lanes (lavapipe). Compiled after
// matmul.wgsl and matmul_registers.wgsl, whose parameters, a_at and epilogue it uses, and only where
// the device has subgroup operations.
//
// Why: lavapipe runs each subgroup as one 8-wide SIMD register, but loads
// each lane's storage-buffer value one lane at a time, at a cost per load
// instruction and lane whether it fetches one float or a vec4. Version 3
// spends most of its time in those loads (12 per 32 multiply-adds). Here
// the 8 lanes of a workgroup (one subgroup) compute a 32×32 block of C
// together: lane l owns columns 4l..4l+4 and all 32 rows. At each k the
// lane loads its 4 values of op(B) as one vec4, and the op(A) values of
// rows l, l+8, l+16 and l+24; every lane then takes the 32 row values from
// the lanes that loaded them with subgroupBroadcast, a register shuffle.
// The 32 vec4 accumulators (one per row) are named rather than kept in an
// array: an array indexed in a loop is placed in memory.
//
// The vec4 loads need the dimension they run along to be a multiple of 4:
// n for A·B and Aᵀ·B (rows of B), k for A·Bᵀ (rows of A and of B, read 4 k
// at a time). Other shapes run version 3 (see src/ops/matmul/launch.rs).
//
// Rows and columns past the edge are clamped onto the last ones, as in
// version 3, so every lane runs every iteration (subgroupBroadcast needs the
// lane it reads from to be active) and every load is in bounds; their
// results are not stored.

// a_vec4 and b_vec4 view the same buffers as matmul.wgsl's a and b.
@group(0) @binding(1) var<storage, read> a_vec4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b_vec4: array<vec4<f32>>;

// Stores row `row` of the block at columns col0..col0+4.
fn store_row4(row: u32, col0: u32, v: vec4<f32>) {
    if row >= p.m {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if col0 + j < p.n {
            store_c(row, col0 + j, v[j]);
        }
    }
}

// A·B and Aᵀ·B: B's row kk holds the lane's 4 columns side by side.
fn matmul_subgroup_nn_tn(group: vec3<u32>, lane: u32, trans_a: bool) {
    let row0 = group.y * 32u;
    let col0 = group.x * 32u + lane * 4u;
    // This lane loads op(A) for rows.x (block rows 0..8), rows.y (8..16), ...
    let rows = min(vec4<u32>(row0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(p.m - 1u));
    // The lane's columns, clamped as a whole onto the last 4 (n is a
    // multiple of 4, and so is col0).
    let n4 = p.n / 4u;
    let col4 = min(col0, p.n - 4u) / 4u;
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    var acc8 = vec4<f32>();
    var acc9 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc12 = vec4<f32>();
    var acc13 = vec4<f32>();
    var acc14 = vec4<f32>();
    var acc15 = vec4<f32>();
    var acc16 = vec4<f32>();
    var acc17 = vec4<f32>();
    var acc18 = vec4<f32>();
    var acc19 = vec4<f32>();
    var acc20 = vec4<f32>();
    var acc21 = vec4<f32>();
    var acc22 = vec4<f32>();
    var acc23 = vec4<f32>();
    var acc24 = vec4<f32>();
    var acc25 = vec4<f32>();
    var acc26 = vec4<f32>();
    var acc27 = vec4<f32>();
    var acc28 = vec4<f32>();
    var acc29 = vec4<f32>();
    var acc30 = vec4<f32>();
    var acc31 = vec4<f32>();
    for (var kk = 0u; kk < p.k; kk++) {
        let b = b_vec4[kk * n4 + col4];
        let a0 = a_at(rows.x, kk, trans_a);
        let a1 = a_at(rows.y, kk, trans_a);
        let a2 = a_at(rows.z, kk, trans_a);
        let a3 = a_at(rows.w, kk, trans_a);
        // acc_r += op(A)[row0 + r, kk] · b, the value coming from lane r % 8.
        acc0 = fma(vec4<f32>(subgroupBroadcast(a0, 0u)), b, acc0);
        acc1 = fma(vec4<f32>(subgroupBroadcast(a0, 1u)), b, acc1);
        acc2 = fma(vec4<f32>(subgroupBroadcast(a0, 2u)), b, acc2);
        acc3 = fma(vec4<f32>(subgroupBroadcast(a0, 3u)), b, acc3);
        acc4 = fma(vec4<f32>(subgroupBroadcast(a0, 4u)), b, acc4);
        acc5 = fma(vec4<f32>(subgroupBroadcast(a0, 5u)), b, acc5);
        acc6 = fma(vec4<f32>(subgroupBroadcast(a0, 6u)), b, acc6);
        acc7 = fma(vec4<f32>(subgroupBroadcast(a0, 7u)), b, acc7);
        acc8 = fma(vec4<f32>(subgroupBroadcast(a1, 0u)), b, acc8);
        acc9 = fma(vec4<f32>(subgroupBroadcast(a1, 1u)), b, acc9);
        acc10 = fma(vec4<f32>(subgroupBroadcast(a1, 2u)), b, acc10);
        acc11 = fma(vec4<f32>(subgroupBroadcast(a1, 3u)), b, acc11);
        acc12 = fma(vec4<f32>(subgroupBroadcast(a1, 4u)), b, acc12);
        acc13 = fma(vec4<f32>(subgroupBroadcast(a1, 5u)), b, acc13);
        acc14 = fma(vec4<f32>(subgroupBroadcast(a1, 6u)), b, acc14);
        acc15 = fma(vec4<f32>(subgroupBroadcast(a1, 7u)), b, acc15);
        acc16 = fma(vec4<f32>(subgroupBroadcast(a2, 0u)), b, acc16);
        acc17 = fma(vec4<f32>(subgroupBroadcast(a2, 1u)), b, acc17);
        acc18 = fma(vec4<f32>(subgroupBroadcast(a2, 2u)), b, acc18);
        acc19 = fma(vec4<f32>(subgroupBroadcast(a2, 3u)), b, acc19);
        acc20 = fma(vec4<f32>(subgroupBroadcast(a2, 4u)), b, acc20);
        acc21 = fma(vec4<f32>(subgroupBroadcast(a2, 5u)), b, acc21);
        acc22 = fma(vec4<f32>(subgroupBroadcast(a2, 6u)), b, acc22);
        acc23 = fma(vec4<f32>(subgroupBroadcast(a2, 7u)), b, acc23);
        acc24 = fma(vec4<f32>(subgroupBroadcast(a3, 0u)), b, acc24);
        acc25 = fma(vec4<f32>(subgroupBroadcast(a3, 1u)), b, acc25);
        acc26 = fma(vec4<f32>(subgroupBroadcast(a3, 2u)), b, acc26);
        acc27 = fma(vec4<f32>(subgroupBroadcast(a3, 3u)), b, acc27);
        acc28 = fma(vec4<f32>(subgroupBroadcast(a3, 4u)), b, acc28);
        acc29 = fma(vec4<f32>(subgroupBroadcast(a3, 5u)), b, acc29);
        acc30 = fma(vec4<f32>(subgroupBroadcast(a3, 6u)), b, acc30);
        acc31 = fma(vec4<f32>(subgroupBroadcast(a3, 7u)), b, acc31);
    }
    store_row4(row0, col0, acc0);
    store_row4(row0 + 1u, col0, acc1);
    store_row4(row0 + 2u, col0, acc2);
    store_row4(row0 + 3u, col0, acc3);
    store_row4(row0 + 4u, col0, acc4);
    store_row4(row0 + 5u, col0, acc5);
    store_row4(row0 + 6u, col0, acc6);
    store_row4(row0 + 7u, col0, acc7);
    store_row4(row0 + 8u, col0, acc8);
    store_row4(row0 + 9u, col0, acc9);
    store_row4(row0 + 10u, col0, acc10);
    store_row4(row0 + 11u, col0, acc11);
    store_row4(row0 + 12u, col0, acc12);
    store_row4(row0 + 13u, col0, acc13);
    store_row4(row0 + 14u, col0, acc14);
    store_row4(row0 + 15u, col0, acc15);
    store_row4(row0 + 16u, col0, acc16);
    store_row4(row0 + 17u, col0, acc17);
    store_row4(row0 + 18u, col0, acc18);
    store_row4(row0 + 19u, col0, acc19);
    store_row4(row0 + 20u, col0, acc20);
    store_row4(row0 + 21u, col0, acc21);
    store_row4(row0 + 22u, col0, acc22);
    store_row4(row0 + 23u, col0, acc23);
    store_row4(row0 + 24u, col0, acc24);
    store_row4(row0 + 25u, col0, acc25);
    store_row4(row0 + 26u, col0, acc26);
    store_row4(row0 + 27u, col0, acc27);
    store_row4(row0 + 28u, col0, acc28);
    store_row4(row0 + 29u, col0, acc29);
    store_row4(row0 + 30u, col0, acc30);
    store_row4(row0 + 31u, col0, acc31);
}

// A·Bᵀ: A's rows and B's rows both run along k, so the lane reads 4 k of
// each of its rows at once and then works through them.
fn matmul_subgroup_nt(group: vec3<u32>, lane: u32) {
    let row0 = group.y * 32u;
    let col0 = group.x * 32u + lane * 4u;
    // This lane loads op(A) for rows.x (block rows 0..8), rows.y (8..16), ...
    let rows = min(vec4<u32>(row0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(p.m - 1u));
    let cols = min(vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
    let k4 = p.k / 4u;
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    var acc8 = vec4<f32>();
    var acc9 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc12 = vec4<f32>();
    var acc13 = vec4<f32>();
    var acc14 = vec4<f32>();
    var acc15 = vec4<f32>();
    var acc16 = vec4<f32>();
    var acc17 = vec4<f32>();
    var acc18 = vec4<f32>();
    var acc19 = vec4<f32>();
    var acc20 = vec4<f32>();
    var acc21 = vec4<f32>();
    var acc22 = vec4<f32>();
    var acc23 = vec4<f32>();
    var acc24 = vec4<f32>();
    var acc25 = vec4<f32>();
    var acc26 = vec4<f32>();
    var acc27 = vec4<f32>();
    var acc28 = vec4<f32>();
    var acc29 = vec4<f32>();
    var acc30 = vec4<f32>();
    var acc31 = vec4<f32>();
    for (var q = 0u; q < k4; q++) {
        let a_row0 = a_vec4[rows.x * k4 + q];
        let a_row1 = a_vec4[rows.y * k4 + q];
        let a_row2 = a_vec4[rows.z * k4 + q];
        let a_row3 = a_vec4[rows.w * k4 + q];
        let b_row0 = b_vec4[cols.x * k4 + q];
        let b_row1 = b_vec4[cols.y * k4 + q];
        let b_row2 = b_vec4[cols.z * k4 + q];
        let b_row3 = b_vec4[cols.w * k4 + q];
        for (var kq = 0u; kq < 4u; kq++) {
            let b = vec4<f32>(b_row0[kq], b_row1[kq], b_row2[kq], b_row3[kq]);
            let a0 = a_row0[kq];
            let a1 = a_row1[kq];
            let a2 = a_row2[kq];
            let a3 = a_row3[kq];
            // acc_r += op(A)[row0 + r, 4q + kq] · b, the value coming from lane r % 8.
            acc0 = fma(vec4<f32>(subgroupBroadcast(a0, 0u)), b, acc0);
            acc1 = fma(vec4<f32>(subgroupBroadcast(a0, 1u)), b, acc1);
            acc2 = fma(vec4<f32>(subgroupBroadcast(a0, 2u)), b, acc2);
            acc3 = fma(vec4<f32>(subgroupBroadcast(a0, 3u)), b, acc3);
            acc4 = fma(vec4<f32>(subgroupBroadcast(a0, 4u)), b, acc4);
            acc5 = fma(vec4<f32>(subgroupBroadcast(a0, 5u)), b, acc5);
            acc6 = fma(vec4<f32>(subgroupBroadcast(a0, 6u)), b, acc6);
            acc7 = fma(vec4<f32>(subgroupBroadcast(a0, 7u)), b, acc7);
            acc8 = fma(vec4<f32>(subgroupBroadcast(a1, 0u)), b, acc8);
            acc9 = fma(vec4<f32>(subgroupBroadcast(a1, 1u)), b, acc9);
            acc10 = fma(vec4<f32>(subgroupBroadcast(a1, 2u)), b, acc10);
            acc11 = fma(vec4<f32>(subgroupBroadcast(a1, 3u)), b, acc11);
            acc12 = fma(vec4<f32>(subgroupBroadcast(a1, 4u)), b, acc12);
            acc13 = fma(vec4<f32>(subgroupBroadcast(a1, 5u)), b, acc13);
            acc14 = fma(vec4<f32>(subgroupBroadcast(a1, 6u)), b, acc14);
            acc15 = fma(vec4<f32>(subgroupBroadcast(a1, 7u)), b, acc15);
            acc16 = fma(vec4<f32>(subgroupBroadcast(a2, 0u)), b, acc16);
            acc17 = fma(vec4<f32>(subgroupBroadcast(a2, 1u)), b, acc17);
            acc18 = fma(vec4<f32>(subgroupBroadcast(a2, 2u)), b, acc18);
            acc19 = fma(vec4<f32>(subgroupBroadcast(a2, 3u)), b, acc19);
            acc20 = fma(vec4<f32>(subgroupBroadcast(a2, 4u)), b, acc20);
            acc21 = fma(vec4<f32>(subgroupBroadcast(a2, 5u)), b, acc21);
            acc22 = fma(vec4<f32>(subgroupBroadcast(a2, 6u)), b, acc22);
            acc23 = fma(vec4<f32>(subgroupBroadcast(a2, 7u)), b, acc23);
            acc24 = fma(vec4<f32>(subgroupBroadcast(a3, 0u)), b, acc24);
            acc25 = fma(vec4<f32>(subgroupBroadcast(a3, 1u)), b, acc25);
            acc26 = fma(vec4<f32>(subgroupBroadcast(a3, 2u)), b, acc26);
            acc27 = fma(vec4<f32>(subgroupBroadcast(a3, 3u)), b, acc27);
            acc28 = fma(vec4<f32>(subgroupBroadcast(a3, 4u)), b, acc28);
            acc29 = fma(vec4<f32>(subgroupBroadcast(a3, 5u)), b, acc29);
            acc30 = fma(vec4<f32>(subgroupBroadcast(a3, 6u)), b, acc30);
            acc31 = fma(vec4<f32>(subgroupBroadcast(a3, 7u)), b, acc31);
        }
    }
    store_row4(row0, col0, acc0);
    store_row4(row0 + 1u, col0, acc1);
    store_row4(row0 + 2u, col0, acc2);
    store_row4(row0 + 3u, col0, acc3);
    store_row4(row0 + 4u, col0, acc4);
    store_row4(row0 + 5u, col0, acc5);
    store_row4(row0 + 6u, col0, acc6);
    store_row4(row0 + 7u, col0, acc7);
    store_row4(row0 + 8u, col0, acc8);
    store_row4(row0 + 9u, col0, acc9);
    store_row4(row0 + 10u, col0, acc10);
    store_row4(row0 + 11u, col0, acc11);
    store_row4(row0 + 12u, col0, acc12);
    store_row4(row0 + 13u, col0, acc13);
    store_row4(row0 + 14u, col0, acc14);
    store_row4(row0 + 15u, col0, acc15);
    store_row4(row0 + 16u, col0, acc16);
    store_row4(row0 + 17u, col0, acc17);
    store_row4(row0 + 18u, col0, acc18);
    store_row4(row0 + 19u, col0, acc19);
    store_row4(row0 + 20u, col0, acc20);
    store_row4(row0 + 21u, col0, acc21);
    store_row4(row0 + 22u, col0, acc22);
    store_row4(row0 + 23u, col0, acc23);
    store_row4(row0 + 24u, col0, acc24);
    store_row4(row0 + 25u, col0, acc25);
    store_row4(row0 + 26u, col0, acc26);
    store_row4(row0 + 27u, col0, acc27);
    store_row4(row0 + 28u, col0, acc28);
    store_row4(row0 + 29u, col0, acc29);
    store_row4(row0 + 30u, col0, acc30);
    store_row4(row0 + 31u, col0, acc31);
}

@compute @workgroup_size(8)
fn matmul_sub_nn(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    matmul_subgroup_nn_tn(group, lane, false);
}

@compute @workgroup_size(8)
fn matmul_sub_tn(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    matmul_subgroup_nn_tn(group, lane, true);
}

@compute @workgroup_size(8)
fn matmul_sub_nt(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    matmul_subgroup_nt(group, lane);
}
