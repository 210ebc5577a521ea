//! Named internal events of `subscribe`, one submodule per subcommand: each outcome (a frame stored, a dead
//! letter, a database write that failed...) is one type that owns its log line and its metric, so a call
//! site emits one event instead of pairing a counter, a log line and a summary field by hand.

pub mod store;
pub mod tail;
pub mod web;

/// The Kafka consumer reported an error; librdkafka retries on its own, so this is logged and reading goes on.
pub struct ConsumerError<'a> {
    pub error: &'a rdkafka::error::KafkaError,
}

impl ConsumerError<'_> {
    pub fn emit(&self) {
        tracing::warn!(error = %self.error, "consumer error");
    }
}
