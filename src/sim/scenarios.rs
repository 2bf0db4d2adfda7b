//! Named scenarios: the required ones, and each schedule the random runs found.

use std::collections::BTreeMap;

use crate::jwks_cache::{DEADLINE_MARGIN_MS, MAX_BACKOFF_MS};
use crate::worker::{BUSY_TICK_MS, IDLE_TICK_MS};

use super::{Answer, EPOCH_MS, Ev, Mode, Setup, Sim, SourceCfg, Tok};

// ------------------------------------------------------------------------------ named scenarios

fn one_source(workers: usize, timeout_ms: u64, cache_ms: u64, max_stale_ms: u64) -> Setup {
    Setup {
        workers,
        sources: vec![SourceCfg {
            timeout_ms,
            cache_ms,
            async_fetch: false,
        }],
        max_stale_ms,
        initial_keys: 1,
    }
}

fn scripted(setup: &Setup, events: Vec<(u64, Ev)>, until: u64) -> Sim {
    let mut sim = Sim::new(setup, 1);
    for (t, ev) in events {
        sim.world.at(t, ev);
    }
    sim.run_until(until);
    sim
}

/// Requests with a current-key token every `every` ms on rotating workers.
fn steady(from: u64, to: u64, every: u64, workers: usize, tok: Tok) -> Vec<(u64, Ev)> {
    (0..)
        .map(|i| (from + i * every, i as usize % workers))
        .take_while(|(t, _)| *t < to)
        .map(|(t, w)| (t, Ev::Arrive(w, tok, 0)))
        .collect()
}

fn answers_between(sim: &Sim, from: u64, to: u64) -> Vec<&Answer> {
    sim.world
        .answers
        .iter()
        .filter(|a| a.arrived >= from && a.arrived < to)
        .collect()
}

const FETCH_FAILED: &str = "Jwks remote fetch is failed";
const NO_KEY: &str = "Jwks doesn't have key to match kid or alg from Jwt";

#[test]
fn sim_cold_start_40_waiters_on_4_workers_share_one_fetch() {
    let setup = one_source(4, 2_000, 60_000, 600_000);
    let mut events = vec![(0, Ev::Delay(300))];
    events.extend((0..40).map(|i| (10 + i / 8, Ev::Arrive(i as usize % 4, Tok::Current, 0))));
    let sim = scripted(&setup, events, 5_000);
    sim.assert_clean("cold start");
    assert_eq!(sim.world.fetches[0].len(), 1, "{}", sim.report("fetches"));
    assert_eq!(sim.statuses(), BTreeMap::from([("200 ".to_string(), 40)]));
    assert_eq!(sim.counter("requests_paused"), 40);
    assert!(
        sim.world
            .answers
            .iter()
            .all(|a| a.at < 10 + 300 + IDLE_TICK_MS + 50)
    );
}

#[test]
fn sim_server_down_at_start_then_up() {
    let setup = one_source(3, 1_000, 60_000, 600_000);
    let mut events = vec![
        (0, Ev::Mode(Mode::Unavailable)),
        (8_000, Ev::Mode(Mode::Up)),
    ];
    events.extend(steady(10, 30_000, 150, 3, Tok::Current));
    let sim = scripted(&setup, events, 32_000);
    sim.assert_clean("down then up");
    assert!(
        answers_between(&sim, 0, 8_000)
            .iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED)
    );
    // Up at 8 s: the next retry (at most 10 s after the last failure) succeeds.
    let after = answers_between(&sim, 8_000 + MAX_BACKOFF_MS + IDLE_TICK_MS, 30_000);
    assert!(!after.is_empty() && after.iter().all(|a| a.status == 200));
    assert!(sim.counter("jwks_fetch_success") >= 1);
}

#[test]
fn sim_lease_holders_callout_never_answered() {
    let setup = one_source(2, 1_000, 60_000, 600_000);
    let mut events = vec![(0, Ev::Mode(Mode::Never)), (100, Ev::Mode(Mode::Up))];
    events.extend((0..10).map(|i| (10 + i, Ev::Arrive(0, Tok::Current, 0))));
    events.extend((0..10).map(|i| (30 + i, Ev::Arrive(1, Tok::Current, 0))));
    events.extend(steady(4_000, 6_000, 100, 2, Tok::Current));
    let sim = scripted(&setup, events, 8_000);
    sim.assert_clean("never answered");
    let first = answers_between(&sim, 0, 100);
    assert_eq!(first.len(), 20);
    assert!(
        first
            .iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED)
    );
    assert!(
        first
            .iter()
            .all(|a| a.at <= a.arrived + 1_000 + DEADLINE_MARGIN_MS + BUSY_TICK_MS)
    );
    let later = answers_between(&sim, 4_000, 6_000);
    assert!(!later.is_empty() && later.iter().all(|a| a.status == 200));
    assert!(
        sim.workers.iter().all(|w| w.callouts.is_empty()),
        "the lost callout is forgotten"
    );
    assert_eq!(sim.world.fetches[0].len(), 2);
}

#[test]
fn sim_rotation_during_a_refresh() {
    // Fresh for 10 s, refreshed from 9 s; the refresh is slow, and the issuer rotates (k1 in,
    // k0 out) while it is in flight: the refresh brings the new set.
    let setup = one_source(3, 2_000, 10_000, 600_000);
    let mut events = vec![
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (8_000, Ev::Delay(1_500)),
        (9_500, Ev::AddKey),
        (9_500, Ev::DropOldest),
    ];
    events.extend(steady(100, 9_500, 200, 3, Tok::Current));
    for t in (9_600..16_000).step_by(100) {
        events.push((t, Ev::Arrive((t / 100) as usize % 3, Tok::Current, 0)));
        events.push((t + 1, Ev::Arrive((t / 100 + 1) as usize % 3, Tok::Old, 0)));
    }
    let sim = scripted(&setup, events, 20_000);
    sim.assert_clean("rotation during refresh");
    let settled = answers_between(&sim, 9_000 + 1_500 + IDLE_TICK_MS + 100, 16_000);
    for a in &settled {
        match a.kid.as_deref() {
            Some("k1") => assert_eq!(a.status, 200, "{a:?}"),
            Some("k0") => assert_eq!((a.status, a.body.as_str()), (401, NO_KEY), "{a:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(settled.iter().any(|a| a.kid.as_deref() == Some("k1")));
    assert!(
        answers_between(&sim, 0, 9_500)
            .iter()
            .all(|a| a.status == 200)
    );
}

#[test]
fn sim_clock_jump_forward_past_cache_duration() {
    let setup = one_source(3, 1_000, 5_000, 60_000);
    let mut events = vec![(2_000, Ev::Jump(7_000)), (10_000, Ev::Jump(120_000))];
    events.extend(steady(10, 20_000, 100, 3, Tok::Current));
    let sim = scripted(&setup, events, 22_000);
    sim.assert_clean("clock jump");
    // Past expiry (within the stale bound) the keys serve while the refresh runs; past the stale
    // bound requests wait for a fetch. Either way every request passes.
    assert!(
        sim.world.answers.iter().all(|a| a.status == 200),
        "{:?}",
        sim.statuses()
    );
    let f = &sim.world.fetches[0];
    assert!(
        f.iter()
            .any(|t| (2_000..2_000 + IDLE_TICK_MS + 50).contains(t)),
        "{f:?}"
    );
    assert!(f.iter().any(|t| (10_000..10_100).contains(t)), "{f:?}");
}

#[test]
fn sim_stale_bound_reached() {
    // Issue 11 item 8: fresh 1 s, stale at most 2 s more; the server fails after the first fetch.
    let setup = one_source(2, 500, 1_000, 2_000);
    let mut events = vec![
        (100, Ev::Mode(Mode::Unavailable)),
        (8_000, Ev::Mode(Mode::Up)),
    ];
    events.extend(steady(10, 20_000, 50, 2, Tok::Current));
    let sim = scripted(&setup, events, 21_000);
    sim.assert_clean("stale bound");
    let good_at = 10 + 5; // the first fetch (server delay 5 ms)
    assert!(
        answers_between(&sim, 0, good_at + 3_000 - 5)
            .iter()
            .all(|a| a.status == 200)
    );
    let past = answers_between(&sim, good_at + 3_000 + 5, 8_000);
    assert!(!past.is_empty());
    assert!(
        past.iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED),
        "{:?}",
        sim.statuses()
    );
    let recovered = answers_between(&sim, 8_000 + MAX_BACKOFF_MS + IDLE_TICK_MS, 20_000);
    assert!(!recovered.is_empty() && recovered.iter().all(|a| a.status == 200));
}

#[test]
fn sim_unknown_kid_flood_fetches_at_most_once_per_interval() {
    let setup = one_source(4, 1_000, 300_000, 600_000);
    let mut events = vec![(10, Ev::Arrive(0, Tok::Current, 0))];
    for i in 0..2_000u64 {
        events.push((100 + i * 15, Ev::Arrive(i as usize % 4, Tok::UnknownKid, 0)));
    }
    let sim = scripted(&setup, events, 32_000);
    sim.assert_clean("flood");
    // 30 s of unknown kids: the first fetch, then one refetch per 10 s at most.
    assert!(
        sim.world.fetches[0].len() <= 4,
        "{:?}",
        sim.world.fetches[0]
    );
}

// Issue 11 item 12a: providers sharing a cluster and URL took the first one's timeout and cache
// duration.
#[test]
fn sim_providers_sharing_a_url_keep_their_own_timeout() {
    let setup = Setup {
        workers: 2,
        sources: vec![
            SourceCfg {
                timeout_ms: 300,
                cache_ms: 60_000,
                async_fetch: false,
            },
            SourceCfg {
                timeout_ms: 2_000,
                cache_ms: 5_000,
                async_fetch: false,
            },
        ],
        max_stale_ms: 600_000,
        initial_keys: 1,
    };
    let events = vec![
        (0, Ev::Mode(Mode::Never)),
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (10, Ev::Arrive(1, Tok::Current, 1)),
    ];
    let sim = scripted(&setup, events, 5_000);
    sim.assert_clean("two sources");
    assert_eq!(sim.workers[0].sources.len(), 2);
    let at: Vec<(u32, u64)> = sim.world.answers.iter().map(|a| (a.status, a.at)).collect();
    assert_eq!(at.len(), 2);
    assert!(
        at.iter()
            .any(|&(s, t)| s == 401 && t <= 10 + 300 + 1_000 + 25),
        "{at:?}"
    );
    assert!(
        at.iter().any(|&(s, t)| s == 401 && t >= 10 + 2_000 + 1_000),
        "{at:?}"
    );
}

// Issue 11 item 5: a failing clock meant time 0: nothing expired.
#[test]
fn sim_a_broken_clock_refuses_governed_requests_and_dates_nothing_from_zero() {
    let setup = one_source(2, 1_000, 60_000, 600_000);
    let events = vec![
        (0, Ev::Delay(200)),
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (100, Ev::ClockBroken(true)), // while the fetch is in flight
        (150, Ev::Arrive(1, Tok::Current, 0)),
        (150, Ev::Arrive(1, Tok::Missing, 0)),
        (2_000, Ev::ClockBroken(false)),
        (2_100, Ev::Arrive(1, Tok::Current, 0)),
    ];
    let sim = scripted(&setup, events, 4_000);
    sim.assert_clean("broken clock");
    let a = &sim.world.answers;
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(
        a.iter()
            .take(3)
            .all(|a| a.status == 500 && a.body == "jwt policy filter cannot read the clock"),
        "{a:?}"
    );
    assert_eq!(a[3].status, 200);
    let r = sim.world.store_record(0).unwrap();
    assert!(r.good_at_ms >= EPOCH_MS, "keys dated {}", r.good_at_ms);
}

// Issue 11 item 12b: every busy tick copied the whole record to compare its version.
#[test]
fn sim_busy_ticks_read_only_the_small_version_entry() {
    let mut setup = one_source(2, 1_000, 300_000, 600_000);
    setup.initial_keys = 60; // a ~6 KiB JWKS
    let mut events = vec![(10, Ev::Arrive(0, Tok::Current, 0))];
    // Keep worker 1 busy (a paused request per 200 ms, for a key nobody has yet: refetch waits).
    events.push((11_000, Ev::Delay(900)));
    events.extend(
        steady(11_000, 13_000, 200, 1, Tok::Future)
            .into_iter()
            .map(|(t, _)| (t, Ev::Arrive(1, Tok::Future, 0))),
    );
    let mut sim = scripted(&setup, events, 10_000);
    let body = sim.world.store_record(0).unwrap().body.len() as u64;
    assert!(body > 5_000);
    let (bytes, reads) = (sim.world.shared_bytes_read, sim.world.shared_reads);
    sim.run_until(14_000);
    sim.assert_clean("busy ticks");
    let (bytes, reads) = (
        sim.world.shared_bytes_read - bytes,
        sim.world.shared_reads - reads,
    );
    // One refetch (a new record: copied once per worker); every other read is 8 or 16 bytes.
    assert!(reads > 40, "{reads} reads");
    assert!(
        bytes < 3 * body + 16 * reads,
        "{bytes} bytes in {reads} reads"
    );
}

// Found by the random schedules (main's flow too): a worker that had not yet adopted the keys
// another worker had just fetched denied valid tokens for the new key until its next tick.
#[test]
fn sim_a_worker_behind_on_keys_looks_before_denying() {
    let setup = one_source(2, 1_000, 5_000, 600_000);
    let mut events = vec![
        (10, Ev::Arrive(0, Tok::Key(0), 0)),
        (1_000, Ev::Arrive(1, Tok::Key(0), 0)),
        (3_000, Ev::AddKey), // k1: the refresh due at 4.5 s brings it
    ];
    for t in (4_400..6_500).step_by(3) {
        events.push((t, Ev::Arrive((t / 3) as usize % 2, Tok::Key(1), 0)));
    }
    let sim = scripted(&setup, events, 7_000);
    sim.assert_clean("behind");
    let refreshed = sim.world.fetches[0][1] + 5;
    let after = answers_between(&sim, refreshed + 1, 6_500);
    assert!(after.len() > 50);
    assert!(
        after.iter().all(|a| a.status == 200),
        "{:?}",
        sim.statuses()
    );
}
