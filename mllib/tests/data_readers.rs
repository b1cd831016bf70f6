//! CSV and LIBSVM readers: values, headers across splits, and errors naming file and line.

use std::fs;
use std::path::Path;

use flint_engine::{Context, report};
use flint_mllib::data::{CsvOptions, random_split, read_csv, read_libsvm};
use flint_mllib::{LabeledPoint, MlError};

fn ctx() -> Context {
    Context::builder()
        .master("local[2]")
        .max_task_failures(1)
        .build()
        .unwrap()
}

fn error_text(err: MlError) -> String {
    report(&err)
}

/// A CSV of `rows` rows `label,x1,x2` (x1 = i, x2 = i / 4).
fn write_rows(path: &Path, header: bool, rows: std::ops::Range<usize>) {
    let mut text = String::new();
    if header {
        text.push_str("y,a,b\n");
    }
    for i in rows {
        text.push_str(&format!("{},{}.0,{}\n", i % 2, i, i as f64 / 4.0));
    }
    fs::write(path, text).unwrap();
}

#[test]
fn csv_values_label_column_and_features_only() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.csv");
    fs::write(&path, "1, 2.5,3\n\n0,-1e2,4\r\n").unwrap();
    let p = path.to_str().unwrap();
    let points = read_csv(&ctx, p, CsvOptions::default()).unwrap().collect().unwrap();
    assert_eq!(
        points,
        vec![
            LabeledPoint::new(1.0, vec![2.5, 3.0]),
            LabeledPoint::new(0.0, vec![-100.0, 4.0])
        ]
    );
    let opts = CsvOptions {
        label_col: Some(2),
        ..CsvOptions::default()
    };
    let points = read_csv(&ctx, p, opts).unwrap().collect().unwrap();
    assert_eq!(points[0], LabeledPoint::new(3.0, vec![1.0, 2.5]));
    let opts = CsvOptions {
        label_col: None,
        ..CsvOptions::default()
    };
    let points = read_csv(&ctx, p, opts).unwrap().collect().unwrap();
    assert_eq!(points[1], LabeledPoint::new(0.0, vec![0.0, -100.0, 4.0]));
    let opts = CsvOptions {
        delimiter: b';',
        ..CsvOptions::default()
    };
    fs::write(&path, "1;2\n").unwrap();
    assert_eq!(
        read_csv(&ctx, p, opts).unwrap().collect().unwrap(),
        vec![LabeledPoint::new(1.0, vec![2.0])]
    );
}

#[test]
fn csv_headers_are_dropped_once_per_file_across_many_splits() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    write_rows(&dir.path().join("part-0.csv"), true, 0..300);
    write_rows(&dir.path().join("part-1.csv"), true, 300..500);
    fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    let opts = CsvOptions {
        header: true,
        min_partitions: 7,
        ..CsvOptions::default()
    };
    let rdd = read_csv(&ctx, dir.path().to_str().unwrap(), opts).unwrap();
    assert!(rdd.num_partitions() >= 7);
    let points = rdd.collect().unwrap();
    assert_eq!(points.len(), 500);
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p.features.to_dense(), vec![i as f64, i as f64 / 4.0]);
    }
}

/// Writes 400 good rows with `bad` as line `bad_line` (1-based), reads in 5 partitions and
/// returns the job's error text.
fn csv_error(bad: &str, bad_line: usize, header: bool) -> (String, String) {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    let mut lines: Vec<String> = (0..400).map(|i| format!("{},{i},{}", i % 2, i * 3)).collect();
    if header {
        lines.insert(0, "label,a,b".into());
    }
    lines[bad_line - 1] = bad.to_string();
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let opts = CsvOptions {
        header,
        min_partitions: 5,
        ..CsvOptions::default()
    };
    let err = read_csv(&ctx, path.to_str().unwrap(), opts)
        .unwrap()
        .count()
        .unwrap_err();
    (error_text(err.into()), path.display().to_string())
}

#[test]
fn csv_errors_name_file_and_line() {
    for (bad, line, header, what) in [
        ("1,abc,3", 317, false, "column 2 is \"abc\", not a number"),
        ("1,NaN,3", 250, true, "column 2 is NaN"),
        ("1,2,inf", 3, false, "column 3 is inf"),
        ("1,2", 399, true, "2 columns where the first row has 3"),
        ("1,2,3,4", 120, false, "4 columns where the first row has 3"),
        ("1,,3", 77, false, "column 2 is \"\""),
    ] {
        let (text, path) = csv_error(bad, line, header);
        let expected = format!("{path}:{line}: {what}");
        assert!(text.contains(&expected), "{text}\nexpected {expected}");
    }
}

#[test]
fn csv_bad_options_and_missing_input_fail_now() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.csv");
    fs::write(&path, "1,2\n").unwrap();
    let p = path.to_str().unwrap();
    let opts = CsvOptions {
        label_col: Some(2),
        ..CsvOptions::default()
    };
    assert!(matches!(
        read_csv(&ctx, p, opts),
        Err(MlError::Param { name: "label_col", .. })
    ));
    let missing = dir.path().join("nope.csv");
    let err = read_csv(&ctx, missing.to_str().unwrap(), CsvOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn libsvm_values_and_feature_count() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    fs::write(&path, "1 1:0.5 3:2\n# comment\n\n0 2:-1 7:4 \n-1\n").unwrap();
    let p = path.to_str().unwrap();
    let points = read_libsvm(&ctx, p, None, 2).unwrap().collect().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0].features.len(), 7);
    assert_eq!(points[0].features.to_dense(), vec![0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(points[1].label, 0.0);
    assert_eq!(points[1].features.to_dense(), vec![0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 4.0]);
    assert_eq!(points[2].features.to_dense(), vec![0.0; 7]);
    let points = read_libsvm(&ctx, p, Some(10), 2).unwrap().collect().unwrap();
    assert_eq!(points[0].features.len(), 10);
}

#[test]
fn libsvm_errors_name_file_and_line() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.libsvm");
    for (bad, line, num_features, what) in [
        ("1 1:0.5 1:2", 211, None, "index 1 after 1: indices must increase"),
        ("1 2:0.5 9:2", 350, Some(8), "index 9 is larger than num_features = 8"),
        ("yes 1:1", 12, None, "the label is \"yes\", not a number"),
        ("1 3:nan", 399, None, "the value of index 3 is NaN"),
        ("1 3", 100, None, "\"3\" is not index:value"),
        ("1 0:1", 5, None, "index 0: indices are 1-based"),
    ] {
        let mut lines: Vec<String> = (0..400).map(|i| format!("{} 1:{i} 4:0.5", i % 2)).collect();
        lines[line - 1] = bad.to_string();
        fs::write(&path, lines.join("\n")).unwrap();
        let err = read_libsvm(&ctx, path.to_str().unwrap(), num_features, 6)
            .unwrap()
            .count()
            .unwrap_err();
        let text = error_text(err.into());
        let expected = format!("{}:{line}: {what}", path.display());
        assert!(text.contains(&expected), "{text}\nexpected {expected}");
    }
}

#[test]
fn random_split_covers_every_point_once() {
    let ctx = ctx();
    let data = ctx.parallelize((0..200).map(|i| LabeledPoint::new(0.0, vec![i as f64])).collect(), 3);
    let parts = random_split(&data, &[0.7, 0.3], 11).unwrap();
    let mut all: Vec<f64> = parts
        .iter()
        .flat_map(|p| p.collect().unwrap())
        .map(|p| p.features.to_dense()[0])
        .collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(all, (0..200).map(|i| i as f64).collect::<Vec<_>>());
    assert!(random_split(&data, &[-1.0], 1).is_err());
    // Seeded: the same seed gives the same split (and each part the same rows every time it is
    // computed), another seed another; the sizes follow the weights.
    let firsts = |seed| -> Vec<f64> {
        let parts = random_split(&data, &[0.7, 0.3], seed).unwrap();
        let once = parts[0].collect().unwrap();
        assert_eq!(once, parts[0].collect().unwrap(), "recomputed alike");
        once.iter().map(|p| p.features.to_dense()[0]).collect()
    };
    let first = firsts(11);
    assert_eq!(first, firsts(11));
    assert_ne!(first, firsts(12));
    assert!(
        (110..=170).contains(&first.len()),
        "{} of 200 rows for a weight of 0.7",
        first.len()
    );
}

#[test]
fn glob_inputs_name_the_pattern_and_the_line_within_its_partition() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.csv"), "y,x\n1,2\n1,x\n").unwrap();
    let pattern = format!("{}/*.csv", dir.path().display());
    let opts = CsvOptions {
        header: true,
        min_partitions: 1,
        ..CsvOptions::default()
    };
    let err = read_csv(&ctx, &pattern, opts).unwrap().count().unwrap_err();
    let text = error_text(err.into());
    let expected = format!("{pattern}:0: line 3 of partition 0: column 2 is \"x\", not a number");
    assert!(text.contains(&expected), "{text}\nexpected {expected}");
}

#[test]
fn csv_weight_column_weighs_rows_and_is_not_a_feature() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.csv");
    fs::write(&path, "1,2.5,0.5,3\n0,-1,2,4\n1,7,0,8\n").unwrap();
    let p = path.to_str().unwrap();
    let opts = CsvOptions {
        weight_col: Some(2),
        ..CsvOptions::default()
    };
    let points = read_csv(&ctx, p, opts).unwrap().collect().unwrap();
    assert_eq!(
        points,
        vec![
            LabeledPoint::new(1.0, vec![2.5, 3.0]).with_weight(0.5),
            LabeledPoint::new(0.0, vec![-1.0, 4.0]).with_weight(2.0),
            LabeledPoint::new(1.0, vec![7.0, 8.0]).with_weight(0.0),
        ]
    );

    // A negative weight fails the reading job, naming file and line.
    fs::write(&path, "1,2.5,0.5,3\n0,-1,-2,4\n").unwrap();
    let opts = CsvOptions {
        weight_col: Some(2),
        ..CsvOptions::default()
    };
    let err = read_csv(&ctx, p, opts).unwrap().count().unwrap_err();
    let text = error_text(err.into());
    let expected = format!("{p}:2: column 3 (the weight) is -2: weights must be ≥ 0");
    assert!(text.contains(&expected), "{text}\nexpected {expected}");

    // The weight column can be neither the label's nor outside the rows.
    for (label_col, weight_col, what) in [(Some(0), 0, "other than the label"), (Some(0), 4, "it has 4")] {
        let opts = CsvOptions {
            label_col,
            weight_col: Some(weight_col),
            ..CsvOptions::default()
        };
        let err = read_csv(&ctx, p, opts).unwrap_err().to_string();
        assert!(err.contains("weight_col") && err.contains(what), "{err}");
    }
}
