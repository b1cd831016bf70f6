//! The wire: a mismatched binary is refused, garbage on the ports is rejected without harm.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use libtest_mimic::Trial;

use crate::common::{TestResult, builder, check, cluster, trial};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("wire::mismatched_binary_is_refused", mismatched_binary_is_refused),
        trial("wire::garbage_on_ports_is_rejected", garbage_on_ports_is_rejected),
    ]
}

/// An executor started from another build (this binary plus one byte) is refused at the
/// handshake; the error names both executables and both hashes.
fn mismatched_binary_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let me = std::env::current_exe()?;
    let copy = dir.path().join("other-build");
    let mut bytes = std::fs::read(&me)?;
    bytes.push(0);
    std::fs::write(&copy, bytes)?;
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let result = builder(1, 1)
        .set("executor_program", copy.to_str().expect("utf-8 path"))?
        .set("executor_start_timeout", "30s")?
        .set("max_executor_restarts", "0")?
        .build();
    let err = match result {
        Ok(_) => return Err("a context with a mismatched executor binary started".into()),
        Err(e) => flint::report(&e),
    };
    check(
        err.contains("mismatched binary"),
        format!("error does not say mismatched binary: {err}"),
    )?;
    check(
        err.contains("other-build") && err.contains(&me.display().to_string()),
        format!("error does not name both executables: {err}"),
    )?;
    let hash = &flint_executor_hash()[..16];
    check(
        err.contains(hash),
        format!("error does not show the driver's hash {hash}: {err}"),
    )
}

fn flint_executor_hash() -> String {
    let me = std::env::current_exe().expect("current exe");
    let bytes = std::fs::read(me).expect("read self");
    // The same hash the executor crate computes (blake3 of the executable).
    blake3_hex(&bytes)
}

fn blake3_hex(bytes: &[u8]) -> String {
    flint_executor::build_id::hash_bytes(bytes)
}

/// Garbage and oversized frames sent to the driver's and an executor's ports close those
/// connections only; jobs keep running.
fn garbage_on_ports_is_rejected() -> TestResult {
    let ctx = cluster(2, 1);
    let driver = ctx.driver_address().ok_or("no driver address")?;
    let executor = ctx.executors()[0].address.clone();
    for address in [&driver, &executor] {
        // Random bytes, then a frame header announcing 2 GiB.
        for payload in [
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect::<Vec<u8>>(),
            vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
            vec![0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
        ] {
            let mut stream = TcpStream::connect(address.as_str())?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(&payload)?;
            // The peer closes the connection (read returns 0 or an error), it does not hang.
            let mut buf = [0u8; 64];
            let closed = matches!(stream.read(&mut buf), Ok(0) | Err(_));
            check(closed, format!("{address} kept a connection that sent garbage open"))?;
        }
    }
    let sum = ctx.range(0, 10_000, 4).map(|x: i64| x * 2).reduce(|a, b| a + b)?;
    check(sum == 99_990_000, format!("wrong sum {sum}"))?;
    check(ctx.executors().len() == 2, "an executor was lost to garbage")
}
