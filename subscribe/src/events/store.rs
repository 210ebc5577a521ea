//! Named outcomes of `subscribe store`: each owns its log line and its metric.
