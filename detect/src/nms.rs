//! Greedy non-maximum suppression, per class (a person box never suppresses a bicycle box).

/// An axis-aligned box in pixels, `x1 <= x2`, `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Rect {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    pub fn iou(&self, o: &Rect) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Clips to `[0, w] x [0, h]`.
    pub fn clip(&self, w: f32, h: f32) -> Rect {
        Rect {
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
            x2: self.x2.clamp(0.0, w),
            y2: self.y2.clamp(0.0, h),
        }
    }
}

/// A scored, classified box before and after NMS.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub class_id: u32,
    pub score: f32,
    pub rect: Rect,
}

/// Keeps the best box of each overlapping group (IoU above `iou`) of the same class, best first, at most
/// `max_keep` boxes.
pub fn nms(mut candidates: Vec<Candidate>, iou: f32, max_keep: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept.len() >= max_keep {
            break;
        }
        let suppressed = kept.iter().any(|k| k.class_id == c.class_id && k.rect.iou(&c.rect) > iou);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(class_id: u32, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Candidate {
        Candidate { class_id, score, rect: Rect { x1, y1, x2, y2 } }
    }

    #[test]
    fn iou_basics() {
        let a = Rect { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let b = Rect { x1: 5.0, y1: 0.0, x2: 15.0, y2: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        let far = Rect { x1: 20.0, y1: 20.0, x2: 30.0, y2: 30.0 };
        assert_eq!(a.iou(&far), 0.0);
        let empty = Rect { x1: 3.0, y1: 3.0, x2: 3.0, y2: 3.0 };
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn no_boxes_gives_no_boxes() {
        assert!(nms(vec![], 0.5, 100).is_empty());
    }

    #[test]
    fn all_overlapping_keeps_only_the_best() {
        let boxes =
            vec![c(1, 0.6, 0.0, 0.0, 10.0, 10.0), c(1, 0.9, 1.0, 1.0, 11.0, 11.0), c(1, 0.7, 0.5, 0.5, 10.5, 10.5)];
        let kept = nms(boxes, 0.45, 100);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].score, 0.9);
    }

    #[test]
    fn different_classes_do_not_suppress_each_other() {
        let kept = nms(vec![c(1, 0.9, 0.0, 0.0, 10.0, 10.0), c(2, 0.8, 0.0, 0.0, 10.0, 10.0)], 0.45, 100);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn separate_boxes_all_survive_in_score_order_up_to_the_cap() {
        let boxes =
            (0..5).map(|i| c(1, 0.5 + i as f32 * 0.1, i as f32 * 20.0, 0.0, i as f32 * 20.0 + 10.0, 10.0)).collect();
        let kept = nms(boxes, 0.45, 3);
        assert_eq!(kept.iter().map(|k| (k.score * 10.0).round() as i32).collect::<Vec<_>>(), vec![9, 8, 7]);
    }

    #[test]
    fn clip_keeps_boxes_inside_the_frame() {
        let r = Rect { x1: -5.0, y1: -1.0, x2: 700.0, y2: 100.0 }.clip(640.0, 480.0);
        assert_eq!(r, Rect { x1: 0.0, y1: 0.0, x2: 640.0, y2: 100.0 });
    }
}
