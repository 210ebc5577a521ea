//! Dead letters that always get through. A dead letter carries the original message, and a message the
//! dead-letter topic refuses as too large (the topic's `max.message.bytes` can be smaller than the input
//! topic's, or the producer's own `message.max.bytes` smaller than the frame) would otherwise be retried
//! forever and stall its partition. Instead its payload is cut, and a header records how long it was; the
//! whole message stays at its source (the `framewire-dlq-source` header) for the input topic's retention.

use rdkafka::message::{Header, OwnedHeaders};

/// Header on a dead letter whose payload was cut to fit: the original payload's length in bytes.
pub const HEADER_ORIGINAL_BYTES: &str = "framewire-dlq-original-bytes";

/// The most payload bytes kept after the first refusal: enough to tell what the message was.
pub const KEEP_AFTER_REFUSAL: usize = 64 * 1024;

/// How much of a dead letter's payload to send: all of it until it is refused as too large, then
/// [`KEEP_AFTER_REFUSAL`] bytes, then half as much after each further refusal, down to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    original: usize,
    kept: usize,
}

impl Fit {
    pub fn new(payload_len: usize) -> Self {
        Self { original: payload_len, kept: payload_len }
    }

    /// Payload bytes to send on the next attempt.
    pub fn kept(&self) -> usize {
        self.kept
    }

    pub fn is_cut(&self) -> bool {
        self.kept < self.original
    }

    /// Keeps less after a too-large refusal. False when there is nothing left to cut (the headers or the key
    /// alone are too large), so the caller falls back to retrying.
    pub fn shrink(&mut self) -> bool {
        if self.kept == 0 {
            return false;
        }
        self.kept = if self.kept > KEEP_AFTER_REFUSAL { KEEP_AFTER_REFUSAL } else { self.kept / 2 };
        true
    }

    /// `headers`, plus [`HEADER_ORIGINAL_BYTES`] once the payload has been cut.
    pub fn headers(&self, headers: &OwnedHeaders) -> OwnedHeaders {
        if self.is_cut() {
            let original = self.original.to_string();
            headers.clone().insert(Header { key: HEADER_ORIGINAL_BYTES, value: Some(&original) })
        } else {
            headers.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn a_refused_payload_is_cut_to_the_keep_size_then_halved_down_to_nothing() {
        let mut fit = Fit::new(5_000_000);
        assert_eq!((fit.kept(), fit.is_cut()), (5_000_000, false));
        let mut sizes = vec![];
        while fit.shrink() {
            sizes.push(fit.kept());
        }
        assert_eq!(sizes[0], KEEP_AFTER_REFUSAL);
        assert_eq!(sizes[1], KEEP_AFTER_REFUSAL / 2);
        assert_eq!(*sizes.last().unwrap(), 0);
        assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
        assert!(fit.is_cut());
    }

    #[test]
    fn a_small_refused_payload_is_halved_not_grown() {
        let mut fit = Fit::new(1000);
        assert!(fit.shrink());
        assert_eq!(fit.kept(), 500);
    }

    #[test]
    fn the_original_length_is_recorded_only_once_cut() {
        let base = OwnedHeaders::new().insert(Header { key: "origin", value: Some("camera") });
        let mut fit = Fit::new(9000);
        assert_eq!(fit.headers(&base).count(), 1);
        fit.shrink();
        let h = fit.headers(&base);
        assert_eq!(h.count(), 2);
        let last = h.get(1);
        assert_eq!(last.key, HEADER_ORIGINAL_BYTES);
        assert_eq!(last.value, Some(&b"9000"[..]));
    }
}
