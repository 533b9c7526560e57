//! Percentiles of measured figures. Tested in `tests/harness.rs`, which
//! includes this file.

/// The `p` quantile (`0.0..=1.0`) of `values` by nearest rank: the smallest
/// value with at least a share `p` of them at or below it. `values` need not
/// be sorted. A NaN cannot make it panic: values are ordered by
/// [`f64::total_cmp`], which puts a NaN past the infinities (on the side of
/// its sign). NaN for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// [`percentile`] at 0.5.
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}
