//! The shim's own API under `/_forge/v1/`.

use super::shim::Shim;

impl Shim {
    /// `GET /_forge/v1/health`, parsed; panics unless it answers 200.
    pub fn health(&self) -> serde_json::Value {
        let response = self.get("/_forge/v1/health");
        assert_eq!(response.status, 200, "health: {}", response.body_text());
        response.json()
    }
}
