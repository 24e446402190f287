//! The linear algebra of the study on tch tensors: matrix views, SVD (exact and randomized),
//! and subspace dimensions from fractions and energies.

use anyhow::{bail, Context, Result};
use entangle_draw::gaussian;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// The matrix a tensor is analysed as: 2-D as is, 1-D as a column vector, more than 2-D as
/// rows × the product of the other dimensions.
pub fn as_matrix(tensor: &Tensor) -> Result<Tensor> {
    let size = tensor.size();
    let result = match size.len() {
        0 => tensor.f_reshape([1, 1]),
        1 => tensor.f_unsqueeze(1),
        2 => Ok(tensor.shallow_clone()),
        _ => tensor.f_reshape([size[0], -1]),
    };
    result.with_context(|| format!("viewing a tensor of shape {size:?} as a matrix"))
}

/// The subspace dimension k = max(1, round(f·r)) for a fraction f of rank r, rounding halves
/// away from zero; `None` for f outside (0, 1), where METHOD.md projects on the direction of the
/// alignment update instead.
pub fn rank_for_fraction(fraction: f64, rank: usize) -> Option<usize> {
    if !(fraction > 0.0 && fraction < 1.0) || rank == 0 {
        return None;
    }
    Some(((fraction * rank as f64).round() as usize).clamp(1, rank))
}

/// The fewest leading singular vectors whose squared singular values reach `energy` of the
/// total, given the cumulative sums of the squared singular values (`Σ_{i≤k} s_i² ≥ e Σ s_i²`).
pub fn rank_for_energy(cumulative: &[f64], energy: f64) -> usize {
    let Some(&total) = cumulative.last() else {
        return 0;
    };
    let target = energy * total;
    (cumulative.partition_point(|&c| c < target) + 1).min(cumulative.len())
}

/// Cumulative sums of the squares of `values` (a 1-D tensor), accumulated in f64.
pub fn cumulative_squares(values: &Tensor) -> Result<Vec<f64>> {
    let cumulative = values
        .f_to_kind(Kind::Double)
        .and_then(|v| v.f_square())
        .and_then(|v| v.f_cumsum(0, Kind::Double))
        .context("accumulating squared values")?;
    Vec::<f64>::try_from(&cumulative).context("reading cumulative energies")
}

/// The exact thin SVD's left singular vectors (rows × min(rows, cols), orthonormal columns) and
/// singular values, largest first.
pub fn left_singular(matrix: &Tensor) -> Result<(Tensor, Tensor)> {
    // `torch.svd` (reduced) is `torch.linalg.svd(full_matrices=False)` without a `driver`
    // argument, which tch cannot leave out of `linalg_svd` and the CPU rejects.
    let (u, s, _v) = matrix
        .f_svd(true, true)
        .with_context(|| format!("singular value decomposition of a {:?} matrix", matrix.size()))?;
    Ok((u, s))
}

/// The singular values of `matrix`, largest first.
pub fn singular_values(matrix: &Tensor) -> Result<Tensor> {
    let (_, s, _) = matrix
        .f_svd(true, false)
        .with_context(|| format!("singular values of a {:?} matrix", matrix.size()))?;
    Ok(s)
}

/// A randomized truncated SVD with `q` columns and `iterations` power iterations (Halko,
/// Martinsson and Tropp, as `torch.svd_lowrank` computes it): the left singular vectors
/// (rows × q) and singular values of the matrix's projection on an approximate range.
pub fn randomized_left_singular(
    matrix: &Tensor,
    q: usize,
    iterations: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, Tensor)> {
    let (rows, cols) = matrix.size2().context("randomized SVD of a tensor that is not a matrix")?;
    let q = q.clamp(1, rows.min(cols) as usize);
    let context = || format!("randomized SVD of a {rows}×{cols} matrix");
    let probe = gaussian(&[cols, q as i64], matrix.kind(), rng)?;
    let orthonormal = |m: Tensor| Tensor::f_linalg_qr(&m, "reduced").map(|(q, _)| q);
    let mut range = matrix.f_mm(&probe).and_then(orthonormal).with_context(context)?;
    for _ in 0..iterations {
        let back = matrix.f_tr().and_then(|t| t.f_mm(&range)).and_then(orthonormal).with_context(context)?;
        range = matrix.f_mm(&back).and_then(orthonormal).with_context(context)?;
    }
    let small = range.f_tr().and_then(|t| t.f_mm(matrix)).with_context(context)?;
    let (u_small, s) = left_singular(&small)?;
    let u = range.f_mm(&u_small).with_context(context)?;
    Ok((u, s))
}

/// ‖t‖², accumulated in f64.
pub fn sq_norm(tensor: &Tensor) -> Result<f64> {
    dot(tensor, tensor)
}

/// ⟨a, b⟩ over all elements, accumulated in f64.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() {
        bail!("inner product of tensors of shapes {:?} and {:?}", a.size(), b.size());
    }
    a.f_mul(b)
        .and_then(|p| p.f_sum(Kind::Double))
        .and_then(|s| s.f_double_value(&[]))
        .context("inner product of two tensors")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use entangle_draw::tensor_rng;
    use nalgebra::DMatrix;

    /// A seeded rows × cols Gaussian matrix in f64.
    pub(crate) fn random_matrix(rows: usize, cols: usize, seed: u64) -> Tensor {
        gaussian(&[rows as i64, cols as i64], Kind::Double, &mut tensor_rng(seed, "test", "matrix")).unwrap()
    }

    pub(crate) fn to_nalgebra(t: &Tensor) -> DMatrix<f64> {
        let (rows, cols) = t.size2().unwrap();
        let values: Vec<f64> = Vec::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        DMatrix::from_row_slice(rows as usize, cols as usize, &values)
    }

    pub(crate) fn from_nalgebra(m: &DMatrix<f64>) -> Tensor {
        let values: Vec<f64> = m.transpose().iter().copied().collect();
        Tensor::from_slice(&values).reshape([m.nrows() as i64, m.ncols() as i64])
    }

    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
    }

    /// The orthogonal projector onto the span of nalgebra's first k left singular vectors.
    pub(crate) fn nalgebra_projector(a: &DMatrix<f64>, k: usize) -> DMatrix<f64> {
        let svd = a.clone().svd(true, false);
        let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
        order.sort_by(|&i, &j| svd.singular_values[j].total_cmp(&svd.singular_values[i]));
        let u = svd.u.unwrap();
        let columns: Vec<_> = order[..k].iter().map(|&i| u.column(i).into_owned()).collect();
        let l = DMatrix::from_columns(&columns);
        &l * l.transpose()
    }

    #[test]
    fn singular_values_and_subspaces_agree_with_nalgebra() {
        for (rows, cols, seed) in [(7, 5, 1), (5, 9, 2), (12, 12, 3), (1, 6, 4), (6, 1, 5)] {
            for kind in [Kind::Float, Kind::Double] {
                let a = random_matrix(rows, cols, seed).to_kind(kind);
                let (u, s) = left_singular(&a).unwrap();
                let reference = to_nalgebra(&a).svd(false, false);
                let mut expected: Vec<f64> = reference.singular_values.iter().copied().collect();
                expected.sort_by(|x, y| y.total_cmp(x));
                let ours: Vec<f64> = Vec::try_from(&s.to_kind(Kind::Double)).unwrap();
                // A backward-stable SVD is exact for A + E with ‖E‖ ≤ c·n·u·σ₁ (c = 10 here), so
                // singular values move by at most that (Weyl) and the top-k subspace by that over
                // the gap σ_k − σ_{k+1} (Davis–Kahan); both sides err, hence the factor 2.
                let unit_roundoff = if kind == Kind::Float { f64::from(f32::EPSILON) } else { f64::EPSILON } / 2.0;
                let backward = 2.0 * 10.0 * rows.max(cols) as f64 * unit_roundoff * expected[0];
                for (x, y) in ours.iter().zip(&expected) {
                    assert!((x - y).abs() < backward, "{rows}×{cols} {kind:?}: {ours:?} vs {expected:?}");
                }
                for k in 1..=rows.min(cols) {
                    let l = u.narrow(1, 0, k as i64);
                    let ours = l.mm(&l.tr());
                    let theirs = from_nalgebra(&nalgebra_projector(&to_nalgebra(&a), k));
                    let gap = expected[k - 1] - expected.get(k).copied().unwrap_or(0.0);
                    let tolerance = backward / gap;
                    assert!(max_abs_diff(&ours, &theirs) < tolerance, "{rows}×{cols} {kind:?} k={k}");
                }
            }
        }
    }

    #[test]
    fn rank_for_fraction_follows_method() {
        let check = |f: f64, r: usize, expected: Option<usize>| assert_eq!(rank_for_fraction(f, r), expected, "f={f} r={r}");
        check(0.01, 10, Some(1));
        check(0.01, 2048, Some(20));
        check(0.01, 50, Some(1));
        check(0.99, 10, Some(10));
        check(0.99, 2048, Some(2028));
        check(0.99, 100, Some(99));
        check(0.25, 10, Some(3));
        check(0.5, 7, Some(4));
        check(0.0, 10, None);
        check(1.0, 10, None);
        check(-0.5, 10, None);
        check(f64::NAN, 10, None);
    }

    #[test]
    fn rank_for_energy_is_the_fewest_reaching_the_fraction() {
        let cumulative = [4.0, 7.0, 9.0, 10.0];
        let check = |e: f64, expected: usize| assert_eq!(rank_for_energy(&cumulative, e), expected, "e={e}");
        check(0.01, 1);
        check(0.4, 1);
        check(0.41, 2);
        check(0.7, 2);
        check(0.9, 3);
        check(0.99, 4);
        check(1.0, 4);
        assert_eq!(rank_for_energy(&[], 0.5), 0);
    }

    #[test]
    fn matrix_views() {
        let check = |shape: &[i64], expected: [i64; 2]| {
            let t = Tensor::zeros(shape, (Kind::Float, tch::Device::Cpu));
            assert_eq!(as_matrix(&t).unwrap().size(), expected, "{shape:?}");
        };
        check(&[6], [6, 1]);
        check(&[4, 3], [4, 3]);
        check(&[4, 3, 2], [4, 6]);
    }

    #[test]
    fn randomized_svd_recovers_the_top_subspace_of_a_low_rank_matrix() {
        let rows = 10_001;
        let low_rank = random_matrix(rows, 2, 11).mm(&random_matrix(2, 8, 12)).to_kind(Kind::Float);
        let q = 2;
        let (u, s) = randomized_left_singular(&low_rank, q, 2, &mut tensor_rng(1, "test", "rsvd")).unwrap();
        assert_eq!(u.size(), [rows as i64, 2]);
        let (exact_u, exact_s) = left_singular(&low_rank).unwrap();
        let exact_top = exact_u.narrow(1, 0, 2);
        let overlap = exact_top.to_kind(Kind::Double).tr().mm(&u.to_kind(Kind::Double)).square().sum(Kind::Double).double_value(&[]);
        // Each f32 basis is orthonormal only to about m·u in its 10,001-long columns.
        let tolerance = 2.0 * 2.0 * rows as f64 * f64::from(f32::EPSILON) / 2.0;
        assert!((overlap - 2.0).abs() < tolerance, "overlap {overlap}");
        assert!(max_abs_diff(&s, &exact_s.narrow(0, 0, 2)) / exact_s.double_value(&[0]) < 1e-4);
    }

    #[test]
    fn inner_products() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[4.0f32, -5.0, 6.0]);
        assert_eq!(dot(&a, &b).unwrap(), 12.0);
        assert_eq!(sq_norm(&a).unwrap(), 14.0);
        assert!(format!("{}", dot(&a, &a.reshape([3, 1])).unwrap_err()).contains("shapes [3] and [3, 1]"));
        let cumulative = cumulative_squares(&Tensor::from_slice(&[3.0f32, 2.0, 1.0])).unwrap();
        assert_eq!(cumulative, vec![9.0, 13.0, 14.0]);
    }
}
