//! `kiln login`: checking credentials against a registry the way `docker login` does, before
//! [`auth`] saves them.

use super::{Registry, RegistryError, auth};

impl Registry {
    /// Check `user`/`password` against `registry` the way `docker login` does (the
    /// registry's `/v2/` endpoint, through its token service if it has one), then save
    /// them in Docker's client configuration.
    ///
    /// # Errors
    ///
    /// The registry cannot be reached or refuses the credentials; the file cannot be written.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> Result<std::path::PathBuf, RegistryError> {
        let parsed = super::parse_reference(&format!("{registry}/kiln-login-check"))?;
        let inner = self.inner()?;
        let host = parsed.resolve_registry().to_string();
        let scheme = if self.is_insecure(parsed.registry()) { "http" } else { "https" };
        let refused = |detail: String| RegistryError::Unauthorized {
            reference: format!("login to {registry}"),
            registry: registry.to_string(),
            detail,
            advice: "check the user name and password".into(),
        };
        inner.runtime.block_on(async {
            let http = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(20))
                .build()
                .map_err(|e| RegistryError::Unreachable { registry: registry.into(), detail: e.to_string() })?;
            let url = format!("{scheme}://{host}/v2/");
            let transport = |e: reqwest::Error| self.transport(&parsed, &e);
            let first = http.get(&url).send().await.map_err(transport)?;
            if first.status().is_success() {
                return Ok(());
            }
            let challenge =
                first.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let answer = if let Some(params) = challenge.strip_prefix("Bearer ") {
                let param = |name: &str| {
                    params.split(',').find_map(|p| {
                        let (k, v) = p.trim().split_once('=')?;
                        (k == name).then(|| v.trim_matches('"').to_string())
                    })
                };
                let realm =
                    param("realm").ok_or_else(|| refused(format!("its challenge has no realm: {challenge}")))?;
                let mut query = vec![("account", user.to_string())];
                if let Some(service) = param("service") {
                    query.push(("service", service));
                }
                http.get(&realm).query(&query).basic_auth(user, Some(password)).send().await.map_err(transport)?
            } else {
                http.get(&url).basic_auth(user, Some(password)).send().await.map_err(transport)?
            };
            if answer.status().is_success() { Ok(()) } else { Err(refused(format!("HTTP {}", answer.status()))) }
        })?;
        let path = auth::config_path();
        auth::save(&path, parsed.registry(), user, password)?;
        Ok(path)
    }
}
