// out[r] = x_r · v for every row r: one invocation per row, the rows staged through
// workgroup memory (`row_tiles.wgsl`).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn row_dot(staged: bool, base: u32) -> f32 {
    var acc = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        acc = fma(xv(staged, base, c), v[c], acc);
    }
    return acc;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let start = g * WG;
    let end = chunk_end(start);
    let r = start + lid.x;
    let per = tile_rows();
    if (per == 0u) {
        if (r < end) {
            out[r] = row_dot(false, r * params.cols);
        }
    } else {
        for (var r0 = start; r0 < end; r0 += per) {
            let n = min(per, end - r0);
            stage_rows(lid.x, r0, n);
            workgroupBarrier();
            if (r >= r0 && r < r0 + n) {
                out[r] = row_dot(true, (r - r0) * tile_pitch());
            }
            workgroupBarrier();
        }
    }
}
