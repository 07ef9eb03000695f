//! Every registered model lists all its modules: models name their children by hand in
//! `Layer::children()`, and a forgotten field would vanish silently from `named_modules` and
//! `summary`. Each parameter (and buffer) name in the store must be `<module>.<tensor>` for a
//! leaf module of the tree, so every tensor is owned by a listed module.

use anyhow::{ensure, Result};
use candle_core::Device;
use convnets_layers::{named_modules, Layer, ParamStore};
use std::collections::BTreeMap;

/// The problems of `model` (built in `store`): tensors whose module is missing from the tree
/// or is not a leaf, and leaves whose own name disagrees with their place in the tree.
fn problems(model: &dyn Layer, store: &ParamStore) -> Vec<String> {
    let modules: BTreeMap<String, &dyn Layer> = named_modules(model).into_iter().collect();
    let mut out = Vec::new();
    for name in store.names() {
        let Some((module, _tensor)) = name.rsplit_once('.') else {
            out.push(format!("`{name}` is not <module>.<tensor>"));
            continue;
        };
        match modules.get(module) {
            None => out.push(format!("`{name}`: no module `{module}` in named_modules()")),
            Some(m) if !m.children().is_empty() => out.push(format!(
                "`{name}`: module `{module}` ({}) has children, so it is not the leaf that owns it",
                m.kind()
            )),
            Some(_) => {}
        }
    }
    for (path, m) in &modules {
        if let Some(own) = m.name() {
            if m.children().is_empty() && !path.is_empty() && own != path {
                out.push(format!("leaf `{path}` ({}) calls itself `{own}`", m.kind()));
            }
        }
    }
    out
}

#[test]
fn every_parameter_belongs_to_a_listed_leaf_module() -> Result<()> {
    let mut failures = Vec::new();
    for info in convnets_zoo::models() {
        let store = ParamStore::new(0, &Device::Cpu);
        let model = info.build(store.vb())?;
        ensure!(!store.names().is_empty(), "{}: no parameters", info.name);
        for p in problems(&*model, &store) {
            failures.push(format!("{}: {p}", info.name));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A two-layer net whose `children()` forgets `fc2`, and names `fc1` wrongly when asked.
struct Forgetful {
    fc1: convnets_layers::Linear,
    fc2: convnets_layers::Linear,
    misnamed: bool,
}

impl candle_core::ModuleT for Forgetful {
    fn forward_t(
        &self,
        x: &candle_core::Tensor,
        _train: bool,
    ) -> candle_core::Result<candle_core::Tensor> {
        use candle_core::Module;
        self.fc2.forward(&self.fc1.forward(x)?)
    }
}

impl Layer for Forgetful {
    fn kind(&self) -> &'static str {
        "Forgetful"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let key = if self.misnamed { "first" } else { "fc1" };
        vec![(key.into(), &self.fc1 as &dyn Layer)]
    }
}

#[test]
fn the_check_catches_a_forgotten_child() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    let mut net = Forgetful {
        fc1: convnets_layers::linear(4, 3, vb.pp("fc1"))?,
        fc2: convnets_layers::linear(3, 2, vb.pp("fc2"))?,
        misnamed: false,
    };
    let found = problems(&net, &store);
    assert_eq!(
        found,
        [
            "`fc2.weight`: no module `fc2` in named_modules()",
            "`fc2.bias`: no module `fc2` in named_modules()"
        ]
    );
    net.misnamed = true;
    let found = problems(&net, &store);
    assert!(
        found.contains(&"leaf `first` (Linear) calls itself `fc1`".to_string()),
        "{found:?}"
    );
    Ok(())
}
