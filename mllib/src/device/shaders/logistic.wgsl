// Fused logistic loss and gradient over a block, per workgroup of 256 rows:
//   phase 1 (one invocation per row, rows staged through workgroup memory: `row_tiles.wgsl`):
//            margins, the row's weighted loss and its gradient multipliers g (one per class)
//            into `scratch`;
//   phase 2: Σ_r x[r, c]·g[r, k] for the K·d coefficients (`column_sums.wgsl`), the
//            intercepts' Σ_r g[r, k]; loss and weight summed in workgroup memory.
// out row of workgroup g (width 2 + K·d + K): [loss, weight, gradient K·d, intercepts K].
// Coefficients (`coefs`): K·d, class by class, then K intercepts when flags bit 0 is set.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> coefs: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>;

var<workgroup> red_loss: array<f32, 256>;
var<workgroup> red_weight: array<f32, 256>;

fn intercept(k: u32) -> f32 {
    if ((params.flags & 1u) != 0u) {
        return coefs[params.k * params.cols + k];
    }
    return 0.0;
}

// Class k's margin of the row at `base` (in the tile when `staged`).
fn margin(staged: bool, base: u32, k: u32) -> f32 {
    let d = params.cols;
    var acc = 0.0;
    for (var c = 0u; c < d; c++) {
        acc = fma(xv(staged, base, c), coefs[k * d + c], acc);
    }
    return acc + intercept(k);
}

// log(1 + e^z) − y·z and dℓ/dz = σ(z) − y, stably (as the CPU path).
fn binomial_row(r: u32, staged: bool, base: u32) -> f32 {
    let z = margin(staged, base, 0u);
    let y = labels[r];
    let w = weights[r];
    let e = exp(-abs(z));
    let p = select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
    scratch[r] = w * (p - y);
    return w * (max(z, 0.0) + log(1.0 + e) - y * z);
}

// log Σ_k e^{z_k} − z_y with the row's largest margin subtracted; g_k = w·(p_k − [k = y]).
fn multinomial_row(r: u32, staged: bool, base: u32) -> f32 {
    let kk = params.k;
    let y = u32(labels[r]);
    let w = weights[r];
    var mx = -3.4028235e38;
    for (var k = 0u; k < kk; k++) {
        let z = margin(staged, base, k);
        scratch[r * kk + k] = z;
        mx = max(mx, z);
    }
    var sum = 0.0;
    var zy = 0.0;
    for (var k = 0u; k < kk; k++) {
        let z = scratch[r * kk + k];
        if (k == y) {
            zy = z;
        }
        let e = exp(z - mx);
        scratch[r * kk + k] = e;
        sum += e;
    }
    for (var k = 0u; k < kk; k++) {
        let ind = select(0.0, 1.0, k == y);
        scratch[r * kk + k] = w * (scratch[r * kk + k] / sum - ind);
    }
    return w * (log(sum) + mx - zy);
}

// The gradient multiplier of row r for class k (phase 1 left it in `scratch`, K per row;
// the host passes K = 1 for the binomial loss).
fn row_multiplier(r: u32, k: u32) -> f32 {
    return scratch[r * params.k + k];
}

fn reduce_and_sum(g: u32, lid: u32, start: u32, end: u32, kk: u32) {
    storageBarrier();
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red_loss[lid] += red_loss[lid + s];
            red_weight[lid] += red_weight[lid + s];
        }
        workgroupBarrier();
    }
    let d = params.cols;
    let base = g * params.width;
    if (lid == 0u) {
        out[base] = red_loss[0];
        out[base + 1u] = red_weight[0];
    }
    column_sums(lid, start, end, kk, base + 2u);
    for (var k = lid; k < kk; k += WG) {
        var acc = 0.0;
        for (var r = start; r < end; r++) {
            acc += scratch[r * kk + k];
        }
        out[base + 2u + kk * d + k] = acc;
    }
}

/// One workgroup's rows of the binomial (`multinomial == false`) or softmax loss: each row's
/// loss and weight into the workgroup arrays (rows staged through workgroup memory when they
/// fit), then the workgroup's sums. `multinomial` is the same for every invocation.
fn loss_pass(g: u32, lx: u32, multinomial: bool) {
    let start = g * WG;
    let end = chunk_end(start);
    let r = start + lx;
    var loss = 0.0;
    var weight = 0.0;
    let per = tile_rows();
    if (per == 0u) {
        if (r < end) {
            if (multinomial) {
                loss = multinomial_row(r, false, r * params.cols);
            } else {
                loss = binomial_row(r, false, r * params.cols);
            }
            weight = weights[r];
        }
    } else {
        for (var r0 = start; r0 < end; r0 += per) {
            let n = min(per, end - r0);
            stage_rows(lx, r0, n);
            workgroupBarrier();
            if (r >= r0 && r < r0 + n) {
                if (multinomial) {
                    loss = multinomial_row(r, true, (r - r0) * tile_pitch());
                } else {
                    loss = binomial_row(r, true, (r - r0) * tile_pitch());
                }
                weight = weights[r];
            }
            workgroupBarrier();
        }
    }
    red_loss[lx] = loss;
    red_weight[lx] = weight;
    if (multinomial) {
        reduce_and_sum(g, lx, start, end, params.k);
    } else {
        reduce_and_sum(g, lx, start, end, 1u);
    }
}

@compute @workgroup_size(256)
fn binomial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    loss_pass(g, lid.x, false);
}

@compute @workgroup_size(256)
fn multinomial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    loss_pass(g, lid.x, true);
}
