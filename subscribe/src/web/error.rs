//! Why `subscribe web` could not serve the page.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the web view.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything but a loopback address would show the cameras to whoever can reach it.
    #[error(
        "refusing to serve the web view on {listen} without --token: anyone who can reach it would see the cameras"
    )]
    Exposed { listen: SocketAddr },
    /// A certificate or key file that cannot serve HTTPS, named with what is wrong with it.
    #[error("--tls-{flag} {}: {cause}", path.display())]
    Tls { flag: &'static str, path: PathBuf, cause: String },
    #[error("--tls-cert and --tls-key go together: give both for HTTPS, or neither for plain HTTP")]
    TlsPair,
    /// Kafka unreachable, or a client it refused to create. Its own message already says which broker and what
    /// to do, so it is shown as it is.
    #[error(transparent)]
    Kafka(#[from] framewire_common::Error),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the web view")]
    Serve(#[source] std::io::Error),
    /// A task of the web view panicked or was cancelled: a bug, not something the user can fix.
    #[error("internal error: a task of the web view failed")]
    Internal(#[source] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
