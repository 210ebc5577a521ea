//! ONNX Runtime itself: its shared library, loaded once per process, and the execution provider a session
//! runs on (the CPU unless a GPU provider is asked for, and then that one or an error, never a silent
//! fallback).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::{Error, Result};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
    /// NVIDIA TensorRT (build with `--features tensorrt`).
    Tensorrt,
}

/// Registers the chosen execution provider, failing (instead of silently falling back to the CPU) when it
/// cannot be used.
pub(crate) fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    ep: ExecutionProvider,
) -> Result<ort::session::builder::SessionBuilder> {
    #[cfg_attr(all(feature = "cuda", feature = "tensorrt"), allow(unused_variables))]
    let not_built = |name: &str| Error::ModelLoad {
        path: PathBuf::new(),
        reason: format!(
            "this build has no {name} support: rebuild detect with `cargo build --release --features {name}`"
        ),
    };
    match ep {
        ExecutionProvider::Cpu => Ok(builder),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda => register(builder, ort::ep::CUDA::default().build().error_on_failure(), ep),
        #[cfg(not(feature = "cuda"))]
        ExecutionProvider::Cuda => Err(not_built("cuda")),
        #[cfg(feature = "tensorrt")]
        ExecutionProvider::Tensorrt => register(builder, ort::ep::TensorRT::default().build().error_on_failure(), ep),
        #[cfg(not(feature = "tensorrt"))]
        ExecutionProvider::Tensorrt => Err(not_built("tensorrt")),
    }
}

#[cfg(any(feature = "cuda", feature = "tensorrt"))]
fn register(
    builder: ort::session::builder::SessionBuilder,
    dispatch: ort::ep::ExecutionProviderDispatch,
    ep: ExecutionProvider,
) -> Result<ort::session::builder::SessionBuilder> {
    builder
        .with_execution_providers([dispatch])
        .map_err(|e| Error::ModelLoad { path: PathBuf::new(), reason: format!("execution provider {ep:?}: {e}") })
}

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `lib` once per process (ONNX Runtime allows one environment per process).
pub fn environment(lib: &Path) -> Result<&'static Environment> {
    let env = ENVIRONMENT.get_or_init(|| {
        if !lib.exists() {
            return Err("file not found".to_string());
        }
        let builder = ort::init_from(lib).map_err(|e| e.to_string())?;
        builder.with_name("framewire").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|reason| Error::Runtime { path: lib.into(), reason: reason.clone() })
}
