//! `[policies]`: named policy sets.

use super::*;

/// Longest policy name.
const MAX_POLICY_NAME: usize = 64;

/// `[policies]`: each name checked, in the file's order.
pub(super) fn policies(
    raw: BTreeMap<String, PolicyEntry>,
) -> Result<Vec<(String, PolicySet)>, Invalid> {
    let mut policies = Vec::with_capacity(raw.len());
    for (name, PolicyEntry(set)) in raw {
        let field = format!("policies.{name}");
        if name.is_empty()
            || name.len() > MAX_POLICY_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad(
                &field,
                format!(
                    "is not a valid policy name: use 1 to {MAX_POLICY_NAME} letters, digits, `_`, `-` or `.`"
                ),
            ));
        }
        policies.push((name, set));
    }
    Ok(policies)
}
