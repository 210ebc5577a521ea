//! The name of one frame's snapshot, relative to wherever snapshots are kept.

/// Keeps a name usable as one path component on every filesystem and object store.
pub fn sanitize(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with('.') { format!("_{out}") } else { out }
}

/// `CAMERA/SEQ-MODEL.jpg`: a replay with the same model writes the same snapshot, a new model its own.
pub fn key_for(camera: &str, seq: u64, model: &str) -> String {
    format!("{}/{seq}-{}.jpg", sanitize(camera), sanitize(model))
}

/// The frame sequence number in a snapshot's key, if it has one: what orders snapshots written within the
/// same second, since object stores keep modification times to the second.
pub(super) fn seq_of(key: &str) -> Option<u64> {
    let file = key.rsplit('/').next()?;
    file.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize("door/1"), "door_1");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(key_for("lobby", 7, "ssd@1"), "lobby/7-ssd_1.jpg");
        assert_eq!(seq_of("lobby/17-ssd_1.jpg"), Some(17));
        assert_eq!(seq_of("notes.jpg"), None);
    }
}
