//! The whole configuration file: the core sections (read by the service layer's
//! [`Config`]) and each gateway's `[gateways.<name>]` section, checked by its gateway.

use std::path::Path;

use converge_service::config::{Config, ConfigError};

/// Loads the file at `path` (or the defaults), applies the `CONVERGE_*` environment
/// overrides in `env`, and checks every section, the gateways' included.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let config = Config::load(path, env)?;
    converge_gateways::check_config(&config.gateways)
        .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
    Ok(config)
}

/// The commented example configuration with every key at its default.
pub fn example() -> String {
    format!(
        "{}\n{}",
        converge_service::config::EXAMPLE.trim_end(),
        converge_gateways::example_config()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_the_default_for_every_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, example()).unwrap();
        let config = load(Some(&path), Vec::new()).unwrap();
        for component in converge_gateways::registry::ALL {
            let section = config.gateways.section(component.name);
            assert!(
                section.as_table().is_some_and(|t| !t.is_empty()),
                "the example has no [gateways.{}]",
                component.name
            );
            (component.check_config)(&section).unwrap();
        }
        // Apart from the gateways' sections, the example is the default.
        let mut core = config.clone();
        core.gateways.sections.clear();
        assert_eq!(core, Config::default());
    }

    #[test]
    fn gateway_sections_are_checked_naming_the_key() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (vars, key) in [
            (
                &[("CONVERGE_GATEWAYS__WEBHOOKS__MAX_BODY_BYTES", "10")][..],
                "gateways.webhooks.max_body_bytes",
            ),
            (
                &[("CONVERGE_GATEWAYS__WEBHOOKS__ALLOW", "[\"nonsense\"]")],
                "gateways.webhooks.allow",
            ),
            (
                &[("CONVERGE_GATEWAYS__MQTT__TOPIC_PREFIX", "a/#")],
                "gateways.mqtt.topic_prefix",
            ),
            (
                &[("CONVERGE_GATEWAYS__FAX__ENABLED", "true")],
                "gateways.fax",
            ),
            (
                &[("CONVERGE_GATEWAYS__MQTT__COLOUR", "blue")],
                "gateways.mqtt",
            ),
        ] {
            let err = load(None, env(vars))
                .expect_err("must be refused")
                .to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
        }
        let ok = load(None, env(&[("CONVERGE_GATEWAYS__MQTT__ENABLED", "true")])).unwrap();
        assert_eq!(
            ok.gateways.section("mqtt")["enabled"],
            toml::Value::Boolean(true)
        );
    }
}
