//! The built-in channels, one folder each, each behind its cargo feature.

use crate::config::Registry;

/// Registers every built-in channel of the enabled features, with Dinky's
/// type names as aliases.
pub(crate) fn register_builtins(registry: &mut Registry) {
    let _ = registry;
}
