//! The tick against the schema-checked simulator: journaled apply survives a crash at
//! either side of the adapter call with exactly one node and no orphan; plan mode mutates
//! nothing; orphans are collected after their grace and unlabelled nodes never touched.

use std::sync::Arc;
use std::time::Duration;

use damm_fleet::{Mode, Policy};
use damm_orchestrator::engine::{CrashHook, ManualClock, Stage};
use damm_orchestrator::state::Phase;
use damm_orchestrator::{Engine, FileStore, Options, StateStore};
use damm_provider::{FleetId, IdempotencyKey, NodeFilter, NodeRole, NodeSpec, Provider};
use damm_sim::SimHandle;
use damm_sim::testing::booting_in;

const POLICY: &str = include_str!("policies/engine.toml");

/// The simulator's boot delay (real time).
const BOOT: Duration = Duration::from_millis(100);

struct Setup {
    sim: SimHandle,
    policy: Policy,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            sim: booting_in(BOOT).await,
            policy: Policy::parse(POLICY, "test").unwrap(),
            clock: ManualClock::new(chrono::Utc::now()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn engine(&self) -> Engine {
        let providers = damm_orchestrator::sim::providers(&self.sim, &self.policy)
            .await
            .unwrap();
        let store = FileStore::open(&self.dir.path().join("state.json")).unwrap();
        Engine::new(
            self.policy.clone(),
            providers,
            Box::new(store),
            self.clock.clock(),
            Options::default(),
        )
        .unwrap()
    }

    /// What the provider really holds for this fleet.
    async fn inventory(&self, engine: &Engine) -> Vec<damm_provider::Node> {
        engine.providers()["hetzner"]
            .list_nodes(&NodeFilter::all())
            .await
            .unwrap()
    }

    async fn settle(&self, engine: &mut Engine, ticks: usize) {
        for _ in 0..ticks {
            engine.tick(Mode::Apply, true).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.clock.advance(Duration::from_secs(60));
        }
    }
}

fn crash_at(stage: Stage) -> CrashHook {
    Arc::new(move |at, _| {
        if at == stage {
            anyhow::bail!("killed at {at:?}")
        }
        Ok(())
    })
}

#[tokio::test]
async fn a_crash_between_the_journal_write_and_the_adapter_call_leaves_one_node_and_no_orphan() {
    let setup = Setup::new().await;
    {
        let mut engine = setup.engine().await;
        engine.set_crash_hook(crash_at(Stage::IntentsDurable));
        let err = engine.tick(Mode::Apply, true).await.unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        // The intent is durable; the adapter was never called.
        assert!(setup.inventory(&engine).await.is_empty());
    }
    let mut engine = setup.engine().await; // "restart": a new process on the same file
    let intent = engine.state().journal.first().cloned().unwrap();
    assert_eq!(intent.phase, Phase::Intent);
    setup.settle(&mut engine, 4).await;
    let nodes = setup.inventory(&engine).await;
    assert_eq!(nodes.len(), 1, "exactly one node: {nodes:?}");
    assert_eq!(engine.state().nodes.len(), 1);
    assert!(
        engine.state().orphans.is_empty(),
        "{:?}",
        engine.state().orphans
    );
    let first = engine
        .state()
        .journal
        .iter()
        .find(|e| e.seq == intent.seq)
        .unwrap();
    assert_eq!(first.phase, Phase::Abandoned);
}

#[tokio::test]
async fn a_crash_after_the_adapter_call_is_adopted_by_its_key_not_created_again() {
    let setup = Setup::new().await;
    {
        let mut engine = setup.engine().await;
        engine.set_crash_hook(crash_at(Stage::CallsReturned));
        engine.tick(Mode::Apply, true).await.unwrap_err();
        // The node exists at the provider, the state does not know it.
        assert_eq!(setup.inventory(&engine).await.len(), 1);
        assert!(engine.state().nodes.is_empty());
    }
    let mut engine = setup.engine().await;
    let report = engine.tick(Mode::Apply, true).await.unwrap();
    assert_eq!(report.summary.adopted, 1);
    setup.settle(&mut engine, 3).await;
    let nodes = setup.inventory(&engine).await;
    assert_eq!(nodes.len(), 1, "adopted, not created again: {nodes:?}");
    assert!(engine.state().orphans.is_empty());
    assert!(
        engine
            .state()
            .journal
            .iter()
            .all(|e| e.phase == Phase::Done)
    );
}

#[tokio::test]
async fn plan_mode_mutates_nothing() {
    let setup = Setup::new().await;
    let mut engine = setup.engine().await;
    let report = engine.tick(Mode::Plan, false).await.unwrap();
    assert!(!report.plan.actions.is_empty());
    assert!(setup.inventory(&engine).await.is_empty());
    assert!(!setup.dir.path().join("state.json").exists());
}

#[tokio::test]
async fn orphans_go_after_their_grace_and_unlabelled_nodes_stay() {
    let setup = Setup::new().await;
    let mut engine = setup.engine().await;
    setup.settle(&mut engine, 3).await;
    let hetzner: Arc<dyn Provider> = Arc::clone(&engine.providers()["hetzner"]);
    // A node labelled for this fleet that no journal explains (say, a lost state file).
    let fleet = FleetId::new("crash").unwrap();
    let orphan = NodeSpec::new(
        &fleet,
        IdempotencyKey::new("lost-1").unwrap(),
        "eu-central".parse().unwrap(),
        NodeRole::Ingress,
        "small",
    );
    hetzner
        .compute()
        .unwrap()
        .create_node(&orphan)
        .await
        .unwrap();
    // A node of another fleet, through an adapter of that fleet.
    let other_policy =
        Policy::parse(&POLICY.replace("id = \"crash\"", "id = \"other\""), "t").unwrap();
    let other = damm_orchestrator::sim::providers(&setup.sim, &other_policy)
        .await
        .unwrap();
    let foreign = NodeSpec::new(
        &FleetId::new("other").unwrap(),
        IdempotencyKey::new("theirs").unwrap(),
        "eu-central".parse().unwrap(),
        NodeRole::Ingress,
        "small",
    );
    other["hetzner"]
        .compute()
        .unwrap()
        .create_node(&foreign)
        .await
        .unwrap();

    let report = engine.tick(Mode::Apply, true).await.unwrap();
    assert_eq!(report.summary.collected, 0, "inside the grace");
    assert_eq!(engine.state().orphans.len(), 1);
    setup.clock.advance(Duration::from_secs(11 * 60));
    let report = engine.tick(Mode::Apply, true).await.unwrap();
    assert_eq!(report.summary.collected, 1);
    let ours = setup.inventory(&engine).await;
    assert!(
        ours.iter().all(|n| n.key().unwrap().as_str() != "lost-1"),
        "{ours:?}"
    );
    let theirs = other["hetzner"]
        .list_nodes(&NodeFilter::all())
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1, "the other fleet's node is untouched");
}

#[tokio::test]
async fn a_second_orchestrator_cannot_take_the_state() {
    let setup = Setup::new().await;
    let _first = setup.engine().await;
    let err = FileStore::open(&setup.dir.path().join("state.json")).unwrap_err();
    assert!(err.to_string().contains("another orchestrator"), "{err}");
    let mut reader = FileStore::read_only(&setup.dir.path().join("state.json"));
    assert!(reader.load().unwrap().is_none());
}
