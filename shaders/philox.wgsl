// philox.wgsl — Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel
// random numbers: as easy as 1, 2, 3", SC 2011): four random words as a pure
// function of a 128-bit counter and a 64-bit key. The host's copy is
// `ops::dropout::reference::philox4x32_10`; dropout.wgsl (masks) and
// gather.wgsl (augmentation draws) are compiled after this file.

// Philox's multipliers and Weyl key increments (Random123's constants).
const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// The high 32 bits of the 64-bit product a·b (WGSL has no 64-bit integers):
// schoolbook multiplication in 16-bit halves.
fn mul_hi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_lo = a_hi * b_lo;
    let middle = (lo_lo >> 16u) + (lo_hi & 0xffffu) + (hi_lo & 0xffffu);
    return a_hi * b_hi + (lo_hi >> 16u) + (hi_lo >> 16u) + (middle >> 16u);
}

fn philox4x32_10(counter: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var ctr = counter;
    var key = key_in;
    for (var r = 0u; r < 10u; r++) {
        if r > 0u {
            key = vec2<u32>(key.x + PHILOX_W0, key.y + PHILOX_W1);
        }
        let hi0 = mul_hi(PHILOX_M0, ctr.x);
        let lo0 = PHILOX_M0 * ctr.x;
        let hi1 = mul_hi(PHILOX_M1, ctr.z);
        let lo1 = PHILOX_M1 * ctr.z;
        ctr = vec4<u32>(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

