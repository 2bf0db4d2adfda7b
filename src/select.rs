//! Which policy governs a request. For now every policy selects every request, so the oldest
//! policy of this instance's phase governs (route and destination selectors are parsed and
//! validated; matching them is the next step).

use crate::policy::Config;

/// The index of the governing policy, if any: policies are kept oldest first.
pub fn governing(config: &Config) -> Option<usize> {
    config
        .policies
        .iter()
        .position(|p| config.settings.phase.is_none_or(|phase| p.phase == phase))
}
