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
    #[error(
        "the {role} topic {topic} does not exist on the broker (missing for {waited:?}; deleted while detect ran?): create it again or point {flag} at an existing topic; frames not yet delivered stay uncommitted and are processed after a restart"
    )]
    TopicGone { role: &'static str, topic: String, flag: &'static str, waited: std::time::Duration },
    #[error("{what}: {reason}: {advice}")]
    KafkaFatal { what: String, reason: String, advice: &'static str },
    #[error(
        "the {stage} stage panicked: {message}. This is a bug in detect; frames not yet delivered stay uncommitted and are processed after a restart"
    )]
    StagePanicked { stage: &'static str, message: String },
    /// A task or thread of detect's own could not be started or did not finish (a panic while loading the
    /// model, a cancelled task, no threads left). Stage errors and stage panics have their own variants.
    #[error("internal error: {what}")]
    Internal {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn internal(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Internal { what: what.into(), source: source.into() }
    }
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Inference(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_task_is_internal_with_the_panic_as_its_source() {
        let join = tokio::spawn(async { panic!("model file changed under us") }).await.unwrap_err();
        let e = Error::internal("loading the model", join);
        assert_eq!(e.to_string(), "internal error: loading the model");
        let source = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
        assert!(source.contains("model file changed under us"), "{source}");
    }
}
