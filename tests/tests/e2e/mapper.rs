//! The crm-mapper plugin through the runtime: renames, normalising, lookups,
//! derived fields, and validation that reports every violation with a hint.

use synchost::model::{Direction, Field, Mapped, Record, Value};
use synchost_tests::{instance, Scene};

const CONFIG: &str = r#"
[mappers.crm]
plugin = "crm-mapper"

[mappers.crm.settings]
renames = { phone = "phone_number", status = "state" }
phones = ["phone"]
default_country_code = "49"
emails = ["email"]
dates = ["since"]
derived = { display_name = "{last_name}, {first_name}" }
required = ["email"]
lookups = { status = { A = "active", L = "lead" } }
"#;

fn record(id: &str, fields: &[(&str, &str)]) -> Record {
    Record {
        id: id.into(),
        version: None,
        deleted: false,
        born: None,
        fields: fields.iter().map(|(n, v)| Field { name: (*n).into(), value: Value::Text((*v).into()) }).collect(),
    }
}

// Covers: C5, H3
#[tokio::test(flavor = "multi_thread")]
async fn maps_both_ways_and_validates_with_hints() {
    let scene = Scene::new();
    let catalog = scene.load(CONFIG);
    let mapper = instance(&catalog, "crm");
    let input = vec![
        record("1", &[("first_name", "Ada"), ("last_name", "Lovelace"), ("phone", "030 1234567"), ("email", " ADA@example.com"), ("status", "A"), ("since", "31.12.2025")]),
        record("2", &[("first_name", "Alan"), ("status", "Q")]),
        record("3", &[("first_name", "Grace"), ("phone", "12"), ("email", "grace(at)example"), ("status", "L")]),
    ];
    // Mapped and checked against the rules in one call.
    let mapped = mapper.map_and_validate(Direction::LeftToRight, &input).await.unwrap();
    let Mapped::Ok(ada) = &mapped[0] else { panic!("{:?}", mapped[0]) };
    assert_eq!(ada.text("phone_number"), Some("+49301234567"));
    assert_eq!(ada.text("email"), Some("ada@example.com"));
    assert_eq!(ada.text("state"), Some("active"));
    assert_eq!(ada.text("display_name"), Some("Lovelace, Ada"));
    assert_eq!(ada.get("since"), Some(&Value::Date("2025-12-31".into())));
    let Mapped::Invalid(violations) = &mapped[1] else { panic!("{:?}", mapped[1]) };
    assert_eq!(violations[0].field.as_deref(), Some("status"));
    assert!(violations[0].hint.as_deref().unwrap().contains("lookups.status"));

    // Grace maps, but her mapped record breaks two rules.
    let Mapped::Invalid(found) = &mapped[2] else { panic!("{:?}", mapped[2]) };
    let fields: Vec<_> = found.iter().map(|v| v.field.clone().unwrap()).collect();
    assert_eq!(fields, ["email", "phone"], "all violations of a record are reported together");
    assert!(found.iter().all(|v| v.hint.is_some()));

    let back = mapper.map_and_validate(Direction::RightToLeft, std::slice::from_ref(ada)).await.unwrap();
    let Mapped::Ok(back) = &back[0] else { panic!() };
    assert_eq!(back.text("phone"), Some("+49301234567"));
    assert_eq!(back.text("status"), Some("A"));
    assert_eq!(back.get("display_name"), None);
}

// Covers: H1, H3
#[tokio::test(flavor = "multi_thread")]
async fn batches_cross_the_boundary_whole() {
    let scene = Scene::new();
    let catalog = scene.load(CONFIG);
    let batch: Vec<Record> = (0..1000)
        .map(|i| record(&i.to_string(), &[("first_name", "A"), ("last_name", "B"), ("email", "a@b.example"), ("status", "L")]))
        .collect();
    let mapped = instance(&catalog, "crm").map_and_validate(Direction::LeftToRight, &batch).await.unwrap();
    assert_eq!(mapped.len(), 1000);
    assert!(mapped.iter().all(|m| matches!(m, Mapped::Ok(r) if r.text("state") == Some("lead"))));
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_name_the_instance_and_the_setting() {
    let scene = Scene::new();
    let catalog = scene.load("[mappers.crm]\nplugin = \"crm-mapper\"\nsettings = { renmaes = {} }\n");
    let error = instance(&catalog, "crm").map_and_validate(Direction::LeftToRight, &[]).await.unwrap_err();
    let problem = error.problem().expect("a problem");
    assert_eq!(problem.code, "bad-settings");
    assert!(problem.message.contains("settings of `crm`") && problem.message.contains("renmaes"), "{}", problem.message);
}
