use std::path::PathBuf;

/// Errors of the detector. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot load the ONNX Runtime library {path}: {reason}. Run `make setup` (or scripts/fetch-onnxruntime.sh), or point ORT_DYLIB_PATH / --onnxruntime at libonnxruntime.so"
    )]
    Runtime { path: PathBuf, reason: String },
    #[error("model file {0} does not exist (fetch it with `make setup` or models/fetch.sh)")]
    ModelNotFound(PathBuf),
    #[error("cannot load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("model metadata {path}: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error("{0}")]
    OutputMismatch(String),
    #[error("labels file {path}: {reason}")]
    Labels { path: PathBuf, reason: String },
    #[error("undecodable JPEG: {0}")]
    Jpeg(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error(transparent)]
    Common(#[from] framewire_common::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Inference(e.to_string())
    }
}
