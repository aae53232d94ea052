//! Optimiser updates on the CPU: the reference for optim.wgsl.

/// SGD with momentum, PyTorch's form: g = grad + wd·θ; v ← μ·v + g;
/// θ ← θ − lr·v, or with Nesterov momentum θ ← θ − lr·(g + μ·v).
pub fn sgd_momentum(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
) {
    for ((p, &g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
        let g = g + weight_decay * *p;
        *v = momentum * *v + g;
        let update = if nesterov { g + momentum * *v } else { *v };
        *p -= lr * update;
    }
}

/// Adam's hyper-parameters. `decoupled` selects AdamW (weight decay applied
/// to θ directly, not added to the gradient).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
}

/// One Adam / AdamW step at step number `t` (1-based), PyTorch's form:
///   Adam:  g = grad + wd·θ
///   AdamW: θ ← θ·(1 − lr·wd)
///   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   θ ← θ − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
pub fn adam(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    t: u32,
    cfg: &AdamConfig,
) {
    let bias1 = 1.0 - cfg.beta1.powi(t as i32);
    let bias2 = 1.0 - cfg.beta2.powi(t as i32);
    for i in 0..params.len() {
        let mut g = grads[i];
        if cfg.decoupled {
            params[i] *= 1.0 - lr * cfg.weight_decay;
        } else {
            g += cfg.weight_decay * params[i];
        }
        m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
        v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
        let m_hat = m[i] / bias1;
        let v_hat = v[i] / bias2;
        params[i] -= lr * m_hat / (v_hat.sqrt() + cfg.eps);
    }
}
