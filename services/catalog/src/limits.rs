//! The gateway's default rate limits: requests per second and burst, per client address
//! and per signed-in user. `veche up`, `veche serve gateway` and the operator's rendering
//! of a Platform without `spec.gateway.rateLimits` all start from these.

/// Requests a second one client address may make once its burst is spent.
pub const CLIENT_RPS: u32 = 20;
/// Requests one client address may make at once.
pub const CLIENT_BURST: u32 = 40;
/// Requests a second one signed-in user may make once their burst is spent.
pub const USER_RPS: u32 = 10;
/// Requests one signed-in user may make at once.
pub const USER_BURST: u32 = 20;
