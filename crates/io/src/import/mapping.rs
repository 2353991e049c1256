//! Which column of an orders file holds what: the caller's [`ColumnHints`], detection by
//! common names, and the resolved [`OrdersMapping`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IoError;

/// The columns the caller names, by header (or by number, `1`, `2`, …, in a file without
/// a header). Columns left `None` are detected by their usual names when `detect` is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnHints {
    /// The customer id column (required: named or detected).
    pub customer_id: Option<String>,
    /// The order time column (required: named or detected).
    pub timestamp: Option<String>,
    /// The order amount column.
    pub amount: Option<String>,
    /// The order id column.
    pub order_id: Option<String>,
    /// A column naming each row's currency.
    pub currency_column: Option<String>,
    /// Whether columns not named here are looked for by their usual names. On by default;
    /// off means exactly the named columns are used.
    pub detect: bool,
}

impl Default for ColumnHints {
    fn default() -> Self {
        ColumnHints {
            customer_id: None,
            timestamp: None,
            amount: None,
            order_id: None,
            currency_column: None,
            detect: true,
        }
    }
}

/// How the rows of an orders file become track messages: the source column of each field,
/// the event name and the currency. Reported in the [`crate::ImportSummary`] so the caller
/// sees which columns detection chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersMapping {
    /// The column whose value becomes `userId`.
    pub customer_id: String,
    /// The column whose value becomes the message's `timestamp`.
    pub timestamp: String,
    /// The column whose value becomes `properties.revenue` (a number).
    pub amount: Option<String>,
    /// The column whose value becomes `properties.order_id` and keys the message id.
    pub order_id: Option<String>,
    /// The event name of every row (default `Order Completed`).
    pub event: String,
    /// The currency code recorded as `properties.currency` where the row names none.
    pub currency: Option<String>,
    /// A column naming each row's currency (`currency`, `币种`); its value wins over
    /// `currency`.
    pub currency_column: Option<String>,
}

/// The usual names of each column, compared after [`normalise`], best first.
const CUSTOMER_NAMES: &[&str] = &[
    "customerid",
    "userid",
    "custid",
    "memberid",
    "clientid",
    "buyerid",
    "accountid",
    "customerno",
    "customernumber",
    "customercode",
    "uid",
    "customer",
    "用户id",
    "客户id",
    "会员id",
    "买家id",
    "用户编号",
    "客户编号",
    "会员编号",
    "会员号",
    "用户",
    "客户",
    "会员",
    "买家",
];
const TIMESTAMP_NAMES: &[&str] = &[
    "orderdate",
    "orderedat",
    "ordertime",
    "orderdatetime",
    "purchasedate",
    "purchasedat",
    "purchasetime",
    "transactiondate",
    "transactiontime",
    "invoicedate",
    "timestamp",
    "createdat",
    "createtime",
    "createdate",
    "datetime",
    "date",
    "time",
    "paidat",
    "paytime",
    "下单时间",
    "订单时间",
    "下单日期",
    "订单日期",
    "交易时间",
    "交易日期",
    "支付时间",
    "付款时间",
    "创建时间",
    "日期",
    "时间",
];
const AMOUNT_NAMES: &[&str] = &[
    "amount",
    "revenue",
    "total",
    "ordertotal",
    "totalamount",
    "orderamount",
    "grandtotal",
    "totalprice",
    "sales",
    "value",
    "payment",
    "paid",
    "price",
    "金额",
    "订单金额",
    "实付金额",
    "支付金额",
    "付款金额",
    "实收金额",
    "总金额",
    "销售额",
    "总价",
    "价格",
];
const ORDER_ID_NAMES: &[&str] = &[
    "orderid",
    "ordernumber",
    "orderno",
    "ordercode",
    "invoiceid",
    "invoiceno",
    "invoicenumber",
    "invoice",
    "transactionid",
    "id",
    "订单号",
    "订单编号",
    "订单id",
    "交易号",
    "交易编号",
];
const CURRENCY_NAMES: &[&str] = &["currency", "currencycode", "币种", "货币"];

/// A header as compared for detection: lowercase, without spaces, `_`, `-` and `.`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '\u{3000}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The columns of a mapping as positions in the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnIndexes {
    pub customer_id: usize,
    pub timestamp: usize,
    pub amount: Option<usize>,
    pub order_id: Option<usize>,
    pub currency: Option<usize>,
    /// Every other column, with the property key its value is stored under.
    pub others: Vec<(usize, String)>,
}

/// Property keys the mapping itself writes; a column of the same name is stored under
/// `column:<name>` instead, so neither value is lost.
const RESERVED_KEYS: &[&str] = &["revenue", "order_id", "currency"];

/// Resolves the mapping of a file whose columns are `headers` (already trimmed and made
/// unique).
pub(crate) fn resolve(
    path: &Path,
    headers: &[String],
    hints: &ColumnHints,
    event: &str,
    currency: Option<&str>,
) -> Result<(OrdersMapping, ColumnIndexes), IoError> {
    let mut used = vec![false; headers.len()];
    let named = |role: &'static str, name: &Option<String>, used: &mut Vec<bool>| {
        let Some(name) = name else { return Ok(None) };
        let index = find_named(headers, name).ok_or_else(|| IoError::UnknownColumn {
            path: path.to_path_buf(),
            role,
            name: name.clone(),
            found: headers.to_vec(),
        })?;
        used[index] = true;
        Ok::<_, IoError>(Some(index))
    };
    let customer = named("customer id", &hints.customer_id, &mut used)?;
    let timestamp = named("timestamp", &hints.timestamp, &mut used)?;
    let amount = named("amount", &hints.amount, &mut used)?;
    let order_id = named("order id", &hints.order_id, &mut used)?;
    let currency_column = named("currency", &hints.currency_column, &mut used)?;

    let detect = |wanted: bool, names: &[&str], used: &mut Vec<bool>| {
        if !wanted {
            return None;
        }
        let index = detect_column(headers, names, used)?;
        used[index] = true;
        Some(index)
    };
    let customer = customer.or_else(|| detect(hints.detect, CUSTOMER_NAMES, &mut used));
    let timestamp = timestamp.or_else(|| detect(hints.detect, TIMESTAMP_NAMES, &mut used));
    let amount = amount.or_else(|| detect(hints.detect, AMOUNT_NAMES, &mut used));
    let order_id = order_id.or_else(|| detect(hints.detect, ORDER_ID_NAMES, &mut used));
    let currency_column =
        currency_column.or_else(|| detect(hints.detect, CURRENCY_NAMES, &mut used));

    let missing = |role: &'static str, names: &[&str]| IoError::MissingColumn {
        path: path.to_path_buf(),
        role,
        looked_for: names[..6.min(names.len())].join(", ") + ", …",
        found: headers.to_vec(),
    };
    let customer = customer.ok_or_else(|| missing("customer id", CUSTOMER_NAMES))?;
    let timestamp = timestamp.ok_or_else(|| missing("timestamp", TIMESTAMP_NAMES))?;

    let others = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| !used[*i])
        .map(|(i, name)| {
            let key = if RESERVED_KEYS.contains(&name.as_str()) {
                format!("column:{name}")
            } else {
                name.clone()
            };
            (i, key)
        })
        .collect();
    let name_of = |i: Option<usize>| i.map(|i| headers[i].clone());
    let mapping = OrdersMapping {
        customer_id: headers[customer].clone(),
        timestamp: headers[timestamp].clone(),
        amount: name_of(amount),
        order_id: name_of(order_id),
        event: event.to_string(),
        currency: currency.map(str::to_string),
        currency_column: name_of(currency_column),
    };
    let indexes = ColumnIndexes {
        customer_id: customer,
        timestamp,
        amount,
        order_id,
        currency: currency_column,
        others,
    };
    Ok((mapping, indexes))
}

/// The column the caller named: the exact header, else the one equal after [`normalise`].
fn find_named(headers: &[String], name: &str) -> Option<usize> {
    headers.iter().position(|h| h == name).or_else(|| {
        let wanted = normalise(name);
        headers.iter().position(|h| normalise(h) == wanted)
    })
}

/// The unused column whose normalised header comes first in `names`.
fn detect_column(headers: &[String], names: &[&str], used: &[bool]) -> Option<usize> {
    let normalised: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
    names.iter().find_map(|candidate| {
        normalised
            .iter()
            .enumerate()
            .find(|(i, h)| !used[*i] && h == candidate)
            .map(|(i, _)| i)
    })
}

/// Header names as used: trimmed, a blank one named `column N`, and a repeated one given
/// a suffix (`note`, `note_2`) so every column keeps its own property.
pub(crate) fn tidy_headers(raw: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, name) in raw.into_iter().enumerate() {
        let name = name.trim().to_string();
        let base = if name.is_empty() {
            format!("column {}", i + 1)
        } else {
            name
        };
        let mut candidate = base.clone();
        let mut n = 2;
        while out.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        tidy_headers(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn detects_english_and_chinese_headers() {
        let h = headers(&["Order ID", "Customer ID", "Order Date", "Total", "Note"]);
        let (m, ix) = resolve(
            Path::new("f"),
            &h,
            &ColumnHints::default(),
            "Order Completed",
            None,
        )
        .unwrap();
        assert_eq!(m.customer_id, "Customer ID");
        assert_eq!(m.timestamp, "Order Date");
        assert_eq!(m.amount.as_deref(), Some("Total"));
        assert_eq!(m.order_id.as_deref(), Some("Order ID"));
        assert_eq!(ix.others, vec![(4, "Note".to_string())]);

        let h = headers(&["用户ID", "下单时间", "金额", "订单号", "币种"]);
        let (m, ix) = resolve(
            Path::new("f"),
            &h,
            &ColumnHints::default(),
            "Order Completed",
            None,
        )
        .unwrap();
        assert_eq!(
            (m.customer_id.as_str(), m.timestamp.as_str()),
            ("用户ID", "下单时间")
        );
        assert_eq!(m.amount.as_deref(), Some("金额"));
        assert_eq!(m.order_id.as_deref(), Some("订单号"));
        assert_eq!(m.currency_column.as_deref(), Some("币种"));
        assert!(ix.others.is_empty());
    }

    #[test]
    fn named_columns_win_and_missing_ones_are_listed() {
        let h = headers(&["who", "when", "amount", "revenue"]);
        let hints = ColumnHints {
            customer_id: Some("WHO".into()),
            timestamp: Some("when".into()),
            ..ColumnHints::default()
        };
        let (m, ix) = resolve(Path::new("f"), &h, &hints, "Order Completed", Some("CNY")).unwrap();
        assert_eq!(m.customer_id, "who");
        assert_eq!(m.amount.as_deref(), Some("amount"));
        assert_eq!(ix.others, vec![(3, "column:revenue".to_string())]);

        let h = headers(&["who", "amount"]);
        let err = resolve(
            Path::new("orders.csv"),
            &h,
            &ColumnHints::default(),
            "e",
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("customer id") && text.contains("\"who\", \"amount\""),
            "{text}"
        );

        let hints = ColumnHints {
            customer_id: Some("nope".into()),
            ..ColumnHints::default()
        };
        let err = resolve(Path::new("f"), &h, &hints, "e", None).unwrap_err();
        assert_eq!(err.code(), "unknown_column");
    }

    #[test]
    fn headers_are_made_unique() {
        assert_eq!(
            headers(&[" a ", "", "a", "a"]),
            ["a", "column 2", "a_2", "a_3"]
        );
    }
}
