// softmax_xent.wgsl — softmax cross-entropy over a batch of logits, its
// gradient, and the epoch's running loss / correct count, in one kernel.
//
//   logits (rows, cols), labels (rows) u32, grad (rows, cols), metrics.
//   Only the first step.batch_len rows are real; padding rows get zero grad.
//
//   loss_r  = log Σ_c exp(z_rc) − z_r,label     (computed with max subtracted)
//   ∂L/∂z_rc = (softmax(z_r)_c − [c = label_r]) / batch_len
//   where L is the batch mean of loss_r.
//
//   With label smoothing ε (training only), the target is
//   q = (1 − ε)·onehot(label) + ε/cols (PyTorch's label_smoothing):
//   loss_r  = (1 − ε)·(lse − z_r,label) + ε·(lse − mean_c z_rc)
//   ∂L/∂z_rc = (softmax(z_r)_c − q_c) / batch_len
//
// One workgroup handles the whole batch (rows are few and short), so the
// batch's loss and correct count are reduced in workgroup memory and added to
// `metrics` without atomics. A non-finite batch loss records the first such
// step (+1) in metrics.bad_step; the host reads metrics once per epoch.

struct XentParams {
    rows: u32,
    cols: u32,
    smoothing: f32,
}

struct Metrics {
    loss_sum: f32,
    correct: u32,
    bad_step: u32,
    count: u32,
}

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> p: XentParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> metrics: Metrics;

const XENT_WG: u32 = 256u;
var<workgroup> loss_part: array<f32, 256>;
var<workgroup> correct_part: array<u32, 256>;

@compute @workgroup_size(256)
fn softmax_xent(@builtin(local_invocation_index) t: u32) {
    var loss = 0.0;
    var correct = 0u;
    let inv_len = 1.0 / f32(max(step.batch_len, 1u));
    for (var r = t; r < p.rows; r += XENT_WG) {
        let base = r * p.cols;
        if r >= step.batch_len {
            for (var c = 0u; c < p.cols; c++) {
                grad[base + c] = 0.0;
            }
            continue;
        }
        var max_logit = logits[base];
        var argmax = 0u;
        for (var c = 1u; c < p.cols; c++) {
            if logits[base + c] > max_logit {
                max_logit = logits[base + c];
                argmax = c;
            }
        }
        var sum = 0.0;
        for (var c = 0u; c < p.cols; c++) {
            sum += exp(logits[base + c] - max_logit);
        }
        let label = labels[r];
        let lse = log(sum) + max_logit;
        if p.smoothing > 0.0 {
            var total = 0.0;
            for (var c = 0u; c < p.cols; c++) {
                total += logits[base + c];
            }
            let mean = total / f32(p.cols);
            loss += (1.0 - p.smoothing) * (lse - logits[base + label]) + p.smoothing * (lse - mean);
        } else {
            loss += lse - logits[base + label];
        }
        if argmax == label {
            correct += 1u;
        }
        let off = p.smoothing / f32(p.cols);
        let on = 1.0 - p.smoothing + off;
        for (var c = 0u; c < p.cols; c++) {
            let prob = exp(logits[base + c] - max_logit) / sum;
            grad[base + c] = (prob - select(off, on, c == label)) * inv_len;
        }
    }
    loss_part[t] = loss;
    correct_part[t] = correct;
    workgroupBarrier();
    for (var stride = XENT_WG / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            loss_part[t] += loss_part[t + stride];
            correct_part[t] += correct_part[t + stride];
        }
        workgroupBarrier();
    }
    if t == 0u {
        metrics.loss_sum += loss_part[0];
        metrics.correct += correct_part[0];
        metrics.count += step.batch_len;
        if !is_finite_f32(loss_part[0]) && metrics.bad_step == 0u {
            metrics.bad_step = step.step + 1u;
        }
    }
}
