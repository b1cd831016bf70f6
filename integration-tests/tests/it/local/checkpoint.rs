//! Reliable checkpoints: saved partitions, cut lineage, same answers.

use flint::prelude::*;

use crate::common::{TestResult, files_under, sorted};

/// An iterative computation: three rounds of map + reduce_by_key over 4 partitions.
fn iterate(ctx: &Context) -> Rdd<(u64, u64)> {
    let mut rdd = ctx.range(0, 2000, 4).map(|x: i64| (x as u64 % 97, 1u64));
    for _ in 0..3 {
        rdd = rdd
            .map(|(k, v): (u64, u64)| (k % 50, v * 2))
            .reduce_by_key(|a: u64, b: u64| a + b);
    }
    rdd
}

#[test]
fn checkpoint_cuts_the_lineage_and_keeps_the_answer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ctx = Context::builder()
        .master("local[2]")
        .checkpoint_dir(dir.path())
        .build()?;
    let expected = sorted(iterate(&ctx).collect()?);

    let rdd = iterate(&ctx).cache();
    let before = rdd.to_debug_string();
    assert!(before.matches("reduce_by_key").count() >= 3, "{before}");
    assert!(before.contains("range"), "{before}");
    rdd.checkpoint()?;
    assert!(!rdd.is_checkpointed(), "checkpointing happens with the next job");
    assert_eq!(sorted(rdd.collect()?), expected);
    assert!(rdd.is_checkpointed());

    let after = rdd.to_debug_string();
    assert_eq!(after.lines().count(), 1, "only the checkpointed node is left:\n{after}");
    assert!(after.contains("checkpointed"), "{after}");
    assert!(!after.contains("range") && !after.contains("map at"), "{after}");
    assert!(after.len() < before.len());
    // Partition files were written under the checkpoint directory.
    let parts: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("part-"))
        .collect();
    assert_eq!(parts.len(), rdd.num_partitions(), "{parts:?}");

    // Read back from the checkpoint files (the cache dropped), alone and downstream.
    rdd.unpersist();
    assert_eq!(sorted(rdd.collect()?), expected);
    let downstream = rdd.map_values(|v: u64| v + 1);
    let debug = downstream.to_debug_string();
    assert!(!debug.contains("range"), "{debug}");
    let plus_one: Vec<(u64, u64)> = expected.iter().map(|(k, v)| (*k, v + 1)).collect();
    assert_eq!(sorted(downstream.collect()?), plus_one);
    Ok(())
}

#[test]
fn checkpoint_without_cache_gives_the_same_answer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ctx = Context::builder()
        .master("local[2]")
        .checkpoint_dir(dir.path())
        .build()?;
    let expected = sorted(iterate(&ctx).collect()?);
    let rdd = iterate(&ctx);
    rdd.checkpoint()?;
    assert_eq!(rdd.count()?, expected.len() as u64);
    assert!(rdd.is_checkpointed());
    assert_eq!(sorted(rdd.collect()?), expected);
    // Lent whole, a checkpointed partition is the one read back from its files.
    let lent = rdd.map_partitions_borrowed(|kvs: &[(u64, u64)]| kvs.to_vec());
    assert_eq!(sorted(lent.collect()?), expected);
    Ok(())
}

#[test]
fn checkpoint_without_a_checkpoint_dir_is_an_error() -> TestResult {
    let ctx = Context::builder().master("local[2]").build()?;
    if ctx.config().checkpoint_dir.is_some() {
        // FLINT_CHECKPOINT_DIR is set in this environment; nothing to test.
        return Ok(());
    }
    let rdd = ctx.range(0, 10, 2);
    let err = rdd.checkpoint().expect_err("no checkpoint dir");
    match &err {
        EngineError::InvalidArgument { name, .. } => assert_eq!(name, "checkpoint_dir"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(err.to_string().contains("checkpoint_dir"), "{err}");
    assert!(!rdd.is_checkpointed());
    assert_eq!(rdd.count()?, 10);
    Ok(())
}

#[test]
fn a_checkpoint_is_written_by_a_job_on_a_descendant() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ctx = Context::builder()
        .master("local[2]")
        .checkpoint_dir(dir.path())
        .build()?;
    let base = iterate(&ctx);
    base.checkpoint()?;
    let child = base.map_values(|v: u64| v * 10);
    let expected: Vec<(u64, u64)> = sorted(iterate(&ctx).collect()?)
        .into_iter()
        .map(|(k, v)| (k, v * 10))
        .collect();
    assert_eq!(sorted(child.collect()?), expected);
    assert!(base.is_checkpointed());
    let debug = child.to_debug_string();
    assert_eq!(debug.lines().count(), 2, "child and the checkpointed parent:\n{debug}");
    assert_eq!(sorted(child.collect()?), expected);
    Ok(())
}

#[test]
fn a_damaged_checkpoint_file_is_an_error_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ctx = Context::builder()
        .master("local[2]")
        .checkpoint_dir(dir.path())
        .build()?;
    let rdd = iterate(&ctx);
    rdd.checkpoint()?;
    rdd.count()?;
    assert!(rdd.is_checkpointed());
    let part = files_under(dir.path())
        .into_iter()
        .find(|p| p.to_string_lossy().contains("part-00001"))
        .ok_or("no checkpoint file")?;
    let mut bytes = std::fs::read(&part)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&part, bytes)?;
    // The lineage is cut, so there is nothing to recompute from: the job fails and says where.
    let err = rdd.collect().expect_err("a damaged checkpoint cannot be read");
    let text = flint::report(&err);
    assert!(text.contains("part-00001") && text.contains("damaged"), "{text}");
    Ok(())
}
