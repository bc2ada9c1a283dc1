//! The lab on PostgreSQL: its back-end instances are separate clients of one database (each its
//! own pool), writes through either are seen by both, and the suite passes as on the embedded
//! store. Skipped with a message when PostgreSQL is not installed (outside CI).

use lockdown::{LabDatabase, LabOptions, Mode, Plan};

use crate::helpers::*;

#[tokio::test]
async fn the_lab_on_postgres_shares_one_database_between_its_instances() {
    let Some(cluster) = test_support::postgres::cluster() else {
        return;
    };
    let lab = start_with(LabOptions {
        database: LabDatabase::Shared(cluster),
        ..LabOptions::new(Plan::new(Mode::ServiceEndpoint, &[]).unwrap(), 0)
    })
    .await;
    assert!(lab.store.starts_with("PostgreSQL"), "{}", lab.store);
    let report = smoke(&lab).await;
    assert!(report.all_passed(), "{:?}", failures(&report));

    // Many writes through the front end land on both instances (ARRAffinity off: spread).
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut ids = Vec::new();
    for n in 0..20 {
        let created: serde_json::Value = client
            .post(format!("{}/api/items", lab.frontend_url))
            .json(&serde_json::json!({ "name": format!("lab item {n}") }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Every instance lists every item: one database, not one store per instance.
    for _ in 0..4 {
        let list: serde_json::Value = client
            .get(format!("{}/api/items", lab.frontend_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, ids);
    }
}
