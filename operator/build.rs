// The version stamp of `veche-operator --version`: the same rule as `veche`'s.
include!("../services/veche/build.rs");
