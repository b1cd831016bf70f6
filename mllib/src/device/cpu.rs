//! The CPU implementation of the device kernels: thin adapters over the existing `f64`
//! kernels ([`crate::linalg`], the logistic loss, the k-means distance kernel).

use crate::classification::loss::{LossSums, Shape};
use crate::clustering::distance::{Centers, NormedBlock, for_each_closest};
use crate::data::InstanceBlock;
use crate::device::ClusterSums;
use crate::linalg::dense::{gram_accumulate, packed_len};
use crate::linalg::kernels::{gemv as gemv_kernel, gemv_t_add};

/// `X · w`.
pub(super) fn gemv(block: &InstanceBlock, w: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; block.rows];
    gemv_kernel(&block.features, block.rows, block.cols, w, &mut out);
    out
}

/// `Xᵀ · v`.
pub(super) fn gemv_t(block: &InstanceBlock, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; block.cols];
    gemv_t_add(&block.features, block.rows, block.cols, v, &mut out);
    out
}

/// The fused logistic loss and gradient of [`LossSums::add_block`].
pub(super) fn logistic(shape: &Shape, coefs: &[f64], block: &InstanceBlock) -> LossSums {
    LossSums::default().add_block(shape, coefs, block)
}

/// [`gram_accumulate`] from zero.
pub(super) fn gram(block: &InstanceBlock, w: &[f64], z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = block.cols + 1;
    let (mut packed, mut az) = (vec![0.0; packed_len(n)], vec![0.0; n]);
    gram_accumulate(&block.features, block.rows, block.cols, w, z, &mut packed, &mut az);
    (packed, az)
}

/// A full (unbounded) Lloyd pass with the register-tiled distance kernel.
pub(super) fn kmeans(nb: &NormedBlock, centers: &Centers) -> ClusterSums {
    let mut s = ClusterSums::zero(centers.k, centers.d);
    for_each_closest(
        nb,
        centers,
        #[inline(always)]
        |r, j, dist| s.add_row(&nb.block, r, j, dist),
    );
    s
}
