//! Every registry model names its classifier (`ModelInfo::head`) correctly: building it with
//! another number of classes changes exactly the head's weight and bias (`[classes, features]`
//! and `[classes]`) and no other parameter, as `model.fc = nn.Linear(features, classes)` does
//! in torchvision. `ModelInfo::parameter_shapes` builds them on broadcast zeros, so even
//! ZFNet's 107 M parameters cost no memory.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::collections::BTreeMap;

fn shapes(info: &convnets_zoo::ModelInfo, classes: usize) -> BTreeMap<String, Vec<usize>> {
    info.parameter_shapes(classes)
        .unwrap_or_else(|e| panic!("{}: {e}", info.name))
        .into_iter()
        .collect()
}

#[test]
fn every_model_replaces_exactly_its_head() {
    for info in convnets_zoo::models() {
        let usual = shapes(info, info.classes);
        let other = shapes(info, 3);
        let head_w = format!("{}.weight", info.head);
        let head_b = format!("{}.bias", info.head);
        let heads: Vec<&String> = usual.keys().filter(|n| info.is_head(n)).collect();
        assert_eq!(heads, [&head_b, &head_w], "{}: head tensors", info.name);
        let features = usual[&head_w][1];
        assert_eq!(usual[&head_w], [info.classes, features], "{}", info.name);
        assert_eq!(other[&head_w], [3, features], "{}", info.name);
        assert_eq!(other[&head_b], [3], "{}", info.name);
        for (name, shape) in &usual {
            if !info.is_head(name) {
                assert_eq!(other.get(name), Some(shape), "{}: {name}", info.name);
            }
        }
        assert_eq!(usual.len(), other.len(), "{}", info.name);
    }
}

#[test]
fn head_prefix_matches_whole_names_only() {
    let info = &convnets_zoo::registry::RESNET18;
    assert!(info.is_head("fc.weight") && info.is_head("fc.bias"));
    assert!(!info.is_head("fc2.weight") && !info.is_head("layer1.0.fc.weight"));
}

#[test]
fn zero_classes_is_an_error_naming_the_model() {
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let err = convnets_zoo::registry::LENET5
        .build_with_classes(vb, 0)
        .err()
        .expect("0 classes must fail");
    assert!(err.to_string().contains("lenet5"), "{err}");
}
