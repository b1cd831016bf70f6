//! The error type of the standalone cluster's daemons and clients.

use std::path::PathBuf;

/// What can go wrong starting or talking to a standalone cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No master answers at this address.
    #[error("cannot reach the master at {url}")]
    Unreachable {
        /// The master's URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A call to the master failed.
    #[error("the master at {url} did not answer {what}")]
    Rpc {
        /// The master's URL.
        url: String,
        /// The call.
        what: &'static str,
        /// Why.
        #[source]
        source: tarpc::client::RpcError,
    },
    /// The master said no.
    #[error("the master at {url} refused {what}: {reason}")]
    Refused {
        /// The master's URL.
        url: String,
        /// What was asked.
        what: String,
        /// The master's reason.
        reason: String,
    },
    /// A file or directory could not be used.
    #[error("cannot {what} {path}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A network listener or runtime could not start.
    #[error("cannot {what}")]
    Start {
        /// What was attempted.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The submitted program ended without registering an application with the master.
    #[error(
        "{program} {how} without registering with the master at {url}: it is probably not a flint program \
         (a flint program calls flint::init() and builds a Context with the master URL)"
    )]
    NotAFlintProgram {
        /// The program.
        program: PathBuf,
        /// How it ended.
        how: String,
        /// The master's URL.
        url: String,
    },
    /// The submitted program did not register within the deadline (it was killed).
    #[error(
        "{program} did not register with the master at {url} within {seconds} s (killed): it is probably \
         not a flint program, or it does not build its Context with the master URL from FLINT_MASTER"
    )]
    NeverRegistered {
        /// The program.
        program: PathBuf,
        /// The master's URL.
        url: String,
        /// The deadline, seconds.
        seconds: u64,
    },
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
}
