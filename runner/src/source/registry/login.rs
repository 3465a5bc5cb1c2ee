//! `kiln login`: checking credentials against a registry the way `docker login` does, before
//! [`auth`] saves them.

use oci_client::secrets::RegistryAuth;

use super::session::{Access, Session};
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
        let credentials = auth::Found {
            auth: RegistryAuth::Basic(user.to_string(), password.to_string()),
            source: "the command line".into(),
        };
        let session = Session::new(self, &parsed, &credentials, Access::Login)?;
        let refused = |detail: String| RegistryError::Unauthorized {
            reference: format!("login to {registry}"),
            registry: registry.to_string(),
            detail,
            advice: "check the user name and password".into(),
        };
        match inner.runtime.block_on(session.check()) {
            Ok(status) if status.is_success() => {}
            Ok(status) => return Err(refused(format!("the registry answered HTTP {status} with them"))),
            Err(RegistryError::Unauthorized { detail, .. }) => return Err(refused(detail)),
            Err(other) => return Err(other),
        }
        let path = auth::config_path();
        auth::save(&path, parsed.registry(), user, password)?;
        Ok(path)
    }
}
