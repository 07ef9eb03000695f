//! ImageNet-1k's class names, for models that classify into its 1000 classes.

use std::sync::OnceLock;

/// The names file: one class per line, in class-index order (written by
/// `scripts/imagenet_classes.py` from torchvision's weights' metadata).
const CLASSES: &str = include_str!("imagenet/classes.txt");

/// The number of ImageNet-1k classes.
pub const IMAGENET_CLASSES: usize = 1000;

/// The 1000 ImageNet-1k class names in class-index order, as torchvision lists them
/// (`ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`): `imagenet_classes()[281]` is
/// `"tabby"`.
///
/// ```
/// let names = convnets_data::imagenet_classes();
/// assert_eq!((names.len(), names[0], names[281]), (1000, "tench", "tabby"));
/// ```
pub fn imagenet_classes() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| CLASSES.lines().collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thousand_distinct_names() {
        let names = super::imagenet_classes();
        assert_eq!(names.len(), super::IMAGENET_CLASSES);
        assert!(names.iter().all(|n| !n.is_empty() && n.trim() == *n));
        assert_eq!(names[999], "toilet tissue");
    }
}
