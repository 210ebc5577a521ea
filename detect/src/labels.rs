//! Class labels: line `i` of a labels file (1-based) names class id `i`; empty lines are unused ids (the
//! TF COCO label map skips some ids).

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct Labels {
    names: HashMap<u32, String>,
}

impl Labels {
    /// `first_id` is the id of the first line (1 for TF label maps, 0 for YOLO `names`).
    pub fn parse(text: &str, first_id: u32) -> Self {
        let names = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (first_id + i as u32, l.trim().to_string()))
            .collect();
        Labels { names }
    }

    pub fn load(path: &Path, first_id: u32) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Labels { path: path.into(), reason: e.to_string() })?;
        let labels = Self::parse(&text, first_id);
        if labels.names.is_empty() {
            return Err(Error::Labels { path: path.into(), reason: "file has no labels".into() });
        }
        Ok(labels)
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (u32, String)>) -> Self {
        Labels { names: pairs.into_iter().collect() }
    }

    /// The class id named `name`, if any.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| n.as_str() == name).map(|(id, _)| *id)
    }

    /// The label of `class_id`, or `class<id>` for ids the file does not name.
    pub fn name(&self, class_id: u32) -> String {
        self.names.get(&class_id).cloned().unwrap_or_else(|| format!("class{class_id}"))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_label_map_with_gaps() {
        let l = Labels::parse("person\nbicycle\ncar\n\nbus\n", 1);
        assert_eq!(l.name(1), "person");
        assert_eq!(l.name(3), "car");
        assert_eq!(l.name(4), "class4", "empty line is an unused id");
        assert_eq!(l.name(5), "bus");
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn zero_based_names() {
        let l = Labels::parse("person\nbicycle", 0);
        assert_eq!(l.name(0), "person");
        assert_eq!(l.name(1), "bicycle");
        assert_eq!(l.name(99), "class99");
    }
}
