//! Named outcomes of `subscribe tail`: each owns its log line and its metric.
