//! The HTTP server thread (tiny_http): `/metrics`, `/health`, `/streams`. It binds before
//! anything else starts (a taken port is a fatal start error) and is stopped by
//! `unblock()` at shutdown, then joined.

use std::sync::Arc;

use tiny_http::{Header, Method, Response, Server};

use crate::capture::streams::StreamRegistry;
use crate::health::Health;
use crate::metrics::Metrics;

/// What the handlers read.
pub struct State {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub streams: Arc<StreamRegistry>,
}

/// Binds `listen` ("ip:port").
pub fn bind(listen: &str) -> Result<Server, String> {
    Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Serves until `server.unblock()` is called.
pub fn serve(server: &Server, state: &State) {
    for request in server.incoming_requests() {
        let (status, content_type, body) = route(request.method(), request.url(), state);
        let mut response = Response::from_data(body).with_status_code(status);
        if let Some(h) = header("Content-Type", content_type) {
            response = response.with_header(h);
        }
        if let Err(e) = request.respond(response) {
            log::debug!("server: cannot respond: {e}");
        }
    }
}

fn route(method: &Method, url: &str, state: &State) -> (u16, &'static str, Vec<u8>) {
    if !matches!(method, Method::Get | Method::Head) {
        return (405, "text/plain", b"method not allowed\n".to_vec());
    }
    let path = url.split('?').next().unwrap_or("");
    match path {
        "/metrics" => (200, "text/plain; version=0.0.4", state.metrics.render()),
        "/health" => {
            let (ok, body) = state.health.report(state.streams.len());
            (
                if ok { 200 } else { 503 },
                "application/json",
                body.into_bytes(),
            )
        }
        "/streams" => (
            200,
            "application/json",
            state.streams.to_json().into_bytes(),
        ),
        _ => (
            404,
            "text/plain",
            b"not found: try /metrics, /health or /streams\n".to_vec(),
        ),
    }
}
