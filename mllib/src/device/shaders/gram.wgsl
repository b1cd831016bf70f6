// Partial weighted Gram matrix of the rows augmented with a column of ones, a = [x, 1]
// (n = cols + 1), as `linalg::dense::gram_accumulate`: workgroup g sums its 256 rows into
// out[g·width ..]: the packed lower triangle Σ w a aᵀ (entry (i, j ≤ i) at i(i+1)/2 + j), then
// Σ w a z (n values). Invocations stride over the n(n+1)/2 + n outputs.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> z: array<f32>;

fn aug(r: u32, i: u32) -> f32 {
    if (i == params.cols) {
        return 1.0;
    }
    return x[r * params.cols + i];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let start = g * WG;
    let end = chunk_end(start);
    let n = params.cols + 1u;
    let packed = n * (n + 1u) / 2u;
    for (var p = lid.x; p < packed + n; p += WG) {
        var acc = 0.0;
        if (p < packed) {
            // Row i of the packed triangle: the largest i with i(i+1)/2 ≤ p.
            var i = u32((sqrt(8.0 * f32(p) + 1.0) - 1.0) * 0.5);
            while (i * (i + 1u) / 2u > p) {
                i -= 1u;
            }
            while ((i + 1u) * (i + 2u) / 2u <= p) {
                i += 1u;
            }
            let j = p - i * (i + 1u) / 2u;
            for (var r = start; r < end; r++) {
                acc = fma(w[r] * aug(r, i), aug(r, j), acc);
            }
        } else {
            let i = p - packed;
            for (var r = start; r < end; r++) {
                acc = fma(w[r] * z[r], aug(r, i), acc);
            }
        }
        out[g * params.width + p] = acc;
    }
}
