//! What a SIGHUP reload may change while running, and the refusal naming what needs a restart.

use super::*;

/// The fields a SIGHUP reload may change while running; any other change needs a restart.
pub const RELOADABLE: &[&str] = &["log_level", "rebalancer"];

impl Config {
    /// What a reload from `self` to `new` may apply: `Err` names the fields that need a restart.
    pub fn reload_to(&self, new: &Config) -> Result<Vec<&'static str>, String> {
        let mut same = new.clone();
        same.log_level.clone_from(&self.log_level);
        same.rebalancer = self.rebalancer.clone();
        if same != *self {
            let a = toml::Value::try_from(self).map_err(|e| e.to_string())?;
            let b = toml::Value::try_from(&same).map_err(|e| e.to_string())?;
            let mut fields = Vec::new();
            diff_fields("", &a, &b, &mut fields);
            return Err(format!(
                "{} changed: these need a restart (only {} reload); the running config is kept",
                fields.join(", "),
                RELOADABLE.join(" and ")
            ));
        }
        let mut changed = Vec::new();
        if new.log_level != self.log_level {
            changed.push("log_level");
        }
        if new.rebalancer != self.rebalancer {
            changed.push("rebalancer");
        }
        Ok(changed)
    }
}

/// The dotted names of the leaves where `a` and `b` differ.
fn diff_fields(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_fields(&name, p, q, out),
                    _ => out.push(name),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}
