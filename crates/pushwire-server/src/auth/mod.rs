//! Token verification: JWT with algorithms pinned by configuration.
//!
//! Layout:
//! - `algorithms`: which `alg` values a key set accepts (from its keys and the pin list).
//! - `keys`: a key set (HMAC secret, RSA/ECDSA PEM keys, JWKS) and the verification order.
//! - `jwks`: the JWKS cache (fixed URL, keyed by issuer and `kid`, rate-limited refresh,
//!   bounded fetch).
//! - `claims`: connection and subscription claims → the core's credentials.
//! - `numeric_date`: `exp`/`nbf` as RFC 7519 NumericDates (fractional ones too), checked.
//! - `jwt`: [`JwtVerifier`], the core's `TokenVerifier`.

mod algorithms;
mod claims;
mod jwks;
mod jwt;
mod keys;
mod numeric_date;

pub use jwt::JwtVerifier;
