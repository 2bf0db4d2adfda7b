//! Seeded random schedules: `SIM_SCHEDULES` of them per run (default 1000), `SIM_SEED` replays
//! one.

use super::{Ev, Mode, Rng, Setup, Sim, SourceCfg, Tok};

// ------------------------------------------------------------------------------ random schedules

fn random_setup(rng: &mut Rng) -> Setup {
    let sources = if rng.chance(25) { 2 } else { 1 };
    let timeout = rng.range(100, 2_000);
    let cfgs = (0..sources)
        .map(|i| SourceCfg {
            // Two providers of one URL: another cache duration (and sometimes timeout).
            timeout_ms: if i > 0 && rng.chance(50) {
                rng.range(100, 2_000)
            } else {
                timeout
            },
            cache_ms: [500, 1_000, 3_000, 10_000, 30_000, 120_000][rng.below(6) as usize]
                + 100 * i as u64,
            async_fetch: rng.chance(20),
        })
        .collect();
    Setup {
        workers: rng.range(1, 4) as usize,
        sources: cfgs,
        max_stale_ms: [0, 1_000, 5_000, 20_000, 600_000][rng.below(5) as usize],
        initial_keys: rng.range(1, 2) as usize,
    }
}

/// A seeded schedule: arrivals, server changes, clock jumps and failures over `length` ms.
pub fn random_schedule(seed: u64, tracing: bool) -> Sim {
    let mut rng = Rng::new(seed);
    let setup = random_setup(&mut rng);
    let mut sim = Sim::new(&setup, seed.wrapping_mul(31));
    sim.world.tracing = tracing;
    let length = 20_000;
    let providers = setup.sources.len();
    let mut t = 0;
    while t < length {
        t += rng.range(1, 300);
        if t >= length {
            break;
        }
        let w = rng.below(setup.workers as u64) as usize;
        let tok = match rng.below(100) {
            0..=49 => Tok::Current,
            50..=57 => Tok::Future,
            58..=62 => Tok::Old,
            63..=74 => Tok::UnknownKid,
            75..=84 => Tok::Forged,
            85..=91 => Tok::Expired,
            _ => Tok::Missing,
        };
        let provider = rng.below(providers as u64) as usize;
        sim.world.at(t, Ev::Arrive(w, tok, provider));
        if rng.chance(2) {
            // A flood: 30 unknown kids (or first requests) within 50 ms.
            let tok = if rng.chance(50) {
                Tok::UnknownKid
            } else {
                Tok::Current
            };
            for _ in 0..30 {
                let w = rng.below(setup.workers as u64) as usize;
                sim.world
                    .at(t + rng.below(50), Ev::Arrive(w, tok, provider));
            }
        }
    }
    // Clients giving up: a cancel at a random time for random context ids.
    for _ in 0..rng.range(0, 40) {
        let w = rng.below(setup.workers as u64) as usize;
        let ctx = 100 + rng.range(1, 300) as u32;
        sim.world.at(rng.below(length), Ev::Cancel(w, ctx));
    }
    let mut t = 0;
    while t < length {
        t += rng.range(500, 12_000);
        if t >= length {
            break;
        }
        let ev = match rng.below(100) {
            0..=29 => Ev::Mode(Mode::Up),
            30..=39 => Ev::Mode(Mode::Unavailable),
            40..=45 => Ev::Mode(Mode::Reset),
            46..=51 => Ev::Mode(Mode::Never),
            52..=55 => Ev::Mode(Mode::BadBody),
            56..=58 => Ev::Mode(Mode::NoValidKeys),
            59..=72 => Ev::Delay(rng.range(0, 2_500)),
            73..=84 => Ev::AddKey,
            85..=92 => Ev::DropOldest,
            93..=96 => Ev::Jump(rng.range(100, 200_000)),
            _ => Ev::ClockBroken(true),
        };
        if matches!(ev, Ev::ClockBroken(true)) {
            sim.world
                .at(t + rng.range(10, 3_000), Ev::ClockBroken(false));
        }
        sim.world.at(t, ev);
    }
    sim.run_until(length);
    sim.drain();
    sim
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sim_random_schedules() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let sim = random_schedule(seed, true);
        if std::env::var("SIM_TRACE").is_ok() {
            eprintln!("{}", sim.report(&format!("seed {seed}")));
        }
        sim.assert_clean(&format!("SIM_SEED={seed}"));
        return;
    }
    let n = env_u64("SIM_SCHEDULES").unwrap_or(1_000);
    let base = env_u64("SIM_BASE").unwrap_or(0);
    let start = std::time::Instant::now();
    let mut requests = 0;
    let mut steps = 0;
    for seed in base..base + n {
        let sim = random_schedule(seed, false);
        requests += sim.world.answers.len();
        steps += sim.world.steps;
        if !sim.world.violations.is_empty() {
            let sim = random_schedule(seed, true); // the same schedule, with its trace
            panic!(
                "{}\nreplay: SIM_SEED={seed} cargo test sim_random",
                sim.report(&format!("SIM_SEED={seed}"))
            );
        }
    }
    eprintln!(
        "sim: {n} schedules, {requests} requests, {steps} events, {:.2?}",
        start.elapsed()
    );
}
