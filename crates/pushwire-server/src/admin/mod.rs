//! The admin web page at `/admin`: live node numbers, a messages-per-second chart, channels,
//! publish, history and disconnect, for operators looking at one node.
//!
//! Off unless `admin.enabled`: no route is mounted, so every `/admin` path answers 404.
//! The page (plain HTML/CSS/JS in `assets/`, compiled into the binary) logs in with
//! `admin.password`; the session is an HS256 token signed with `admin.secret`, carried in an
//! `HttpOnly; SameSite=Strict` cookie or as `Authorization: Bearer <token>`. Failed logins are
//! limited per client address (`admin.login_attempts_per_minute`, then 429).
//!
//! Endpoints: `GET /admin` (+ `app.js`, `app.css`), `POST /admin/api/login`,
//! `POST /admin/api/logout`, and behind the session: `GET /admin/api/stats` (the live
//! numbers) and `POST /admin/api/<method>`, which runs any server API method through the
//! server API's own handler ([`crate::api::handler::handle`]).
//!
//! Files: [`assets`], [`session`] (tokens, cookie, the auth layer), [`limiter`] (failed
//! logins), [`login`], [`endpoints`].

pub mod assets;
pub mod endpoints;
pub mod limiter;
pub mod login;
pub mod session;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;
use limiter::LoginLimiter;
use session::Sessions;

/// What the admin handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The application (node, configuration).
    pub app: AppState,
    /// Session tokens.
    pub sessions: Arc<Sessions>,
    /// Failed-login limiter.
    pub limiter: Arc<LoginLimiter>,
}

/// The admin routes, or none when `admin.enabled` is false.
pub fn routes(state: &AppState) -> Router<AppState> {
    let cfg = &state.config.admin;
    if !cfg.enabled {
        return Router::new();
    }
    let admin = AdminState {
        app: state.clone(),
        sessions: Arc::new(Sessions::new(cfg, state.node.id())),
        limiter: Arc::new(LoginLimiter::new(cfg.login_attempts_per_minute)),
    };
    let protected = Router::new()
        .route("/admin/api/stats", get(endpoints::stats))
        .route("/admin/api/{method}", post(endpoints::call))
        .route_layer(middleware::from_fn_with_state(
            admin.clone(),
            session::require,
        ));
    Router::new()
        .route("/admin", get(assets::index))
        .route("/admin/", get(assets::index))
        .route("/admin/app.js", get(assets::script))
        .route("/admin/app.css", get(assets::style))
        .route("/admin/api/login", post(login::login))
        .route("/admin/api/logout", post(login::logout))
        .merge(protected)
        .layer(DefaultBodyLimit::max(state.config.http_api.max_body_size))
        .with_state(admin)
}
