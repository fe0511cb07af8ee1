//! RFC 7519 NumericDate: seconds since the Unix epoch as a JSON number, integer or not
//! (`1796403714.0` is what Python's `json` and JavaScript's `Date.now() / 1000` produce).
//! `exp` and `nbf` are checked here rather than by the JWT decoder, which refuses fractional
//! dates and ignores an `nbf` of the wrong type.

use pushwire_core::auth::TokenError;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Whole seconds of a NumericDate (fractions truncated toward the past), or `None` when
/// `v` is not a finite number.
pub(crate) fn seconds(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

/// `#[serde(deserialize_with)]` for an optional NumericDate claim (`null` = absent).
pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => seconds(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not a NumericDate")),
    }
}

/// Checks the registered time claims of decoded `claims` at `now`: `nbf` must be a
/// NumericDate not after `now` (a malformed `nbf` is refused, never ignored); `exp` must be a
/// NumericDate after `now` (expired: [`TokenError::Expired`], also for a negative `exp`).
pub(crate) fn check(claims: &Value, now: i64) -> Result<(), TokenError> {
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        match seconds(nbf) {
            Some(t) if t <= now => {}
            Some(_) => return Err(TokenError::invalid("token not valid yet (nbf)")),
            None => return Err(TokenError::invalid("nbf is not a NumericDate")),
        }
    }
    if let Some(exp) = claims.get("exp").filter(|v| !v.is_null()) {
        match seconds(exp) {
            Some(t) if t > now => {}
            Some(_) => return Err(TokenError::Expired),
            None => return Err(TokenError::invalid("exp is not a NumericDate")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fractional_dates_count_and_malformed_ones_are_refused() {
        let now = 1_000;
        assert!(check(&json!({"exp": 1001.5, "nbf": 999.9}), now).is_ok());
        assert_eq!(check(&json!({"exp": 999.9}), now), Err(TokenError::Expired));
        assert_eq!(check(&json!({"exp": -5}), now), Err(TokenError::Expired));
        assert!(matches!(
            check(&json!({"nbf": 1001}), now),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            check(&json!({"nbf": "1001"}), now),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            check(&json!({"nbf": true}), now),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            check(&json!({"exp": "x"}), now),
            Err(TokenError::Invalid(_))
        ));
        assert!(check(&json!({"exp": null, "nbf": null}), now).is_ok());
        assert!(check(&json!({}), now).is_ok());
    }
}
