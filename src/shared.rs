//! The remote-JWKS protocol over shared data, per source (`Source::shared_key`):
//! - `<key>`: the [`Record`] (the last good JWKS and the fetch history), written only with a
//!   compare-and-swap that never replaces a newer generation with an older one;
//! - `<key>.version`: the record's generation (8 bytes), bumped with a compare-and-swap before
//!   the record is written, so generations (and key versions) are unique across workers.
//!   Workers read this small entry to learn whether the record changed, not the record itself
//!   (up to 256 KiB): a busy tick (every 20 ms) copies 8 bytes per source instead of the JWKS;
//! - `<key>.lease`: `held_until` and the holder's id (8 + 8 bytes): one worker fetches at a
//!   time; a lease that is not released (a lost callout, a crashed worker) ends by itself.

use crate::host::{Host, SetError};
use crate::jwks_cache::{self, Record, Source};

/// The shared counter that gives each worker its lease-holder id.
const WORKER_IDS_KEY: &str = "jwt_policy_filter.worker_ids";

/// Adopts what another worker published for this source, if it is newer: reads the small
/// version entry, and the record only when that moved. Returns whether it adopted.
pub fn sync(host: &mut impl Host, source: &mut Source) -> bool {
    let published = match host.get_shared(&source.version_key) {
        Ok((Some(bytes), _)) => Record::generation_of(&bytes).unwrap_or(0),
        _ => return false,
    };
    if published <= source.record.generation {
        return false;
    }
    match host.get_shared(&source.shared_key) {
        Ok((Some(bytes), _)) => Record::decode(&bytes).is_some_and(|r| source.adopt(r)),
        _ => false,
    }
}

/// Shares this worker's record of a source (after a fetch ended) and releases the lease.
pub fn publish(host: &mut impl Host, source: &mut Source, id: u64) {
    // A generation no other worker has: bump the version entry with a compare-and-swap.
    let vkey = source.version_key.clone();
    for _ in 0..8 {
        let Ok((bytes, cas)) = host.get_shared(&vkey) else {
            break;
        };
        let published = bytes
            .as_deref()
            .and_then(Record::generation_of)
            .unwrap_or(0);
        source.renumber(published);
        match host.set_shared(&vkey, &source.record.generation.to_le_bytes(), cas) {
            Err(SetError::CasMismatch) => continue,
            _ => break,
        }
    }
    // The record itself: never over a newer generation.
    let encoded = source.record.encode();
    for _ in 0..8 {
        let Ok((bytes, cas)) = host.get_shared(&source.shared_key) else {
            break;
        };
        if bytes
            .as_deref()
            .and_then(Record::generation_of)
            .is_some_and(|g| g >= source.record.generation)
        {
            break;
        }
        match host.set_shared(&source.shared_key, &encoded, cas) {
            Err(SetError::CasMismatch) => continue,
            _ => break,
        }
    }
    release_lease(host, source, id);
}

pub fn encode_lease(until: u64, holder: u64) -> Vec<u8> {
    let mut v = until.to_le_bytes().to_vec();
    v.extend(holder.to_le_bytes());
    v
}

fn decode_lease(bytes: &[u8]) -> (u64, u64) {
    let u64_at = |i: usize| {
        bytes
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    (u64_at(0), u64_at(8))
}

/// A number no other worker sharing this data got (a compare-and-swap counter).
pub fn take_worker_id(host: &mut impl Host) -> Option<u64> {
    for _ in 0..16 {
        let (bytes, cas) = host.get_shared(WORKER_IDS_KEY).ok()?;
        if cas.is_none() {
            // No counter yet: create it, then take a number with a compare-and-swap.
            host.set_shared(WORKER_IDS_KEY, &0u64.to_le_bytes(), None)
                .ok()?;
            continue;
        }
        let next = bytes
            .as_deref()
            .and_then(Record::generation_of)
            .unwrap_or(0)
            .saturating_add(1);
        match host.set_shared(WORKER_IDS_KEY, &next.to_le_bytes(), cas) {
            Ok(()) => return Some(next),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return None,
        }
    }
    None
}

/// Takes the cross-worker lease on a source's fetch (until its timeout plus the margin).
pub fn take_lease(host: &mut impl Host, source: &Source, id: u64, now: u64) -> bool {
    let key = &source.lease_key;
    let Ok((value, cas)) = host.get_shared(key) else {
        return false;
    };
    if cas.is_none() {
        // No entry (it is created at start): create a free one, take it next time.
        let _ = host.set_shared(key, &encode_lease(0, 0), None);
        return false;
    }
    let (held_until, _) = value.as_deref().map_or((0, 0), decode_lease);
    if held_until > now {
        return false;
    }
    let until = now
        .saturating_add(source.remote.timeout_ms)
        .saturating_add(jwks_cache::DEADLINE_MARGIN_MS);
    host.set_shared(key, &encode_lease(until, id), cas).is_ok()
}

/// Frees the lease if this worker still holds it.
pub fn release_lease(host: &mut impl Host, source: &Source, id: u64) {
    let key = &source.lease_key;
    if let Ok((Some(value), cas)) = host.get_shared(key)
        && decode_lease(&value).1 == id
    {
        let _ = host.set_shared(key, &encode_lease(0, 0), cas);
    }
}
