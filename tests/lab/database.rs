//! The lab on PostgreSQL: its back-end instances are separate clients of one database (each its
//! own pool), writes through either are seen by both, and the suite passes as on the embedded
//! store. Skipped with a message when PostgreSQL is not installed (outside CI).

use lockdown::{Break, LabDatabase, LabOptions, Mode, Plan};

use crate::helpers::*;

#[tokio::test]
async fn the_lab_on_postgres_shares_one_database_between_its_instances() {
    let Some(cluster) = lab_cluster() else {
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

/// Each break of the data tier fails exactly its checks, with its code (the checks from the back
/// end run in it, reached through the front end).
#[tokio::test]
async fn every_data_tier_break_fails_the_right_checks_with_the_right_code() {
    let Some(cluster) = lab_cluster() else {
        return;
    };
    for b in Break::ALL.into_iter().filter(|b| b.needs_database()) {
        let (mode, want) = crate::breaks::expected(b);
        let options = LabOptions {
            database: LabDatabase::Shared(cluster),
            ..LabOptions::new(Plan::new(mode, &[b]).unwrap(), 0)
        };
        crate::breaks::assert_break_with(options, b, &want).await;
    }
}

#[tokio::test]
async fn the_data_tier_breaks_need_postgres() {
    let error = lockdown::Lab::start(LabOptions::new(
        Plan::new(Mode::PrivateEndpoint, &[Break::DbDnsNotLinked]).unwrap(),
        0,
    ))
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("apt-get install postgresql"),
        "{error}"
    );
}

/// Labs on one cluster (the tests share one) each put their own private endpoint in front of
/// it: one lab's public endpoint (`db-public-access`) is not another lab's, so the other still
/// passes "the internet cannot reach the database".
#[tokio::test(flavor = "multi_thread")]
async fn labs_sharing_a_cluster_keep_their_database_endpoints_apart() {
    let Some(cluster) = lab_cluster() else {
        return;
    };
    let lab_with = |breaks: &'static [Break]| LabOptions {
        database: LabDatabase::Shared(cluster),
        ..LabOptions::new(Plan::new(Mode::PrivateEndpoint, breaks).unwrap(), 0)
    };
    let open = start_with(lab_with(&[Break::DbPublicAccess])).await;
    let locked = start_with(lab_with(&[])).await;
    assert_ne!(open.database_port, locked.database_port);
    assert_ne!(locked.database_port, Some(cluster.port));
    let report = smoke(&locked).await;
    assert!(report.all_passed(), "{:?}", failures(&report));
    let report = smoke(&open).await;
    assert_eq!(
        failing_checks(&report),
        [(
            lockdown::suite::checks::DB_DENIED.to_owned(),
            "reachable_but_should_be_denied".to_owned()
        )]
    );
}
