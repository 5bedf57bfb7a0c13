//! The Compute Engine API as the simulator serves it, over real HTTP on 127.0.0.1, with
//! every response checked against Google's Discovery document (vendored).

mod common;

use std::time::Duration;

use common::{Api, assert_clean};
use damm_sim::testing::booting_in;
use damm_sim::{Faults, Provider};
use reqwest::Method;
use serde_json::{Value, json};

const PROVIDER: Provider = Provider::Gce;
const ZONE: &str = "/projects/p1/zones/europe-west3-a";
const REGION: &str = "/projects/p1/regions/europe-west3";

impl Api {
    async fn insert(&self, name: &str, labels: Value) -> Value {
        let body = json!({
            "name": name,
            "machineType": "zones/europe-west3-a/machineTypes/e2-small",
            "labels": labels,
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {
                "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"network": "global/networks/default",
                "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}],
            "metadata": {"items": [{"key": "user-data", "value": "#cloud-config\n"}]},
        });
        let (status, op) = self
            .call(Method::POST, &format!("{ZONE}/instances"), Some(body))
            .await;
        assert_eq!(status, 200, "{op}");
        op
    }
}

#[tokio::test]
async fn operations_move_from_pending_to_done_and_wait_blocks_until_done() {
    let sim = booting_in(Duration::from_millis(600)).await;
    let api = Api::new(&sim, PROVIDER);
    let op = api.insert("node-1", json!({"damm-fleet": "f1"})).await;
    assert_eq!(op["kind"], "compute#operation");
    assert_eq!(op["status"], "PENDING");
    assert_eq!(op["operationType"], "insert");
    assert!(
        op["targetId"].as_str().unwrap().parse::<u64>().is_ok(),
        "uint64 as a string"
    );
    let name = op["name"].as_str().unwrap().to_owned();

    let (_, instance) = api.get(&format!("{ZONE}/instances/node-1")).await;
    assert_eq!(instance["status"], "PROVISIONING");
    assert_eq!(instance["labels"]["damm-fleet"], "f1");
    assert_eq!(instance["metadata"]["items"][0]["key"], "user-data");
    let nat = instance["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
        .as_str()
        .unwrap();
    assert!(nat.starts_with("192.0.2."), "{nat}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, running) = api.get(&format!("{ZONE}/operations/{name}")).await;
    assert_eq!(running["status"], "RUNNING");
    assert!(running["startTime"].is_string());

    let (status, done) = api
        .call(
            Method::POST,
            &format!("{ZONE}/operations/{name}/wait"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["progress"], 100);
    let (_, instance) = api.get(&format!("{ZONE}/instances/node-1")).await;
    assert_eq!(instance["status"], "RUNNING");

    let (status, missing) = api.get(&format!("{REGION}/operations/{name}")).await;
    assert_eq!(
        status, 404,
        "a zonal operation is not a regional one: {missing}"
    );
    assert_eq!(missing["error"]["errors"][0]["reason"], "notFound");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn lists_filter_on_labels_and_page_with_tokens() {
    let sim = booting_in(Duration::ZERO).await;
    let api = Api::new(&sim, PROVIDER);
    for i in 0..5 {
        let fleet = if i % 2 == 0 { "f1" } else { "f2" };
        api.insert(
            &format!("n{i}"),
            json!({"damm-fleet": fleet, "damm-key": format!("k{i}")}),
        )
        .await;
    }
    let filter = "filter=%28labels.damm-fleet+%3D+%22f1%22%29";
    let (status, page) = api
        .get(&format!("{ZONE}/instances?{filter}&maxResults=2"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["kind"], "compute#instanceList");
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n0", "n2"]);
    let token = page["nextPageToken"].as_str().unwrap().to_owned();
    let (_, last) = api
        .get(&format!(
            "{ZONE}/instances?{filter}&maxResults=2&pageToken={token}"
        ))
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(last.get("nextPageToken").is_none());

    let two_terms = "filter=%28labels.damm-fleet+%3D+f2%29+%28labels.damm-key+%3D+%22k3%22%29";
    let (_, one) = api.get(&format!("{ZONE}/instances?{two_terms}")).await;
    assert_eq!(one["items"][0]["name"], "n3");
    let (_, none) = api
        .get(&format!(
            "{ZONE}/instances?filter=labels.damm-fleet+%3D+nobody"
        ))
        .await;
    assert!(none.get("items").is_none(), "{none}");

    let (status, bad) = api.get(&format!("{ZONE}/instances?maxResults=501")).await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = api
        .get(&format!("{ZONE}/instances?pageToken=nonsense!"))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .get(&format!(
            "{ZONE}/instances?filter=%28name+%3D+a%29+OR+%28name+%3D+b%29"
        ))
        .await;
    assert_eq!(status, 400, "OR is refused, not ignored");
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn static_addresses_attach_through_access_configs() {
    let sim = booting_in(Duration::ZERO).await;
    let api = Api::new(&sim, PROVIDER);
    api.insert("holder", json!({"damm-fleet": "f1"})).await;
    let (status, op) = api
        .call(
            Method::POST,
            &format!("{REGION}/addresses"),
            Some(json!({"name": "door", "labels": {"damm-fleet": "f1"}, "networkTier": "PREMIUM"})),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert!(
        op["region"]
            .as_str()
            .unwrap()
            .ends_with("/regions/europe-west3")
    );
    let (status, _) = api
        .call(
            Method::POST,
            &format!("{REGION}/addresses"),
            Some(json!({"name": "door"})),
        )
        .await;
    assert_eq!(status, 409);
    let (_, address) = api.get(&format!("{REGION}/addresses/door")).await;
    assert_eq!(address["status"], "RESERVED");
    let ip = address["address"].as_str().unwrap().to_owned();

    let instance = format!("{ZONE}/instances/holder");
    let (status, busy) = api
        .call(
            Method::POST,
            &format!("{instance}/addAccessConfig?networkInterface=nic0"),
            Some(json!({"name": "External NAT", "natIP": ip})),
        )
        .await;
    assert_eq!(status, 400, "one access config per interface: {busy}");
    let (status, op) = api
        .call(
            Method::POST,
            &format!(
                "{instance}/deleteAccessConfig?networkInterface=nic0&accessConfig=External+NAT"
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let (status, op) = api
        .call(
            Method::POST,
            &format!("{instance}/addAccessConfig?networkInterface=nic0"),
            Some(json!({"name": "External NAT", "type": "ONE_TO_ONE_NAT", "natIP": ip})),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let (_, address) = api.get(&format!("{REGION}/addresses/door")).await;
    assert_eq!(address["status"], "IN_USE");
    assert!(
        address["users"][0]
            .as_str()
            .unwrap()
            .ends_with("/instances/holder")
    );
    let (status, in_use) = api.delete(&format!("{REGION}/addresses/door")).await;
    assert_eq!(status, 400);
    assert_eq!(
        in_use["error"]["errors"][0]["reason"],
        "resourceInUseByAnotherResource"
    );

    let (_, op) = api.delete(&instance).await;
    assert_eq!(op["operationType"], "delete");
    let (_, address) = api.get(&format!("{REGION}/addresses/door")).await;
    assert_eq!(
        address["status"], "RESERVED",
        "deleting the instance frees the address"
    );
    let (status, _) = api.delete(&format!("{REGION}/addresses/door")).await;
    assert_eq!(status, 200);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn labels_change_only_with_the_current_fingerprint() {
    let sim = booting_in(Duration::ZERO).await;
    let api = Api::new(&sim, PROVIDER);
    api.insert("lab", json!({"damm-fleet": "f1"})).await;
    let path = format!("{ZONE}/instances/lab");
    let (_, instance) = api.get(&path).await;
    let fingerprint = instance["labelFingerprint"].as_str().unwrap().to_owned();
    let (status, stale) = api
        .call(
            Method::POST,
            &format!("{path}/setLabels"),
            Some(
                json!({"labels": {"damm-fleet": "f1", "damm-draining": "true"},
                "labelFingerprint": "AAAAAAAAAAA="}),
            ),
        )
        .await;
    assert_eq!(status, 412);
    assert_eq!(stale["error"]["errors"][0]["reason"], "conditionNotMet");
    let (status, _) = api
        .call(
            Method::POST,
            &format!("{path}/setLabels"),
            Some(
                json!({"labels": {"damm-fleet": "f1", "damm-draining": "true"},
                "labelFingerprint": fingerprint}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let (_, instance) = api.get(&path).await;
    assert_eq!(instance["labels"]["damm-draining"], "true");
    assert_ne!(instance["labelFingerprint"], fingerprint);
    assert_clean(&sim, PROVIDER);
}

#[tokio::test]
async fn requests_and_answers_follow_the_discovery_document() {
    let sim = booting_in(Duration::ZERO).await;
    let api = Api::new(&sim, PROVIDER);
    let (status, bad) = api
        .call(
            Method::POST,
            &format!("{ZONE}/instances"),
            Some(
                json!({"name": "x", "machineType": "zones/europe-west3-a/machineTypes/e2-small",
                "disks": [{"boot": true, "diskSizeGb": 10}], "undocumented": true}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.contains("compute.instances.insert"), "{message}");
    assert!(
        message.contains("diskSizeGb"),
        "int64 travels as a string: {message}"
    );
    assert!(message.contains("undocumented"), "{message}");
    let (status, missing) = api
        .call(
            Method::POST,
            &format!("{ZONE}/instances"),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{missing}"
    );

    let (status, _) = api.get("/projects/p1/zones/mars-1-a/instances").await;
    assert_eq!(status, 404);

    sim.set_faults(
        Provider::Gce,
        Faults {
            drift: true,
            ..Faults::default()
        },
    );
    let (status, _) = api.get(&format!("{ZONE}/instances")).await;
    assert_eq!(status, 500, "a list without its id drifted");
    assert_eq!(sim.drifts().len(), 1, "{:?}", sim.drifts());
    sim.clear_faults(Provider::Gce);

    let (status, denied) = api.with_token(None).get(&format!("{ZONE}/instances")).await;
    assert_eq!(status, 401);
    assert_eq!(denied["error"]["code"], 401);
    sim.set_faults(
        Provider::Gce,
        Faults {
            rate_limit_storm: 1,
            ..Faults::default()
        },
    );
    let (status, limited) = api.get(&format!("{ZONE}/instances")).await;
    assert_eq!(status, 429);
    assert_eq!(limited["error"]["errors"][0]["reason"], "rateLimitExceeded");
}

#[tokio::test]
async fn past_the_instances_quota_inserts_are_refused_and_the_rest_works() {
    let sim = booting_in(Duration::from_millis(50)).await;
    let api = Api::new(&sim, PROVIDER);
    api.insert("node-1", json!({"damm-fleet": "f1"})).await;
    sim.set_faults(
        PROVIDER,
        Faults {
            quota_exhausted: true,
            ..Faults::default()
        },
    );
    let mut body = json!({
        "name": "node-2",
        "machineType": "zones/europe-west3-a/machineTypes/e2-small",
        "disks": [{"boot": true, "autoDelete": true, "initializeParams": {
            "sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
    });
    let (status, refused) = api
        .call(
            Method::POST,
            &format!("{ZONE}/instances"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], 403);
    assert_eq!(refused["error"]["errors"][0]["reason"], "quotaExceeded");
    assert_eq!(refused["error"]["errors"][0]["domain"], "usageLimits");
    let (status, list) = api.get(&format!("{ZONE}/instances")).await;
    assert_eq!(status, 200, "listing works");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (status, _) = api
        .call(Method::DELETE, &format!("{ZONE}/instances/node-1"), None)
        .await;
    assert_eq!(status, 200, "deleting works");
    sim.clear_faults(PROVIDER);
    body["name"] = json!("node-3");
    let (status, op) = api
        .call(Method::POST, &format!("{ZONE}/instances"), Some(body))
        .await;
    assert_eq!(status, 200, "{op}");
    assert_clean(&sim, PROVIDER);
}
