// out[r] = x_r · v for every row r: one invocation per row.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let r = g * WG + lid.x;
    if (r < params.rows) {
        let base = r * params.cols;
        var acc = 0.0;
        for (var c = 0u; c < params.cols; c++) {
            acc = fma(x[base + c], v[c], acc);
        }
        out[r] = acc;
    }
}
