//! Token verification: JWT with pinned algorithms.

mod jwt;

pub use jwt::JwtVerifier;
