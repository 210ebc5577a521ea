//! Decoding with the checks every reader needs: well-formed protobuf, a schema version this build
//! understands, and the fields without which the message is meaningless.

use prost::Message;

use crate::{Detections, Encoding, Frame, SCHEMA_VERSION};

/// Why a payload is not a usable message. The text goes into dead-letter headers, so it names the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("payload is not a protobuf {kind}: {reason}")]
    NotProtobuf { kind: &'static str, reason: String },
    #[error("{kind} has schema_version {found}, this build reads versions 1..={SCHEMA_VERSION}; upgrade framewire")]
    UnsupportedVersion { kind: &'static str, found: u32 },
    #[error("{kind} has no camera_id")]
    MissingCamera { kind: &'static str },
    #[error("frame encoding {0} is not supported (only JPEG)")]
    UnsupportedEncoding(i32),
    #[error("frame has an empty image")]
    EmptyImage,
}

fn check_version(kind: &'static str, version: u32) -> Result<(), DecodeError> {
    // Version 0 means the writer never set the field: not a framewire message.
    if version == 0 || version > SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion { kind, found: version });
    }
    Ok(())
}

/// Decodes and validates a `Frame` payload.
pub fn decode_frame(payload: &[u8]) -> Result<Frame, DecodeError> {
    const KIND: &str = "Frame";
    let frame = Frame::decode(payload).map_err(|e| DecodeError::NotProtobuf { kind: KIND, reason: e.to_string() })?;
    check_version(KIND, frame.schema_version)?;
    if frame.camera_id.is_empty() {
        return Err(DecodeError::MissingCamera { kind: KIND });
    }
    if frame.encoding != Encoding::Jpeg as i32 {
        return Err(DecodeError::UnsupportedEncoding(frame.encoding));
    }
    if frame.image.is_empty() {
        return Err(DecodeError::EmptyImage);
    }
    Ok(frame)
}

/// Decodes and validates a `Detections` payload.
pub fn decode_detections(payload: &[u8]) -> Result<Detections, DecodeError> {
    const KIND: &str = "Detections";
    let d = Detections::decode(payload).map_err(|e| DecodeError::NotProtobuf { kind: KIND, reason: e.to_string() })?;
    check_version(KIND, d.schema_version)?;
    if d.camera_id.is_empty() {
        return Err(DecodeError::MissingCamera { kind: KIND });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectionBox;

    fn frame() -> Frame {
        Frame {
            schema_version: SCHEMA_VERSION,
            camera_id: "cam-1".into(),
            seq: 42,
            capture_time_ms: 1_700_000_000_123,
            stream_time_us: 1_680_000,
            width: 640,
            height: 272,
            encoding: Encoding::Jpeg as i32,
            image: vec![0xff, 0xd8, 0xff, 0xd9],
            source_uri: "file:///videos/bikes.mp4".into(),
            capture_clock: crate::CaptureClock::Ingest as i32,
            object: None,
            stage_times: Some(crate::StageTimes {
                decoded_us: 1,
                encoded_us: 2,
                published_us: 3,
                ..Default::default()
            }),
            unchanged_before: 3,
            keepalive: true,
        }
    }

    #[test]
    fn frame_round_trips() {
        let f = frame();
        let bytes = f.encode_to_vec();
        assert_eq!(decode_frame(&bytes).unwrap(), f);
    }

    #[test]
    fn detections_round_trip() {
        let d = Detections {
            schema_version: SCHEMA_VERSION,
            camera_id: "cam-1".into(),
            seq: 7,
            boxes: vec![DetectionBox {
                class_id: 1,
                label: "person".into(),
                score: 0.9,
                x1: 1.0,
                y1: 2.0,
                x2: 3.0,
                y2: 4.0,
            }],
            model_version: "abcdef012345".into(),
            ..Default::default()
        };
        assert_eq!(decode_detections(&d.encode_to_vec()).unwrap(), d);
    }

    #[test]
    fn garbage_is_rejected_with_reason() {
        let err = decode_frame(b"\xff\xff\xff\xff not protobuf").unwrap_err();
        assert!(matches!(err, DecodeError::NotProtobuf { .. }), "{err}");
    }

    #[test]
    fn a_detections_message_is_not_a_frame() {
        // Field numbers overlap, so prost may decode it; the checks must still refuse it.
        let d = Detections { schema_version: 1, camera_id: "c".into(), ..Default::default() };
        assert!(decode_frame(&d.encode_to_vec()).is_err());
    }

    #[test]
    fn future_and_missing_versions_are_rejected() {
        let mut f = frame();
        f.schema_version = SCHEMA_VERSION + 1;
        assert_eq!(
            decode_frame(&f.encode_to_vec()).unwrap_err(),
            DecodeError::UnsupportedVersion { kind: "Frame", found: SCHEMA_VERSION + 1 }
        );
        f.schema_version = 0;
        assert!(matches!(decode_frame(&f.encode_to_vec()), Err(DecodeError::UnsupportedVersion { .. })));
    }

    #[test]
    fn frames_need_camera_and_image() {
        let mut f = frame();
        f.camera_id.clear();
        assert_eq!(decode_frame(&f.encode_to_vec()).unwrap_err(), DecodeError::MissingCamera { kind: "Frame" });
        let mut f = frame();
        f.image.clear();
        assert_eq!(decode_frame(&f.encode_to_vec()).unwrap_err(), DecodeError::EmptyImage);
    }
}
