//! Principal component analysis: the directions along which a set of
//! vectors (e.g. a hidden layer's activations, one row per image) varies
//! most, to draw them in 2-D.
//!
//! [`fit`] centres the data, forms the `dims × dims` covariance matrix in
//! f64 and takes its eigen-decomposition with nalgebra's
//! [`SymmetricEigen`]; the eigenvectors with the largest eigenvalues are the
//! components, the eigenvalues over their sum the shares of variance they
//! explain. That is exact (no iteration count to tune) and quick for the
//! few hundred dimensions of a hidden layer: forming the covariance of
//! 10 000 × 256 values is about 0.3 GFLOP.
//!
//! A component's sign is arbitrary in the mathematics; here it is fixed so
//! that its largest-magnitude coordinate is positive, so the same data gives
//! the same picture every time.

use anyhow::{bail, Context};
use nalgebra::{DMatrix, SymmetricEigen};

/// A fitted PCA: `project` maps a `dims`-vector `x` to the `k` numbers
/// `components[i] · (x − mean)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// The data's mean, `dims` values.
    pub mean: Vec<f32>,
    /// `k` unit vectors of `dims` values, orthogonal to each other, the
    /// direction of most variance first.
    pub components: Vec<Vec<f32>>,
    /// For each component, the share of the data's total variance (summed
    /// over all `dims` directions) along it, in `[0, 1]`, non-increasing.
    pub explained_variance_ratio: Vec<f32>,
}

/// Fits `k` principal components to `data`: `rows` vectors of `dims`
/// values, row-major (`data[r * dims + d]`).
///
/// Errors when the shape does not match `data.len()`, when there are fewer
/// than 2 rows, when `k` is 0 or more than `dims`, when a value is not
/// finite, and when the data does not vary at all (every row the same), so
/// that no direction means anything.
pub fn fit(data: &[f32], rows: usize, dims: usize, k: usize) -> anyhow::Result<Pca> {
    if rows.checked_mul(dims) != Some(data.len()) {
        bail!(
            "PCA: {rows} rows × {dims} dims is not the {} values given",
            data.len()
        );
    }
    if rows < 2 {
        bail!("PCA needs at least 2 rows to measure variance, got {rows}");
    }
    if k == 0 || k > dims {
        bail!("PCA: cannot take {k} components of {dims}-dimensional data (need 1..={dims})");
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "PCA: value {} (row {}, dim {}) is {}",
            i,
            i / dims,
            i % dims,
            data[i]
        );
    }

    let mut mean = vec![0.0f64; dims];
    for row in data.chunks_exact(dims) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let centred = DMatrix::from_fn(rows, dims, |r, d| data[r * dims + d] as f64 - mean[d]);
    let covariance = centred.tr_mul(&centred) / (rows - 1) as f64;

    let total: f64 = covariance.diagonal().iter().sum();
    let mean_square = data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / data.len() as f64;
    if total <= 1e-12 * mean_square * dims as f64 || total <= f64::MIN_POSITIVE {
        bail!(
            "PCA: the data is constant (every row is the same), so no direction has any variance"
        );
    }

    let eigen = SymmetricEigen::try_new(covariance, f64::EPSILON, 0)
        .context("PCA: the eigen-decomposition of the covariance did not converge")?;
    let mut order: Vec<usize> = (0..dims).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));

    let mut components = Vec::with_capacity(k);
    let mut explained_variance_ratio = Vec::with_capacity(k);
    for &i in order.iter().take(k) {
        let column = eigen.eigenvectors.column(i);
        let norm = column.norm();
        // Fix the sign: the coordinate largest in magnitude (the first such)
        // is positive.
        let largest = column
            .iter()
            .enumerate()
            .fold((0, 0.0f64), |(best, m), (d, &v)| {
                if v.abs() > m {
                    (d, v.abs())
                } else {
                    (best, m)
                }
            })
            .0;
        let sign = if column[largest] < 0.0 { -1.0 } else { 1.0 };
        components.push(column.iter().map(|&v| (sign * v / norm) as f32).collect());
        explained_variance_ratio.push((eigen.eigenvalues[i].max(0.0) / total) as f32);
    }
    Ok(Pca {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        components,
        explained_variance_ratio,
    })
}

impl Pca {
    /// The dimension of the data this was fitted to.
    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// The number of components.
    pub fn k(&self) -> usize {
        self.components.len()
    }

    /// The coordinates of `rows` vectors (`data`, row-major, `dims` values
    /// each) along the components: `rows × k` values, row-major.
    ///
    /// # Panics
    /// If `data.len()` is not `rows × dims`: the caller's shapes are wrong.
    pub fn project(&self, data: &[f32], rows: usize) -> Vec<f32> {
        let dims = self.dims();
        assert_eq!(
            data.len(),
            rows * dims,
            "PCA::project: {rows} rows of {dims} values expected"
        );
        let mut out = Vec::with_capacity(rows * self.k());
        let mut centred = vec![0.0f64; dims];
        for row in data.chunks_exact(dims) {
            for ((c, &v), &m) in centred.iter_mut().zip(row).zip(&self.mean) {
                *c = v as f64 - m as f64;
            }
            for component in &self.components {
                let dot: f64 = centred
                    .iter()
                    .zip(component)
                    .map(|(&c, &w)| c * w as f64)
                    .sum();
                out.push(dot as f32);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A standard normal sample (Box–Muller).
    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A known rotation of 4-D space: three plane rotations in turn.
    /// Column `j` is where axis `j` goes.
    fn rotation() -> [[f64; 4]; 4] {
        let mut q = [[0.0; 4]; 4];
        (0..4).for_each(|i| q[i][i] = 1.0);
        for (a, b, angle) in [(0, 1, 0.6f64), (1, 2, -1.1), (0, 3, 2.3)] {
            let (s, c) = angle.sin_cos();
            for row in q.iter_mut() {
                let (x, y) = (row[a], row[b]);
                row[a] = c * x - s * y;
                row[b] = s * x + c * y;
            }
        }
        q
    }

    #[test]
    fn recovers_the_directions_and_variances_of_a_rotated_gaussian() {
        let sigma = [5.0, 2.0, 1.0, 0.5];
        let offset = [3.0, -1.0, 10.0, 0.25];
        let q = rotation();
        let rows = 20_000;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut data = Vec::with_capacity(rows * 4);
        for _ in 0..rows {
            let z: Vec<f64> = sigma.iter().map(|s| s * normal(&mut rng)).collect();
            for d in 0..4 {
                let x: f64 = (0..4).map(|j| q[d][j] * z[j]).sum();
                data.push((x + offset[d]) as f32);
            }
        }
        let pca = fit(&data, rows, 4, 4).unwrap();
        let total: f64 = sigma.iter().map(|s| s * s).sum();
        for (j, component) in pca.components.iter().enumerate() {
            let norm: f64 = component
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "component {j} has length {norm}");
            let cos: f64 = (0..4).map(|d| component[d] as f64 * q[d][j]).sum();
            assert!(cos.abs() > 0.99, "component {j}: |cos| = {}", cos.abs());
            let expected = sigma[j] * sigma[j] / total;
            let got = pca.explained_variance_ratio[j] as f64;
            assert!(
                (got - expected).abs() < 0.04 * expected,
                "component {j}: ratio {got}, expected {expected}"
            );
            let largest =
                component
                    .iter()
                    .copied()
                    .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            assert!(largest > 0.0, "sign not fixed: {component:?}");
        }
        for (m, o) in pca.mean.iter().zip(offset) {
            assert!((*m as f64 - o).abs() < 0.1, "mean {m} vs {o}");
        }
        // The projection has mean 0 and the variances of the components.
        let projected = pca.project(&data, rows);
        assert_eq!(projected.len(), rows * 4);
        for (j, s) in sigma.iter().enumerate() {
            let column: Vec<f64> = projected
                .iter()
                .skip(j)
                .step_by(4)
                .map(|&v| v as f64)
                .collect();
            let mean = column.iter().sum::<f64>() / rows as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
            assert!(mean.abs() < 1e-3, "projected mean {mean}");
            let expected = s * s;
            assert!(
                (var - expected).abs() < 0.04 * expected,
                "variance {var} vs {expected}"
            );
        }
        // Fewer components are the leading ones.
        let two = fit(&data, rows, 4, 2).unwrap();
        assert_eq!(two.components[..], pca.components[..2]);
        assert_eq!(two.project(&data[..8], 2).len(), 4);
    }

    #[test]
    fn sign_is_deterministic_and_low_rank_data_works() {
        // Points on a line along (1, −2, 0): one direction of variance.
        let data: Vec<f32> = (0..50)
            .flat_map(|t| [t as f32, -2.0 * t as f32, 4.0])
            .collect();
        let pca = fit(&data, 50, 3, 2).unwrap();
        let c = &pca.components[0];
        let expected = [-1.0 / 5f32.sqrt(), 2.0 / 5f32.sqrt(), 0.0];
        for (got, want) in c.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{c:?}");
        }
        assert!((pca.explained_variance_ratio[0] - 1.0).abs() < 1e-5);
        assert!(pca.explained_variance_ratio[1].abs() < 1e-5);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let err = |r: anyhow::Result<Pca>| r.unwrap_err().to_string();
        let constant = vec![1.5f32; 30];
        assert!(err(fit(&constant, 10, 3, 2)).contains("constant"));
        let data: Vec<f32> = (0..30).map(|v| v as f32 * 0.37 % 2.0).collect();
        let e = err(fit(&data, 10, 3, 4));
        assert!(
            e.contains("4 components") && e.contains("3-dimensional"),
            "{e}"
        );
        assert!(err(fit(&data, 10, 3, 0)).contains("0 components"));
        assert!(err(fit(&data, 9, 3, 2)).contains("not the 30 values"));
        assert!(err(fit(&data[..3], 1, 3, 2)).contains("at least 2 rows"));
        let mut bad = data.clone();
        bad[7] = f32::NAN;
        assert!(err(fit(&bad, 10, 3, 2)).contains("row 2, dim 1"));
    }
}
