// One Lloyd pass over a block, per workgroup of 256 rows:
//   phase 1 (one invocation per row, rows staged through workgroup memory: `row_tiles.wgsl`):
//            exact squared distances Σ (x − c)² to every center
//            (no ‖x‖² − 2x·c + ‖c‖² cancellation in f32), the closest one (first on ties,
//            as the CPU path) and the row's weighted cost;
//   phase 2: Σ w·x of the rows of each cluster (each row read once when k ≤ 16: see
//            `cluster_sums_by_column`), then per cluster Σ w and the row count; the cost summed
//            in workgroup memory.
// out row of workgroup g (width k·d + 2k + 1): [sums k·d, weights k, counts k, cost].
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> centers: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> row_center: array<u32, 256>;
var<workgroup> red_cost: array<f32, 256>;

// Centers up to which each invocation keeps one running sum per center (a private array).
const KMAX: u32 = 16u;

var<workgroup> red_sums: array<f32, 256>;

// The per-cluster sums Σ w·x with each row read once: invocation t takes column t % span and
// the rows t / span, t / span + lanes, ... (a lane's invocations read consecutive addresses,
// as in `column_sums.wgsl`), adding w·x into its sum of the row's center; the lanes' sums are
// then added in workgroup memory, one center at a time. Columns past 256 go in blocks.
fn cluster_sums_by_column(lid: u32, start: u32, end: u32, base: u32) {
    let d = params.cols;
    let kk = params.k;
    for (var c0 = 0u; c0 < d; c0 += WG) {
        let span = min(WG, d - c0);
        let lanes = WG / span;
        var acc: array<f32, 16>;
        if (lid < lanes * span) {
            let c = c0 + lid % span;
            for (var q = start + lid / span; q < end; q += lanes) {
                let j = row_center[q - start];
                acc[j] = fma(weights[q], x[q * d + c], acc[j]);
            }
        }
        for (var j = 0u; j < kk; j++) {
            red_sums[lid] = acc[j];
            workgroupBarrier();
            if (lid < span) {
                var total = 0.0;
                for (var l = 0u; l < lanes; l++) {
                    total += red_sums[l * span + lid];
                }
                out[base + j * d + c0 + lid] = total;
            }
            workgroupBarrier();
        }
    }
}

struct Closest {
    index: u32,
    dist: f32,
}

// The closest center to the row at `base` (in the tile when `staged`; the first on ties, as
// the CPU path) and the squared distance to it.
fn closest(staged: bool, base: u32) -> Closest {
    let d = params.cols;
    var best = Closest(0u, 3.4028235e38);
    for (var j = 0u; j < params.k; j++) {
        var dist = 0.0;
        for (var c = 0u; c < d; c++) {
            let t = xv(staged, base, c) - centers[j * d + c];
            dist = fma(t, t, dist);
        }
        if (dist < best.dist) {
            best = Closest(j, dist);
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = group_index(wid, nwg);
    if (g * WG >= params.rows) {
        return;
    }
    let start = g * WG;
    let end = chunk_end(start);
    let d = params.cols;
    let kk = params.k;
    let r = start + lid.x;
    var best = 0u;
    var cost = 0.0;
    let per = tile_rows();
    if (per == 0u) {
        if (r < end) {
            let b = closest(false, r * d);
            best = b.index;
            cost = weights[r] * b.dist;
        }
    } else {
        for (var r0 = start; r0 < end; r0 += per) {
            let n = min(per, end - r0);
            stage_rows(lid.x, r0, n);
            workgroupBarrier();
            if (r >= r0 && r < r0 + n) {
                let b = closest(true, (r - r0) * tile_pitch());
                best = b.index;
                cost = weights[r] * b.dist;
            }
            workgroupBarrier();
        }
    }
    row_center[lid.x] = best;
    red_cost[lid.x] = cost;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid.x < s) {
            red_cost[lid.x] += red_cost[lid.x + s];
        }
        workgroupBarrier();
    }
    let base = g * params.width;
    if (kk <= KMAX) {
        cluster_sums_by_column(lid.x, start, end, base);
    } else {
        // Many centers: one invocation per (center, column), each scanning the rows.
        for (var p = lid.x; p < kk * d; p += WG) {
            let j = p / d;
            let c = p % d;
            var acc = 0.0;
            for (var q = start; q < end; q++) {
                if (row_center[q - start] == j) {
                    acc = fma(weights[q], x[q * d + c], acc);
                }
            }
            out[base + p] = acc;
        }
    }
    for (var j = lid.x; j < kk; j += WG) {
        var wsum = 0.0;
        var count = 0.0;
        for (var q = start; q < end; q++) {
            if (row_center[q - start] == j) {
                wsum += weights[q];
                count += 1.0;
            }
        }
        out[base + kk * d + j] = wsum;
        out[base + kk * d + kk + j] = count;
    }
    if (lid.x == 0u) {
        out[base + kk * d + 2u * kk] = red_cost[0];
    }
}
