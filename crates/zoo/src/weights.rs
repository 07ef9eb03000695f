//! Weights convnets trained itself, shipped in the repository's `weights/` folder: one variant
//! per file, with the model, the data set, the recipe that wrote it, its SHA-256 and the test
//! accuracy it reaches (style guide §13: typed weights). `weights/manifest.json` holds the same
//! data for other tools; `crates/train/tests/committed_weights.rs` checks the two against the
//! files and re-measures each accuracy on the real test set.
//!
//! ```
//! use convnets_zoo::KnownWeights;
//! let w = KnownWeights::from_name("residual-net-mnist").unwrap();
//! assert_eq!((w.model(), w.dataset(), w.test_accuracy()), ("residual-net", "mnist", 99.21));
//! assert!(w.path().ends_with("weights/residual-net-mnist.safetensors"));
//! assert_eq!(w.normalize(), Some(convnets_data::Normalize::MNIST));
//! assert_eq!(w.classes()[7], "7");
//! ```

use std::path::PathBuf;

/// A weights file of the repository's `weights/` folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownWeights {
    /// Seed 000's LeNet-5, seed 000's recipe (SGD lr 0.01, 20 epochs): 74.75 %.
    LeNet5FashionMnist,
    /// LeNet-5 with batch norm, Adam + cosine, 20 epochs: 90.62 %.
    LeNet5BnFashionMnist,
    /// Seed 004's MNIST CNN, seed 004's recipe: 98.67 %.
    MnistNetMnist,
    /// Seed 001's Inception network, momentum SGD + cosine, 10 epochs: 99.23 %.
    InceptionNetMnist,
    /// Seed 001's residual network, momentum SGD + cosine, 10 epochs: 99.21 %.
    ResidualNetMnist,
}

/// (name, model, data set, SHA-256, test accuracy %, recipe) per variant, in declaration order.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    &'static str,
);

impl KnownWeights {
    /// Every known weights file.
    pub const ALL: [KnownWeights; 5] = [
        KnownWeights::LeNet5FashionMnist,
        KnownWeights::LeNet5BnFashionMnist,
        KnownWeights::MnistNetMnist,
        KnownWeights::InceptionNetMnist,
        KnownWeights::ResidualNetMnist,
    ];

    fn row(&self) -> Row {
        match self {
            KnownWeights::LeNet5FashionMnist => (
                "lenet5-fashion-mnist",
                "lenet5",
                "fashion-mnist",
                "9b127fef292eec6ce2537252dcdab49ccda62df6f1bca9f7e99d671e239ace28",
                74.75,
                "lenet5-fashion-mnist",
            ),
            KnownWeights::LeNet5BnFashionMnist => (
                "lenet5-bn-fashion-mnist",
                "lenet5-bn",
                "fashion-mnist",
                "602d6dc6284521620b379abc22f1c569134411586d0f5e05312a98ec3defedcd",
                90.62,
                "lenet5-bn-fashion-mnist",
            ),
            KnownWeights::MnistNetMnist => (
                "mnist-net-mnist",
                "mnist-net",
                "mnist",
                "f8c6406474786b5759cefdedc776a36bab1c78ad66d91c80e50a3b47c48e0829",
                98.67,
                "mnist-net-mnist",
            ),
            KnownWeights::InceptionNetMnist => (
                "inception-net-mnist",
                "inception-net",
                "mnist",
                "be32c00b63b90ea59019ed9e52e69fbf3c8dfb456ad54ef6d85b1f363cf28dc2",
                99.23,
                "inception-net-mnist",
            ),
            KnownWeights::ResidualNetMnist => (
                "residual-net-mnist",
                "residual-net",
                "mnist",
                "6a216e8335cce970411b02078a67bc0dc90361253910f096198dd7abee621c79",
                99.21,
                "residual-net-mnist",
            ),
        }
    }

    /// The name (`lenet5-bn-fashion-mnist`): the file's stem, accepted by `--weights`.
    pub fn name(&self) -> &'static str {
        self.row().0
    }
    /// The registry model the weights are for.
    pub fn model(&self) -> &'static str {
        self.row().1
    }
    /// The data set they were trained on.
    pub fn dataset(&self) -> &'static str {
        self.row().2
    }
    /// Lower-case hex SHA-256 of the file.
    pub fn sha256(&self) -> &'static str {
        self.row().3
    }
    /// Test accuracy in percent (two decimals, as the run printed it).
    pub fn test_accuracy(&self) -> f64 {
        self.row().4
    }
    /// The recipe that trained them (seed 0): `cargo xtask train --recipe RECIPE`.
    pub fn recipe(&self) -> &'static str {
        self.row().5
    }
    /// The file in a checkout of the repository (`weights/NAME.safetensors`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../weights")
            .join(format!("{}.safetensors", self.name()))
    }
    /// The known weights called `name`.
    pub fn from_name(name: &str) -> Option<KnownWeights> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
    /// Where the weights come from: this repository (no hub revision to pin: the file is
    /// part of the checkout, checked by [`KnownWeights::sha256`]).
    pub fn source(&self) -> &'static str {
        "convnets repository, weights/ (trained by `cargo xtask train --recipe RECIPE`)"
    }
    /// The file name in `weights/`.
    pub fn file(&self) -> String {
        format!("{}.safetensors", self.name())
    }
    /// The normalization the weights were trained with (also in the file's metadata).
    pub fn normalize(&self) -> Option<convnets_data::Normalize> {
        match self {
            KnownWeights::LeNet5FashionMnist => None,
            KnownWeights::LeNet5BnFashionMnist => Some(convnets_data::Normalize::FASHION_MNIST),
            _ => Some(convnets_data::Normalize::MNIST),
        }
    }
    /// How image files are fitted to the model's 28x28 input ([`Preprocess::Fill`]).
    ///
    /// [`Preprocess::Fill`]: convnets_data::Preprocess::Fill
    pub fn preprocess(&self) -> convnets_data::Preprocess {
        convnets_data::Preprocess::Fill
    }
    /// The class names, by label (the data set's).
    pub fn classes(&self) -> Vec<String> {
        crate::saved::classes_of(self.dataset())
    }
}
