//! How one kernel result is held against its CPU reference: every element
//! within `atol + rtol·|want|` (the tests' rule, tests/common), and the
//! element that came closest to failing reported.

use serde::Serialize;

/// One comparison: a kernel (version and form included in its name) on one
/// case, against the CPU reference.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `matmul Registers NT`, `conv2d ImplicitGemm backward-weight`, `op bn`.
    pub kernel: String,
    /// The shape it ran: `63x65x129`, `batch 2, 3×9×7 → 5×5×4`.
    pub case: String,
    /// The largest |got − want| relative to its tolerance, as the error and
    /// the tolerance at that element.
    pub max_error: f32,
    pub tolerance: f32,
    pub passed: bool,
}

/// Compares `got` with `want` element by element. A length mismatch or a
/// non-finite value where the reference is finite fails with an infinite
/// error.
pub fn compare(kernel: &str, case: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Check {
    // (error, tolerance, error / tolerance) at the element closest to failing.
    let mut worst = (0.0f32, atol, -1.0f32);
    let mut passed = got.len() == want.len();
    if !passed {
        worst = (f32::INFINITY, atol, f32::INFINITY);
    }
    for (&g, &w) in got.iter().zip(want) {
        let tol = atol + rtol * w.abs();
        let err = if g.is_finite() == w.is_finite() {
            (g - w).abs()
        } else {
            f32::INFINITY
        };
        // NaN on both sides compares as NaN: a failure, not a pass.
        let ok = err <= tol;
        let ratio = if err.is_nan() {
            f32::INFINITY
        } else if tol > 0.0 {
            err / tol
        } else if err == 0.0 {
            0.0
        } else {
            f32::INFINITY
        };
        passed &= ok;
        if ratio > worst.2 {
            worst = (err, tol, ratio);
        }
    }
    Check {
        kernel: kernel.to_string(),
        case: case.to_string(),
        max_error: worst.0,
        tolerance: worst.1,
        passed,
    }
}

/// Exact equality of integer results (argmax indices, labels, counters).
pub fn compare_exact(kernel: &str, case: &str, got: &[u32], want: &[u32]) -> Check {
    let mismatches =
        got.iter().zip(want).filter(|(g, w)| g != w).count() + got.len().abs_diff(want.len());
    Check {
        kernel: kernel.to_string(),
        case: case.to_string(),
        max_error: mismatches as f32,
        tolerance: 0.0,
        passed: mismatches == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_tolerance_passes_and_reports_the_closest_element() {
        let c = compare("k", "c", &[1.0, 2.05, 3.0], &[1.0, 2.0, 3.0], 0.1, 0.0);
        assert!(c.passed);
        assert!((c.max_error - 0.05).abs() < 1e-6);
        assert_eq!(c.tolerance, 0.1);
    }

    #[test]
    fn one_element_out_fails() {
        let c = compare("k", "c", &[1.0, 2.5], &[1.0, 2.0], 0.1, 0.01);
        assert!(!c.passed);
        assert!((c.max_error - 0.5).abs() < 1e-6);
        assert!((c.tolerance - 0.12).abs() < 1e-6);
    }

    #[test]
    fn nan_and_length_mismatch_fail() {
        assert!(!compare("k", "c", &[f32::NAN], &[1.0], 1.0, 1.0).passed);
        assert!(!compare("k", "c", &[f32::NAN], &[f32::NAN], 1.0, 1.0).passed);
        assert!(!compare("k", "c", &[1.0], &[1.0, 2.0], 1.0, 1.0).passed);
        assert!(!compare_exact("k", "c", &[1, 2], &[1, 3]).passed);
        assert!(compare_exact("k", "c", &[1, 2], &[1, 2]).passed);
    }
}
