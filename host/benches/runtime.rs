//! The cost of the sandbox: the crm-mapper plugin through the runtime against
//! the same mapping compiled natively, per record in batches of 1000, and the
//! cost of a fresh instance per call.
//!
//! Run: `cargo bench -p synchost --bench runtime`. Compare the figures of one
//! run as ratios; the machines are shared and noisy.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use synchost::catalog::Catalog;
use synchost::config::LoadedConfig;
use synchost::model::{Direction, Field, Mapped, Record, Value};

// The allocator the `synchost` binary runs with, for the native rules too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1000;

const CONFIG: &str = r#"
[mappers.crm]
plugin = "crm-mapper"

[mappers.crm.settings]
renames = { first_name = "given_name", last_name = "family_name", phone = "phone_number", status = "state", customer_since = "since" }
phones = ["phone"]
default_country_code = "49"
emails = ["email"]
dates = ["customer_since"]
derived = { display_name = "{last_name}, {first_name}" }
required = ["email", "last_name"]
lookups = { status = { A = "active", L = "lead", X = "closed" } }
"#;

/// Ten fields per record, with text to normalise, dates, lookups and numbers.
fn fields(i: usize) -> Vec<(&'static str, Value)> {
    vec![
        ("first_name", Value::Text(format!("First{i}"))),
        ("last_name", Value::Text(format!("Last{i}"))),
        ("email", Value::Text(format!("  Person{i}@Example.COM "))),
        ("phone", Value::Text(format!("030 {:07}", i))),
        ("status", Value::Text(["A", "L", "X"][i % 3].into())),
        ("customer_since", Value::Text(format!("{:02}.{:02}.20{:02}", 1 + i % 28, 1 + i % 12, i % 30))),
        ("city", Value::Text("Berlin".into())),
        ("company", Value::Text(format!("Company {i} GmbH"))),
        ("score", Value::Integer(i as i64)),
        ("notes", Value::Text("Met at the trade fair; wants a quote for the annual plan.".into())),
    ]
}

fn host_batch() -> Vec<Record> {
    (0..BATCH)
        .map(|i| Record {
            id: i.to_string(),
            version: None,
            deleted: false,
            born: None,
            fields: fields(i).into_iter().map(|(n, v)| Field { name: n.into(), value: v }).collect(),
        })
        .collect()
}

fn sdk_value(value: Value) -> synchost_plugin_sdk::Value {
    use synchost_plugin_sdk::Value as V;
    match value {
        Value::Text(s) => V::Text(s),
        Value::Integer(i) => V::Integer(i),
        other => panic!("the benchmark's records hold no {other:?}"),
    }
}

fn sdk_batch() -> Vec<synchost_plugin_sdk::Record> {
    (0..BATCH)
        .map(|i| synchost_plugin_sdk::Record {
            id: i.to_string(),
            version: None,
            deleted: false,
            born: None,
            fields: fields(i)
                .into_iter()
                .map(|(n, v)| synchost_plugin_sdk::Field { name: n.into(), value: sdk_value(v) })
                .collect(),
        })
        .collect()
}

fn runtime_vs_native(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let config = LoadedConfig::parse(Path::new("bench.toml"), CONFIG).unwrap();
    let catalog = Catalog::load_with(&config, synchost::runtime::Runtime::new(None).unwrap());
    let mapper = catalog.instance("crm").unwrap().clone();

    let settings: crm_mapper::RuleSettings =
        serde_json::from_str(&mapper.context().settings).expect("the bench settings fit the native rules");
    let native = crm_mapper::CrmRules::new(settings);

    let mut group = c.benchmark_group("crm-mapper, batch of 1000");
    group.throughput(Throughput::Elements(BATCH as u64)).sample_size(20).measurement_time(Duration::from_secs(5));

    let records = sdk_batch();
    group.bench_function("native", |b| {
        b.iter_batched(
            || records.clone(),
            |batch| {
                use synchost_plugin_sdk::{Direction as D, Mapped as M};
                let mapped: Vec<_> = batch
                    .into_iter()
                    .filter_map(|r| match native.map_record(D::LeftToRight, r) {
                        M::Ok(record) => Some(record),
                        M::Invalid(_) => None,
                    })
                    .collect();
                let violations: usize = mapped.iter().map(|r| native.violations(D::LeftToRight, r).len()).sum();
                assert_eq!(mapped.len(), BATCH);
                violations
            },
            BatchSize::LargeInput,
        )
    });

    let records = host_batch();
    group.bench_function("wasm component", |b| {
        b.iter(|| {
            tokio.block_on(async {
                // Mapped and validated in one call (plugin API 0.4).
                let mapped: Vec<Record> = mapper
                    .map_and_validate(Direction::LeftToRight, &records)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|m| match m {
                        Mapped::Ok(record) => Some(record),
                        Mapped::Invalid(_) => None,
                    })
                    .collect();
                assert_eq!(mapped.len(), BATCH);
                mapped.len()
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("instance");
    group.sample_size(50).measurement_time(Duration::from_secs(3));
    group.bench_function("fresh store + instantiate + empty call", |b| {
        b.iter(|| tokio.block_on(mapper.map_and_validate(Direction::LeftToRight, &[])).unwrap())
    });
    group.finish();
}

criterion_group!(benches, runtime_vs_native);
criterion_main!(benches);
