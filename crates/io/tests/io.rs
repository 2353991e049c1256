//! Integration tests of import and export against a real store in a temporary folder.
//!
//! Expected counts come from the fixtures as described here (line by line), not from
//! the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lodestar_core::{FixedClock, Message, ProjectId, Timestamp};
use lodestar_ingest::{Limits, Route, decode_request};
use lodestar_io::export::{EVENT_COLUMNS, PROFILE_COLUMNS, WARNING_COLUMNS, neutralise};
use lodestar_io::{
    ColumnHints, Delimiter, Format, ImportOptions, ImportSummary, IoError, OrdersMapping,
    export_events, export_profiles, export_warnings, import_file,
};
use lodestar_store::{AppendBatch, EventStore, Store, StoreConfig};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: i64 = 1_720_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn open_store(dir: &Path) -> Arc<Store> {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        maintenance_interval_ms: 0,
        ..StoreConfig::default()
    };
    Store::open(config, Arc::new(FixedClock::new(Timestamp(NOW)))).unwrap()
}

fn project(store: &Store, name: &str) -> ProjectId {
    store.create_project(name).unwrap().0.id
}

fn import(
    store: &Store,
    project: ProjectId,
    path: &Path,
    options: &ImportOptions,
) -> ImportSummary {
    let summary = import_file(store, project, path, options, &mut |_| {}).unwrap();
    assert_eq!(
        summary.rows,
        summary.stored + summary.duplicates + summary.rejected,
        "every row is accounted for: {summary:#?}"
    );
    summary
}

/// Every stored message, by message id.
fn messages(store: &Store, project: ProjectId) -> BTreeMap<String, Message> {
    let mut out = BTreeMap::new();
    store
        .for_each_event(project, &mut |_, _, m| {
            assert!(
                out.insert(m.message_id.clone(), m).is_none(),
                "a message id stored twice"
            );
            Ok(())
        })
        .unwrap();
    out
}

fn count_by_code(outcomes: &[(u64, &str)]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (_, code) in outcomes {
        if !matches!(*code, "ok" | "duplicate") {
            *out.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn chinese_orders_csv_with_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let path = fixture("orders_cn.csv");

    // What each data row of the fixture should come to, by the line it starts on.
    let expected: [(u64, &str); 11] = [
        (2, "ok"),                 // ¥1,234.50, a quoted comma
        (3, "ok"),                 // 2024/03/02, $12.00, doubled quotes
        (4, "invalid_timestamp"),  // 昨天
        (5, "missing_id"),         // blank customer
        (6, "ok"),                 // "1,000", no seconds, empty last cell
        (7, "invalid_amount"),     // abc
        (8, "blocked_id"),         // null
        (9, "wrong_column_count"), // four fields
        (10, "duplicate"),         // order A1002 again
        (11, "ok"),                // ￥99, a note over two lines
        (13, "ok"),                // (5.00): a refund
    ];
    let ok = expected.iter().filter(|(_, c)| *c == "ok").count() as u64;
    let duplicate = expected.iter().filter(|(_, c)| *c == "duplicate").count() as u64;
    let rejected = expected.len() as u64 - ok - duplicate;

    let mut calls = Vec::new();
    let summary = import_file(&*store, shop, &path, &ImportOptions::default(), &mut |p| {
        calls.push(p)
    })
    .unwrap();
    assert_eq!(summary.rows, expected.len() as u64);
    assert_eq!(summary.stored, ok);
    assert_eq!(summary.duplicates, duplicate);
    assert_eq!(summary.rejected, rejected);
    assert_eq!(summary.rejected_by_reason, count_by_code(&expected));
    let lines: Vec<(u64, &str)> = summary
        .examples
        .iter()
        .map(|p| (p.line, p.code.as_str()))
        .collect();
    let want: Vec<(u64, &str)> = expected
        .iter()
        .filter(|(_, c)| !matches!(*c, "ok" | "duplicate"))
        .copied()
        .collect();
    assert_eq!(lines, want);
    let last = calls.last().expect("progress is reported");
    assert_eq!(last.bytes_read, last.bytes_total);
    assert_eq!(last.bytes_total, std::fs::metadata(&path).unwrap().len());

    let mapping = summary.mapping.as_ref().unwrap();
    assert_eq!(mapping.customer_id, "用户ID");
    assert_eq!(mapping.timestamp, "下单时间");
    assert_eq!(mapping.amount.as_deref(), Some("金额"));
    assert_eq!(mapping.order_id.as_deref(), Some("订单号"));

    let stored = messages(&store, shop);
    let by_order: BTreeMap<String, &Message> = stored
        .values()
        .map(|m| (m.properties["order_id"].as_str().unwrap().to_string(), m))
        .collect();
    assert_eq!(
        by_order.keys().collect::<Vec<_>>(),
        ["A1001", "A1002", "A1005", "A1009", "A1010"]
    );
    let first = by_order["A1001"];
    assert_eq!(first.user_id.as_deref(), Some("C001"));
    assert_eq!(first.event.as_deref(), Some("Order Completed"));
    assert_eq!(
        first.timestamp,
        Timestamp::parse("2024-03-01T10:00:00Z").unwrap()
    );
    assert_eq!(first.received_at, first.timestamp);
    assert_eq!(first.properties["revenue"], json!(1234.5));
    assert_eq!(first.properties["渠道"], json!("天猫"));
    assert_eq!(first.properties["备注"], json!("含逗号, 的备注"));
    assert_eq!(by_order["A1002"].properties["备注"], json!("他说 \"好\""));
    assert_eq!(by_order["A1005"].properties["revenue"], json!(1000.0));
    assert!(
        !by_order["A1005"].properties.contains_key("备注"),
        "empty cells are left out"
    );
    assert_eq!(
        by_order["A1009"].properties["备注"],
        json!("第一行\r\n第二行")
    );
    assert_eq!(by_order["A1009"].properties["revenue"], json!(99.0));
    assert_eq!(by_order["A1010"].properties["revenue"], json!(-5.0));

    // The rejected rows are in the quarantine with line and column.
    let quarantine = store.warnings(shop, 100, None).unwrap();
    let mut fields: Vec<(String, String)> = quarantine
        .iter()
        .filter(|w| w.severity == "rejected")
        .map(|w| (w.code.clone(), w.field.clone()))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            (
                "blocked_id".to_string(),
                "line 8, column 用户ID".to_string()
            ),
            (
                "invalid_amount".to_string(),
                "line 7, column 金额".to_string()
            ),
            (
                "invalid_timestamp".to_string(),
                "line 4, column 下单时间".to_string()
            ),
            (
                "missing_id".to_string(),
                "line 5, column 用户ID".to_string()
            ),
            ("wrong_column_count".to_string(), "line 9".to_string()),
        ]
    );
    let bad_date = quarantine
        .iter()
        .find(|w| w.code == "invalid_timestamp")
        .unwrap();
    assert_eq!(bad_date.raw, "C003,昨天,88.00,A1003,天猫,bad date");

    // A re-run stores nothing new.
    let again = import(&store, shop, &path, &ImportOptions::default());
    assert_eq!(again.stored, 0);
    assert_eq!(again.duplicates, ok + duplicate);
    assert_eq!(again.rejected, rejected);
    assert_eq!(messages(&store, shop).len() as u64, ok);

    let text = again.to_string();
    assert!(
        text.contains("stored      0") && text.contains("invalid_amount 1"),
        "{text}"
    );
}

#[test]
fn identical_rows_without_order_ids_stay_apart_and_reruns_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let path = fixture("orders_plain.csv");

    // Five data rows, two of them identical; the trailing blank line is not a row.
    let options = ImportOptions {
        currency: Some("USD".to_string()),
        ..ImportOptions::default()
    };
    let first = import(&store, shop, &path, &options);
    assert_eq!(
        (first.rows, first.stored, first.duplicates, first.rejected),
        (5, 5, 0, 0)
    );
    let stored = messages(&store, shop);
    let u1: Vec<&Message> = stored
        .values()
        .filter(|m| m.user_id.as_deref() == Some("u1"))
        .collect();
    assert_eq!(u1.len(), 2, "identical rows are two orders");
    assert_eq!(u1[0].properties, u1[1].properties);
    assert!(stored.keys().all(|id| id.starts_with("row-")));
    let u3 = stored
        .values()
        .find(|m| m.user_id.as_deref() == Some("u3"))
        .unwrap();
    assert_eq!(u3.properties["revenue"], json!(1234.5));
    assert_eq!(
        u3.properties["qty"],
        json!("007"),
        "leading zeros keep a cell text"
    );
    assert_eq!(u3.properties["currency"], json!("USD"));
    let u4 = stored
        .values()
        .find(|m| m.user_id.as_deref() == Some("u4"))
        .unwrap();
    assert_eq!(u4.timestamp, Timestamp::parse("2024-01-08").unwrap());
    assert_eq!(u4.properties["revenue"], json!(7.5));
    assert_eq!(u4.properties["qty"], json!(1));

    let again = import(&store, shop, &path, &options);
    assert_eq!((again.rows, again.stored, again.duplicates), (5, 0, 5));
    assert_eq!(messages(&store, shop).len(), 5);
}

#[test]
fn headerless_whitespace_cdnow_file_with_an_explicit_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let cdnow = project(&store, "cdnow");
    let path = fixture("cdnow_sample_300.txt");

    // The reference: master id, sample id, date, CDs, dollars; one purchase a line.
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let customers: BTreeSet<&str> = rows.iter().map(|r| r[0]).collect();
    let dollars: f64 = rows.iter().map(|r| r[4].parse::<f64>().unwrap()).sum();

    let mapping = OrdersMapping {
        customer_id: "1".to_string(),
        timestamp: "3".to_string(),
        amount: Some("5".to_string()),
        order_id: None,
        event: "Order Completed".to_string(),
        currency: Some("USD".to_string()),
        currency_column: None,
    };
    let options = ImportOptions {
        delimiter: Some(Delimiter::Whitespace),
        has_header: false,
        ..ImportOptions::with_mapping(&mapping)
    };
    let summary = import(&store, cdnow, &path, &options);
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.stored, rows.len() as u64);
    assert_eq!(summary.rejected, 0);

    let stored = messages(&store, cdnow);
    let revenue: f64 = stored
        .values()
        .map(|m| m.properties["revenue"].as_f64().unwrap())
        .sum();
    assert!((revenue - dollars).abs() < 1e-6, "{revenue} vs {dollars}");
    let users: BTreeSet<String> = stored
        .values()
        .map(|m| m.user_id.clone().unwrap())
        .collect();
    assert_eq!(users.len(), customers.len());
    assert!(users.contains("00004"), "ids keep their leading zeros");
    let first = stored
        .values()
        .find(|m| m.user_id.as_deref() == Some("00004"))
        .unwrap();
    assert_eq!(
        first.properties["4"].as_i64().map(|n| n > 0),
        Some(true),
        "the CD count is a number"
    );
    let mut profiles = 0;
    store
        .for_each_profile(cdnow, &mut |_| {
            profiles += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(profiles, customers.len());

    // The delimiter is also found without being named.
    let sniffed = ImportOptions {
        has_header: false,
        ..ImportOptions::with_mapping(&mapping)
    };
    let again = import(&store, cdnow, &path, &sniffed);
    assert_eq!((again.stored, again.duplicates), (0, rows.len() as u64));
}

#[test]
fn missing_columns_are_named_with_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let path = dir.path().join("odd.csv");
    std::fs::write(&path, "who,when_it_was,spent\na,2024-01-01,3\n").unwrap();
    let err =
        import_file(&*store, shop, &path, &ImportOptions::default(), &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "missing_column");
    assert!(err.is_user_error());
    let text = err.to_string();
    assert!(
        text.contains("customer id") && text.contains("\"who\", \"when_it_was\", \"spent\""),
        "{text}"
    );

    let options = ImportOptions {
        columns: ColumnHints {
            customer_id: Some("who".into()),
            timestamp: Some("when_it_was".into()),
            amount: Some("spent".into()),
            ..ColumnHints::default()
        },
        ..ImportOptions::default()
    };
    let summary = import(&store, shop, &path, &options);
    assert_eq!(summary.stored, 1);

    let err = import_file(
        &*store,
        shop,
        &dir.path().join("x.xlsx"),
        &options,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.code(), "format_not_detected");
    let err = import_file(
        &*store,
        shop,
        &dir.path().join("absent.csv"),
        &options,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, IoError::Read { .. }) && err.to_string().contains("absent.csv"),
        "{err}"
    );
}

#[test]
fn line_numbers_count_blank_lines_quoted_newlines_and_a_missing_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    for (name, newline) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let lines = [
            "customer_id,order_date,amount,note", // 1
            "a,2024-01-01,1,ok",                  // 2
            "",                                   // 3
            "",                                   // 4
            "b,never,1,bad date",                 // 5
            "c,2024-01-02,1,\"two",               // 6
            "lines\"",                            // 7
            "d,2024-01-03,x,bad amount",          // 8
            "",                                   // 9
            "e,2024-01-04,1,extra,field",         // 10, and no newline after it
        ];
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join(newline)).unwrap();
        let summary = import(&store, shop, &path, &ImportOptions::default());
        let got: Vec<(u64, &str)> = summary
            .examples
            .iter()
            .map(|p| (p.line, p.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, "invalid_timestamp"),
                (8, "invalid_amount"),
                (10, "wrong_column_count")
            ],
            "{name}"
        );
        assert_eq!((summary.rows, summary.rejected), (5, 3), "{name}");
    }
    let two_lines = messages(&store, shop)
        .into_values()
        .find(|m| m.user_id.as_deref() == Some("c"))
        .unwrap();
    assert!(
        two_lines.properties["note"]
            .as_str()
            .unwrap()
            .starts_with("two")
    );
}

#[test]
fn a_file_whose_first_rows_all_fail_stops_before_storing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let path = dir.path().join("wrong.csv");
    let mut text = String::from("customer_id,order_date,amount\n");
    for i in 0..1_500 {
        text.push_str(&format!("c{i},not a date,1\n"));
    }
    std::fs::write(&path, text).unwrap();
    let err =
        import_file(&*store, shop, &path, &ImportOptions::default(), &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "nothing_importable");
    assert!(err.to_string().contains("invalid_timestamp 1000"), "{err}");
    store.flush(shop).unwrap();
    assert!(messages(&store, shop).is_empty());
    assert!(store.warnings(shop, 10, None).unwrap().is_empty());
}

#[test]
fn jsonl_lines_decode_like_the_api_and_bad_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let app = project(&store, "app");
    let path = fixture("events_sdk.jsonl");
    // Lines 1–4 and 10 are good (3 and 4 are the same call without a messageId: two
    // events); 5 is not JSON, 6 has an unknown type, 7 has no time, 8 is blank, 9 has no id.
    let summary = import(&store, app, &path, &ImportOptions::default());
    assert_eq!((summary.rows, summary.stored, summary.rejected), (9, 5, 4));
    let want: BTreeMap<String, u64> = [
        ("invalid_json", 1),
        ("unknown_type", 1),
        ("missing_timestamp", 1),
        ("missing_id", 1),
    ]
    .into_iter()
    .map(|(c, n)| (c.to_string(), n))
    .collect();
    assert_eq!(summary.rejected_by_reason, want);
    assert_eq!(
        summary.examples.iter().map(|p| p.line).collect::<Vec<_>>(),
        [5, 6, 7, 9]
    );

    let stored = messages(&store, app);
    assert!(stored.contains_key("m-1") && stored.contains_key("m-2"));
    let viewed: Vec<&Message> = stored
        .values()
        .filter(|m| m.event.as_deref() == Some("Viewed"))
        .collect();
    assert_eq!(viewed.len(), 2);
    assert!(viewed.iter().all(|m| m.message_id.starts_with("jsonl-")));
    let page = stored
        .values()
        .find(|m| m.kind == lodestar_core::MessageKind::Page)
        .unwrap();
    assert_eq!(
        page.timestamp,
        Timestamp::parse("2024-03-04T00:00:00Z").unwrap()
    );
    assert_eq!(
        page.received_at,
        Timestamp::parse("2024-03-04T00:00:05Z").unwrap()
    );

    let again = import(&store, app, &path, &ImportOptions::default());
    assert_eq!((again.stored, again.duplicates), (0, 5));
}

/// A project with every kind of call, decoded the way the server decodes them.
fn seed_varied_project(store: &Store, project: ProjectId) -> usize {
    let body = json!({
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
        "batch": [
            {"type": "identify", "userId": "u1", "anonymousId": "a1",
             "traits": {"email": "u1@example.com", "plan": "pro"},
             "context": {"traits": {"city": "杭州"}}, "timestamp": "2024-03-01T10:00:00.123Z",
             "messageId": "id-1"},
            {"type": "track", "userId": "u1", "event": "Order Completed",
             "properties": {"revenue": 12.5, "items": [{"sku": "A"}], "$set": {"vip": true}},
             "timestamp": "2024-03-01T11:00:00Z", "messageId": "id-2"},
            {"type": "track", "anonymousId": "a2", "event": "=HYPERLINK(\"http://x\")",
             "properties": {"note": "+SUM(A1)"}, "timestamp": "2024-03-02T00:00:00Z"},
            {"type": "page", "userId": "u1", "name": "Home", "category": "Docs",
             "properties": {"path": "/"}, "originalTimestamp": "2024-03-02T01:00:00Z",
             "sentAt": "2024-03-02T01:00:02Z", "integrations": {"All": false}},
            {"type": "screen", "anonymousId": "a3", "name": "Cart", "channel": "mobile",
             "timestamp": "2024-03-02T02:00:00Z", "$set_once": {"first_seen": "2024-03-02"}},
            {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"},
             "timestamp": "2024-03-03T00:00:00Z"},
            {"type": "alias", "userId": "u2", "previousId": "a3", "timestamp": "2024-03-03T01:00:00Z"},
            {"type": "track", "userId": "-12.5", "event": "Refund",
             "properties": {"amount": -12.5, "who": "@admin"}, "timestamp": "2024-03-04T00:00:00Z"}
        ]
    });
    let received = Timestamp::parse("2024-03-05T00:00:00Z").unwrap();
    store_batch(store, project, &body, received)
}

/// Decodes a `/v1/batch` body as the API does (missing message ids numbered `gen-N`) and
/// stores it; returns the messages stored.
fn store_batch(store: &Store, project: ProjectId, body: &Value, received: Timestamp) -> usize {
    let mut n = 0;
    let mut new_id = || {
        n += 1;
        format!("gen-{n}")
    };
    let decoded = decode_request(
        Route::Batch,
        body.to_string().as_bytes(),
        received,
        &Limits::default(),
        &mut new_id,
    )
    .unwrap();
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let count = decoded.messages.len();
    let outcome = store
        .append(
            project,
            AppendBatch {
                messages: decoded.messages,
                ..AppendBatch::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap();
    assert_eq!(outcome.stored, count);
    count
}

#[test]
fn jsonl_export_imports_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let source = project(&store, "source");
    let count = seed_varied_project(&store, source);

    let path = dir.path().join("events.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let summary = export_events(&*store, source, Format::Jsonl, &mut file).unwrap();
    drop(file);
    assert_eq!(summary.rows, count as u64);
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        assert!(value["personId"].is_u64(), "{line}");
    }

    let copy = project(&store, "copy");
    let imported = import(&store, copy, &path, &ImportOptions::default());
    assert_eq!((imported.stored, imported.rejected), (count as u64, 0));
    let original = messages(&store, source);
    let round_tripped = messages(&store, copy);
    assert_eq!(original.len(), count);
    assert_eq!(original, round_tripped);

    let again = import(&store, copy, &path, &ImportOptions::default());
    assert_eq!((again.stored, again.duplicates), (0, count as u64));
}

#[test]
fn csv_exports_neutralise_formulas_but_keep_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let app = project(&store, "app");
    let count = seed_varied_project(&store, app);

    let mut out = Vec::new();
    let summary = export_events(&*store, app, Format::Csv, &mut out).unwrap();
    assert_eq!(summary.rows, count as u64);
    let mut reader = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        EVENT_COLUMNS
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), count);
    for record in &records {
        for cell in record.iter() {
            let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
            assert!(
                !risky || cell.parse::<f64>().is_ok(),
                "formula-leading cell {cell:?}"
            );
        }
    }
    let hyperlink = records.iter().find(|r| r[2].contains("HYPERLINK")).unwrap();
    assert_eq!(&hyperlink[2], "'=HYPERLINK(\"http://x\")");
    let note: Value = serde_json::from_str(&hyperlink[8]).unwrap();
    assert_eq!(
        note["note"], "+SUM(A1)",
        "JSON cells start with a brace and are left alone"
    );
    let refund = records.iter().find(|r| &r[2] == "Refund").unwrap();
    assert_eq!(&refund[4], "-12.5", "a plain number is not quoted");
    let identify = records.iter().find(|r| &r[0] == "id-1").unwrap();
    assert_eq!(&identify[1], "identify");
    assert_eq!(&identify[6], "2024-03-01T10:00:00.123Z");
    let traits: Value = serde_json::from_str(&identify[9]).unwrap();
    assert_eq!(traits["city"], "杭州");

    let mut out = Vec::new();
    let summary = export_profiles(&*store, app, Format::Csv, &mut out).unwrap();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        PROFILE_COLUMNS
    );
    let profiles: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(profiles.len() as u64, summary.rows);
    let u1 = profiles.iter().find(|r| &r[2] == "u1").unwrap();
    assert_eq!(&u1[1], "true");
    assert_eq!(&u1[3], "a1");
    let traits: Value = serde_json::from_str(&u1[6]).unwrap();
    assert_eq!(traits["vip"], true);
    let u2 = profiles.iter().find(|r| &r[2] == "u2").unwrap();
    assert_eq!(&u2[3], "a3", "the aliased anonymous id");
}

#[test]
fn parquet_export_reads_back_with_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let app = project(&store, "app");
    let count = seed_varied_project(&store, app);
    let original = messages(&store, app);

    let path = dir.path().join("events.parquet");
    let mut file = std::fs::File::create(&path).unwrap();
    export_events(&*store, app, Format::Parquet, &mut file).unwrap();
    drop(file);

    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), count as i64);
    let names: Vec<&str> = meta
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name())
        .collect();
    assert_eq!(names, EVENT_COLUMNS);
    for column in meta.row_group(0).columns() {
        assert!(matches!(
            column.compression(),
            parquet::basic::Compression::ZSTD(_)
        ));
    }
    let mut seen = 0;
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let fields: BTreeMap<&str, &Field> = row
            .get_column_iter()
            .map(|(n, f)| (n.as_str(), f))
            .collect();
        let Field::Str(id) = fields["message_id"] else {
            panic!("message_id is text")
        };
        let m = &original[id];
        assert_eq!(
            fields["timestamp"],
            &Field::TimestampMillis(m.timestamp.millis())
        );
        assert_eq!(
            fields["received_at"],
            &Field::TimestampMillis(m.received_at.millis())
        );
        assert_eq!(fields["type"], &Field::Str(m.kind.as_str().to_string()));
        match &m.user_id {
            Some(user) => assert_eq!(fields["user_id"], &Field::Str(user.clone())),
            None => assert_eq!(fields["user_id"], &Field::Null),
        }
        let Field::Str(properties) = fields["properties"] else {
            panic!("properties is text")
        };
        let properties: Value = serde_json::from_str(properties).unwrap();
        assert_eq!(properties, Value::Object(m.properties.clone()));
        assert!(matches!(fields["person_id"], Field::Long(p) if *p > 0));
        seen += 1;
    }
    assert_eq!(seen, count);

    // Profiles and warnings in Parquet too.
    let path = dir.path().join("profiles.parquet");
    let mut file = std::fs::File::create(&path).unwrap();
    let profiles = export_profiles(&*store, app, Format::Parquet, &mut file).unwrap();
    drop(file);
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as u64,
        profiles.rows
    );
}

#[test]
fn parquet_orders_import() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let path = dir.path().join("orders.parquet");
    let schema = parse_message_type(
        "message orders {
            REQUIRED BYTE_ARRAY customer_id (UTF8);
            REQUIRED INT64 created_at (TIMESTAMP(MILLIS,true));
            OPTIONAL DOUBLE total;
            REQUIRED INT64 order_id;
            OPTIONAL BYTE_ARRAY city (UTF8);
        }",
    )
    .unwrap();
    let t0 = Timestamp::parse("2024-05-01T12:00:00Z").unwrap().millis();
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = SerializedFileWriter::new(
            file,
            Arc::new(schema),
            Arc::new(WriterProperties::default()),
        )
        .unwrap();
        let mut group = writer.next_row_group().unwrap();
        let customers: Vec<ByteArray> = ["p1", "p2", "null", "p3"]
            .iter()
            .map(|s| ByteArray::from(*s))
            .collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&customers, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&[t0, t0 + 1, t0 + 2, t0 + 3], None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<DoubleType>()
            .write_batch(&[10.5, 3.0, 7.0], Some(&[1, 1, 0, 1]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&[100, 101, 102, 103], None, None)
            .unwrap();
        col.close().unwrap();
        let cities: Vec<ByteArray> = ["上海", "北京"]
            .iter()
            .map(|s| ByteArray::from(*s))
            .collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&cities, Some(&[1, 0, 0, 1]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }
    // Row 3's customer is the placeholder "null"; the rest are good.
    let summary = import(&store, shop, &path, &ImportOptions::default());
    assert_eq!((summary.rows, summary.stored, summary.rejected), (4, 3, 1));
    assert_eq!(summary.examples[0].line, 3);
    assert_eq!(summary.examples[0].code, "blocked_id");
    let stored = messages(&store, shop);
    let p1 = stored
        .values()
        .find(|m| m.user_id.as_deref() == Some("p1"))
        .unwrap();
    assert_eq!(p1.timestamp, Timestamp(t0));
    assert_eq!(p1.properties["revenue"], json!(10.5));
    assert_eq!(p1.properties["order_id"], json!("100"));
    assert_eq!(p1.properties["city"], json!("上海"));
    let p2 = stored
        .values()
        .find(|m| m.user_id.as_deref() == Some("p2"))
        .unwrap();
    assert!(!p2.properties.contains_key("city"));
    let quarantined = store.warnings(shop, 10, None).unwrap();
    assert_eq!(quarantined[0].field, "row 3, column customer_id");
}

#[test]
fn warnings_export_lists_the_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let shop = project(&store, "shop");
    let summary = import(
        &store,
        shop,
        &fixture("orders_cn.csv"),
        &ImportOptions::default(),
    );

    let mut out = Vec::new();
    let exported = export_warnings(&*store, shop, Format::Jsonl, &mut out).unwrap();
    assert_eq!(exported.rows, summary.rejected);
    let rows: Vec<Value> = std::str::from_utf8(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, summary.rejected);
    assert!(
        rows.iter()
            .all(|r| r["severity"] == "rejected" && r["at"].is_string())
    );

    let mut out = Vec::new();
    export_warnings(&*store, shop, Format::Csv, &mut out).unwrap();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        WARNING_COLUMNS
    );
    let codes: BTreeSet<String> = reader
        .records()
        .map(|r| r.unwrap()[3].to_string())
        .collect();
    let want: BTreeSet<String> = summary.rejected_by_reason.keys().cloned().collect();
    assert_eq!(codes, want);
}

proptest! {
    /// No text, however hostile, leaves `neutralise` starting with a formula character
    /// unless it is plainly a number; and nothing else is changed.
    #[test]
    fn neutralised_cells_never_lead_with_a_formula(cell in "\\PC*|[=+\\-@\\t\\r][ -~]{0,12}|[+-]?[0-9]{1,4}(\\.[0-9]{0,3})?") {
        let out = neutralise(&cell);
        if out.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            prop_assert!(out.parse::<f64>().is_ok(), "{:?}", out);
            prop_assert_eq!(out.as_ref(), cell.as_str());
        } else if out.as_ref() != cell.as_str() {
            let quoted = format!("'{cell}");
            prop_assert_eq!(out.as_ref(), quoted.as_str());
        }
    }
}

/// A store with project `app` holding five persons with traits of every kind, and their
/// person ids, ascending.
fn segment_project() -> (tempfile::TempDir, Arc<Store>, ProjectId, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let app = project(&store, "app");
    let persons = seed_segment_project(&store, app);
    (dir, store, app, persons)
}

fn seed_segment_project(store: &Store, project: ProjectId) -> Vec<u64> {
    let body = json!({"batch": [
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "s1",
         "traits": {"plan": "pro", "score": 3, "vip": true, "address": {"city": "杭州"},
                    "tags": ["a", "b"], "mixed": 1}},
        {"type": "identify", "userId": "u2", "messageId": "s2",
         "traits": {"plan": "=cmd()", "score": 2.5, "vip": false, "address": {"city": "上海"},
                    "mixed": "one"}},
        {"type": "identify", "anonymousId": "a3", "messageId": "s3",
         "traits": {"plan": "free", "score": -1}},
        {"type": "identify", "userId": "u4", "anonymousId": "a4", "messageId": "s4",
         "traits": {"plan": "free", "score": 7, "vip": true}},
        {"type": "identify", "userId": "u5", "messageId": "s5", "traits": {"plan": "not a member"}}
    ]});
    store_batch(store, project, &body, Timestamp(NOW));
    let mut persons = Vec::new();
    store
        .for_each_profile(project, &mut |p| {
            persons.push(p.person.0);
            Ok(())
        })
        .unwrap();
    persons.sort_unstable();
    persons
}

/// A Parquet cell as JSON (the crate's own conversion needs its `json` feature).
fn field_json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => json!(b),
        Field::Long(n) => json!(n),
        Field::ULong(n) => json!(n),
        Field::Double(x) => json!(x),
        Field::Str(s) => json!(s),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(field_json).collect()),
        other => panic!("a segment export holds no {other:?}"),
    }
}

#[test]
fn segment_parquet_export_is_typed_and_equals_the_jsonl_export() {
    use lodestar_io::{SegmentExport, export_segment};
    use parquet::basic::{LogicalType, Type as Physical};

    let (dir, store, app, persons) = segment_project();
    assert_eq!(persons.len(), 5);
    let members = &persons[..4];
    // A score for two members, as the server passes the model scores.
    let extra = [(members[0], 120.5), (members[2], 8.0)]
        .into_iter()
        .map(|(p, clv)| (p, json!({ "clv": clv }).as_object().unwrap().clone()))
        .collect();
    let attributes: Vec<String> = [
        "plan",
        "score",
        "vip",
        "address",
        "address.city",
        "tags",
        "mixed",
        "clv",
        "absent",
    ]
    .map(String::from)
    .to_vec();
    let export = SegmentExport {
        members,
        extra: &extra,
        attributes: &attributes,
    };
    let mut jsonl = Vec::new();
    export_segment(&*store, app, &export, Format::Jsonl, &mut jsonl).unwrap();
    let path = dir.path().join("segment.parquet");
    let mut file = std::fs::File::create(&path).unwrap();
    let summary = export_segment(&*store, app, &export, Format::Parquet, &mut file).unwrap();
    drop(file);
    assert_eq!(summary.rows, 4);

    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema();
    let types: Vec<(String, String)> = schema
        .get_fields()
        .iter()
        .map(|f| {
            let kind = if f.is_group() {
                format!("{:?}", f.get_basic_info().logical_type_ref())
            } else {
                format!("{:?}", f.get_physical_type())
            };
            (f.name().to_string(), kind)
        })
        .collect();
    let list = format!("{:?}", Some(&LogicalType::List));
    let expected: Vec<(String, String)> = [
        ("person_id", format!("{:?}", Physical::INT64)),
        ("user_ids", list.clone()),
        ("anonymous_ids", list),
        ("plan", format!("{:?}", Physical::BYTE_ARRAY)),
        ("score", format!("{:?}", Physical::DOUBLE)),
        ("vip", format!("{:?}", Physical::BOOLEAN)),
        ("address", format!("{:?}", Physical::BYTE_ARRAY)),
        ("address.city", format!("{:?}", Physical::BYTE_ARRAY)),
        ("tags", format!("{:?}", Physical::BYTE_ARRAY)),
        ("mixed", format!("{:?}", Physical::BYTE_ARRAY)),
        ("clv", format!("{:?}", Physical::DOUBLE)),
        ("absent", format!("{:?}", Physical::BYTE_ARRAY)),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect();
    assert_eq!(types, expected);
    assert_eq!(
        schema.get_fields()[0].get_basic_info().logical_type_ref(),
        Some(&LogicalType::integer(64, false))
    );

    // Row by row, the Parquet file says what the JSON lines say: lists as lists, numbers as
    // doubles, objects and arrays as JSON text, absent values as null.
    let rows: Vec<Value> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            let row = r.unwrap();
            let map = row
                .get_column_iter()
                .map(|(n, f)| (n.clone(), field_json(f)));
            Value::Object(map.collect())
        })
        .collect();
    let lines: Vec<Value> = std::str::from_utf8(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), lines.len());
    for (row, line) in rows.iter().zip(&lines) {
        for key in ["person_id", "user_ids", "anonymous_ids"] {
            assert_eq!(row[key], line[key], "{key} of {line}");
        }
        for a in attributes.iter().filter(|a| *a != "mixed") {
            let want = &line["attributes"][a];
            let got = &row[a.as_str()];
            match want {
                Value::Number(n) => assert_eq!(got.as_f64(), n.as_f64(), "{a} of {line}"),
                Value::Object(_) | Value::Array(_) => {
                    let text = got.as_str().unwrap_or_else(|| panic!("{a} of {line}"));
                    assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), want);
                }
                Value::Bool(_) | Value::Null | Value::String(_) => {
                    assert_eq!(got, want, "{a} of {line}")
                }
            }
        }
    }
    // Numbers and text under one name: a text column, the number as JSON text.
    let mixed: Vec<&Value> = rows.iter().map(|r| &r["mixed"]).collect();
    assert_eq!(
        mixed,
        [&json!("1"), &json!("one"), &Value::Null, &Value::Null]
    );
    assert_eq!(rows[0]["user_ids"], json!(["u1"]));
    assert_eq!(rows[2]["user_ids"], json!([]));
    assert_eq!(
        rows[1]["plan"],
        json!("=cmd()"),
        "Parquet is never neutralised"
    );

    // CSV keeps its shape: ids joined by `;`, attributes as text, formulas neutralised.
    let mut csv = Vec::new();
    export_segment(&*store, app, &export, Format::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "person_id,user_ids,anonymous_ids,plan,score,vip,address,address.city,tags,mixed,clv,absent"
        )
    );
    assert_eq!(
        lines.nth(1),
        Some(
            format!(
                "{},u2,,'=cmd(),2.5,false,\"{{\"\"city\"\":\"\"上海\"\"}}\",上海,,one,,",
                members[1]
            )
            .as_str()
        )
    );

    // Attribute lists that would repeat a column are refused.
    for bad in [vec!["plan", "plan"], vec!["person_id"], vec![""]] {
        let bad: Vec<String> = bad.into_iter().map(String::from).collect();
        let export = SegmentExport {
            attributes: &bad,
            ..export
        };
        let err = export_segment(&*store, app, &export, Format::Parquet, &mut Vec::new());
        assert!(
            matches!(
                err,
                Err(IoError::InvalidOption {
                    option: "attributes",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn segment_batches_hold_every_member_once() {
    use lodestar_io::{BatchEnvelope, SegmentExport, segment_batches};

    let (_dir, store, app, persons) = segment_project();
    let extra = Default::default();
    let attributes = vec!["plan".to_string()];
    let export = SegmentExport {
        members: &persons,
        extra: &extra,
        attributes: &attributes,
    };
    let envelope = BatchEnvelope {
        segment_id: 7,
        segment_name: "买家 \"vip\"",
        export_id: "e1",
        batch_size: 2,
    };
    let clock = FixedClock::new(Timestamp(NOW));
    let mut bodies = Vec::new();
    let emitted = segment_batches(&*store, app, &export, &envelope, &clock, &mut |b| {
        bodies.push(b);
        Ok(())
    })
    .unwrap();
    assert_eq!(emitted, 3);
    let mut seen = Vec::new();
    for (i, batch) in bodies.iter().enumerate() {
        let body: Value = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(body["segment"], json!({"id": 7, "name": "买家 \"vip\""}));
        assert_eq!(
            (&body["export_id"], &body["batch"], &body["batches"]),
            (&json!("e1"), &json!(i + 1), &json!(3))
        );
        assert_eq!(body["sent_at"], json!(Timestamp(NOW).to_rfc3339()));
        let members = body["members"].as_array().unwrap();
        assert_eq!(members.len() as u64, batch.members);
        assert_eq!(members.len(), if i < 2 { 2 } else { 1 });
        for m in members {
            assert!(m["attributes"]["plan"].is_string(), "{m}");
            seen.push(m["person_id"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, persons);

    // An error of the consumer stops the walk and comes back as it is.
    let mut calls = 0;
    let stopped = segment_batches(&*store, app, &export, &envelope, &clock, &mut |_| {
        calls += 1;
        Err(IoError::Cancelled)
    });
    assert!(matches!(stopped, Err(IoError::Cancelled)));
    assert_eq!(calls, 1);
    let empty = SegmentExport {
        members: &[],
        ..export
    };
    let none = segment_batches(&*store, app, &empty, &envelope, &clock, &mut |_| {
        unreachable!("no member, no batch")
    });
    assert_eq!(none.unwrap(), 0);
}
