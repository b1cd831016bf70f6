//! `pipe`: each partition through an external command, as Spark's `RDD.pipe`.
//!
//! Elements are written to the command's stdin one per line (their `Display`), from a separate
//! thread so that a command that writes before it has read everything cannot deadlock; the
//! command's stdout lines are the new elements. A non-zero exit fails the task with the command
//! and its status.

use std::fmt::Display;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::narrow::PartitionFn;
use super::{BoxIter, Rdd};
use crate::data::Data;
use crate::error::EngineError;
use crate::task_context::raise;

#[derive(Serialize, Deserialize)]
struct PipeFn {
    command: String,
}

impl<T: Data + Display> PartitionFn<T, String> for PipeFn {
    fn apply(self: Arc<Self>, _split: usize, input: BoxIter<T>) -> BoxIter<String> {
        let fail = |detail: String| -> ! {
            raise(EngineError::Pipe {
                command: self.command.clone(),
                detail,
            })
        };
        let mut child = match Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => fail(format!("cannot start: {e}")),
        };
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        // The input iterator is not Send (it may hold task-local state), so the elements are
        // rendered here and the writer thread only moves bytes.
        let lines: Vec<String> = input.map(|x| x.to_string()).collect();
        let writer = std::thread::spawn(move || {
            let mut w = BufWriter::new(stdin);
            for line in lines {
                // A command that exits early closes its stdin; that is not an error of ours.
                if writeln!(w, "{line}").is_err() {
                    return;
                }
            }
            let _ = w.flush();
        });
        Box::new(PipeOutput {
            command: self.command.clone(),
            child,
            reader: BufReader::new(stdout),
            writer: Some(writer),
        })
    }
}

struct PipeOutput {
    command: String,
    child: Child,
    reader: BufReader<ChildStdout>,
    writer: Option<JoinHandle<()>>,
}

impl Iterator for PipeOutput {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => {
                if let Some(w) = self.writer.take() {
                    let _ = w.join();
                }
                match self.child.wait() {
                    Ok(status) if status.success() => None,
                    Ok(status) => raise(EngineError::Pipe {
                        command: self.command.clone(),
                        detail: format!("exited with {status}"),
                    }),
                    Err(e) => raise(EngineError::Pipe {
                        command: self.command.clone(),
                        detail: e.to_string(),
                    }),
                }
            }
            Ok(_) => {
                if line.ends_with('\n') {
                    line.pop();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                }
                Some(line)
            }
            Err(e) => raise(EngineError::Pipe {
                command: self.command.clone(),
                detail: format!("reading its output: {e}"),
            }),
        }
    }
}

impl Drop for PipeOutput {
    fn drop(&mut self) {
        // Stopped early (or failed): do not leave the command running.
        if self.writer.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Some(w) = self.writer.take() {
                let _ = w.join();
            }
        }
    }
}

impl<T: Data + Display> Rdd<T> {
    /// Pipes each partition through `sh -c command`: elements go to its stdin one per line, its
    /// stdout lines come back.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let upper = ctx.parallelize(vec!["a".to_string(), "b".to_string()], 2).pipe("tr a-z A-Z");
    /// assert_eq!(upper.collect().unwrap(), vec!["A", "B"]);
    /// ```
    #[track_caller]
    pub fn pipe(&self, command: &str) -> Rdd<String> {
        self.with_partition_fn(
            "pipe",
            PipeFn {
                command: command.to_string(),
            },
        )
    }
}
