// Staging a workgroup's rows through workgroup memory, for the kernels that give each
// invocation one row (`gemv`, the logistic margins, the k-means distances): read straight from
// the row-major block, the 32 invocations of a warp would load 32 rows `4·cols` bytes apart
// on every step (uncoalesced). Instead the workgroup copies whole rows, a round at a time, into
// `tile` with consecutive invocations reading consecutive addresses, then each invocation
// reads its own row from workgroup memory. Rows sit at an odd pitch in the tile, so that the
// invocations reading their rows in step hit distinct banks. A row longer than the tile is
// read from global memory (`tile_rows() == 0`). The kernels define `x`.

// 12 KiB: with the kernels' other workgroup arrays, within WebGPU's guaranteed 16 KiB.
const TILE: u32 = 3072u;

var<workgroup> tile: array<f32, 3072>;

// Distance between consecutive rows in the tile: the row length rounded up to an odd number.
fn tile_pitch() -> u32 {
    let d = params.cols;
    return d + 1u - (d & 1u);
}

// Whole rows the tile holds per round (0 when a row is longer than the tile).
fn tile_rows() -> u32 {
    return min(WG, TILE / tile_pitch());
}

// Copies rows [r0, r0 + n) into the tile (coalesced reads of their contiguous span).
fn stage_rows(lid: u32, r0: u32, n: u32) {
    let d = params.cols;
    let pitch = tile_pitch();
    for (var e = lid; e < n * d; e += WG) {
        tile[(e / d) * pitch + e % d] = x[r0 * d + e];
    }
}

// Value `c` of a row that starts at `base`: in the tile when `staged`, else in `x`.
fn xv(staged: bool, base: u32, c: u32) -> f32 {
    if (staged) {
        return tile[base + c];
    }
    return x[base + c];
}
