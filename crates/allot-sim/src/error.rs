//! Errors of the simulator's inputs: always name the file, line, column and why.

use std::path::PathBuf;

/// A trace, cluster or mapping file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One bad row or field. `line` is 1-based and counts the header; `column` is the
    /// column's name (or number when the file has no header).
    #[error("{}:{line}: column `{column}`: {reason}", path.display())]
    BadRow { path: PathBuf, line: u64, column: String, reason: String },
    /// The file's header lacks a column the reader (or the mapping) needs.
    #[error("{}: missing column `{column}` (header has: {header})", path.display())]
    MissingColumn { path: PathBuf, column: String, header: String },
    /// A mapping names something the reader does not know.
    #[error("mapping: {0}")]
    Mapping(String),
    /// Options of a synthetic workload that cannot be met.
    #[error("generate: {0}")]
    Generate(String),
}
