//! Text input and output: `text_file` on files, directories and globs, splitting of large
//! files, `whole_text_files`, `save_as_text_file`.

use std::fs;

use crate::common::{TestResult, ctx, path_state, sorted};

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix} line {i} {}", "x".repeat(i % 13)))
        .collect()
}

fn write_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    fs::write(path, lines.join("\n") + "\n")
}

#[test]
fn text_file_reads_the_lines_of_one_file() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.txt");
    write_lines(&path, &lines("a", 50))?;
    assert_eq!(ctx.text_file(&path_state(&path), 1).collect()?, lines("a", 50));
    // CRLF line ends and a last line without a newline.
    let crlf = dir.path().join("crlf.txt");
    fs::write(&crlf, "one\r\ntwo\r\n\r\nlast")?;
    assert_eq!(
        ctx.text_file(&path_state(&crlf), 2).collect()?,
        vec!["one", "two", "", "last"]
    );
    // An empty file has no lines.
    let empty = dir.path().join("empty.txt");
    fs::write(&empty, "")?;
    assert_eq!(ctx.text_file(&path_state(&empty), 3).count()?, 0);
    Ok(())
}

#[test]
fn text_file_reads_the_visible_files_of_a_directory_in_name_order() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    write_lines(&dir.path().join("b.txt"), &lines("b", 20))?;
    write_lines(&dir.path().join("a.txt"), &lines("a", 30))?;
    // Hidden and underscore files are skipped, as are subdirectories.
    fs::write(dir.path().join("_SUCCESS"), "")?;
    fs::write(dir.path().join(".hidden"), "secret\n")?;
    fs::create_dir(dir.path().join("sub"))?;
    fs::write(dir.path().join("sub").join("c.txt"), "nested\n")?;
    let out = ctx.text_file(&path_state(dir.path()), 2).collect()?;
    assert_eq!(out, [lines("a", 30), lines("b", 20)].concat());
    Ok(())
}

#[test]
fn text_file_reads_the_files_matching_a_glob() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    write_lines(&dir.path().join("part-1.log"), &lines("one", 10))?;
    write_lines(&dir.path().join("part-2.log"), &lines("two", 15))?;
    write_lines(&dir.path().join("other.txt"), &lines("other", 5))?;
    let pattern = format!("{}/part-*.log", path_state(dir.path()));
    let out = ctx.text_file(&pattern, 1).collect()?;
    assert_eq!(out, [lines("one", 10), lines("two", 15)].concat());
    Ok(())
}

#[test]
fn text_file_splits_a_large_file_and_reads_every_line_exactly_once() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.txt");
    let expected = lines("big", 20_000);
    write_lines(&path, &expected)?;
    for min_partitions in [1, 3, 8, 17] {
        let rdd = ctx.text_file(&path_state(&path), min_partitions);
        let out = rdd.collect()?;
        assert!(
            rdd.num_partitions() >= min_partitions,
            "{} < {min_partitions}",
            rdd.num_partitions()
        );
        assert_eq!(out.len(), expected.len(), "{min_partitions} partitions");
        assert_eq!(out, expected, "{min_partitions} partitions");
        if min_partitions > 1 {
            let sizes: Vec<usize> = rdd.glom().collect()?.iter().map(Vec::len).collect();
            assert!(sizes.iter().filter(|s| **s > 0).count() > 1, "{sizes:?}");
        }
    }
    Ok(())
}

#[test]
fn whole_text_files_returns_each_file_with_its_content() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let mut expected = Vec::new();
    for i in 0..5 {
        let path = dir.path().join(format!("f{i}.txt"));
        let content = format!("file {i}\n{}", "y".repeat(i * 100));
        fs::write(&path, &content)?;
        expected.push((path_state(&path), content));
    }
    let rdd = ctx.whole_text_files(&path_state(dir.path()), 3);
    assert_eq!(rdd.num_partitions(), 3);
    assert_eq!(sorted(rdd.collect()?), expected);
    Ok(())
}

#[test]
fn save_as_text_file_writes_part_files_and_success_marker() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let data: Vec<String> = lines("saved", 100);
    ctx.parallelize(data.clone(), 4).save_as_text_file(&out)?;
    let mut names: Vec<String> = fs::read_dir(&out)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    assert_eq!(
        names,
        vec!["_SUCCESS", "part-00000", "part-00001", "part-00002", "part-00003"]
    );
    // Part i holds slice i, one element per line.
    assert_eq!(
        fs::read_to_string(out.join("part-00000"))?,
        data[..25].join("\n") + "\n"
    );
    // Reading the directory back gives the same lines in the same order.
    assert_eq!(ctx.text_file(&path_state(&out), 1).collect()?, data);
    // Any Display type can be saved.
    let nums = dir.path().join("nums");
    ctx.range(0, 10, 3).save_as_text_file(&nums)?;
    let back: Vec<i64> = ctx
        .text_file(&path_state(&nums), 2)
        .map(|s: String| s.parse::<i64>().unwrap_or(-1))
        .collect()?;
    assert_eq!(back, (0..10).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn save_as_text_file_of_an_empty_rdd_writes_only_the_marker() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("empty");
    ctx.empty::<String>().save_as_text_file(&out)?;
    assert!(out.join("_SUCCESS").exists());
    assert_eq!(ctx.text_file(&path_state(&out), 1).count()?, 0);
    Ok(())
}

fn fails_on_the_last_element(x: i64) -> String {
    assert!(x != 999, "cannot render {x}");
    x.to_string()
}

#[test]
fn a_failed_save_leaves_no_directory_and_can_be_retried() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let err = ctx
        .range(0, 1000, 4)
        .map(fails_on_the_last_element)
        .save_as_text_file(&out)
        .expect_err("the last partition always fails");
    assert!(
        flint::report(&err).contains("cannot render 999"),
        "{}",
        flint::report(&err)
    );
    assert!(!out.exists(), "nothing is left behind");
    ctx.range(0, 1000, 4).save_as_text_file(&out)?;
    assert!(out.join("_SUCCESS").exists());
    assert_eq!(ctx.text_file(out.to_str().ok_or("path")?, 2).count()?, 1000);
    Ok(())
}
