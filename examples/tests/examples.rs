//! The examples, run on small inputs: their library functions against sequential references,
//! and their binaries end to end (`--json` output parsed).

use std::collections::HashMap;
use std::process::Command;

use flint::Context;
use flint_examples::{pagerank, pi, sort, wordcount};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.txt");
const EDGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/edges.txt");

fn reference_counts(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_string()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn wordcount_matches_a_sequential_count() {
    let ctx = Context::local(2).unwrap();
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let expected = reference_counts(&text);
    let report = wordcount::run(&ctx, SAMPLE, 5, None, false).unwrap();
    assert_eq!(
        wordcount::run(&ctx, SAMPLE, 5, None, true).unwrap(),
        report,
        "local combine gives the same"
    );
    assert_eq!(report.total_words, expected.values().sum::<u64>());
    assert_eq!(report.distinct_words, expected.len() as u64);
    let mut top: Vec<(String, u64)> = expected.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(5);
    assert_eq!(report.top, top);
}

#[test]
fn wordcount_keeps_case_and_splits_on_unicode_whitespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    // U+3000 (ideographic space) and U+00A0 (no-break space) are Unicode whitespace.
    std::fs::write(&path, "Word word\u{3000}WORD\tword\u{a0}x\n\nword").unwrap();
    let ctx = Context::local(2).unwrap();
    let out = dir.path().join("out");
    let report = wordcount::run(&ctx, path.to_str().unwrap(), 10, Some(&out), false).unwrap();
    assert_eq!(report.total_words, 6);
    assert_eq!(report.top[0], ("word".to_string(), 3));
    assert!(report.top.contains(&("Word".to_string(), 1)) && report.top.contains(&("WORD".to_string(), 1)));
    let written = flint::Context::local(1)
        .unwrap()
        .text_file(out.to_str().unwrap(), 1)
        .collect()
        .unwrap();
    assert_eq!(written.len(), 4);
    assert!(out.join("_SUCCESS").exists());
}

#[test]
fn sort_output_is_ordered_and_complete() {
    let ctx = Context::local(2).unwrap();
    let report = sort::run(&ctx, 20_000, 4, 1).unwrap();
    assert_eq!(report.records, 20_000);
    assert_eq!(report.bytes, 2_000_000);
    // Same records, sorted locally.
    let mut keys: Vec<[u8; 10]> = sort::records(&ctx, 20_000, 4, 1).keys().collect().unwrap();
    keys.sort();
    let sorted: Vec<[u8; 10]> = sort::records(&ctx, 20_000, 4, 1)
        .sort_by_key(true, 3)
        .keys()
        .collect()
        .unwrap();
    assert_eq!(sorted, keys);
}

#[test]
fn pi_is_close() {
    let ctx = Context::local(2).unwrap();
    let estimate = pi::run(&ctx, 200_000, 4, 3).unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.02, "{estimate}");
    assert_eq!(estimate, pi::run(&ctx, 200_000, 4, 3).unwrap(), "seeded, so repeatable");
}

/// PageRank as in the Spark example, computed with std collections.
fn reference_pagerank(edges: &str, iters: usize) -> HashMap<String, f64> {
    let mut links: HashMap<String, Vec<String>> = HashMap::new();
    for line in edges.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(s), Some(d)) = (parts.next(), parts.next()) else {
            continue;
        };
        let out = links.entry(s.to_string()).or_default();
        if !out.iter().any(|x| x == d) {
            out.push(d.to_string());
        }
    }
    let mut ranks: HashMap<String, f64> = links.keys().map(|k| (k.clone(), 1.0)).collect();
    for _ in 0..iters {
        let mut sums: HashMap<String, f64> = HashMap::new();
        for (src, urls) in &links {
            if let Some(rank) = ranks.get(src) {
                for u in urls {
                    *sums.entry(u.clone()).or_insert(0.0) += rank / urls.len() as f64;
                }
            }
        }
        ranks = sums.into_iter().map(|(k, s)| (k, 0.15 + 0.85 * s)).collect();
    }
    ranks
}

#[test]
fn pagerank_matches_a_sequential_pagerank_with_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .master("local[2]")
        .checkpoint_dir(dir.path())
        .build()
        .unwrap();
    let ranks = pagerank::run(&ctx, EDGES, 7, 3).unwrap();
    let expected = reference_pagerank(&std::fs::read_to_string(EDGES).unwrap(), 7);
    assert_eq!(ranks.len(), expected.len());
    for (page, rank) in &ranks {
        assert!(
            (rank - expected[page]).abs() < 1e-9,
            "{page}: {rank} vs {}",
            expected[page]
        );
    }
}

#[test]
fn binaries_print_json_last() {
    let run = |bin: &str, args: &[&str]| -> serde_json::Value {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{bin} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let wc = run(
        env!("CARGO_BIN_EXE_wordcount"),
        &[SAMPLE, "--json", "--master", "local[2]", "--top", "3"],
    );
    assert_eq!(wc["top"].as_array().unwrap().len(), 3);
    assert!(wc["total_words"].as_u64().unwrap() > 0 && wc["seconds"].as_f64().is_some());
    let s = run(env!("CARGO_BIN_EXE_sort"), &["--records", "5000", "--json"]);
    assert_eq!(s["records"], 5000);
    let p = run(env!("CARGO_BIN_EXE_pi"), &["--samples", "10000", "--json"]);
    assert!(p["pi"].as_f64().unwrap() > 2.5);
    let pr = run(env!("CARGO_BIN_EXE_pagerank"), &[EDGES, "--iters", "3", "--json"]);
    assert_eq!(pr["iterations"], 3);
}

#[test]
fn a_missing_input_is_a_clear_error_and_exit_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_wordcount"))
        .arg("/no/such/input.txt")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/input.txt"), "{stderr}");
}

/// Runs `bin args --json --master master`, which must succeed, and returns its last line's
/// JSON.
fn run_json(bin: &str, args: &[&str], master: &str) -> serde_json::Value {
    let out = Command::new(bin)
        .args(args)
        .args(["--json", "--master", master])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?} --master {master} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `v` without its timings (they differ between runs; nothing else may).
fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    let object = v.as_object_mut().unwrap();
    for key in ["seconds", "load_seconds", "train_seconds"] {
        object.remove(key);
    }
    // Per-pass timings: only how many passes there were.
    if let Some(passes) = object.get_mut("pass_seconds") {
        *passes = passes.as_array().unwrap().len().into();
    }
    v
}

#[test]
fn binaries_give_the_same_json_in_local_cluster_mode() {
    let run = |bin: &str, args: &[&str], master: &str| without_timings(run_json(bin, args, master));
    let cases: [(&str, Vec<&str>); 4] = [
        (env!("CARGO_BIN_EXE_wordcount"), vec![SAMPLE, "--top", "5"]),
        (
            env!("CARGO_BIN_EXE_sort"),
            vec!["--records", "20000", "--partitions", "4"],
        ),
        (
            env!("CARGO_BIN_EXE_pi"),
            vec!["--samples", "100000", "--partitions", "4"],
        ),
        (env!("CARGO_BIN_EXE_pagerank"), vec![EDGES, "--iters", "4"]),
    ];
    for (bin, args) in cases {
        let local = run(bin, &args, "local[2]");
        let cluster = run(bin, &args, "local-cluster[2,1]");
        assert_eq!(local, cluster, "{bin} {args:?}");
    }
}

/// Writes `rows` lines of `label,x1..xd` (labels from a fixed linear rule with noise) and
/// returns the path.
fn write_classification_csv(dir: &std::path::Path, rows: usize, d: usize) -> String {
    let mut text = String::new();
    let mut state = 11u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    for _ in 0..rows {
        let x: Vec<f64> = (0..d).map(|_| next() * 3.0).collect();
        let margin: f64 = x.iter().enumerate().map(|(j, v)| v * (j as f64 - 1.0)).sum::<f64>() + next();
        let label = if margin > 0.0 { 1 } else { 0 };
        let fields: Vec<String> = x.iter().map(|v| format!("{v:.6}")).collect();
        text.push_str(&format!("{label},{}\n", fields.join(",")));
    }
    let path = dir.join("classification.csv");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn ml_binaries_print_the_documented_json_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_classification_csv(dir.path(), 400, 3);
    // k-means input: the same rows without the label column.
    let features: String = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string() + "\n")
        .collect();
    let kmeans_csv = dir.path().join("features.csv");
    std::fs::write(&kmeans_csv, features).unwrap();
    let kmeans_csv = kmeans_csv.to_str().unwrap();
    let run = run_json;
    let kmeans_keys: &[&str] = &[
        "centers",
        "cost",
        "iterations",
        "train_seconds",
        "load_seconds",
        "pass_seconds",
        "pass_bytes",
    ];
    let cases: [(&str, Vec<&str>, &[&str]); 5] = [
        (
            env!("CARGO_BIN_EXE_logreg"),
            vec![&csv, "--iters", "50", "--reg", "0.01"],
            &[
                "coefficients",
                "intercept",
                "iterations",
                "loss",
                "accuracy",
                "train_seconds",
                "load_seconds",
                "pass_seconds",
                "pass_bytes",
            ],
        ),
        (
            env!("CARGO_BIN_EXE_linreg"),
            vec![&csv, "--reg", "0.1"],
            &[
                "coefficients",
                "intercept",
                "iterations",
                "loss",
                "rmse",
                "train_seconds",
                "load_seconds",
            ],
        ),
        (
            env!("CARGO_BIN_EXE_glm"),
            vec![&csv, "--family", "binomial"],
            &[
                "coefficients",
                "intercept",
                "iterations",
                "loss",
                "rmse",
                "train_seconds",
                "load_seconds",
            ],
        ),
        (
            env!("CARGO_BIN_EXE_kmeans"),
            vec![kmeans_csv, "--k", "3", "--iters", "10", "--init", "random"],
            kmeans_keys,
        ),
        (
            env!("CARGO_BIN_EXE_kmeans"),
            vec![kmeans_csv, "--k", "3", "--iters", "10", "--init", "kmeans-parallel"],
            kmeans_keys,
        ),
    ];
    for (bin, args, keys) in cases {
        let local = run(bin, &args, "local[2]");
        for key in keys {
            assert!(local.get(*key).is_some(), "{bin}: no {key} in {local}");
        }
        let cluster = run(bin, &args, "local-cluster[2,1]");
        assert_eq!(
            without_timings(local),
            without_timings(cluster),
            "{bin}: local-cluster differs from local mode"
        );
    }
    let lr = run(env!("CARGO_BIN_EXE_logreg"), &[&csv, "--iters", "50"], "local[2]");
    assert!(lr["accuracy"].as_f64().unwrap() > 0.9, "{lr}");
    assert_eq!(lr["coefficients"].as_array().unwrap().len(), 3);
    let multi = run(
        env!("CARGO_BIN_EXE_logreg"),
        &[&csv, "--multinomial", "--reg", "0.01"],
        "local[2]",
    );
    assert_eq!(
        multi["coefficients"].as_array().unwrap().len(),
        2,
        "one row per class: {multi}"
    );
    assert_eq!(multi["intercept"].as_array().unwrap().len(), 2);
}

#[test]
fn ml_binaries_read_libsvm_and_other_label_columns_and_take_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_classification_csv(dir.path(), 300, 3);
    let text = std::fs::read_to_string(&csv).unwrap();
    // The same rows as LIBSVM, and as CSV with the label last.
    let (mut libsvm, mut label_last) = (String::new(), String::new());
    for line in text.lines() {
        let (label, features) = line.split_once(',').unwrap();
        let indexed: Vec<String> = features
            .split(',')
            .enumerate()
            .map(|(j, v)| format!("{}:{v}", j + 1))
            .collect();
        libsvm.push_str(&format!("{label} {}\n", indexed.join(" ")));
        label_last.push_str(&format!("{features},{label}\n"));
    }
    let libsvm_path = dir.path().join("data.libsvm");
    let last_path = dir.path().join("label_last.csv");
    std::fs::write(&libsvm_path, libsvm).unwrap();
    std::fs::write(&last_path, label_last).unwrap();
    let (libsvm_path, last_path) = (libsvm_path.to_str().unwrap(), last_path.to_str().unwrap());
    let logreg = env!("CARGO_BIN_EXE_logreg");
    let model = |v: &serde_json::Value| (v["coefficients"].clone(), v["intercept"].clone(), v["loss"].clone());
    let from_csv = run_json(logreg, &[&csv, "--reg", "0.01"], "local[2]");
    let from_libsvm = run_json(
        logreg,
        &[libsvm_path, "--format", "libsvm", "--reg", "0.01"],
        "local[2]",
    );
    let from_last = run_json(logreg, &[last_path, "--label-col", "3", "--reg", "0.01"], "local[2]");
    assert_eq!(model(&from_libsvm), model(&from_csv), "libsvm: {from_libsvm}");
    assert_eq!(model(&from_last), model(&from_csv), "--label-col 3: {from_last}");
    // A strong L1 part zeroes the coefficient of the feature the label does not depend on
    // (the second: weight 0 in `write_classification_csv`), unlike the ridge fit.
    let zeros = |v: &serde_json::Value| {
        v["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.as_f64().unwrap() == 0.0)
            .count()
    };
    let lasso = run_json(logreg, &[&csv, "--reg", "0.05", "--elastic-net", "1"], "local[2]");
    assert!(zeros(&lasso) >= 1, "{lasso}");
    assert_eq!(zeros(&run_json(logreg, &[&csv, "--reg", "0.05"], "local[2]")), 0);
    let linreg = run_json(
        env!("CARGO_BIN_EXE_linreg"),
        &[&csv, "--reg", "0.05", "--elastic-net", "1"],
        "local[2]",
    );
    assert!(zeros(&linreg) >= 1, "{linreg}");
    // glm's link: probit and logit fit different models; `loss` is half the mean deviance.
    let glm = env!("CARGO_BIN_EXE_glm");
    let logit = run_json(glm, &[&csv, "--family", "binomial"], "local[2]");
    let probit = run_json(glm, &[&csv, "--family", "binomial", "--link", "probit"], "local[2]");
    assert_ne!(logit["coefficients"], probit["coefficients"]);
    for fit in [&logit, &probit] {
        let (loss, deviance) = (fit["loss"].as_f64().unwrap(), fit["deviance"].as_f64().unwrap());
        assert!((loss - deviance / 600.0).abs() <= 1e-12 * loss, "{fit}");
    }
    // Unregularised, the binomial GLM is the logistic regression (the same mean log-loss).
    let plain = run_json(logreg, &[&csv, "--tol", "1e-12", "--iters", "200"], "local[2]");
    let (a, b) = (logit["loss"].as_f64().unwrap(), plain["loss"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-6 * b, "glm {a} against logreg {b}");
}

#[test]
fn ml_binaries_train_with_sgd_as_with_the_exact_solvers() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_classification_csv(dir.path(), 400, 3);
    let run = run_json;
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        let c = v["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap());
        c.chain([v["intercept"].as_f64().unwrap()]).collect()
    };
    for (bin, exact_args) in [
        (env!("CARGO_BIN_EXE_logreg"), vec!["--reg", "0.05"]),
        (
            env!("CARGO_BIN_EXE_linreg"),
            vec!["--reg", "0.05", "--solver", "normal"],
        ),
    ] {
        let mut args = vec![csv.as_str()];
        args.extend(&exact_args[..2]);
        let sgd: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--solver", "sgd", "--iters", "1500", "--tol", "0"])
            .collect();
        let exact_all: Vec<&str> = [csv.as_str()].into_iter().chain(exact_args.iter().copied()).collect();
        let exact = numbers(&run(bin, &exact_all, "local[2]"));
        let local = run(bin, &sgd, "local[2]");
        let approx = numbers(&local);
        for (a, e) in approx.iter().zip(&exact) {
            assert!(
                (a - e).abs() <= 0.02 * e.abs().max(1.0),
                "{bin}: sgd {approx:?}, exact {exact:?}"
            );
        }
        let cluster = run(bin, &sgd, "local-cluster[2,1]");
        assert_eq!(
            without_timings(local),
            without_timings(cluster),
            "{bin}: sgd in local-cluster mode differs"
        );
    }
    // A mini-batch run is reproducible from its seed; a bad solver name is named.
    let mb = [
        "--solver",
        "sgd",
        "--mini-batch-fraction",
        "0.3",
        "--seed",
        "5",
        "--iters",
        "50",
    ];
    let args: Vec<&str> = [csv.as_str()].into_iter().chain(mb).collect();
    let (a, b) = (
        run(env!("CARGO_BIN_EXE_logreg"), &args, "local[2]"),
        run(env!("CARGO_BIN_EXE_logreg"), &args, "local[2]"),
    );
    assert_eq!(a["coefficients"], b["coefficients"]);
    let out = Command::new(env!("CARGO_BIN_EXE_linreg"))
        .args([csv.as_str(), "--solver", "newton"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("solver"), "{out:?}");
}

#[test]
fn ml_binaries_name_a_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "1,0.5,2\n0,0.1,oops\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logreg")).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv:2"), "{stderr}");
}

/// Whether a GPU adapter is there for the `--device gpu` runs: without one this FAILS unless
/// `FLINT_SKIP_GPU_TESTS=1` (CI installs lavapipe with `scripts/install-deps.sh`).
fn gpu_or_skip(test: &str) -> bool {
    match flint::ml::device::gpu_adapter() {
        Ok(_) => true,
        Err(why) if std::env::var("FLINT_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("{test}: skipped (FLINT_SKIP_GPU_TESTS=1): {why}");
            false
        }
        Err(why) => panic!("{test}: no GPU adapter: {why}; set FLINT_SKIP_GPU_TESTS=1 to skip"),
    }
}

#[test]
fn ml_binaries_run_on_the_gpu_locally_and_on_executors() {
    if !gpu_or_skip("ml_binaries_run_on_the_gpu_locally_and_on_executors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = write_classification_csv(dir.path(), 600, 3);
    let run = |device: &str, master: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_logreg"))
            .args([&csv, "--iters", "50", "--reg", "0.01", "--json"])
            .args(["--device", device, "--master", master])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logreg --device {device} --master {master}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap()
    };
    let cpu = run("cpu", "local[2]");
    assert_eq!(cpu["device"], "cpu");
    // Executors resolve the device themselves: local-cluster runs the shaders in each one.
    for master in ["local[2]", "local-cluster[2,1]"] {
        let gpu = run("gpu", master);
        assert_eq!(gpu["device"], "gpu", "{gpu}");
        let (g, c) = (
            gpu["coefficients"].as_array().unwrap(),
            cpu["coefficients"].as_array().unwrap(),
        );
        for (g, c) in g.iter().zip(c) {
            let (g, c) = (g.as_f64().unwrap(), c.as_f64().unwrap());
            assert!((g - c).abs() <= 1e-4 * c.abs().max(1.0), "{master}: gpu {g} vs cpu {c}");
        }
    }
    // k-means on three well-separated blobs: the same centers (to 1e-5) and cost.
    let blobs: String = (0..900)
        .map(|i| {
            let j = (i % 3) as f64;
            let jitter = ((i * 7919) % 101) as f64 / 101.0 - 0.5;
            format!("{},{}\n", 20.0 * j + jitter, -15.0 * j + 0.5 * jitter)
        })
        .collect();
    let path = dir.path().join("blobs.csv");
    std::fs::write(&path, blobs).unwrap();
    let kmeans = |device: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_kmeans"))
            .args([
                path.to_str().unwrap(),
                "--k",
                "3",
                "--seed",
                "5",
                "--json",
                "--device",
                device,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kmeans --device {device}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().last().unwrap()).unwrap()
    };
    let (cpu, gpu) = (kmeans("cpu"), kmeans("gpu"));
    assert_eq!(gpu["device"], "gpu");
    let centers = |v: &serde_json::Value| -> Vec<f64> {
        let mut c: Vec<Vec<f64>> = serde_json::from_value(v["centers"].clone()).unwrap();
        c.sort_by(|a, b| a[0].total_cmp(&b[0]));
        c.concat()
    };
    for (g, c) in centers(&gpu).iter().zip(centers(&cpu)) {
        assert!(
            (g - c).abs() <= 1e-5 * c.abs().max(1.0),
            "k-means center: gpu {g} vs cpu {c}"
        );
    }
    let (gc, cc) = (gpu["cost"].as_f64().unwrap(), cpu["cost"].as_f64().unwrap());
    assert!((gc - cc).abs() <= 1e-5 * cc, "k-means cost: gpu {gc} vs cpu {cc}");
}

#[test]
fn ml_device_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_classification_csv(dir.path(), 50, 2);
    let stderr_of = |envs: &[(&str, &str)], args: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_logreg"))
            .arg(&csv)
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{envs:?} {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = stderr_of(&[("FLINT_ML_DEVICE", "tpu")], &[]);
    assert!(
        e.contains("FLINT_ML_DEVICE") && e.contains("tpu") && e.contains("auto, cpu or gpu"),
        "{e}"
    );
    let e = stderr_of(&[], &["--device", "tpu"]);
    assert!(e.contains("tpu"), "{e}");
    // No adapter for `gpu` (wgpu limited to a backend this platform lacks): a clear error.
    #[cfg(target_os = "linux")]
    {
        let e = stderr_of(&[("WGPU_BACKEND", "metal")], &["--device", "gpu"]);
        assert!(
            e.contains("flint.ml.device = gpu") && e.contains("no GPU adapter found"),
            "{e}"
        );
        // `auto` falls back to the CPU.
        let out = Command::new(env!("CARGO_BIN_EXE_logreg"))
            .args([csv.as_str(), "--device", "auto", "--json"])
            .env("WGPU_BACKEND", "metal")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn microbench_measures_an_ml_pass_in_both_modes() {
    for master in ["local[2]", "local-cluster[2,1]"] {
        let out = Command::new(env!("CARGO_BIN_EXE_microbench"))
            .args(["ml-pass", "--n", "200", "--master", master])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["case"], "ml_pass_overhead");
        assert!(v["passes"].as_u64().unwrap() >= 2, "{v}");
        assert!(v["median_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
}
