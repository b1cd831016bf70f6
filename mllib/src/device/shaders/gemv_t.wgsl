// Partial Xᵀ·v: workgroup g sums its 256 rows, out[g·cols + c] = Σ_r x[r, c]·v[r]; the host
// adds the partials in f64. Invocations stride over the columns (coalesced reads of a row).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let start = g * WG;
    let end = chunk_end(start);
    let cols = params.cols;
    for (var c = lid.x; c < cols; c += WG) {
        var acc = 0.0;
        for (var r = start; r < end; r++) {
            acc = fma(x[r * cols + c], v[r], acc);
        }
        out[g * params.width + c] = acc;
    }
}
