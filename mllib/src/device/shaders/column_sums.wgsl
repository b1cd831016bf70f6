// Column sums over a workgroup's rows, shared by `gemv_t` and `logistic` (which define `x`,
// `out` and `row_multiplier(r, k)`):
//   out[base + j] = Σ_{r in [start, end)} x[r, j % d] · row_multiplier(r, j / d),  j < kk·d.
// With few outputs (kk·d < 256) the invocations split the rows into lanes, invocation
// t taking output t % span and rows t / span, t / span + lanes, ...: a lane's invocations
// read consecutive addresses (whole rows, one after the other), and every invocation works.
// The lanes' partial sums are then added in workgroup memory. Outputs beyond 256 are taken
// in blocks of 256, one lane each.

var<workgroup> red_cols: array<f32, 256>;

fn column_sums(lid: u32, start: u32, end: u32, kk: u32, base: u32) {
    let d = params.cols;
    let total = kk * d;
    for (var j0 = 0u; j0 < total; j0 += WG) {
        let span = min(WG, total - j0);
        let lanes = WG / span;
        var acc = 0.0;
        if (lid < lanes * span) {
            let j = j0 + lid % span;
            let k = j / d;
            let c = j % d;
            for (var r = start + lid / span; r < end; r += lanes) {
                acc = fma(x[r * d + c], row_multiplier(r, k), acc);
            }
        }
        red_cols[lid] = acc;
        workgroupBarrier();
        if (lid < span) {
            var s = 0.0;
            for (var l = 0u; l < lanes; l++) {
                s += red_cols[l * span + lid];
            }
            out[base + j0 + lid] = s;
        }
        workgroupBarrier();
    }
}
