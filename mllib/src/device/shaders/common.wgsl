// Shared declarations, prepended to every kernel (see `gpu/pipelines.rs`).
//
// Bindings (one layout for all kernels; each kernel declares only what it uses):
//   0 params (uniform)   1 x: the block's features, row-major rows × cols, f32 (resident)
//   2 labels (resident)  3 weights (resident)       4 input: per-call vector (coefficients,
//   5 out: per-workgroup partial sums (read back)     centers, v, Gram weights)
//   6 scratch: per-row values between the two phases of a fused kernel
//   7 input2: a second per-call vector (the Gram's working response z)

const WG: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    // classes (logistic) or centers (k-means)
    k: u32,
    // bit 0: fit intercepts
    flags: u32,
    // floats per workgroup in `out`
    width: u32,
    pad2: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Workgroup index: dispatches are 2-D when there are more than 65535 workgroups of rows.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// End of the rows [start, end) of the workgroup starting at row `start`.
fn chunk_end(start: u32) -> u32 {
    return min(params.rows, start + WG);
}
