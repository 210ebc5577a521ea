//! Named outcomes of `subscribe web`: each owns its log line and its metric.
