// Partial Xᵀ·v: workgroup g sums its 256 rows, out[g·cols + c] = Σ_r x[r, c]·v[r] (see
// `column_sums.wgsl`); the host adds the partials in f64.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn row_multiplier(r: u32, k: u32) -> f32 {
    return v[r];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let start = g * WG;
    column_sums(lid.x, start, chunk_end(start), 1u, g * params.width);
}
