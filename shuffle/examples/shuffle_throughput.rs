//! Throughput of the shuffle hot paths on (u64, u64) records: map-side writes with and
//! without combine, block reads, reduce-side aggregation and external sort.
//!
//! `cargo run --release -p flint-shuffle --example shuffle_throughput -- [MB] [partitions] [budget MiB] [lz4 0|1]`
//! (defaults: 50 MB of records, 16 partitions, 64 MiB budget, lz4 on). MB/s counts 16 bytes per
//! record of input (or output, for reads), in decimal megabytes.

use std::sync::Arc;
use std::time::Instant;

use flint_shuffle::*;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// A scrambled key sequence (splitmix64), `distinct` keys at most.
fn key(i: u64, distinct: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % distinct
}

fn report(name: &str, records: u64, started: Instant, extra: &str) -> f64 {
    let secs = started.elapsed().as_secs_f64();
    let mb = (records * 16) as f64 / 1e6;
    let rate = mb / secs;
    println!("{name:<28} {mb:>7.1} MB in {secs:>6.3} s = {rate:>7.1} MB/s {extra}");
    rate
}

fn main() -> Result<()> {
    let total_mb = arg(1, 50);
    let partitions = arg(2, 16) as usize;
    let budget_mib = arg(3, 64);
    let compress = arg(4, 1) != 0;
    let n = total_mb * 1_000_000 / 16;
    let tmp = tempfile::tempdir().expect("temporary directory");
    let env = ShuffleEnv::new(
        ShuffleDirs::new(tmp.path())?,
        MemoryBudget::new(budget_mib << 20),
        compress,
    );
    let part = move |k: &u64| (*k % partitions as u64) as usize;
    println!("{n} records of (u64, u64), {partitions} partitions, budget {budget_mib} MiB, lz4 {compress}");
    let mut json = Vec::new();

    let plain = env.dirs.map_output(0, 0);
    let t = Instant::now();
    let status = write_plain((0..n).map(|i| (key(i, u64::MAX), i)), &part, partitions, &plain, &env)?;
    let stored: u64 = status.partition_lengths.iter().sum();
    let extra = format!("(spills {}, {:.1} MB stored)", status.spill_count, stored as f64 / 1e6);
    json.push(("write_plain", report("write_plain", n, t, &extra)));

    let t = Instant::now();
    let mut checksum = 0u64;
    let mut read = 0u64;
    for p in 0..partitions {
        let origin = BlockOrigin {
            path: plain.data.clone(),
            reduce_id: p,
        };
        for r in decode_block::<u64, u64>(&read_block(&plain, p)?, &origin)? {
            let (k, v) = r?;
            checksum = checksum.wrapping_add(k ^ v);
            read += 1;
        }
    }
    assert_eq!(read, n);
    json.push(("read_decode", report("read_block + decode_block", read, t, "")));

    // Word-count shape: 1,000,000 distinct keys, map-side combine.
    let sum = Aggregator::new(|v: u64| v, |c, v| c + v, |a, b| a + b);
    let combined = env.dirs.map_output(0, 1);
    let t = Instant::now();
    let status = write_combined(
        (0..n).map(|i| (key(i, 1_000_000), 1u64)),
        &part,
        partitions,
        &sum,
        &combined,
        &env,
    )?;
    let extra = format!("(spills {}, {} keys out)", status.spill_count, status.records_written);
    json.push(("write_combined", report("write_combined (1M keys)", n, t, &extra)));

    let t = Instant::now();
    let mut agg = ExternalAggregator::new(sum.clone(), env.clone());
    for i in 0..n {
        agg.insert_value(key(i, 1_000_000), 1)?;
    }
    let spills = agg.spill_count();
    let mut total = 0u64;
    for r in agg.into_iter()? {
        total += r?.1;
    }
    assert_eq!(total, n);
    json.push((
        "external_aggregate",
        report("ExternalAggregator (1M keys)", n, t, &format!("(spills {spills})")),
    ));

    let t = Instant::now();
    let mut sorter = ExternalSorter::new(Arc::new(|a: &u64, b: &u64| a.cmp(b)), env.clone());
    for i in 0..n {
        sorter.insert(key(i, u64::MAX), i)?;
    }
    let spills = sorter.spill_count();
    let mut last = 0u64;
    let mut count = 0u64;
    for r in sorter.into_sorted_iter()? {
        let (k, _) = r?;
        assert!(k >= last, "sorted");
        last = k;
        count += 1;
    }
    assert_eq!(count, n);
    json.push((
        "external_sort",
        report("ExternalSorter", n, t, &format!("(spills {spills})")),
    ));

    let fields: Vec<String> = json.iter().map(|(k, v)| format!("\"{k}_mb_s\":{v:.1}")).collect();
    println!(
        "{{\"records\":{n},\"partitions\":{partitions},\"budget_mib\":{budget_mib},{},\"checksum\":{checksum}}}",
        fields.join(",")
    );
    Ok(())
}
