//! Faults injected at the engine's seams (`Context::set_failpoint`): transient ones are survived
//! with the right answer, permanent ones fail the job naming the point, and a context's points
//! never touch another context.

use flint::prelude::*;
use flint::{EngineError, FailAction};

use crate::common::{Events, TestResult, ctx, sorted};

fn sums(ctx: &Context) -> Rdd<(i64, i64)> {
    ctx.range(0, 10_000, 4)
        .map(|x: i64| (x % 13, x))
        .reduce_by_key(|a: i64, b: i64| a + b)
}

fn expected() -> Vec<(i64, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for x in 0..10_000i64 {
        *m.entry(x % 13).or_insert(0) += x;
    }
    m.into_iter().collect()
}

#[test]
fn transient_faults_at_every_seam_are_survived() -> TestResult {
    for point in [
        "shuffle::before_map_output",
        "shuffle::after_map_output",
        "shuffle::before_fetch",
        "task::before_result",
    ] {
        let ctx = ctx();
        let events = Events::record(&ctx);
        ctx.set_failpoint(point, FailAction::PanicTimes(2));
        assert_eq!(sorted(sums(&ctx).collect()?), expected(), "{point}");
        let failures = events.task_failures();
        assert_eq!(failures.len(), 2, "{point}: {failures:?}");
        assert!(
            failures.iter().all(|f| f.contains(&format!("failpoint {point} fired"))),
            "{failures:?}"
        );
    }
    Ok(())
}

#[test]
fn a_permanent_fault_fails_the_job_naming_the_point_and_spares_other_contexts() -> TestResult {
    let broken = ctx();
    let healthy = ctx();
    broken.set_failpoint("shuffle::after_map_output", FailAction::Error);
    let err = sums(&broken).collect().expect_err("every map attempt fails");
    assert!(matches!(err, EngineError::TaskFailed { attempts: 4, .. }), "{err}");
    let text = flint::report(&err);
    assert!(text.contains("failpoint shuffle::after_map_output fired"), "{text}");
    // Another context in the same process is not affected.
    assert_eq!(sorted(sums(&healthy).collect()?), expected());
    // Cleared, the same context works again.
    broken.clear_failpoints();
    assert_eq!(sorted(sums(&broken).collect()?), expected());
    Ok(())
}
