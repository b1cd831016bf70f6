//! Bad input and output paths: the action returns an error that names the path, and the same
//! context runs the next job fine.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use flint::prelude::*;

use crate::common::{TestResult, ctx, path_state};

/// A job that must still work on `ctx` after a failure.
fn still_works(ctx: &Context) -> TestResult {
    let out = ctx
        .range(0, 100, 4)
        .map(|x: i64| (x % 3, 1u32))
        .reduce_by_key(|a: u32, b: u32| a + b)
        .count()?;
    assert_eq!(out, 3);
    Ok(())
}

#[test]
fn a_missing_input_path_is_input_not_found_naming_the_path() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let missing = path_state(&dir.path().join("no-such-file.txt"));
    let rdd = ctx.text_file(&missing, 2);
    let err = rdd.count().expect_err("missing input");
    match &err {
        EngineError::InputNotFound { path } => assert_eq!(path_state(path), missing),
        other => panic!("expected InputNotFound, got {other:?}"),
    }
    assert!(err.to_string().contains(&missing), "{err}");
    // A glob that matches nothing, and whole_text_files, are the same error.
    let pattern = format!("{}/*.nothing", path_state(dir.path()));
    assert!(matches!(
        ctx.text_file(&pattern, 1).collect(),
        Err(EngineError::InputNotFound { .. })
    ));
    assert!(matches!(
        ctx.whole_text_files(&missing, 1).collect(),
        Err(EngineError::InputNotFound { .. })
    ));
    still_works(&ctx)
}

#[test]
fn invalid_utf8_input_fails_naming_the_file() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("binary.txt");
    fs::write(&path, b"good line\n\xff\xfe bad line\nanother\n")?;
    let err = ctx
        .text_file(&path_state(&path), 1)
        .collect()
        .expect_err("invalid UTF-8");
    let text = flint::report(&err);
    assert!(matches!(err, EngineError::TaskFailed { .. }), "{err:?}");
    assert!(text.contains(&path_state(&path)), "{text}");
    assert!(text.contains("not valid UTF-8") && text.contains("offset 10"), "{text}");
    let err = ctx
        .whole_text_files(&path_state(dir.path()), 1)
        .collect()
        .expect_err("invalid UTF-8");
    let text = flint::report(&err);
    assert!(text.contains(&path_state(&path)), "{text}");
    still_works(&ctx)
}

#[test]
fn an_unreadable_input_file_fails_naming_the_file() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("secret.txt");
    fs::write(&path, "hidden\n")?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000))?;
    if fs::File::open(&path).is_ok() {
        // Running as root (or with CAP_DAC_OVERRIDE): permissions do not stop reads here.
        eprintln!("skipped: this process can read files without read permission");
        return Ok(());
    }
    let err = ctx.text_file(&path_state(&path), 1).count().expect_err("unreadable");
    let text = flint::report(&err);
    assert!(text.contains(&path_state(&path)), "{text}");
    still_works(&ctx)
}

#[test]
fn saving_into_an_existing_directory_is_output_exists_naming_it() -> TestResult {
    let ctx = ctx();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    fs::create_dir(&out)?;
    fs::write(out.join("keep.txt"), "precious\n")?;
    let err = ctx
        .range(0, 10, 2)
        .save_as_text_file(&out)
        .expect_err("existing output");
    match &err {
        EngineError::OutputExists { path } => assert_eq!(path, &out),
        other => panic!("expected OutputExists, got {other:?}"),
    }
    assert!(err.to_string().contains(&path_state(&out)), "{err}");
    // Nothing was overwritten or added.
    assert_eq!(fs::read_to_string(out.join("keep.txt"))?, "precious\n");
    assert_eq!(fs::read_dir(&out)?.count(), 1);
    // A second save to the same new path also refuses.
    let fresh = dir.path().join("fresh");
    ctx.range(0, 10, 2).save_as_text_file(&fresh)?;
    assert!(matches!(
        ctx.range(0, 10, 2).save_as_text_file(&fresh),
        Err(EngineError::OutputExists { .. })
    ));
    still_works(&ctx)
}
