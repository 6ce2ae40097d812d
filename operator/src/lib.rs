//! The Veche operator: `Platform` and `ServiceDeployment` custom resources, reconciled
//! into the Deployments, Services and Secrets of a running backend.
//!
//! The folder listing is the design: `crd` (the resources), `render` (pure functions
//! from spec to objects, no Kubernetes calls), `status` (pure aggregation of children's
//! state into conditions), `controller` (fetch, render, apply, report), `leader`
//! (Lease-based election), `telemetry` (metrics and probes).

pub mod controller;
pub mod crd;
pub mod leader;
pub mod render;
pub mod status;
pub mod telemetry;
