//! Helpers shared by the fixture tests: reading the JSON references that
//! `mllib/fixtures/gen_*.py` wrote and comparing against them.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use flint_mllib::LabeledPoint;
use serde_json::Value;

/// `tests/fixtures/{name}.json`.
pub fn fixture(name: &str) -> Value {
    read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.json")))
}

/// A JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The fixture's rows `x` with labels `y` and, where it has them, weights `w`.
pub fn points(f: &Value) -> Vec<LabeledPoint> {
    let y = floats(&f["y"]);
    let w = f.get("w").map(floats);
    f["x"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let p = LabeledPoint::new(y[i], floats(row));
            match &w {
                Some(w) => p.with_weight(w[i]),
                None => p,
            }
        })
        .collect()
}

/// Each of `got` within `rel` of `want`, relative to the entry or, for entries far below the
/// largest, to a thousandth of the largest (a coefficient near zero is as accurate as the
/// others in absolute terms, not relative ones).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1e-3 * scale),
            "{what}[{i}]: got {g}, want {w} (rel {rel})"
        );
    }
}
