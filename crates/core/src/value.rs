//! An event's value: the one number analyses sum and rank without reading the body.
//!
//! Stores keep it in a column next to time and name, so revenue per person (RFM, customer
//! lifetime value), trend sums and survey scores are scans, not JSON parses. It is the first
//! of [`VALUE_PROPERTIES`] among the event's properties that holds a finite number (a JSON
//! number, or a string that parses as one); NaN when none does.

use serde::Deserialize;
use serde_json::Value;

/// The properties an event's value is read from, first present wins: the Segment spec's
/// `revenue` and `value`, the e-commerce `total`, then the common `amount`, `price` and a
/// survey's `score`.
pub const VALUE_PROPERTIES: [&str; 6] = ["revenue", "value", "total", "amount", "price", "score"];

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    properties: Option<Props>,
}

#[derive(Deserialize)]
struct Props {
    revenue: Option<Value>,
    value: Option<Value>,
    total: Option<Value>,
    amount: Option<Value>,
    price: Option<Value>,
    score: Option<Value>,
}

fn number(v: &Option<Value>) -> Option<f64> {
    let x = match v.as_ref()? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// The value of an event given its stored body (a serialized [`crate::Message`]), NaN when
/// it has none or the body is not one.
pub fn event_value(body: &[u8]) -> f64 {
    // Most events carry none of the keys: a substring check skips the parse.
    if !VALUE_PROPERTIES.iter().any(|k| {
        memchr::memmem::find_iter(body, k.as_bytes())
            .any(|at| at > 0 && body[at - 1] == b'"' && body.get(at + k.len()) == Some(&b'"'))
    }) {
        return f64::NAN;
    }
    let Ok(Body {
        properties: Some(p),
    }) = serde_json::from_slice::<Body>(body)
    else {
        return f64::NAN;
    };
    [
        &p.revenue, &p.value, &p.total, &p.amount, &p.price, &p.score,
    ]
    .into_iter()
    .find_map(number)
    .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> f64 {
        event_value(json.as_bytes())
    }

    #[test]
    fn first_numeric_property_in_order_wins() {
        assert_eq!(v(r#"{"properties":{"price":3,"revenue":12.5}}"#), 12.5);
        assert_eq!(
            v(r#"{"properties":{"revenue":"oops","total":"7.25"}}"#),
            7.25
        );
        assert_eq!(v(r#"{"properties":{"score":9}}"#), 9.0);
    }

    #[test]
    fn absent_or_not_numeric_is_nan() {
        assert!(v(r#"{"properties":{"plan":"pro"}}"#).is_nan());
        // A key named like a value property outside `properties` does not count.
        assert!(v(r#"{"traits":{"revenue":5},"properties":{}}"#).is_nan());
        assert!(v(r#"{"properties":{"revenue":null,"value":true}}"#).is_nan());
        assert!(v(r#"{"properties":{"revenue":"1e999"}}"#).is_nan());
        assert!(v("not json \"revenue\"").is_nan());
        assert!(v(r#"{"properties":{"revenues":4}}"#).is_nan());
    }
}
